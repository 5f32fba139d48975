package member

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// RecordAnnotation, on etcd/cluster, records a member replacement in
// progress. A replacement outlives its process (a re-run after Ctrl-C, a
// crash or a timeout continues it), and once the member is removed the
// cluster alone no longer tells which member it was, which Machine held it,
// or what the quorum-guard override was before: the record keeps those in
// the cluster, next to the operator they concern, visible to every admin
// (`oc get etcd cluster -o yaml`). It is removed when the replacement ends.
const RecordAnnotation = "oc-recover/member-replace"

// ReplacesNodeAnnotation marks the Machine created to replace a node's.
const ReplacesNodeAnnotation = "oc-recover/replaces-node"

// Procedures of a member replacement (OpenShift 4.5 documentation, Backup and
// restore, 2.4.1 "Replacing an unhealthy etcd member whose machine is not
// running or whose node is not ready" and 2.4.2 "Replacing an unhealthy etcd
// member whose etcd pod is crashlooping").
const (
	ProcedureMachine    = "machine"   // §2.4.1 with the Machine API: replace the Machine
	ProcedureUPI        = "upi"       // §2.4.1 on hosts the Machine API does not manage
	ProcedureCrashloop  = "crashloop" // §2.4.2: fresh data on the same node
	machineNamespace    = "openshift-machine-api"
	masterMachineSelect = "machine.openshift.io/cluster-api-machine-role=master"
)

// Record is a replacement in progress.
type Record struct {
	Node      string    `json:"node"`
	MemberID  string    `json:"memberID"`
	PeerURL   string    `json:"peerURL,omitempty"`
	Procedure string    `json:"procedure"`
	Started   time.Time `json:"started"`
	// Machine is the node's Machine; NewMachine the copy that replaces
	// it, saved here before the old one is deleted so that a crash between
	// the delete and the create loses nothing.
	Machine    string          `json:"machine,omitempty"`
	NewMachine string          `json:"newMachine,omitempty"`
	Saved      json.RawMessage `json:"savedMachine,omitempty"`
	// Override says whether the quorum-guard override is needed, and
	// OriginalOverrides what spec.unsupportedConfigOverrides held before
	// ("null" when nothing): it is put back when the replacement ends.
	Override          bool            `json:"override"`
	OverrideSet       bool            `json:"overrideSet,omitempty"`
	OriginalOverrides json.RawMessage `json:"originalOverrides,omitempty"`
	Backup            string          `json:"backup,omitempty"`
	Forced            []string        `json:"forced,omitempty"`
}

// ReadRecord returns the replacement in progress, or nil.
func ReadRecord(ctx context.Context, ops operatorclient.Interface) (*Record, error) {
	e, err := ops.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read etcd/cluster: %w", err)
	}
	raw, ok := e.Annotations[RecordAnnotation]
	if !ok {
		return nil, nil
	}
	r := &Record{}
	if err := json.Unmarshal([]byte(raw), r); err != nil {
		return nil, fmt.Errorf("etcd/cluster annotation %s is not a replacement record (%v); remove it if no replacement is running", RecordAnnotation, err)
	}
	return r, nil
}

func writeRecord(ctx context.Context, ops operatorclient.Interface, r *Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return patchEtcd(ctx, ops, map[string]any{"metadata": map[string]any{"annotations": map[string]any{RecordAnnotation: string(data)}}})
}

func deleteRecord(ctx context.Context, ops operatorclient.Interface) error {
	return patchEtcd(ctx, ops, map[string]any{"metadata": map[string]any{"annotations": map[string]any{RecordAnnotation: nil}}})
}

func patchEtcd(ctx context.Context, ops operatorclient.Interface, patch map[string]any) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := ops.OperatorV1().Etcds().Patch(ctx, "cluster", types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("merge-patch etcd/cluster %s: %w", data, err)
	}
	return nil
}
