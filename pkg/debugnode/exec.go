package debugnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// Exec runs argv in the debug container and returns its exit code. A
// non-zero exit code is not an error; failing to run it is.
func (s *Session) Exec(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	req := s.engine.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(s.Namespace).Name(s.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: containerName, Command: argv, Stdin: stdin != nil, Stdout: stdout != nil, Stderr: stderr != nil}, scheme.ParameterCodec)
	// SPDY rather than WebSocket: the apiserver passes it through instead of
	// translating, which roughly doubles the throughput of a download.
	exec, err := remotecommand.NewSPDYExecutor(s.engine.Config, "POST", req.URL())
	if err != nil {
		return -1, err
	}
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	var exitErr utilexec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		return exitErr.ExitStatus(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("exec on node %s (pod %s/%s): %w", s.node, s.Namespace, s.Pod, err)
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
