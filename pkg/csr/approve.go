package csr

import (
	"context"
	"fmt"
	"sync"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultWorkers is how many approvals Approver sends at once by default.
const DefaultWorkers = 32

// Approver reads the CSRs, nodes and machines and approves CSRs.
type Approver struct {
	Kube kubernetes.Interface
	// Machine may be nil (no Machine API: user-provisioned hosts).
	Machine machineclient.Interface
	// Workers bounds the approvals in flight (DefaultWorkers if zero).
	Workers int
}

// Snapshot is the cluster as Decide needs it.
type Snapshot struct {
	CSRs     []certificatesv1.CertificateSigningRequest
	Nodes    []corev1.Node
	Machines []machinev1beta1.Machine
	// Stale are the nodes the post-outage rule counts as not Ready, with
	// why (Rounds.PostOutage); their Ready condition in Nodes says Unknown.
	// StaleErr is why the rule could not be applied this round.
	Stale    map[string]string
	StaleErr error
}

// Read lists the CSRs, the nodes and the machines: three requests, sent
// at once. A cluster without the Machine API has no machines.
func (a *Approver) Read(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{}
	var wg sync.WaitGroup
	var csrErr, nodeErr, machineErr error
	wg.Add(3)
	go func() {
		defer wg.Done()
		list, err := a.Kube.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			csrErr = fmt.Errorf("list certificate signing requests: %w", err)
			return
		}
		s.CSRs = list.Items
	}()
	go func() {
		defer wg.Done()
		list, err := a.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			nodeErr = fmt.Errorf("list nodes: %w", err)
			return
		}
		s.Nodes = list.Items
	}()
	go func() {
		defer wg.Done()
		if a.Machine == nil {
			return
		}
		list, err := a.Machine.MachineV1beta1().Machines(MachineNamespace).List(ctx, metav1.ListOptions{})
		switch {
		case err == nil:
			s.Machines = list.Items
		case apierrors.IsNotFound(err):
			// No Machine API.
		default:
			machineErr = fmt.Errorf("list machines: %w", err)
		}
	}()
	wg.Wait()
	for _, err := range []error{csrErr, nodeErr, machineErr} {
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Approve approves, in parallel, every CSR of csrs whose decision says
// so, and sets every decision's Outcome: Approved, Pending (not to be
// approved), or what happened instead. It returns the decisions and the
// number of failed approvals (their Error says why).
func (a *Approver) Approve(ctx context.Context, csrs []certificatesv1.CertificateSigningRequest, decisions []Decision) ([]Decision, int) {
	byName := make(map[string]*certificatesv1.CertificateSigningRequest, len(csrs))
	for i := range csrs {
		byName[csrs[i].Name] = &csrs[i]
	}
	workers := a.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				d := &decisions[i]
				c := byName[d.Name]
				if c == nil {
					d.Outcome, d.Error = Failed, "not among the CSRs read"
					continue
				}
				outcome, err := a.approveOne(ctx, c, d)
				d.Outcome = outcome
				if err != nil {
					d.Error = err.Error()
				}
			}
		}()
	}
	failed := 0
	for i := range decisions {
		if !decisions[i].Approve {
			decisions[i].Outcome = Pending
			continue
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, d := range decisions {
		if d.Outcome == Failed {
			failed++
		}
	}
	return decisions, failed
}

// approveOne adds the Approved condition to c through the approval
// subresource. On a conflict it reads the CSR again: when someone else
// approved or denied it meanwhile, or it was replaced by another CSR of the
// same name, it says so and leaves it; when it is still the same pending
// CSR (its spec cannot change), it tries again.
func (a *Approver) approveOne(ctx context.Context, c *certificatesv1.CertificateSigningRequest, d *Decision) (Outcome, error) {
	api := a.Kube.CertificatesV1().CertificateSigningRequests()
	obj := c.DeepCopy()
	for attempt := 0; ; attempt++ {
		if obj.UID != c.UID {
			return Gone, nil
		}
		if !IsPending(obj) {
			return outcomeOf(obj), nil
		}
		obj.Status.Conditions = append(obj.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type:           certificatesv1.CertificateApproved,
			Status:         corev1.ConditionTrue,
			Reason:         ApprovalReason,
			Message:        "Approved by oc-recover: " + d.Reason,
			LastUpdateTime: metav1.Now(),
		})
		_, err := api.UpdateApproval(ctx, obj.Name, obj, metav1.UpdateOptions{FieldManager: "oc-recover"})
		switch {
		case err == nil:
			return Approved, nil
		case apierrors.IsNotFound(err):
			return Gone, nil
		case apierrors.IsConflict(err) && attempt < 5:
			obj, err = api.Get(ctx, c.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return Gone, nil
			}
			if err != nil {
				return Failed, fmt.Errorf("approve %s: read it again after a conflict: %w", c.Name, err)
			}
		default:
			return Failed, fmt.Errorf("approve %s: %w", c.Name, err)
		}
	}
}

// outcomeOf tells what someone else did with a CSR that is no longer pending.
func outcomeOf(c *certificatesv1.CertificateSigningRequest) Outcome {
	for _, cond := range c.Status.Conditions {
		if cond.Type == certificatesv1.CertificateDenied || cond.Type == certificatesv1.CertificateFailed {
			return DeniedElsewhere
		}
	}
	return ApprovedElsewhere
}
