package power

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The signer of the certificates the kube-apiserver presents to the
// kubelets. It is valid for about a year and rotated while the cluster
// runs; a cluster that is down when it expires cannot start again without
// recovering the certificates by hand.
const (
	SignerNamespace = "openshift-kube-apiserver-operator"
	SignerSecret    = "kube-apiserver-to-kubelet-signer"
	// NotAfterAnnotation is where OpenShift's cert rotation records a
	// certificate's expiry on its secret (RFC 3339).
	NotAfterAnnotation = "auth.openshift.io/certificate-not-after"
)

// DefaultRestartBy is --restart-by's default: a maintenance window of 30
// days. The signer is rotated long before its last month, so on a healthy
// cluster the default passes; a longer shutdown must say so.
const DefaultRestartBy = "30d"

// SignerExpiry is when the kube-apiserver-to-kubelet signer expires, and
// how that was learnt.
type SignerExpiry struct {
	NotAfter time.Time `json:"notAfter"`
	// Source is "certificate" (tls.crt, the authority) or "annotation"
	// (auth.openshift.io/certificate-not-after, when tls.crt is unreadable).
	Source string `json:"source"`
	// Warning says what disagreed or could not be read, if anything.
	Warning string `json:"warning,omitempty"`
}

// ReadSignerExpiry reads the signer's expiry from its secret: from the
// certificate in tls.crt (the earliest expiry if it holds several), checked
// against the annotation; from the annotation alone when tls.crt cannot be
// read.
func ReadSignerExpiry(secret *corev1.Secret) (SignerExpiry, error) {
	certNotAfter, certErr := earliestNotAfter(secret.Data[corev1.TLSCertKey])
	var annNotAfter time.Time
	var annErr error
	ann, hasAnn := secret.Annotations[NotAfterAnnotation]
	if hasAnn {
		annNotAfter, annErr = time.Parse(time.RFC3339, ann)
	}
	where := secret.Namespace + "/" + secret.Name
	switch {
	case certErr == nil:
		e := SignerExpiry{NotAfter: certNotAfter, Source: "certificate"}
		switch {
		case hasAnn && annErr != nil:
			e.Warning = fmt.Sprintf("annotation %s=%q is not an RFC 3339 time; the certificate says %s", NotAfterAnnotation, ann, certNotAfter.UTC().Format(time.RFC3339))
		case hasAnn && absDuration(annNotAfter.Sub(certNotAfter)) > time.Minute:
			e.Warning = fmt.Sprintf("annotation %s says %s but the certificate says %s; the certificate counts", NotAfterAnnotation,
				annNotAfter.UTC().Format(time.RFC3339), certNotAfter.UTC().Format(time.RFC3339))
		}
		return e, nil
	case hasAnn && annErr == nil:
		return SignerExpiry{NotAfter: annNotAfter, Source: "annotation",
			Warning: fmt.Sprintf("cannot read the certificate of %s (%v); using its annotation %s", where, certErr, NotAfterAnnotation)}, nil
	case hasAnn:
		return SignerExpiry{}, fmt.Errorf("cannot tell when %s expires: %v, and annotation %s=%q is not an RFC 3339 time", where, certErr, NotAfterAnnotation, ann)
	default:
		return SignerExpiry{}, fmt.Errorf("cannot tell when %s expires: %v, and it has no annotation %s", where, certErr, NotAfterAnnotation)
	}
}

func earliestNotAfter(data []byte) (time.Time, error) {
	if len(data) == 0 {
		return time.Time{}, fmt.Errorf("no %s", corev1.TLSCertKey)
	}
	var earliest time.Time
	found := false
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", corev1.TLSCertKey, err)
		}
		if !found || cert.NotAfter.Before(earliest) {
			earliest, found = cert.NotAfter, true
		}
	}
	if !found {
		return time.Time{}, fmt.Errorf("no PEM certificate in %s", corev1.TLSCertKey)
	}
	return earliest, nil
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// CheckRestartBy refuses a shutdown after which the cluster would start
// again (at restartBy at the latest) only after the signer expired, or
// when the signer has expired already.
func CheckRestartBy(e SignerExpiry, restartBy, now time.Time) error {
	expiry := e.NotAfter.UTC().Format(time.RFC3339)
	if !e.NotAfter.After(now) {
		return fmt.Errorf("the %s certificate expired at %s: the kubelets' certificates cannot be renewed normally; recover the control-plane certificates first, by OpenShift's procedure (OpenShift 4.5 documentation, Backup and restore, 5.4 \"Recovering from expired control plane certificates\"), before shutting the cluster down", SignerSecret, expiry)
	}
	if restartBy.After(e.NotAfter) {
		return fmt.Errorf("the %s certificate expires at %s (%s from now), before the cluster would start again (--restart-by %s): a cluster that is down when it expires cannot start without recovering its certificates by hand. Start it again before %s (a shorter --restart-by), or wait until the certificate is rotated",
			SignerSecret, expiry, HumanDuration(e.NotAfter.Sub(now)), restartBy.UTC().Format(time.RFC3339), expiry)
	}
	return nil
}

var daysPattern = regexp.MustCompile(`^(\d+)d(.*)$`)

// ParseRestartBy reads --restart-by: an RFC 3339 time, or a duration from
// now (Go's syntax plus days, e.g. "30d", "2d12h", "36h"). It must lie in
// the future.
func ParseRestartBy(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("--restart-by %s is not in the future", s)
		}
		return t, nil
	}
	var d time.Duration
	rest := s
	if m := daysPattern.FindStringSubmatch(s); m != nil {
		days, err := strconv.Atoi(m[1])
		if err != nil || days > 100*365 {
			return time.Time{}, fmt.Errorf("--restart-by %q: too many days", s)
		}
		d, rest = time.Duration(days)*24*time.Hour, m[2]
	}
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, fmt.Errorf("--restart-by %q is neither an RFC 3339 time (2024-06-30T18:00:00Z) nor a duration (30d, 36h)", s)
		}
		d += more
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("--restart-by %q must lie in the future", s)
	}
	return now.Add(d), nil
}

// HumanDuration writes d in days and hours ("41d 6h"), or hours and
// minutes under a day.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		return "-" + HumanDuration(-d)
	}
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	if days > 0 {
		return fmt.Sprintf("%dd %dh", days, hours)
	}
	return fmt.Sprintf("%dh %dm", hours, int(d%time.Hour/time.Minute))
}
