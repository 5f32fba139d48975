package box

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// revisionsKept is how many revision dirs of each static pod a
// control-plane host holds: the installer prunes older ones.
const revisionsKept = 3

// writeStaticPodRevisions installs a static pod as a host has it after a
// few rollouts: the revisionsKept latest revision dirs, each modified when
// it was installed (an hour apart, the current one an hour ago), and the
// manifest of the current revision.
func writeStaticPodRevisions(root, podName string, current int32, manifest func(revision int32) error) error {
	for i := revisionsKept - 1; i >= 0; i-- {
		rev := current - int32(i)
		if rev < 1 {
			continue
		}
		if err := manifest(rev); err != nil {
			return err
		}
		at := time.Now().Add(-time.Duration(i+1) * time.Hour)
		if err := os.Chtimes(revisionDir(root, podName, rev), at, at); err != nil {
			return err
		}
	}
	return nil
}

func revisionDir(root, podName string, rev int32) string {
	return filepath.Join(root, "etc/kubernetes/static-pod-resources", fmt.Sprintf("%s-pod-%d", podName, rev))
}

// RevisionDirs names three revision dirs of one static pod on a host, as
// paths on the host (/etc/kubernetes/static-pod-resources/<pod>-pod-<n>).
type RevisionDirs struct {
	// Highest has the highest revision number.
	Highest string
	// Newest was modified most recently.
	Newest string
	// Referenced is the one the pod's manifest in /etc/kubernetes/manifests names.
	Referenced string
}

// ScrambleRevisionDirs rearranges, on node's host, the revision dirs of each
// of the four control-plane static pods (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) so that the highest-numbered, the
// most recently modified and the manifest-referenced dirs are three
// different ones: a higher revision that was never installed (an installer
// that failed) modified long ago, the previous revision touched just now,
// the current one (the manifest's) an hour ago. It returns them by pod name.
// Each release's cluster-backup.sh then shows which it takes.
func (b *Box) ScrambleRevisionDirs(node string) (map[string]RevisionDirs, error) {
	n := b.Node(node)
	if n == nil || !n.Master {
		return nil, fmt.Errorf("%s is not a control-plane node", node)
	}
	root := n.Sandbox.Root
	out := map[string]RevisionDirs{}
	for _, op := range staticPodOperators {
		current, err := manifestRevision(root, op.Pod)
		if err != nil {
			return nil, err
		}
		prev, next := current-1, current+1
		nextDir := revisionDir(root, op.Pod, next)
		if err := os.MkdirAll(nextDir, 0o755); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(revisionDir(root, op.Pod, current), op.Pod+"-pod.yaml"))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(nextDir, op.Pod+"-pod.yaml"), data, 0o644); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(revisionDir(root, op.Pod, prev), 0o755); err != nil {
			return nil, err
		}
		now := time.Now()
		for rev, at := range map[int32]time.Time{next: now.Add(-3 * time.Hour), current: now.Add(-time.Hour), prev: now} {
			if err := os.Chtimes(revisionDir(root, op.Pod, rev), at, at); err != nil {
				return nil, err
			}
		}
		host := func(rev int32) string {
			return fmt.Sprintf("/etc/kubernetes/static-pod-resources/%s-pod-%d", op.Pod, rev)
		}
		out[op.Pod] = RevisionDirs{Highest: host(next), Newest: host(prev), Referenced: host(current)}
	}
	return out, nil
}

// manifestRevision is the revision of podName's manifest on a host.
func manifestRevision(root, podName string) (int32, error) {
	data, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/manifests", podName+"-pod.yaml"))
	if err != nil {
		return 0, err
	}
	var rev int32
	marker := []byte("/etc/kubernetes/static-pod-resources/" + podName + "-pod-")
	for i := 0; i+len(marker) <= len(data); i++ {
		if string(data[i:i+len(marker)]) != string(marker) {
			continue
		}
		if _, err := fmt.Sscanf(string(data[i+len(marker):]), "%d", &rev); err == nil {
			return rev, nil
		}
	}
	return 0, fmt.Errorf("%s-pod.yaml names no revision dir", podName)
}
