package health

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	machinev1 "github.com/openshift/api/machine/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/member"
)

// csrChecks judges the pending CSRs as `oc recover csr approve` would.
func csrChecks(ctx context.Context, c *cluster) []Result {
	list, err := c.Kube.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		return failAll(err, "csr.pending")
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return failAll(err, "csr.pending")
	}
	machines, err := c.Machines(ctx)
	if err != nil {
		return failAll(err, "csr.pending")
	}
	decisions := csr.Decide(list.Items, nodes, machines, nil)
	return []Result{PendingCSRs(decisions, nodes, c.opts.Now)}
}

// certChecks reads the certificate the API server presents, and every
// TLS secret in one list (the type is a field the API selects on), and
// judges those of OpenShift's namespaces.
func certChecks(ctx context.Context, c *cluster) []Result {
	out := []Result{ServingCertificate(ReadServingChain(ctx, c.REST), c.opts.Now)}
	list, err := c.Kube.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(corev1.SecretTypeTLS)})
	if err != nil {
		return append(out, failAll(err, "certs.signers", "certs.unmanaged", "certs.kubeletsigner")...)
	}
	var ours []corev1.Secret
	var signer *corev1.Secret
	for i := range list.Items {
		s := &list.Items[i]
		if !strings.HasPrefix(s.Namespace, "openshift-") {
			continue
		}
		ours = append(ours, *s)
		if s.Namespace == kubeletSignerNamespace && s.Name == kubeletSignerName {
			signer = s
		}
	}
	return append(out,
		RotatedCertificates(ours, c.opts.Now, c.opts.Until),
		UnmanagedCertificates(ours, c.opts.Now),
		KubeletSigner(signer, c.opts.Now))
}

const (
	kubeletSignerNamespace = "openshift-kube-apiserver-operator"
	kubeletSignerName      = "kube-apiserver-to-kubelet-signer"
)

func machineChecks(ctx context.Context, c *cluster) []Result {
	machines, err := c.Machines(ctx)
	if err != nil {
		return failAll(err, "machines", "machines.cpms")
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return failAll(err, "machines", "machines.cpms")
	}
	out := []Result{Machines(machines, nodes, c.opts.Now)}
	var cpms *machinev1.ControlPlaneMachineSet
	if c.Machine != nil {
		got, err := c.Machine.MachineV1().ControlPlaneMachineSets(MachineAPINamespace).Get(ctx, "cluster", metav1.GetOptions{})
		switch {
		case err == nil:
			cpms = got
		case apierrors.IsNotFound(err):
			// Before 4.12, on user-provisioned hosts, or not generated.
		default:
			return append(out, CouldNotRun("machines.cpms", err))
		}
	}
	return append(out, ControlPlaneMachineSet(cpms))
}

func poolChecks(ctx context.Context, c *cluster) []Result {
	if c.MachineConfig == nil {
		return failAll(fmt.Errorf("no machine config client"), "mcp")
	}
	list, err := c.MachineConfig.MachineconfigurationV1().MachineConfigPools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return failAll(err, "mcp")
	}
	return []Result{MachineConfigPools(list.Items, c.opts.Now)}
}

// webhookChecks reads the webhooks and, for those that fail closed, the
// endpoints of the services they call.
func webhookChecks(ctx context.Context, c *cluster) []Result {
	adm := c.Kube.AdmissionregistrationV1()
	validating, err := adm.ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return failAll(err, "webhooks")
	}
	mutating, err := adm.MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return failAll(err, "webhooks")
	}
	services := map[string]map[string]bool{} // namespace → service names
	for _, cfg := range validating.Items {
		for _, w := range cfg.Webhooks {
			if s := w.ClientConfig.Service; s != nil && failsClosed(w.FailurePolicy) {
				addService(services, s.Namespace, s.Name)
			}
		}
	}
	for _, cfg := range mutating.Items {
		for _, w := range cfg.Webhooks {
			if s := w.ClientConfig.Service; s != nil && failsClosed(w.FailurePolicy) {
				addService(services, s.Namespace, s.Name)
			}
		}
	}
	// One list, whatever the number of namespaces: the label selector
	// names the services, ReadyServices keys them by namespace too.
	var names []string
	seen := map[string]bool{}
	for _, byName := range services {
		for n := range byName {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	var slices []discoveryv1.EndpointSlice
	if len(names) > 0 {
		list, err := c.Kube.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{
			LabelSelector: fmt.Sprintf("%s in (%s)", discoveryv1.LabelServiceName, strings.Join(names, ","))})
		if err != nil {
			return failAll(err, "webhooks")
		}
		slices = list.Items
	}
	return []Result{Webhooks(validating.Items, mutating.Items, ReadyServices(slices))}
}

