package etcd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// A snapshot says which cluster and release it is of. The kube-apiserver
// stores objects under /kubernetes.io/<group>/<resource>/<name> (the core
// group without a group part). OpenShift's config.openshift.io types are
// custom resources, stored as JSON, and not among the resources it encrypts
// at rest (secrets, config maps, routes, OAuth tokens), so a backup that
// oc-recover did not take identifies itself too. Core objects are stored as
// protobuf, or encrypted when encryption is on.
const (
	keyClusterVersion = "/kubernetes.io/config.openshift.io/clusterversions/version"
	keyAPIServer      = "/kubernetes.io/config.openshift.io/apiservers/cluster"
	keyInfrastructure = "/kubernetes.io/config.openshift.io/infrastructures/cluster"
	keyEtcdOperator   = "/kubernetes.io/operator.openshift.io/etcds/cluster"
	// keyClientCA is the bundle the kube-apiserver trusts for client
	// certificates; its cert syncer writes it to the host from this object,
	// so after a restore it is the backup's bundle that decides who can log in.
	keyClientCA = "/kubernetes.io/configmaps/openshift-kube-apiserver/client-ca"
	// prefixNodes holds the Node objects (stored as "minions").
	prefixNodes = "/kubernetes.io/minions/"
)

// identityKeys are the keys every snapshot read keeps.
var identityKeys = []string{keyClusterVersion, keyAPIServer, keyInfrastructure, keyEtcdOperator, keyClientCA, prefixNodes}

// encryptedPrefix starts every value the kube-apiserver encrypted at rest
// (k8s.io/apiserver storage/value/encrypt envelope and aes transformers).
var encryptedPrefix = []byte("k8s:enc:")

// SnapshotCluster is what the snapshot itself says about the cluster it was
// taken of, read from the objects the kube-apiserver stored in it.
type SnapshotCluster struct {
	// ClusterID is clusterversion/version's spec.clusterID.
	ClusterID string `json:"clusterID,omitempty"`
	// Version is status.desired.version: the release the cluster was
	// running or updating to.
	Version string `json:"version,omitempty"`
	// Updating: the newest history entry of Version was not Completed, so
	// the cluster was in the middle of an update when the snapshot was taken.
	Updating bool `json:"updating,omitempty"`
	// InfrastructureName is infrastructure/cluster's status.infrastructureName.
	InfrastructureName string `json:"infrastructureName,omitempty"`
	// ControlPlaneTopology is infrastructure/cluster's status.controlPlaneTopology.
	ControlPlaneTopology string `json:"controlPlaneTopology,omitempty"`
	// EncryptionType is apiserver/cluster's spec.encryption.type ("" or
	// identity: off).
	EncryptionType string `json:"encryptionType,omitempty"`
	// EtcdOverrides is etcd/cluster's spec.unsupportedConfigOverrides, when
	// the snapshot holds one (a quorum-guard override comes back with it).
	EtcdOverrides json.RawMessage `json:"etcdOverrides,omitempty"`
	// ClientCA is the kube-apiserver's client CA bundle (PEM) as the
	// snapshot holds it; nil when it is encrypted or missing.
	ClientCA []byte `json:"-"`
	// ClientCAEncrypted: the bundle is there, encrypted at rest.
	ClientCAEncrypted bool `json:"clientCAEncrypted,omitempty"`
	// ControlPlane are the control-plane nodes the snapshot knows, by
	// name: what a restore from the hosts' consoles needs when the API is
	// gone.
	ControlPlane []SnapshotNode `json:"controlPlane,omitempty"`
}

// SnapshotNode is a control-plane node as the snapshot holds it.
type SnapshotNode struct {
	Name string `json:"name"`
	IP   string `json:"ip,omitempty"`
}

// Encrypted says whether etcd encryption was on when the snapshot was taken.
func (c SnapshotCluster) Encrypted() bool {
	return c.EncryptionType != "" && c.EncryptionType != string(configv1.EncryptionTypeIdentity)
}

// snapshotCluster decodes the identity keys a status read kept. A key that
// is missing leaves its fields empty; one that does not decode is an error,
// since it says the snapshot is not what it seems.
func snapshotCluster(values map[string][]byte) (SnapshotCluster, error) {
	var c SnapshotCluster
	if v, ok := values[keyClusterVersion]; ok {
		var cv configv1.ClusterVersion
		if err := decodeJSON(v, &cv); err != nil {
			return c, fmt.Errorf("clusterversions/version: %w", err)
		}
		c.ClusterID, c.Version = string(cv.Spec.ClusterID), cv.Status.Desired.Version
		for _, h := range cv.Status.History {
			if h.Version == c.Version {
				c.Updating = h.State != configv1.CompletedUpdate
				break
			}
		}
	}
	if v, ok := values[keyInfrastructure]; ok {
		var infra configv1.Infrastructure
		if err := decodeJSON(v, &infra); err != nil {
			return c, fmt.Errorf("infrastructures/cluster: %w", err)
		}
		c.InfrastructureName, c.ControlPlaneTopology = infra.Status.InfrastructureName, string(infra.Status.ControlPlaneTopology)
	}
	if v, ok := values[keyAPIServer]; ok {
		var api configv1.APIServer
		if err := decodeJSON(v, &api); err != nil {
			return c, fmt.Errorf("apiservers/cluster: %w", err)
		}
		c.EncryptionType = string(api.Spec.Encryption.Type)
	}
	if v, ok := values[keyEtcdOperator]; ok {
		var etcd struct {
			Spec struct {
				Overrides json.RawMessage `json:"unsupportedConfigOverrides"`
			} `json:"spec"`
		}
		if err := decodeJSON(v, &etcd); err != nil {
			return c, fmt.Errorf("etcds/cluster: %w", err)
		}
		if o := bytes.TrimSpace(etcd.Spec.Overrides); len(o) > 0 && !bytes.Equal(o, []byte("null")) {
			c.EtcdOverrides = o
		}
	}
	if v, ok := values[keyClientCA]; ok {
		if bytes.HasPrefix(v, encryptedPrefix) {
			c.ClientCAEncrypted = true
		} else {
			obj, _, err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Decode(v, nil, nil)
			if err != nil {
				return c, fmt.Errorf("configmaps/openshift-kube-apiserver/client-ca: %w", err)
			}
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				c.ClientCA = []byte(cm.Data["ca-bundle.crt"])
			}
		}
	}
	for key, v := range values {
		if !strings.HasPrefix(key, prefixNodes) || bytes.HasPrefix(v, encryptedPrefix) {
			continue
		}
		obj, _, err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Decode(v, nil, nil)
		if err != nil {
			return c, fmt.Errorf("%s: %w", strings.TrimPrefix(key, "/kubernetes.io/"), err)
		}
		if n, ok := obj.(*corev1.Node); ok && openshift.IsControlPlane(n) {
			sn := SnapshotNode{Name: n.Name}
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					sn.IP = a.Address
					break
				}
			}
			c.ControlPlane = append(c.ControlPlane, sn)
		}
	}
	sort.Slice(c.ControlPlane, func(i, j int) bool { return c.ControlPlane[i].Name < c.ControlPlane[j].Name })
	return c, nil
}

// decodeJSON reads a custom resource as stored; an encrypted one says so.
func decodeJSON(v []byte, into any) error {
	if bytes.HasPrefix(v, encryptedPrefix) {
		return fmt.Errorf("stored encrypted, which the kube-apiserver never does for this resource")
	}
	return json.Unmarshal(v, into)
}
