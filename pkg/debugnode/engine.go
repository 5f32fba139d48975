// Package debugnode is oc-recover's one way of doing work on a host: the
// equivalent of `oc debug node/<name>` followed by `chroot /host`. It creates
// a temporary privileged namespace and a node-debug pod, runs commands in it
// over exec, moves files as tar streams with sha256 on both ends, and removes
// everything it created, on success, on error and on interruption.
package debugnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

const (
	// ManagedByLabel marks everything oc-recover creates, so that
	// `oc recover cleanup` can find leftovers.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "oc-recover"
	// NodeLabel records which node a debug namespace serves.
	NodeLabel = "oc-recover.openshift.io/node"

	// DefaultImage is used when neither --image nor the cluster's tools image
	// stream names one: the image `oc debug node` uses on RHEL 9 based releases.
	DefaultImage = "registry.redhat.io/rhel9/support-tools:latest"

	containerName   = "debug"
	namespacePrefix = "openshift-recover-"
	hostMount       = "/host"
)

// Engine starts debug sessions on nodes.
type Engine struct {
	Client kubernetes.Interface
	Config *rest.Config
	// Image overrides the debug image (--image).
	Image string
	// Images reads the tools image stream; nil skips it.
	Images imageclient.Interface
	// Deadline bounds how long a debug pod may live: its
	// activeDeadlineSeconds, a safety net should clean-up never run.
	Deadline time.Duration
	// StartTimeout bounds the wait for the pod to run.
	StartTimeout time.Duration
	// NoCompression sends files uncompressed even when the host has zstd
	// (for a fast link where compressing costs more than it saves).
	NoCompression bool
	// Log receives one line per step (creating, waiting, removing).
	Log io.Writer
}

// Runner is what domain packages need of a host: run commands, move files,
// and clean up. Session implements it.
type Runner interface {
	Node() string
	// Host runs script with bash as root in the host's root filesystem
	// (chroot /host), with env exported, and returns its exit code.
	Host(ctx context.Context, script string, env map[string]string, stdout, stderr io.Writer) (int, error)
	// Fetch streams the host file path into dst and returns the host's
	// sha256, for the caller to check what it stored against. (Session's
	// Download also hashes on receipt; no domain package needs that.)
	Fetch(ctx context.Context, path string, dst io.Writer, progress func(done, total int64)) (Transfer, error)
	// Upload streams size bytes of src into the host file path, hashed on
	// both ends, and renames it into place once they agree; it never
	// replaces a file.
	Upload(ctx context.Context, src io.Reader, size int64, path string, progress func(done, total int64)) (Transfer, error)
	Close(ctx context.Context) error
}

// StartFunc starts a Runner on a node's host; Engine.Runner is the one
// the commands pass to the domain packages, and their tests pass fakes.
type StartFunc func(ctx context.Context, node string) (Runner, error)

// Session is a running node-debug pod on one node.
type Session struct {
	engine    *Engine
	node      string
	Namespace string
	Pod       string
	closed    bool
}

var _ Runner = (*Session)(nil)

// Node is the node the session runs on.
func (s *Session) Node() string { return s.node }

func (e *Engine) logf(format string, args ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, format+"\n", args...)
	}
}

// ResolveImage picks the debug image: --image, else the cluster's
// openshift/tools image stream, else DefaultImage.
func (e *Engine) ResolveImage(ctx context.Context) string {
	if e.Image != "" {
		return e.Image
	}
	if e.Images != nil {
		is, err := e.Images.ImageV1().ImageStreams("openshift").Get(ctx, "tools", metav1.GetOptions{})
		if err == nil {
			for _, tag := range is.Status.Tags {
				if tag.Tag == "latest" && len(tag.Items) > 0 && tag.Items[0].DockerImageReference != "" {
					return tag.Items[0].DockerImageReference
				}
			}
		}
	}
	return DefaultImage
}

// Start creates the namespace and the debug pod on node and waits until it
// runs. On any error it removes what it created.
func (e *Engine) Start(ctx context.Context, node string) (s *Session, err error) {
	deadline := e.Deadline
	if deadline <= 0 {
		deadline = 2 * time.Hour
	}
	image := e.ResolveImage(ctx)
	// The namespace's name is generated: should a Ctrl-C cut the request
	// off after the apiserver made it, nothing would know what to remove.
	// So its creation is not cut off (it answers at once when the API is
	// well), and an interruption meanwhile is noticed right after, with
	// the name in hand for the clean-up below.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	ns, err := e.Client.CoreV1().Namespaces().Create(cctx, debugNamespace(node), metav1.CreateOptions{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("create debug namespace: %w", err)
	}
	s = &Session{engine: e, node: node, Namespace: ns.Name}
	defer func() {
		if err != nil {
			_ = s.Close(context.WithoutCancel(ctx))
			s = nil
		}
	}()
	pod := debugPod(node, ns.Name, image, deadline, e.priorityClass(ctx))
	created, err := e.Client.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return s, fmt.Errorf("create debug pod on %s: %w", node, err)
	}
	s.Pod = created.Name
	e.logf("Started debug pod %s/%s on node %s (image %s)", ns.Name, created.Name, node, image)
	return s, s.waitRunning(ctx)
}

