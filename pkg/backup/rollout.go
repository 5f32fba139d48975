package backup

import (
	"context"
	"fmt"
	"strings"

	configv1 "github.com/openshift/api/config/v1"
	configclient "github.com/openshift/client-go/config/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/era"
)

// StaticPodOperators are the cluster operators whose rollouts a backup
// waits out: the tarball holds their static pods' resources at the revision
// each manifest references, and during a rollout that revision changes node
// by node, so the snapshot could be paired with resources that no longer
// match it. The etcd operator's backup script (OpenShift 4.6 and later)
// refuses for the same four, unless it is given --force.
var StaticPodOperators = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"}

// Rollout is a static-pod operator that is not settled: Progressing is
// True, Unknown, or cannot be read.
type Rollout struct {
	Operator string `json:"operator"`
	// Status is the Progressing condition's status, or "Unknown" when the
	// ClusterOperator or its condition is missing.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

func (r Rollout) String() string {
	if r.Message == "" {
		return fmt.Sprintf("%s (Progressing=%s)", r.Operator, r.Status)
	}
	return fmt.Sprintf("%s (Progressing=%s: %s)", r.Operator, r.Status, r.Message)
}

// Rollouts reads the Progressing condition of the four static-pod
// operators' ClusterOperators and returns those not False.
func Rollouts(ctx context.Context, config configclient.Interface) ([]Rollout, error) {
	var out []Rollout
	for _, name := range StaticPodOperators {
		co, err := config.ConfigV1().ClusterOperators().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out = append(out, Rollout{Operator: name, Status: "Unknown", Message: "clusteroperator " + name + " not found"})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read clusteroperator %s: %w", name, err)
		}
		r := Rollout{Operator: name, Status: "Unknown", Message: "no Progressing condition"}
		for _, c := range co.Status.Conditions {
			if c.Type == configv1.OperatorProgressing {
				r.Status, r.Message = string(c.Status), c.Message
			}
		}
		if r.Status != string(configv1.ConditionFalse) {
			out = append(out, r)
		}
	}
	return out, nil
}

// rolloutRefusal explains why a backup during a rollout is refused, and the
// two ways on: wait, or what forceAdvice says (empty: the backup command's
// own --force).
func rolloutRefusal(rollouts []Rollout, command, forceAdvice string) error {
	var names, lines []string
	for _, r := range rollouts {
		names = append(names, r.Operator)
		lines = append(lines, "  "+r.String())
	}
	verb := "is"
	if len(rollouts) > 1 {
		verb = "are"
	}
	if forceAdvice == "" {
		forceAdvice = "or pass --force to take it now: the files are then named __POSSIBLY_DIRTY__, backup.json records it, and a restore refuses such a backup without --force"
	}
	return fmt.Errorf("refusing, nothing was done: %s %s rolling out a new revision (or its state is unknown):\n%s\n"+
		"A backup taken now could pair the etcd snapshot with static pod resources of another revision, "+
		"which is why the etcd operator's backup script (cluster-backup.sh, OpenShift 4.6 and later) refuses it too.\n"+
		"Wait until `%s get clusteroperators %s` shows PROGRESSING False, then run `%s backup` again; %s",
		strings.Join(names, ", "), verb, strings.Join(lines, "\n"), clientOf(command), strings.Join(StaticPodOperators, " "), command, forceAdvice)
}

// scriptUsesLocalAPI says whether the release's backup script reads the
// operators' state through the node's own kube-apiserver (4.6 and later,
// through localhost.kubeconfig): a node whose own API server does not
// answer cannot take a backup there.
func scriptUsesLocalAPI(version string) bool {
	rel, ok := era.Parse(version)
	return !ok || rel.Major > 4 || (rel.Major == 4 && rel.Minor >= 6)
}

// clientOf is the client the user runs the plugin from ("oc" for "oc
// recover"), for advice to run one of its own commands.
func clientOf(command string) string {
	if f := strings.Fields(command); len(f) > 0 {
		return f[0]
	}
	return "oc"
}
