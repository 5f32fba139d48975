// Package era tells which OpenShift release a cluster runs and refuses the
// releases oc-recover does not support yet, before any command changes
// anything: OpenShift 3.x (no ClusterVersion, no operators, etcd in
// kube-system/master-etcd-<node>) and OpenShift 4.0-4.3 (no etcd operator,
// etcd in openshift-etcd/etcd-member-<node>, the etcd client certificate in
// openshift-config, host scripts that write ./assets into their working
// directory). Every command of this plugin assumes the etcd operator of
// OpenShift 4.4 and later: its pods (etcd-<node>), its etcd-client secret
// and CA bundle in openshift-etcd, its host scripts (cluster-backup.sh) and
// certificates.k8s.io/v1.
package era

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	configclient "github.com/openshift/client-go/config/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Oldest is the oldest supported release: the first with the etcd operator.
const (
	OldestMajor = 4
	OldestMinor = 4
)

// Clients are the API clients the decision reads.
type Clients struct {
	Kube            kubernetes.Interface
	OpenShiftConfig configclient.Interface
	// REST answers GET /version/openshift. Nil means Kube's discovery
	// client; when that is nil too (a fake clientset), the probe is skipped.
	REST rest.Interface
}

// Release is what the cluster runs.
type Release struct {
	// Version is the full version, e.g. "4.14.3"; for OpenShift 3.x the
	// gitVersion of /version/openshift without "v" and build suffix.
	Version      string
	Major, Minor int
}

func (r *Release) String() string { return "OpenShift " + r.Version }

// UnsupportedError is a refusal: the cluster is not a release oc-recover
// supports. Release is nil when the cluster is not OpenShift 4 (nor an
// OpenShift 3 that says so).
type UnsupportedError struct {
	Release *Release
	msg     string
}

func (e *UnsupportedError) Error() string { return e.msg }

// IsUnsupported reports whether err is (or wraps) a refusal by this package,
// as opposed to a failure to read the cluster.
func IsUnsupported(err error) bool {
	var u *UnsupportedError
	return errors.As(err, &u)
}

// ErrNoVersion: ClusterVersion exists but names no release yet.
var ErrNoVersion = errors.New("clusterversion/version reports no version yet; is the installation finished?")

const supported = "oc-recover supports OpenShift 4.4 and later"

// RequireSupported reads the cluster's release and returns it, or refuses
// (an *UnsupportedError, exit code 1) when it is not one this plugin
// supports. Commands call it first, before they change anything. An error
// that is not an *UnsupportedError means the cluster could not be read
// (not reachable, not allowed) and nothing is decided.
func RequireSupported(ctx context.Context, c Clients) (*Release, error) {
	if rel, err := openShift3(ctx, c); err != nil {
		return nil, err
	} else if rel != nil {
		return rel, refuse3(rel)
	}
	cv, err := c.OpenShiftConfig.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &UnsupportedError{msg: "refusing, nothing was done: this cluster has no clusterversion/version (config.openshift.io/v1) and no /version/openshift, so it is not OpenShift 4 (nor OpenShift 3); " + supported}
	}
	if err != nil {
		return nil, readError("read clusterversion/version (to tell the OpenShift release)", err)
	}
	version, err := Version(cv)
	if err != nil {
		return nil, err
	}
	rel, ok := Parse(version)
	if !ok {
		return nil, &UnsupportedError{msg: fmt.Sprintf("refusing, nothing was done: clusterversion/version reports version %q, which is not a release number oc-recover can read; %s", version, supported)}
	}
	if rel.Major < OldestMajor || (rel.Major == OldestMajor && rel.Minor < OldestMinor) {
		return rel, refuse4(rel, "")
	}
	pods, err := c.Kube.CoreV1().Pods("openshift-etcd").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, readError("list pods in openshift-etcd (to tell how etcd is run)", err)
	}
	for _, p := range pods.Items {
		if strings.HasPrefix(p.Name, "etcd-member-") {
			return rel, refuse4(rel, p.Name)
		}
	}
	return rel, nil
}

// CheckTimeout bounds Refuse when the API does not answer: without an etcd
// quorum every read hangs until the apiserver's own request timeout.
const CheckTimeout = 10 * time.Second

// Refuse is the check every command makes first. It returns a refusal (an
// *UnsupportedError), a permission error, or ErrNoVersion; and nil when the
// release is supported, or when it cannot be told because the cluster does
// not answer within CheckTimeout. A recovery tool must still work on a
// broken control plane: the command then goes on, and its own reads report
// a lost quorum or an API that is down in their own terms.
func Refuse(ctx context.Context, c Clients) error {
	checkCtx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	_, err := RequireSupported(checkCtx, c)
	switch {
	case err == nil, IsUnsupported(err), errors.Is(err, ErrNoVersion), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted while telling the OpenShift release: %w", err)
	}
	return nil
}