// Runner starts a session on node and returns it as a Runner, for the
// domain packages that take one.
func (e *Engine) Runner(ctx context.Context, node string) (Runner, error) {
	s, err := e.Start(ctx, node)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// priorityClass returns openshift-user-critical when the cluster has it, so
// the debug pod is not the first evicted from a node under pressure.
func (e *Engine) priorityClass(ctx context.Context) string {
	if _, err := e.Client.SchedulingV1().PriorityClasses().Get(ctx, "openshift-user-critical", metav1.GetOptions{}); err == nil {
		return "openshift-user-critical"
	}
	return ""
}

func debugNamespace(node string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: namespacePrefix,
		Labels: map[string]string{
			ManagedByLabel:                                   ManagedByValue,
			NodeLabel:                                        node,
			"pod-security.kubernetes.io/enforce":             "privileged",
			"pod-security.kubernetes.io/audit":               "privileged",
			"pod-security.kubernetes.io/warn":                "privileged",
			"security.openshift.io/scc.podSecurityLabelSync": "false",
			"openshift.io/run-level":                         "",
		},
		// An empty node selector lets the pod land on control-plane nodes
		// even where a cluster-wide default node selector is set.
		Annotations: map[string]string{"openshift.io/node-selector": ""},
	}}
}

func debugPod(node, namespace, image string, deadline time.Duration, priorityClass string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: strings.ReplaceAll(node, ".", "-") + "-debug-",
			Namespace:    namespace,
			Labels:       map[string]string{ManagedByLabel: ManagedByValue, NodeLabel: node},
			Annotations:  map[string]string{"openshift.io/required-scc": "privileged", "debug.openshift.io/source-resource": "/v1, Resource=nodes/" + node},
		},
		Spec: corev1.PodSpec{
			NodeName:              node,
			HostPID:               true,
			HostNetwork:           true,
			HostIPC:               true,
			RestartPolicy:         corev1.RestartPolicyNever,
			ActiveDeadlineSeconds: ptr.To(int64(deadline.Seconds())),
			PriorityClassName:     priorityClass,
			// Any taint: the node may be NotReady, unreachable or cordoned.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:  containerName,
				Image: image,
				// Idle until exec'd into; exits on TERM so deletion is quick.
				Command:         []string{"/bin/sh", "-c", fmt.Sprintf("trap 'exit 0' TERM; sleep %d & wait", int64(deadline.Seconds()))},
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true), RunAsUser: ptr.To[int64](0)},
				VolumeMounts:    []corev1.VolumeMount{{Name: "host", MountPath: hostMount}},
			}},
			Volumes: []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/", Type: ptr.To(corev1.HostPathDirectory)}}}},
		},
	}
}

// waitRunning waits until the debug pod runs, and explains why it does not.
func (s *Session) waitRunning(ctx context.Context) error {
	timeout := s.engine.StartTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := s.engine.Client.CoreV1().Pods(s.Namespace).Get(ctx, s.Pod, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, fmt.Errorf("debug pod %s/%s was deleted", s.Namespace, s.Pod)
			}
			return false, nil
		}
		last = p
		switch p.Status.Phase {
		case corev1.PodRunning:
			return true, nil
		case corev1.PodFailed, corev1.PodSucceeded:
			return false, fmt.Errorf("debug pod on %s ended (%s) before it could be used: %s", s.node, p.Status.Phase, podProblem(p))
		}
		return false, nil
	})
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("debug pod %s/%s on node %s did not start within %v (%s); is the node's kubelet running?", s.Namespace, s.Pod, s.node, timeout, podProblem(last))
	}
	return err
}

func podProblem(p *corev1.Pod) string {
	if p == nil {
		return "no status yet"
	}
	parts := []string{"phase " + string(p.Status.Phase)}
	if p.Status.Reason != "" || p.Status.Message != "" {
		parts = append(parts, strings.TrimSpace(p.Status.Reason+" "+p.Status.Message))
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			parts = append(parts, fmt.Sprintf("container %s waiting: %s %s", cs.Name, w.Reason, w.Message))
		}
	}
	return strings.Join(parts, "; ")
}

// Close deletes the debug pod and its namespace, and waits for the pod to
// be gone. It uses its own time budget: it also runs after ctx was
// cancelled by Ctrl-C.
func (s *Session) Close(ctx context.Context) error {
	if s == nil || s.closed {
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err := DeleteNamespace(ctx, s.engine.Client, s.Namespace)
	if err == nil {
		s.engine.logf("Removed debug namespace %s", s.Namespace)
	}
	return err
}

// DeleteNamespace removes a debug namespace: its pods first, immediately
// (their hosts' processes stop), then the namespace itself.
func DeleteNamespace(ctx context.Context, client kubernetes.Interface, namespace string) error {
	pods := client.CoreV1().Pods(namespace)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("list pods in %s: %w", namespace, err)
	}
	if list != nil {
		for _, p := range list.Items {
			if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete pod %s/%s: %w", namespace, p.Name, err)
			}
		}
	}
	if err := client.CoreV1().Namespaces().Delete(ctx, namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", namespace, err)
	}
	return nil
}

// Leftovers lists the namespaces oc-recover created that still exist.
func Leftovers(ctx context.Context, client kubernetes.Interface) ([]corev1.Namespace, error) {
	list, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: ManagedByLabel + "=" + ManagedByValue})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}
