package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A restore puts back the resources of the four static-pod operators'
// pods (StaticPodOperators: each pod is named as its ClusterOperator), by
// their revision directories (<pod>-pod-<N>) and manifests
// (<pod>-pod.yaml): cluster-restore.sh restores all four from the tarball.

// revisionEntry matches a path inside a static pod's revision directory,
// as the host script archives them (relative to /etc/kubernetes).
var revisionEntry = regexp.MustCompile(`^static-pod-resources/([a-z-]+)-pod-(\d+)/(.*)$`)

// encryptionConfig is where the kube-apiserver revision holds the etcd
// encryption configuration (its keys) when encryption is on.
const encryptionConfig = "secrets/encryption-config/encryption-config"

// ResourcesReport is what the static resources archive holds.
type ResourcesReport struct {
	// Revisions is the revision of each static pod the archive holds.
	Revisions map[string]int `json:"revisions,omitempty"`
	// EncryptionConfig: the kube-apiserver revision holds the encryption
	// configuration.
	EncryptionConfig bool `json:"encryptionConfig,omitempty"`
	// Certificates counts the certificates in the archive's .crt files; a
	// restore puts them back on the recovery host.
	Certificates int `json:"certificates,omitempty"`
	// FirstExpiry is when the first of them expires, and FirstExpiring
	// which one that is (file and subject).
	FirstExpiry   time.Time `json:"firstCertificateExpiry,omitempty"`
	FirstExpiring string    `json:"firstCertificateExpiring,omitempty"`
}

// maxCertFile bounds what is read of one .crt file into memory.
const maxCertFile = 4 << 20

// checkTarGz reads the whole archive: a truncated or altered one fails
// here, not at restore time. It checks the layout a restore needs: one
// revision directory of each of the four static pods, each with its pod
// manifest, and with encrypted the kube-apiserver's encryption
// configuration. It returns the file's sha256 and size, and what it holds.
func checkTarGz(path string, encrypted bool) (string, int64, ResourcesReport, error) {
	var rep ResourcesReport
	sum, size, err := readTarGz(path, encrypted, &rep)
	return sum, size, rep, err
}

func readTarGz(path string, encrypted bool, rep *ResourcesReport) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	counted := &countingReader{r: io.TeeReader(f, h)}
	zr, err := gzip.NewReader(counted)
	if err != nil {
		return "", 0, fmt.Errorf("not a gzip archive: %w", err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", 0, fmt.Errorf("damaged archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg && strings.HasSuffix(hdr.Name, ".crt") && hdr.Size <= maxCertFile {
			var pemData bytes.Buffer
			if _, err := io.Copy(&pemData, tr); err != nil {
				return "", 0, fmt.Errorf("damaged archive: %w", err)
			}
			rep.addCertificates(strings.TrimPrefix(hdr.Name, "./"), pemData.Bytes())
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return "", 0, fmt.Errorf("damaged archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			names = append(names, hdr.Name)
		}
	}
	// The rest of the gzip stream, so that its checksum and length are
	// checked: a tar archive can end before a cut does.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return "", 0, fmt.Errorf("damaged archive: %w", err)
	}
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return "", 0, err
	}
	revisions, hasEncryption, err := checkResourceLayout(names, encrypted)
	if err != nil {
		return "", 0, err
	}
	rep.Revisions, rep.EncryptionConfig = revisions, hasEncryption
	return hex.EncodeToString(h.Sum(nil)), counted.n, nil
}

// addCertificates counts the certificates of a PEM file and keeps the one
// that expires first. What does not parse is not a certificate a restore
// depends on, and is left for the kube-apiserver to judge.
func (r *ResourcesReport) addCertificates(name string, data []byte) {
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		r.Certificates++
		if r.FirstExpiry.IsZero() || c.NotAfter.Before(r.FirstExpiry) {
			r.FirstExpiry = c.NotAfter.UTC()
			r.FirstExpiring = name + " (" + c.Subject.CommonName + ")"
		}
	}
}

// checkResourceLayout checks the regular files of the static resources
// archive, and returns the revision of each pod and whether the
// encryption configuration is there.
func checkResourceLayout(names []string, encrypted bool) (map[string]int, bool, error) {
	revisions := map[string]map[string]bool{} // pod -> revision -> has its manifest
	files := map[string]bool{}
	for _, n := range names {
		n = strings.TrimPrefix(strings.TrimPrefix(n, "./"), "/")
		files[n] = true
		m := revisionEntry.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		if revisions[m[1]] == nil {
			revisions[m[1]] = map[string]bool{}
		}
		revisions[m[1]][m[2]] = revisions[m[1]][m[2]] || m[3] == m[1]+"-pod.yaml"
	}
	var missing []string
	found := map[string]int{}
	hasEncryption := false
	for _, pod := range StaticPodOperators {
		var withManifest []string
		for rev, ok := range revisions[pod] {
			if ok {
				withManifest = append(withManifest, rev)
			}
		}
		sort.Strings(withManifest)
		if len(withManifest) == 1 {
			found[pod], _ = strconv.Atoi(withManifest[0])
			if pod == "kube-apiserver" {
				hasEncryption = files[fmt.Sprintf("static-pod-resources/kube-apiserver-pod-%s/%s", withManifest[0], encryptionConfig)]
			}
		}
		switch {
		case len(withManifest) == 0:
			missing = append(missing, fmt.Sprintf("static-pod-resources/%s-pod-<N>/%s-pod.yaml", pod, pod))
		case len(withManifest) > 1:
			return nil, false, fmt.Errorf("the static resources archive holds %d revisions of the %s pod (%s): a backup holds the one its manifest referenced; this archive is not one cluster-backup.sh wrote",
				len(withManifest), pod, strings.Join(withManifest, ", "))
		case pod == "kube-apiserver" && encrypted && !hasEncryption:
			return nil, false, fmt.Errorf("etcd encryption is on, but the static resources archive lacks the encryption configuration (static-pod-resources/kube-apiserver-pod-%s/%s): the snapshot's secrets cannot be read after a restore without it",
				withManifest[0], encryptionConfig)
		}
	}
	if len(missing) > 0 {
		return nil, false, fmt.Errorf("the static resources archive lacks %s: a restore needs the kube-apiserver, kube-controller-manager, kube-scheduler and etcd pod manifests of one revision each (OpenShift documentation, Backup and restore, \"Restoring to a previous cluster state\")",
			strings.Join(missing, ", "))
	}
	return found, hasEncryption, nil
}