func addService(services map[string]map[string]bool, ns, name string) {
	if services[ns] == nil {
		services[ns] = map[string]bool{}
	}
	services[ns][name] = true
}

// backupChecks judges the newest backup in --backup-dir against the live
// cluster: its ID, its version, whether its secrets are encrypted.
func backupChecks(ctx context.Context, c *cluster) []Result {
	cv, err := c.Version(ctx)
	if err != nil {
		return failAll(err, "backup.local")
	}
	apiserver, err := c.Config.ConfigV1().APIServers().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return failAll(err, "backup.local")
	}
	encrypted := apiserver != nil && err == nil && encryptionOn(apiserver.Spec.Encryption.Type)
	entries, err := backup.List(c.opts.BackupDir)
	if err != nil {
		return failAll(fmt.Errorf("read --backup-dir %s: %w", c.opts.BackupDir, err), "backup.local")
	}
	r := LocalBackup(entries, string(cv.Spec.ClusterID), cv.Status.Desired.Version, encrypted, c.opts.Now, c.opts.MaxBackupAge)
	// The fix names the directory the user gave.
	r.Fix = strings.ReplaceAll(r.Fix, "--output-dir <backup-dir>/<name>", "--output-dir "+filepath.Join(c.opts.BackupDir, "<name>"))
	return []Result{r}
}

func encryptionOn(t configv1.EncryptionType) bool {
	return t != "" && t != configv1.EncryptionTypeIdentity
}

// leftoverChecks finds what oc-recover leaves only when interrupted: its
// debug namespaces, and a member replacement's record on etcd/cluster.
func leftoverChecks(ctx context.Context, c *cluster) []Result {
	r := Result{ID: "leftovers", Severity: OK, Summary: "nothing left behind by oc-recover"}
	namespaces, err := debugnode.Leftovers(ctx, c.Kube)
	if err != nil {
		return failAll(err, "leftovers")
	}
	// A namespace being deleted is not left behind: every oc-recover run
	// deletes its own, and the namespace controller takes a moment to
	// finish (a second health --deep right after the first sees them).
	// One that stays Terminating is.
	kept := namespaces[:0]
	for _, ns := range namespaces {
		if ns.DeletionTimestamp != nil && c.opts.Now.Sub(ns.DeletionTimestamp.Time) < terminatingGrace {
			continue
		}
		kept = append(kept, ns)
	}
	namespaces = kept
	for _, ns := range namespaces {
		r.Evidence = append(r.Evidence, "namespace "+ns.Name)
	}
	if len(namespaces) > 0 {
		r.Severity = Warn
		r.Summary = fmt.Sprintf("%d debug namespace(s) left behind", len(namespaces))
		r.Fix = "`oc recover cleanup` deletes them"
	}
	etcdCR, err := c.EtcdCR(ctx)
	if err != nil {
		return failAll(err, "leftovers")
	}
	if rec, ok := etcdCR.Annotations[member.RecordAnnotation]; ok {
		r.Severity = Warn
		r.Summary = "an interrupted member replacement"
		r.Evidence = append(r.Evidence, fmt.Sprintf("etcd/cluster annotation %s: %s", member.RecordAnnotation, rec))
		r.Fix = "run the `oc recover member replace` it records again to finish it"
		if len(namespaces) > 0 {
			r.Fix += "; then `oc recover cleanup`"
		}
	}
	return []Result{r}
}

// terminatingGrace is how long a debug namespace may take to be deleted
// before it counts as left behind.
const terminatingGrace = 5 * time.Minute

// failsClosed: a webhook whose failure policy is Fail (the default in
// admissionregistration/v1) refuses every request it cannot be asked.
func failsClosed(p *admissionregistrationv1.FailurePolicyType) bool {
	return p == nil || *p == admissionregistrationv1.Fail
}
