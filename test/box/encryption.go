package box

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// encryptionController simulates the kube-apiserver operator's encryption
// controllers: when apiserver/cluster asks for etcd encryption (aescbc,
// aesgcm), or stops asking, the operator rolls out a new kube-apiserver
// revision, and revisions installed while encryption is on carry the
// encryption configuration in
// secrets/encryption-config/encryption-config, as on a real host (that file
// holds the keys, which is why a backup's tarball must be kept apart from
// its snapshot).
type encryptionController struct {
	b      *Box
	period time.Duration

	mu   sync.Mutex
	mode configv1.EncryptionType // as last rolled out
}

func (c *encryptionController) run(ctx context.Context) {
	everyRound(ctx, c.period, func(rctx context.Context) {
		if err := c.sync(rctx); err != nil && ctx.Err() == nil {
			klogf("encryption controller: %v", err)
		}
	})
}

func (c *encryptionController) sync(ctx context.Context) error {
	apiserver, err := c.b.Config.ConfigV1().APIServers().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return err
	}
	want := apiserver.Spec.Encryption.Type
	if want == configv1.EncryptionTypeIdentity {
		want = ""
	}
	c.mu.Lock()
	same := want == c.mode
	c.mu.Unlock()
	if same {
		return nil
	}
	patch := []byte(fmt.Sprintf(`{"spec":{"forceRedeploymentReason":"encryption-%s-%d"}}`, want, time.Now().UnixNano()))
	if _, err := c.b.Operator.OperatorV1().KubeAPIServers().Patch(ctx, "cluster", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return err
	}
	c.mu.Lock()
	c.mode = want
	c.mu.Unlock()
	return nil
}

// encrypted is the encryption type revisions are installed with ("" off).
func (c *encryptionController) encrypted() configv1.EncryptionType {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode
}

// writeEncryptionConfig puts the encryption configuration into a
// kube-apiserver revision dir on a host.
func writeEncryptionConfig(root string, revision int32, mode configv1.EncryptionType) error {
	dir := filepath.Join(root, "etc/kubernetes/static-pod-resources", fmt.Sprintf("kube-apiserver-pod-%d", revision), "secrets/encryption-config")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfg := fmt.Sprintf("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, configmaps, routes.route.openshift.io, oauthaccesstokens.oauth.openshift.io, oauthauthorizetokens.oauth.openshift.io]\n  providers:\n  - %s:\n      keys:\n      - name: \"1\"\n        secret: Ym94LWVuY3J5cHRpb24ta2V5LXJldmlzaW9uLSVk\n  - identity: {}\n", mode)
	return os.WriteFile(filepath.Join(dir, "encryption-config"), []byte(cfg), 0o600)
}
