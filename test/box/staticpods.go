package box

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

const etcdCertsDir = "/etc/kubernetes/static-pod-resources/etcd-certs"

// etcdPodManifest is the etcd static pod of an OpenShift 4.x control-plane
// node, reduced to what tools look at: its containers, their environment
// (etcdctl's, and the operator's fixed variables such as the backend
// quota, given as computed), host paths and revision.
func etcdPodManifest(node string, revision int32, endpoints []string, computed map[string]string) *corev1.Pod {
	secrets := etcdCertsDir + "/secrets/etcd-all-certs"
	env := []corev1.EnvVar{
		{Name: "ETCDCTL_CACERT", Value: etcdCertsDir + "/configmaps/etcd-serving-ca/ca-bundle.crt"},
		{Name: "ETCDCTL_CERT", Value: secrets + "/etcd-peer-" + node + ".crt"},
		{Name: "ETCDCTL_KEY", Value: secrets + "/etcd-peer-" + node + ".key"},
		{Name: "ETCDCTL_ENDPOINTS", Value: strings.Join(endpoints, ",")},
		{Name: "ETCD_DATA_DIR", Value: "/var/lib/etcd"},
	}
	// Sorted: a revision's manifest is the same bytes every time it is
	// written, as the operator's rendering is.
	var keys []string
	for k := range computed {
		if k != "ETCD_DATA_DIR" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, corev1.EnvVar{Name: k, Value: computed[k]})
	}
	image := "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + strings.Repeat("e7", 32)
	container := func(name string, cmd ...string) corev1.Container {
		return corev1.Container{Name: name, Image: image, Command: cmd, Env: env,
			VolumeMounts: []corev1.VolumeMount{{Name: "static-pod-dir", MountPath: "/etc/kubernetes/manifests"},
				{Name: "cert-dir", MountPath: "/etc/kubernetes/static-pod-certs"}, {Name: "data-dir", MountPath: "/var/lib/etcd"}},
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}
	}
	hostPath := func(name, path string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path}}}
	}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "etcd", Namespace: "openshift-etcd",
			Labels:      map[string]string{"app": "etcd", "k8s-app": "etcd", "etcd": "true", "revision": fmt.Sprint(revision)},
			Annotations: map[string]string{"kubectl.kubernetes.io/default-container": "etcd", "target.workload.openshift.io/management": `{"effect": "PreferredDuringScheduling"}`}},
		Spec: corev1.PodSpec{
			HostNetwork:       true,
			PriorityClassName: "system-node-critical",
			Tolerations:       []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{
				container("etcdctl", "/bin/bash", "-c", "trap TERM INT; sleep infinity & wait"),
				container("etcd", "/bin/sh", "-c", "exec etcd --name "+node),
				container("etcd-metrics", "/bin/sh", "-c", "exec etcd grpc-proxy start"),
				container("etcd-readyz", "cluster-etcd-operator", "readyz"),
			},
			Volumes: []corev1.Volume{hostPath("static-pod-dir", "/etc/kubernetes/manifests"),
				hostPath("resource-dir", fmt.Sprintf("/etc/kubernetes/static-pod-resources/etcd-pod-%d", revision)),
				hostPath("cert-dir", etcdCertsDir), hostPath("data-dir", "/var/lib/etcd")},
		},
	}
}

// controlPlanePods are the metadata each operator's pod.yaml gives its
// static pod (bindata/assets/<pod>/pod.yaml of the kube-apiserver,
// kube-controller-manager and kube-scheduler operators): tools and
// operators select these pods by those labels. The scheduler's pod is
// named openshift-kube-scheduler (its mirror pods
// openshift-kube-scheduler-<node>), though its manifest and resource
// directories say kube-scheduler.
var controlPlanePods = map[string]struct {
	name        string
	labels      map[string]string
	annotations map[string]string
}{
	"kube-apiserver": {name: "kube-apiserver", labels: map[string]string{"app": "openshift-kube-apiserver", "apiserver": "true"},
		annotations: map[string]string{"kubectl.kubernetes.io/default-container": "kube-apiserver"}},
	"kube-controller-manager": {name: "kube-controller-manager", labels: map[string]string{"app": "kube-controller-manager", "kube-controller-manager": "true"},
		annotations: map[string]string{"kubectl.kubernetes.io/default-container": "kube-controller-manager"}},
	"kube-scheduler": {name: "openshift-kube-scheduler", labels: map[string]string{"app": "openshift-kube-scheduler", "scheduler": "true"},
		annotations: map[string]string{"kubectl.kubernetes.io/default-logs-container": "kube-scheduler"}},
}

