package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// A host has only what RHCOS has: a command needing a binary RHCOS lacks
// fails there (while a debug pod's container, the support-tools image,
// keeps the test machine's tools), and the tools RHCOS has work.
func TestBoxRHCOSHostHasOnlyRHCOSBinaries(t *testing.T) {
	for _, missing := range []string{"python3", "jq", "etcdctl", "etcdutl", "go", "git"} {
		r := boxtest.HostRun(t, shared, "master-0", missing+" --version")
		if r.Code != 127 {
			t.Errorf("%s on an RHCOS host: %s", missing, r)
		}
		for _, dir := range []string{"/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/libexec/"} {
			if r := boxtest.HostRun(t, shared, "master-0", "test -e "+dir+missing); r.Code == 0 {
				t.Errorf("%s%s exists on the host", dir, missing)
			}
		}
	}
	works := map[string]string{
		"bash -c 'echo $BASH_VERSION' | cut -c1":            "5\n",
		"echo abc | sed s/b/x/ | grep -o ax":                "ax\n",
		"echo 1 2 | awk '{print $2}'":                       "2\n",
		"echo z | gzip | gunzip":                            "z\n",
		"echo z | zstd -q | zstd -dq":                       "z\n",
		"echo z | xz | xz -d":                               "z\n",
		"echo z | sha256sum | cut -c1-8":                    "c865f6c5\n",
		"openssl version | cut -d' ' -f1":                   "OpenSSL\n",
		"flock /tmp/l true && echo locked":                  "locked\n",
		"findmnt --version | cut -d' ' -f1":                 "findmnt\n",
		"pgrep -x nonexistent-proc || echo none":            "none\n",
		"unshare --help >/dev/null && echo ok":              "ok\n",
		"which tar":                                         "/usr/sbin/tar\n",
		"oc version --client >/dev/null && echo oc":         "oc\n",
		"command -v podman crictl systemctl":                "/usr/local/bin/podman\n/usr/local/bin/crictl\n/usr/local/bin/systemctl\n",
		"echo a >/tmp/a && diff /tmp/a /tmp/a && echo same": "same\n",
		"tar -C / -cf - etc/hostname | tar -tf -":           "etc/hostname\n",
		"hostname": "master-0\n",
		"find /etc/kubernetes/manifests -name 'etcd*'": "/etc/kubernetes/manifests/etcd-pod.yaml\n",
	}
	for script, want := range works {
		if r := boxtest.HostRun(t, shared, "master-0", "bash -c "+shellQuote(script)); r.Code != 0 || r.Stdout != want {
			t.Errorf("%q on the host: want %q, got %s", script, want, r)
		}
	}
	// The debug pod's container is the support-tools image: the test
	// machine's tools are there, and the host's stay RHCOS's.
	r := tools.Run(t, shared, "", "kubectl", "debug", "node/master-0", "--profile=sysadmin", "-i", "--image="+boxtest.DebugImage,
		"--", "sh", "-c", "test -x /usr/bin/sh && echo container; chroot /host sh -c 'command -v python3 || echo no-python3'")
	if !strings.Contains(r.Stdout, "container\n") || !strings.Contains(r.Stdout, "no-python3\n") {
		t.Errorf("debug pod: %s", r)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var backupNames = regexp.MustCompile(`^snapshot_(\d{4}-\d\d-\d\d_\d{6})(__POSSIBLY_DIRTY__)?\.db\nstatic_kuberesources_(\d{4}-\d\d-\d\d_\d{6})(__POSSIBLY_DIRTY__)?\.tar\.gz\n$`)

// backupFiles lists a backup dir on the host and checks the two files' names.
func backupFiles(t *testing.T, b *box.Box, dir string, dirty bool) {
	t.Helper()
	r := boxtest.HostRun(t, b, "master-0", "ls "+dir)
	m := backupNames.FindStringSubmatch(r.Stdout)
	if m == nil || m[1] != m[3] || (m[2] != "") != dirty || (m[4] != "") != dirty {
		t.Errorf("backup files in %s (dirty %v): %s", dir, dirty, r)
	}
}

// Each release's cluster-backup.sh, on a host of that release: the file
// names, the refusal during a rollout (4.6+) and --force, the revision dir
// it takes, the certificates it finds, the integrity check and etcdctl out
// of the etcd image.
func TestBoxBackupScriptPerRelease(t *testing.T) {
	for _, version := range []string{"4.5.41", "4.8.57", "4.14.8", "4.18.3"} {
		t.Run(version, func(t *testing.T) {
			b := boxtest.StartBox(t, box.Options{Version: version})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			modern := version != "4.5.41"

			dirs, err := b.ScrambleRevisionDirs("master-0")
			if err != nil {
				t.Fatal(err)
			}
			r := boxtest.HostRun(t, b, "master-0", "cluster-backup.sh /home/core/backup")
			if r.Code != 0 || !strings.HasSuffix(r.Stdout, "snapshot db and kube resources are successfully saved to /home/core/backup\n") {
				t.Fatalf("cluster-backup.sh: %s", r)
			}
			backupFiles(t, b, "/home/core/backup", false)
			for pod, d := range dirs {
				want := d.Newest // 4.4/4.5: the most recently modified
				res := pod + "-pod"
				if modern {
					want, res = d.Referenced, pod // 4.6+: the manifest's
				}
				if !strings.Contains(r.Stdout, "found latest "+res+": "+want+"\n") {
					t.Errorf("%s: want %s (of %+v):\n%s", pod, want, d, r.Stdout)
				}
				tar := boxtest.HostRun(t, b, "master-0", "tar -tzf /home/core/backup/static_kuberesources_*.tar.gz | cut -d/ -f2 | sort -u | grep '^"+pod+"-pod-'")
				if tar.Stdout != strings.TrimPrefix(want, "/etc/kubernetes/static-pod-resources/")+"\n" {
					t.Errorf("%s in the archive: %s", pod, tar)
				}
			}
			// etcdctl came out of the etcd image, with etcdutl where 3.5's image has it.
			r = boxtest.HostRun(t, b, "master-0", "ls /etc/kubernetes/static-pod-resources/bin")
			wantBin := map[string]string{"4.5.41": "etcdctl\n", "4.8.57": "etcdctl\n", "4.14.8": "etcdctl\netcdutl\n", "4.18.3": "etcdctl\netcdutl\njq\n"}[version]
			if r.Stdout != wantBin {
				t.Errorf("copied out of the etcd image: %s", r)
			}
			switch version {
			case "4.14.8", "4.18.3":
				ca := map[string]string{"4.14.8": "etcd-serving-ca/ca-bundle.crt", "4.18.3": "etcd-all-bundles/server-ca-bundle.crt"}[version]
				want := "Certificate /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/" + ca + " found!\n"
				if !strings.Contains(boxtest.HostRun(t, b, "master-0", "cluster-backup.sh /home/core/b-ca").Stdout, want) {
					t.Errorf("the CA bundle: want %q", want)
				}
			default:
				if r := boxtest.HostRun(t, b, "master-0", "readlink /etc/kubernetes/static-pod-certs"); r.Stdout != "/etc/kubernetes/static-pod-resources/etcd-certs\n" {
					t.Errorf("static-pod-certs link: %s", r)
				}
			}

			if !modern {
				// 4.5 knows no --force (it is taken for the directory) and
				// checks no operator.
				release, err := b.HoldRollout(ctx, "kube-apiserver")
				if err != nil {
					t.Fatal(err)
				}
				defer release()
				boxtest.WaitForHost(t, b, "master-0", "oc get co kube-apiserver -o jsonpath='{.status.conditions[?(@.type==\"Progressing\")].status}' --kubeconfig /etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs/localhost.kubeconfig", "True")
				if r := boxtest.HostRun(t, b, "master-0", "cluster-backup.sh --force /home/core/forced; ls /home/core/forced 2>&1 | grep -c DIRTY"); strings.Contains(r.Stdout, "successfully saved to /home/core/forced") || !strings.HasSuffix(r.Stdout, "0\n") {
					t.Errorf("4.5 with --force: %s", r)
				}
				if r := boxtest.HostRun(t, b, "master-0", "cluster-backup.sh /home/core/rolling"); r.Code != 0 {
					t.Errorf("4.5 during a rollout: %s", r)
				}
			} else {
				release, err := b.HoldRollout(ctx, "kube-apiserver")
				if err != nil {
					t.Fatal(err)
				}
				defer release()
				// The ClusterOperator turns Progressing within a sync period.
				boxtest.WaitForHost(t, b, "master-0", "KUBECONFIG=/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs/localhost.kubeconfig oc get co kube-apiserver -o jsonpath='{.status.conditions[?(@.type==\"Progressing\")].reason}'", "NodeInstaller")
				r := boxtest.HostRun(t, b, "master-0", "cluster-backup.sh /home/core/rolling")
				if r.Code != 1 || !strings.HasSuffix(r.Stdout, "Currently the kube-apiserver operator is progressing. A reliable backup requires that a rollout is not in progress.  Aborting!\n") {
					t.Errorf("backup during a rollout: %s", r)
				}
				if r := boxtest.HostRun(t, b, "master-0", "ls -A /home/core/rolling"); r.Stdout != "" {
					t.Errorf("a refused backup left files: %s", r)
				}
				r = boxtest.HostRun(t, b, "master-0", "cluster-backup.sh --force /home/core/forced")
				if r.Code != 0 {
					t.Errorf("backup with --force during a rollout: %s", r)
				}
				backupFiles(t, b, "/home/core/forced", true)
				release()
				boxtest.WaitForHost(t, b, "master-0", "KUBECONFIG=/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs/localhost.kubeconfig oc get co kube-apiserver -o jsonpath='{.status.conditions[?(@.type==\"Progressing\")].status}'", "False")
				if r := boxtest.HostRun(t, b, "master-0", "cluster-backup.sh /home/core/after"); r.Code != 0 {
					t.Errorf("backup after the rollout: %s", r)
				}
				// No kubeconfig: the check cannot run.
				r = boxtest.HostRun(t, b, "master-0", "mv /etc/kubernetes/static-pod-resources/kube-apiserver-certs /root/ && cluster-backup.sh /home/core/nokc; mv /root/kube-apiserver-certs /etc/kubernetes/static-pod-resources/")
				if !strings.Contains(r.Stdout, "Valid kubeconfig is not found in kube-apiserver-certs. Exiting!\n") {
					t.Errorf("backup without the localhost kubeconfig: %s", r)
				}
			}

			// The integrity check (4.6+) really checks: an etcdctl whose
			// snapshot is damaged after saving fails the backup.
			if modern {
				r := boxtest.HostRun(t, b, "master-0", `mkdir -p /root/wrap && cat > /root/wrap/etcdctl <<'EOF'
#!/bin/bash
/etc/kubernetes/static-pod-resources/bin/etcdctl "$@"; rc=$?
if [ "$1 $2" = "snapshot save" ]; then
  pages=$(( $(stat -c %s "$3") / 4096 - 2 ))
  dd if=/dev/urandom of="$3" bs=4096 seek=2 count="${pages}" conv=notrunc status=none
fi
exit $rc
EOF
chmod +x /root/wrap/etcdctl
PATH=/root/wrap:$PATH cluster-backup.sh --force /home/core/corrupt`)
				if r.Code != 1 || !strings.Contains(r.Stdout, "Backup integrity verification failed. Backup appears corrupted. Aborting!\n") {
					t.Errorf("a corrupted snapshot: %s", r)
				}
				if r := boxtest.HostRun(t, b, "master-0", "ls -A /home/core/corrupt"); r.Stdout != "" {
					t.Errorf("a failed backup left files: %s", r)
				}
			}

			// Without the etcd image in podman's store the script cannot
			// get etcdctl, as on a host that cannot pull it.
			if err := b.RemoveEtcdImage("master-0"); err != nil {
				t.Fatal(err)
			}
			force := "--force "
			if !modern {
				force = ""
			}
			r = boxtest.HostRun(t, b, "master-0", "rm -rf /etc/kubernetes/static-pod-resources/bin && cluster-backup.sh "+force+"/home/core/noimage")
			if r.Code == 0 || !strings.Contains(r.Stderr, "Trying to pull "+b.EtcdImage()) {
				t.Errorf("backup without the etcd image: %s", r)
			}
			if r := boxtest.HostRun(t, b, "master-0", "ls -A /home/core/noimage"); r.Stdout != "" {
				t.Errorf("a failed backup left files: %s", r)
			}
		})
	}
}

// A node's own kube-apiserver stopped: that host's oc (the localhost
// kubeconfig) gets no answer, so 4.6+'s backup there cannot check the
// operators, and its mirror pod is not Ready; the other hosts still reach
// theirs.
func TestBoxStopNodeAPIServer(t *testing.T) {
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const oc = "oc get co kube-apiserver -o jsonpath='{.status.conditions[?(@.type==\"Available\")].status}' --request-timeout=5s"
	podReady := func(want corev1.ConditionStatus) {
		t.Helper()
		err := box.WaitFor(ctx, 30*time.Second, "kube-apiserver-master-1 Ready="+string(want), func(ctx context.Context) (bool, string, error) {
			p, err := b.Kube.CoreV1().Pods("openshift-kube-apiserver").Get(ctx, "kube-apiserver-master-1", metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					return c.Status == want, string(c.Status), nil
				}
			}
			return false, "no Ready condition", nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	kc := "KUBECONFIG=/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs/localhost.kubeconfig "
	if r := boxtest.HostRun(t, b, "master-1", kc+oc); r.Stdout != "True" {
		t.Fatalf("oc on master-1: %s", r)
	}
	podReady(corev1.ConditionTrue)
	if err := b.StopNodeAPIServer("master-1"); err != nil {
		t.Fatal(err)
	}
	if r := boxtest.HostRun(t, b, "master-1", kc+oc); r.Code == 0 {
		t.Errorf("oc on master-1 with its apiserver stopped: %s", r)
	}
	r := boxtest.HostRun(t, b, "master-1", "cluster-backup.sh /home/core/backup")
	if r.Code != 1 || !strings.Contains(r.Stdout, "Could not find the status of the kube-apiserver. Check if the API server is running. Pass the --force flag to skip checks.\n") {
		t.Errorf("backup on master-1 with its apiserver stopped: %s", r)
	}
	if r := boxtest.HostRun(t, b, "master-0", kc+oc); r.Stdout != "True" {
		t.Errorf("oc on master-0: %s", r)
	}
	podReady(corev1.ConditionFalse)
	if err := b.StartNodeAPIServer("master-1"); err != nil {
		t.Fatal(err)
	}
	podReady(corev1.ConditionTrue)
	if r := boxtest.HostRun(t, b, "master-1", kc+oc); r.Stdout != "True" {
		t.Errorf("oc on master-1 after its apiserver started: %s", r)
	}
}
