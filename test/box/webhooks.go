package box

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// WebhookScopeLabel marks the namespaces an AddUnreachableWebhook webhook
// intercepts: its value is the webhook configuration's name.
const WebhookScopeLabel = "box.oc-recover.io/webhook"

// AddUnreachableWebhook leaves behind what an uninstalled or crashed
// admission webhook leaves: a ValidatingWebhookConfiguration name with
// failurePolicy Fail whose Service (namespace and name name, port 443)
// selects no pod, so that it has no ready endpoint and the apiserver
// fails every request the webhook matches. So that the box's own
// controllers and other tests never meet it, it matches only creates and
// updates of config maps in namespaces labelled WebhookScopeLabel=name,
// which is its own namespace (a test that wants to see a write refused
// writes a config map there). remove deletes all of it.
func (b *Box) AddUnreachableWebhook(ctx context.Context, name string) (remove func(context.Context) error, err error) {
	core := b.Kube.CoreV1()
	hooks := b.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	remove = func(ctx context.Context) error {
		errs := []error{
			ignoreNotFound(hooks.Delete(ctx, name, metav1.DeleteOptions{})),
			ignoreNotFound(core.Services(name).Delete(ctx, name, metav1.DeleteOptions{})),
			// What the garbage collector (which the box does not run)
			// removes after the Service: the slices it owns.
			ignoreNotFound(b.Kube.DiscoveryV1().EndpointSlices(name).DeleteCollection(ctx, metav1.DeleteOptions{},
				metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})),
			ignoreNotFound(core.Namespaces().Delete(ctx, name, metav1.DeleteOptions{})),
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = remove(context.WithoutCancel(ctx))
			remove = nil
		}
	}()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{WebhookScopeLabel: name}}}
	if _, err := core.Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("webhook namespace %s: %w", name, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443), Protocol: corev1.ProtocolTCP}},
		},
	}
	if _, err := core.Services(name).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("webhook service %s/%s: %w", name, name, err)
	}
	hook := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: name + ".webhooks.box.oc-recover.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Namespace: name, Name: name, Path: ptr.To("/validate"), Port: ptr.To[int32](443)},
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{WebhookScopeLabel: name}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](webhookTimeoutSeconds),
		}},
	}
	if _, err := hooks.Create(ctx, hook, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("validating webhook configuration %s: %w", name, err)
	}
	// The apiserver learns of webhook configurations through a watch: wait
	// until it calls this one, so that the caller's next matching request
	// meets it.
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "box-webhook-probe"}}
	err = WaitFor(ctx, 30*time.Second, "the apiserver to call webhook "+name, func(ctx context.Context) (bool, string, error) {
		_, err := core.ConfigMaps(name).Create(ctx, probe, metav1.CreateOptions{})
		switch {
		case err == nil:
			return false, "a matching write succeeded", ignoreNotFound(core.ConfigMaps(name).Delete(ctx, probe.Name, metav1.DeleteOptions{}))
		case strings.Contains(err.Error(), "failed calling webhook"):
			return true, "", nil
		}
		return false, err.Error(), nil
	})
	if err != nil {
		return nil, err
	}
	return remove, nil
}

// webhookTimeoutSeconds bounds how long a matched request waits for the
// webhook that cannot answer.
const webhookTimeoutSeconds = 5

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
