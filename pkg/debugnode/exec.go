package debugnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// Exec runs argv in the debug container and returns its exit code. A
// non-zero exit code is not an error; failing to run it is.
func (s *Session) Exec(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	code, err := ExecInPod(ctx, s.engine.Client, s.engine.Config, s.Namespace, s.Pod, containerName, argv, stdin, stdout, stderr)
	if err != nil {
		return code, fmt.Errorf("exec on node %s (pod %s/%s): %w", s.node, s.Namespace, s.Pod, err)
	}
	return code, nil
}

// ExecInPod runs argv in a container of any pod, over SPDY rather than
// WebSocket: the apiserver passes SPDY through instead of translating it,
// which roughly doubles the throughput of a download. It returns the exit
// code; a non-zero one is not an error.
func ExecInPod(ctx context.Context, client kubernetes.Interface, config *rest.Config, namespace, pod, container string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: argv, Stdin: stdin != nil, Stdout: stdout != nil, Stderr: stderr != nil}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(config, "POST", req.URL())
	if err != nil {
		return -1, err
	}
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	var exitErr utilexec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		return exitErr.ExitStatus(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// Host runs script with bash as root on the host (chroot /host), with env
// exported first. Values are passed quoted, never interpolated.
func (s *Session) Host(ctx context.Context, script string, env map[string]string, stdout, stderr io.Writer) (int, error) {
	var b strings.Builder
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, ShellQuote(env[k]))
	}
	b.WriteString(script)
	return s.Exec(ctx, []string{"chroot", hostMount, "/bin/bash", "-c", b.String()}, nil, stdout, stderr)
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