// readError is a failure to read what decides: not a refusal. Forbidden
// says what is missing (every command needs cluster-admin).
func readError(what string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%s: %w; oc-recover needs the cluster-admin role: log in as a cluster administrator (oc login, or a kubeconfig with cluster-admin)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Version returns the release clusterversion/version says the cluster runs:
// the newest completed update, else the desired one (an installation or a
// first update still in progress); ErrNoVersion when it names none.
func Version(cv *configv1.ClusterVersion) (string, error) {
	version := cv.Status.Desired.Version
	for _, h := range cv.Status.History {
		if h.State == configv1.CompletedUpdate {
			version = h.Version
			break
		}
	}
	if version == "" {
		return "", ErrNoVersion
	}
	return version, nil
}

// openShift3 asks GET /version/openshift, which only OpenShift 3.x serves
// (OpenShift 4 answers 404). Any answer other than a readable 200 means
// "not OpenShift 3": ClusterVersion decides then.
func openShift3(ctx context.Context, c Clients) (*Release, error) {
	client := c.REST
	if client == nil && c.Kube != nil && c.Kube.Discovery() != nil {
		client = c.Kube.Discovery().RESTClient()
	}
	if client == nil {
		return nil, nil
	}
	body, err := client.Get().AbsPath("/version/openshift").Do(ctx).Raw()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read /version/openshift: %w", err)
		}
		return nil, nil
	}
	var v struct {
		Major      string `json:"major"`
		Minor      string `json:"minor"`
		GitVersion string `json:"gitVersion"`
	}
	if json.Unmarshal(body, &v) != nil || (v.GitVersion == "" && v.Major == "") {
		return nil, nil
	}
	version := strings.TrimPrefix(v.GitVersion, "v")
	if i := strings.IndexAny(version, "+-"); i >= 0 {
		version = version[:i]
	}
	if rel, ok := Parse(version); ok {
		return rel, nil
	}
	// No usable gitVersion: major and minor ("3", "11+").
	major, _ := strconv.Atoi(strings.TrimRight(v.Major, "+"))
	minor, _ := strconv.Atoi(strings.TrimRight(v.Minor, "+"))
	return &Release{Version: fmt.Sprintf("%d.%d", major, minor), Major: major, Minor: minor}, nil
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(\.\d+)?([-+.].*)?$`)

// Parse reads a release number such as 4.14.8 (a leading v, and a suffix
// such as -0.nightly or +build, allowed).
func Parse(version string) (*Release, bool) {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return nil, false
	}
	major, err1 := strconv.Atoi(m[1])
	minor, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return nil, false
	}
	return &Release{Version: strings.TrimPrefix(version, "v"), Major: major, Minor: minor}, true
}

func refuse3(rel *Release) error {
	docs := fmt.Sprintf(`the OpenShift Container Platform %d.%d documentation, Day Two Operations Guide`, rel.Major, rel.Minor)
	if rel.Major == 3 && rel.Minor == 11 {
		docs += `: chapter 4 "Creating an environment-wide backup" (4.6 "etcd backup") and chapter 5 "Host-level tasks"`
	}
	return &UnsupportedError{Release: rel, msg: fmt.Sprintf(
		"refusing, nothing was done: this cluster runs %s (from /version/openshift), which has no ClusterVersion and no operators, and runs etcd in master-etcd-<node> pods in kube-system; %s: follow %s",
		rel, supported, docs)}
}

func refuse4(rel *Release, memberPod string) error {
	docsRelease := fmt.Sprintf("%d.%d", rel.Major, rel.Minor)
	what := fmt.Sprintf("this cluster runs %s, whose etcd is not managed by the etcd operator (etcd-member-<node> pods)", rel)
	if memberPod != "" {
		// The version says 4.4 or later, the pods say 4.3: an update from
		// 4.3 that has not moved etcd to the operator yet, or not finished.
		docsRelease = "4.3"
		what = fmt.Sprintf("this cluster reports %s but runs etcd in etcd-member-<node> pods (%s in openshift-etcd), the OpenShift 4.3 layout without the etcd operator, as while an update from 4.3 is not finished", rel, memberPod)
	}
	docs := fmt.Sprintf(`the OpenShift Container Platform %s documentation, Backup and restore`, docsRelease)
	if docsRelease == "4.3" {
		docs += `: chapter 1 "Backing up etcd", chapter 2 "Replacing a failed master host" and chapter 3 "Disaster recovery"`
	}
	return &UnsupportedError{Release: rel, msg: fmt.Sprintf("refusing, nothing was done: %s; %s: follow %s", what, supported, docs)}
}
