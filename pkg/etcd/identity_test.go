package etcd

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// protobufOf encodes a core object as the kube-apiserver stores it.
func protobufOf(t *testing.T, obj runtime.Object) string {
	t.Helper()
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		o.APIVersion, o.Kind = "v1", "ConfigMap"
	case *corev1.Node:
		o.APIVersion, o.Kind = "v1", "Node"
	}
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func clusterVersion(id, version string, state configv1.UpdateState) *configv1.ClusterVersion {
	return &configv1.ClusterVersion{
		ObjectMeta: metav1.ObjectMeta{Name: "version"},
		Spec:       configv1.ClusterVersionSpec{ClusterID: configv1.ClusterID(id)},
		Status: configv1.ClusterVersionStatus{
			Desired: configv1.Release{Version: version},
			History: []configv1.UpdateHistory{{Version: version, State: state}, {Version: "4.14.1", State: configv1.CompletedUpdate}},
		},
	}
}

func TestVerifySnapshotReadsTheClusterItIsOf(t *testing.T) {
	caPEM := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	path := writeSnapshot(t, etcdBuckets(map[string][]byte{
		// An older clusterversion, then the newest: the newest counts.
		string(revisionKey(2, false)):  keyValue(t, keyClusterVersion, jsonOf(t, clusterVersion("old-id", "4.14.1", configv1.CompletedUpdate)), 2),
		string(revisionKey(3, false)):  keyValue(t, keyAPIServer, jsonOf(t, &configv1.APIServer{Spec: configv1.APIServerSpec{Encryption: configv1.APIServerEncryption{Type: configv1.EncryptionTypeAESGCM}}}), 3),
		string(revisionKey(4, false)):  keyValue(t, keyInfrastructure, jsonOf(t, &configv1.Infrastructure{Status: configv1.InfrastructureStatus{InfrastructureName: "mycluster-x7k2p", ControlPlaneTopology: configv1.HighlyAvailableTopologyMode}}), 4),
		string(revisionKey(5, false)):  keyValue(t, keyClientCA, protobufOf(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "client-ca", Namespace: "openshift-kube-apiserver"}, Data: map[string]string{"ca-bundle.crt": caPEM}}), 5),
		string(revisionKey(6, false)):  keyValue(t, keyEtcdOperator, `{"spec":{"unsupportedConfigOverrides":{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}}}`, 6),
		string(revisionKey(7, false)):  keyValue(t, keyClusterVersion, jsonOf(t, clusterVersion("6f0d4c1e", "4.14.10", configv1.PartialUpdate)), 7),
		string(revisionKey(8, false)):  keyValue(t, "/kubernetes.io/secrets/ns/token", "x", 8),
		string(revisionKey(9, true)):   keyValue(t, "/kubernetes.io/secrets/ns/token", "", 9),
		string(revisionKey(10, false)): keyValue(t, "/kubernetes.io/secrets/ns/kept", "y", 10),
		string(revisionKey(11, false)): keyValue(t, prefixNodes+"master-0", protobufOf(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "master-0", Labels: map[string]string{"node-role.kubernetes.io/master": ""}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "m0"}, {Type: corev1.NodeInternalIP, Address: "10.0.0.10"}}}}), 11),
		string(revisionKey(12, false)): keyValue(t, prefixNodes+"worker-0", protobufOf(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-0", Labels: map[string]string{"node-role.kubernetes.io/worker": ""}}}), 12),
	}))
	r, err := VerifySnapshot(path, false, t.TempDir(), "/kubernetes.io/secrets/ns/token", "/kubernetes.io/secrets/ns/kept", "/never/written")
	if err != nil {
		t.Fatal(err)
	}
	c := r.Cluster
	if c.ClusterID != "6f0d4c1e" || c.Version != "4.14.10" || !c.Updating {
		t.Errorf("cluster %+v: want the newest clusterversion (6f0d4c1e, 4.14.10, updating: its history entry is Partial)", c)
	}
	if c.InfrastructureName != "mycluster-x7k2p" || c.ControlPlaneTopology != "HighlyAvailable" || c.EncryptionType != "aesgcm" || !c.Encrypted() {
		t.Errorf("cluster %+v: want infrastructure mycluster-x7k2p/HighlyAvailable, encryption aesgcm", c)
	}
	if string(c.ClientCA) != caPEM || c.ClientCAEncrypted {
		t.Errorf("client CA %q (encrypted %v), want the bundle decoded from protobuf", c.ClientCA, c.ClientCAEncrypted)
	}
	if !strings.Contains(string(c.EtcdOverrides), "useUnsupportedUnsafeNonHANonProductionUnstableEtcd") {
		t.Errorf("etcd overrides %s, want the quorum-guard override that the snapshot holds", c.EtcdOverrides)
	}
	if len(c.ControlPlane) != 1 || c.ControlPlane[0] != (SnapshotNode{Name: "master-0", IP: "10.0.0.10"}) {
		t.Errorf("control plane %+v: want master-0 at 10.0.0.10 alone (the worker is not one)", c.ControlPlane)
	}
	if _, ok := r.Values["/kubernetes.io/secrets/ns/token"]; ok {
		t.Error("a key deleted in the snapshot is reported alive")
	}
	if string(r.Values["/kubernetes.io/secrets/ns/kept"]) != "y" || len(r.Values) != 1 {
		t.Errorf("values %q, want the one alive key", r.Values)
	}
}

func TestVerifySnapshotOfAClusterWithEncryptionOn(t *testing.T) {
	path := writeSnapshot(t, etcdBuckets(map[string][]byte{
		string(revisionKey(2, false)): keyValue(t, keyClusterVersion, jsonOf(t, clusterVersion("id", "4.18.3", configv1.CompletedUpdate)), 2),
		string(revisionKey(3, false)): keyValue(t, keyClientCA, "k8s:enc:aesgcm:v1:1:\x00\x01", 3),
	}))
	r, err := VerifySnapshot(path, false, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Cluster; c.Version != "4.18.3" || c.Updating || !c.ClientCAEncrypted || c.ClientCA != nil || c.Encrypted() {
		t.Errorf("cluster %+v: want 4.18.3 completed, the client CA seen encrypted and not read; no apiserver object, so no encryption type", c)
	}
}

func TestVerifySnapshotRefusesAClusterVersionThatDoesNotDecode(t *testing.T) {
	path := writeSnapshot(t, etcdBuckets(map[string][]byte{
		string(revisionKey(2, false)): keyValue(t, keyClusterVersion, "{not json", 2),
	}))
	_, err := VerifySnapshot(path, false, t.TempDir())
	if !errors.Is(err, ErrSnapshotCorrupt) || !strings.Contains(err.Error(), "clusterversions/version") {
		t.Fatalf("err = %v, want ErrSnapshotCorrupt naming clusterversions/version", err)
	}
}
