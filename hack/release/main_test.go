package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// krewPlugin is the part of krew's v1alpha2 Plugin this test reads.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		ShortDescription string `json:"shortDescription"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

func readManifest(t *testing.T, data []byte) krewPlugin {
	t.Helper()
	var p krewPlugin
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatalf("manifest: %v\n%s", err, data)
	}
	return p
}

func checkedInManifest(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../../.krew.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The manifest template has one platform per release archive, each installing
// the archive's kubectl-recover and LICENSE.
func TestManifestTemplateMatchesTheReleasePlatforms(t *testing.T) {
	m := readManifest(t, checkedInManifest(t))
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "recover" {
		t.Errorf("not krew's v1alpha2 Plugin named recover: %s %s %s", m.APIVersion, m.Kind, m.Metadata.Name)
	}
	var got []platform
	for _, pl := range m.Spec.Platforms {
		p := platform{pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]}
		got = append(got, p)
		if pl.Bin != p.exe("kubectl-recover") {
			t.Errorf("%s: bin %q, want %q", p, pl.Bin, p.exe("kubectl-recover"))
		}
		if !strings.HasSuffix(pl.URI, "/"+p.archiveName()) {
			t.Errorf("%s: uri %q does not name %s", p, pl.URI, p.archiveName())
		}
		var from []string
		for _, f := range pl.Files {
			from = append(from, f.From)
		}
		if want := []string{p.exe("kubectl-recover"), "LICENSE"}; !reflect.DeepEqual(from, want) {
			t.Errorf("%s: files from %q, want %q", p, from, want)
		}
	}
	if !reflect.DeepEqual(got, releasePlatforms) {
		t.Errorf("manifest platforms %v, release platforms %v", got, releasePlatforms)
	}
}

func TestRenderManifest(t *testing.T) {
	sums := map[platform]string{}
	for i, p := range releasePlatforms {
		sums[p] = strings.Repeat(string(rune('a'+i)), 64)
	}
	out, err := renderManifest(checkedInManifest(t), "v1.2.3", "https://example.com/dl/v1.2.3", sums)
	if err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, out)
	if m.Spec.Version != "v1.2.3" {
		t.Errorf("version %q", m.Spec.Version)
	}
	if len(m.Spec.Platforms) != len(releasePlatforms) {
		t.Fatalf("%d platforms rendered, want %d:\n%s", len(m.Spec.Platforms), len(releasePlatforms), out)
	}
	for _, pl := range m.Spec.Platforms {
		p := platform{pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]}
		if pl.SHA256 != sums[p] || pl.URI != "https://example.com/dl/v1.2.3/"+p.archiveName() {
			t.Errorf("%s: uri %q sha256 %q", p, pl.URI, pl.SHA256)
		}
	}
	if strings.Contains(string(out), "v0.0.0") || strings.Contains(string(out), "000000") {
		t.Errorf("placeholders left:\n%s", out)
	}
	if !strings.Contains(string(out), "# krew plugin manifest") {
		t.Errorf("comments lost:\n%s", out)
	}

	linux := platform{"linux", "amd64"}
	out, err = renderManifest(checkedInManifest(t), "v1.2.3-rc.1", "http://127.0.0.1:1234", map[platform]string{linux: sums[linux]})
	if err != nil {
		t.Fatal(err)
	}
	if m := readManifest(t, out); len(m.Spec.Platforms) != 1 || m.Spec.Platforms[0].URI != "http://127.0.0.1:1234/oc-recover_linux_amd64.tar.gz" {
		t.Errorf("only linux/amd64 should be left:\n%s", out)
	}

	if _, err := renderManifest(checkedInManifest(t), "v1.2.3", "x", map[platform]string{{"plan9", "386"}: sums[linux]}); err == nil {
		t.Error("a platform the manifest lacks should be an error")
	}
}

func TestVersionMustBeSemver(t *testing.T) {
	for v, ok := range map[string]bool{
		"v1.2.3": true, "v0.1.0-rc.1": true, "v1.2.3-4-gabcdef0-dirty": true, "v0.0.0-dev+8451273": true,
		"1.2.3": false, "v1.2": false, "8451273": false, "v01.2.3": false, "": false,
	} {
		if semverTag.MatchString(v) != ok {
			t.Errorf("%q: accepted = %v, want %v", v, !ok, ok)
		}
	}
}

func TestArchives(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	entries := []entry{
		{"kubectl-recover", write("bin", "#!binary"), 0o755},
		{"LICENSE", write("license", "Apache"), 0o644},
	}
	mtime := time.Date(2026, 11, 21, 23, 1, 21, 0, time.UTC)
	want := map[string]string{"kubectl-recover": "#!binary", "LICENSE": "Apache"}
	wantMode := map[string]os.FileMode{"kubectl-recover": 0o755, "LICENSE": 0o644}

	t.Run("tar.gz", func(t *testing.T) {
		var buf bytes.Buffer
		if err := writeTarGz(&buf, entries, mtime); err != nil {
			t.Fatal(err)
		}
		gz, err := gzip.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(gz)
		got := map[string]string{}
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			got[hdr.Name] = string(data)
			if hdr.Typeflag != tar.TypeReg || os.FileMode(hdr.Mode) != wantMode[hdr.Name] || !hdr.ModTime.Equal(mtime) {
				t.Errorf("%s: type %c mode %o time %s", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.ModTime)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("zip", func(t *testing.T) {
		var buf bytes.Buffer
		if err := writeZip(&buf, entries, mtime); err != nil {
			t.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(rc)
			rc.Close()
			got[f.Name] = string(data)
			if f.Mode() != wantMode[f.Name] || !f.Modified.Equal(mtime) {
				t.Errorf("%s: mode %s time %s", f.Name, f.Mode(), f.Modified)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}