// controlPlanePodManifest is a kube-apiserver, kube-controller-manager or
// kube-scheduler static pod. The box serves the API from one in-process
// apiserver; these pods only show what runs on the host.
func controlPlanePodManifest(op staticPodOperator, revision int32) *corev1.Pod {
	image := "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + strings.Repeat("c4", 32)
	meta := controlPlanePods[op.Pod]
	labels := map[string]string{"revision": fmt.Sprint(revision)}
	for k, v := range meta.labels {
		labels[k] = v
	}
	annotations := map[string]string{"target.workload.openshift.io/management": `{"effect": "PreferredDuringScheduling"}`}
	for k, v := range meta.annotations {
		annotations[k] = v
	}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: meta.name, Namespace: op.Namespace, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			HostNetwork:       true,
			PriorityClassName: "system-node-critical",
			Tolerations:       []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:        []corev1.Container{{Name: op.Pod, Image: image, Command: []string{"/bin/sh", "-c", "exec " + op.Pod}}},
			Volumes: []corev1.Volume{{Name: "resource-dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: fmt.Sprintf("/etc/kubernetes/static-pod-resources/%s-pod-%d", op.Pod, revision)}}}},
		},
	}
}

// writeStaticPod installs a static pod at a revision the way the operators'
// installer pods do: the revision's resource dir under
// /etc/kubernetes/static-pod-resources/<pod>-pod-<rev>/, then the manifest
// in /etc/kubernetes/manifests. files are the revision's config maps and
// secrets that are not the pod's config, by their path in the dir.
func writeStaticPod(root, podName string, revision int32, pod *corev1.Pod, files map[string][]byte) error {
	data, err := yaml.Marshal(pod)
	if err != nil {
		return err
	}
	resDir := filepath.Join(root, "etc/kubernetes/static-pod-resources", fmt.Sprintf("%s-pod-%d", podName, revision))
	for _, d := range []string{"configmaps/config", "secrets"} {
		if err := os.MkdirAll(filepath.Join(resDir, d), 0o755); err != nil {
			return err
		}
	}
	file := podName + "-pod.yaml"
	if err := os.WriteFile(filepath.Join(resDir, file), data, 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf("apiVersion: v1\nkind: Config\n# %s configuration at revision %d\n", podName, revision)
	if err := os.WriteFile(filepath.Join(resDir, "configmaps/config/config.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	for name, data := range files {
		path := filepath.Join(resDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	tmp := filepath.Join(root, "etc/kubernetes/manifests", "."+file+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(root, "etc/kubernetes/manifests", file))
}

// writeEtcdHostCerts lays out /etc/kubernetes/static-pod-resources/etcd-certs
// as the etcd operator does: every member's certificates and the CA bundles.
func (b *Box) writeEtcdHostCerts(root string, masters []*Node) error {
	secrets := filepath.Join(root, etcdCertsDir, "secrets/etcd-all-certs")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return err
	}
	for _, n := range masters {
		if err := b.writeHostNodeCerts(root, n.Name, n.IP); err != nil {
			return err
		}
	}
	for _, cm := range []string{"etcd-serving-ca", "etcd-peer-client-ca", "etcd-metrics-proxy-serving-ca"} {
		dir := filepath.Join(root, etcdCertsDir, "configmaps", cm)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "ca-bundle.crt"), b.etcdPKI.ca.CertPEM, 0o644); err != nil {
			return err
		}
	}
	return b.writeReleaseCertLayout(root)
}

// etcdCertKinds are the certificates the etcd operator issues each
// control-plane node, in secrets etcd-<kind>-<node>.
var etcdCertKinds = []string{"peer", "serving", "serving-metrics"}

// writeHostNodeCerts writes one node's certificates into a host's
// etcd-all-certs directory, each file replaced at once.
func (b *Box) writeHostNodeCerts(root, node string, ip net.IP) error {
	secrets := filepath.Join(root, etcdCertsDir, "secrets/etcd-all-certs")
	for _, kind := range etcdCertKinds {
		ck, err := b.etcdPKI.nodeCert(kind, node, ip)
		if err != nil {
			return err
		}
		base := filepath.Join(secrets, "etcd-"+kind+"-"+node)
		if err := writeFileAtomic(base+".crt", ck.CertPEM, 0o600); err != nil {
			return err
		}
		if err := writeFileAtomic(base+".key", ck.KeyPEM, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic replaces path at once: a reader (etcd loads its
// certificates on every handshake) never sees half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, time.Now().UnixNano())
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// revisionFiles are the certificates a static pod's revision dir holds, as
// the operators copy them from their revisioned config maps and secrets:
// the etcd serving CA bundle for etcd and the kube-apiserver, and the
// kube-apiserver's etcd client certificate. A backup's archive carries
// them, so a restore brings them back as they were when it was taken.
func (b *Box) revisionFiles(podName string) map[string][]byte {
	switch podName {
	case "etcd":
		return map[string][]byte{"configmaps/etcd-serving-ca/ca-bundle.crt": b.etcdPKI.ca.CertPEM}
	case "kube-apiserver":
		return map[string][]byte{
			"configmaps/etcd-serving-ca/ca-bundle.crt": b.etcdPKI.ca.CertPEM,
			"secrets/etcd-client/tls.crt":              b.etcdPKI.client.CertPEM,
			"secrets/etcd-client/tls.key":              b.etcdPKI.client.KeyPEM,
		}
	}
	return nil
}
