package backup

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
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

// checkTarGz reads the whole archive: a truncated or altered one fails
// here, not at restore time. It checks the layout a restore needs: one
// revision directory of each of the four static pods, each with its pod
// manifest, and with encrypted the kube-apiserver's encryption
// configuration. It returns the file's sha256 and size.
func checkTarGz(path string, encrypted bool) (string, int64, error) {
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
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return "", 0, fmt.Errorf("damaged archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			names = append(names, hdr.Name)
		}
	}
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return "", 0, err
	}
	if err := checkResourceLayout(names, encrypted); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), counted.n, nil
}

// checkResourceLayout checks the regular files of the static resources
// archive.
func checkResourceLayout(names []string, encrypted bool) error {
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
	for _, pod := range StaticPodOperators {
		var withManifest []string
		for rev, ok := range revisions[pod] {
			if ok {
				withManifest = append(withManifest, rev)
			}
		}
		sort.Strings(withManifest)
		switch {
		case len(withManifest) == 0:
			missing = append(missing, fmt.Sprintf("static-pod-resources/%s-pod-<N>/%s-pod.yaml", pod, pod))
		case len(withManifest) > 1:
			return fmt.Errorf("the static resources archive holds %d revisions of the %s pod (%s): a backup holds the one its manifest referenced; this archive is not one cluster-backup.sh wrote",
				len(withManifest), pod, strings.Join(withManifest, ", "))
		case pod == "kube-apiserver" && encrypted && !files[fmt.Sprintf("static-pod-resources/kube-apiserver-pod-%s/%s", withManifest[0], encryptionConfig)]:
			return fmt.Errorf("etcd encryption is on, but the static resources archive lacks the encryption configuration (static-pod-resources/kube-apiserver-pod-%s/%s): the snapshot's secrets cannot be read after a restore without it",
				withManifest[0], encryptionConfig)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the static resources archive lacks %s: a restore needs the kube-apiserver, kube-controller-manager, kube-scheduler and etcd pod manifests of one revision each (OpenShift documentation, Backup and restore, \"Restoring to a previous cluster state\")",
			strings.Join(missing, ", "))
	}
	return nil
}
