package box

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// containersFile is where a node's container runtime publishes what runs on
// the host, for the crictl stand-in to read. It lives in /run, a tmpfs on
// RHCOS, so a machine that was off starts with an empty one.
const containersFile = "run/box/containers"

// containersHeader names the columns of containersFile, one container a line.
const containersHeader = "# CONTAINER\tIMAGE\tCREATED\tSTATE\tNAME\tATTEMPT\tPOD ID\tPOD\tNAMESPACE\tPOD UID\n"

// runtimeID is a CRI-O style 64-hex-digit id, derived from what identifies
// a pod sandbox or a container instance, so that crictl and the pods'
// containerIDs name the same container the same way.
func runtimeID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}

func podSandboxID(uid types.UID) string { return runtimeID("pod", string(uid)) }

func podContainerID(uid types.UID, container string) string {
	return runtimeID(podSandboxID(uid), container, "0")
}

// staticPodID is the sandbox id of a static pod: a new one each time the
// kubelet starts the pod from its manifest.
func (k *FakeKubelet) staticPodID(r *runningStaticPod) string {
	return runtimeID("static", k.Node, r.manifest.Namespace, r.manifest.Name, r.started.Format(time.RFC3339Nano))
}

// runtimeLoop keeps containersFile current for as long as the machine runs.
func (k *FakeKubelet) runtimeLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	ticker := time.NewTicker(staticPodSyncPeriod)
	defer ticker.Stop()
	written := "-"
	for {
		if table := k.containerTable(); table != written {
			if err := k.writeContainers(table); err == nil {
				written = table
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// containerTable lists every container of the node as containersFile holds
// them: the static pods' (the etcd container exited while it crash-loops)
// and the pods' processes, running or exited until their pod is deleted.
func (k *FakeKubelet) containerTable() string {
	type row struct {
		created time.Time
		line    string
	}
	var rows []row
	add := func(id, image string, created time.Time, state, name string, attempt int32, podID, pod, ns, uid string) {
		rows = append(rows, row{created, strings.Join([]string{id, image, strconv.FormatInt(created.Unix(), 10), state, name,
			strconv.Itoa(int(attempt)), podID, pod, ns, uid}, "\t") + "\n"})
	}
	k.mu.Lock()
	for _, r := range k.staticRunning {
		podID := k.staticPodID(r)
		for _, c := range r.manifest.Spec.Containers {
			state, attempt := "Running", int32(0)
			if c.Name == "etcd" && r.manifest.Labels["app"] == "etcd" {
				attempt = k.restarts
				if r.etcd == etcdFailing {
					state = "Exited"
				}
			}
			add(runtimeID(podID, c.Name, strconv.Itoa(int(attempt))), c.Image, r.started, state, c.Name, attempt,
				podID, r.manifest.Name+"-"+k.Node, r.manifest.Namespace, podID)
		}
	}
	for uid, rt := range k.pods {
		for _, c := range rt.pod.Spec.Containers {
			proc := rt.containers[c.Name]
			if proc == nil {
				continue
			}
			state := "Running"
			select {
			case <-proc.done:
				state = "Exited"
			default:
			}
			add(podContainerID(uid, c.Name), c.Image, rt.started, state, c.Name, 0, podSandboxID(uid), rt.pod.Name, rt.pod.Namespace, string(uid))
		}
	}
	k.mu.Unlock()
	sort.SliceStable(rows, func(i, j int) bool {
		if !rows[i].created.Equal(rows[j].created) {
			return rows[i].created.After(rows[j].created)
		}
		return rows[i].line < rows[j].line
	})
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.line)
	}
	return b.String()
}

// writeContainers replaces containersFile at once, so that crictl never
// reads half of it.
func (k *FakeKubelet) writeContainers(table string) error {
	path := filepath.Join(k.Sandbox.Root, containersFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, time.Now().UnixNano())
	if err := os.WriteFile(tmp, []byte(containersHeader+table), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
