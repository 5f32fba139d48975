// Command release builds the release archives and renders the krew manifest.
//
//	go run ./hack/release -version v1.2.3 [-platforms linux/amd64,...] [-dist dist]
//
// (`make release`). For each platform it cross-compiles the plugin
// (CGO_ENABLED=0) and writes into -dist
//
//	oc-recover_<os>_<arch>.tar.gz (.zip on windows)  kubectl-recover, oc-recover
//	                                               (.exe on windows), LICENSE,
//	                                               README.md, plugin.yaml
//	oc-recover_<os>_<arch>.tar.gz.sha256           sha256sum's format
//
// and then recover.yaml: the krew manifest .krew.yaml with the version, each
// archive's URI (-base-url) and sha256, and only the platforms built. The
// end-to-end tests build the linux/amd64 archive with this same program.
package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	versionPkg = "github.com/oc-recover/oc-recover/pkg/version"
	mainPkg    = "./cmd/oc-recover"
	// defaultBaseURL is where the archives of a GitHub release are, by tag.
	defaultBaseURL = "https://github.com/oc-recover/oc-recover/releases/download/"
	// manifestName is the rendered manifest's name: krew-index keeps a
	// plugin's manifest as plugins/<name>.yaml, and validate-krew-manifest
	// insists on it.
	manifestName = "recover.yaml"
)

// platform is one GOOS/GOARCH pair, named as krew names them.
type platform struct{ OS, Arch string }

// releasePlatforms are the platforms of every release: krew's and oc's
// usual ones.
var releasePlatforms = []platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

func (p platform) String() string { return p.OS + "/" + p.Arch }

// exe is the name of an executable on p.
func (p platform) exe(name string) string {
	if p.OS == "windows" {
		return name + ".exe"
	}
	return name
}

// archiveName is the name of p's release archive.
func (p platform) archiveName() string {
	ext := ".tar.gz"
	if p.OS == "windows" {
		ext = ".zip"
	}
	return "oc-recover_" + p.OS + "_" + p.Arch + ext
}

func parsePlatforms(s string) ([]platform, error) {
	if s == "" || s == "all" {
		return releasePlatforms, nil
	}
	var out []platform
	for _, item := range strings.Split(s, ",") {
		found := false
		for _, p := range releasePlatforms {
			if p.String() == strings.TrimSpace(item) {
				out = append(out, p)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown platform %q (known: %v)", item, releasePlatforms)
		}
	}
	return out, nil
}

// semverTag is what krew accepts as a version: "v" and a semantic version.
var semverTag = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

type options struct {
	version, commit, date string
	dist, baseURL, repo   string
	platforms             []platform
	mtime                 time.Time
	// binary, when set, is a plugin already built for the one platform
	// asked for, packaged as it is instead of built again.
	binary string
}

func main() {
	var o options
	var platforms string
	flag.StringVar(&o.version, "version", "", "release version, v<semver> (required)")
	flag.StringVar(&o.commit, "commit", "unknown", "git commit stamped into the binaries")
	flag.StringVar(&o.date, "date", "", "build date stamped into the binaries (default: now)")
	flag.StringVar(&o.dist, "dist", "dist", "directory for the archives and the manifest")
	flag.StringVar(&o.baseURL, "base-url", "", "URL the archives are published under (default "+defaultBaseURL+"<version>)")
	flag.StringVar(&o.repo, "repo", ".", "the repository's root directory")
	flag.StringVar(&platforms, "platforms", "all", "comma-separated os/arch pairs to build, or all")
	flag.StringVar(&o.binary, "binary", "", "package this plugin binary, already built for the one platform of -platforms, instead of building it (the end-to-end tests package the plugin they test)")
	flag.Parse()
	if err := o.complete(platforms); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(2)
	}
	if err := o.run(); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func (o *options) complete(platforms string) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if !semverTag.MatchString(o.version) {
		return fmt.Errorf("-version %q is not v<semantic version> (krew requires one), e.g. -version v0.1.0", o.version)
	}
	var err error
	if o.platforms, err = parsePlatforms(platforms); err != nil {
		return err
	}
	if o.binary != "" && len(o.platforms) != 1 {
		return fmt.Errorf("-binary packages one platform's binary: give exactly one -platforms")
	}
	if o.date == "" {
		o.date = time.Now().UTC().Format(time.RFC3339)
	}
	if o.baseURL == "" {
		o.baseURL = defaultBaseURL + o.version
	}
	o.baseURL = strings.TrimSuffix(o.baseURL, "/")
	// Archive entries carry SOURCE_DATE_EPOCH as their time, when set, so a
	// rebuild of the same commit gives the same archives.
	o.mtime = time.Now()
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %v", epoch, err)
		}
		o.mtime = time.Unix(sec, 0)
	}
	return nil
}

func (o *options) run() error {
	if err := os.MkdirAll(o.dist, 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp("", "oc-recover-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)

	sums := map[platform]string{}
	for _, p := range o.platforms {
		start := time.Now()
		bin := filepath.Join(stage, p.OS+"_"+p.Arch, p.exe("kubectl-recover"))
		if err := o.build(p, bin); err != nil {
			return err
		}
		sum, size, err := o.archive(p, bin)
		if err != nil {
			return fmt.Errorf("%s: %w", p.archiveName(), err)
		}
		sums[p] = sum
		fmt.Printf("%-34s %6.1f MiB  sha256 %s  (%s)\n", p.archiveName(), float64(size)/(1<<20), sum, time.Since(start).Round(time.Second))
	}

	manifest, err := os.ReadFile(filepath.Join(o.repo, ".krew.yaml"))
	if err != nil {
		return err
	}
	rendered, err := renderManifest(manifest, o.version, o.baseURL, sums)
	if err != nil {
		return fmt.Errorf(".krew.yaml: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.dist, manifestName), rendered, 0o644); err != nil {
		return err
	}
	fmt.Printf("%-34s krew manifest, version %s\n", manifestName, o.version)
	return nil
}

// build cross-compiles the plugin for p into bin. -trimpath keeps this
// machine's paths out of the binary; -s -w drop the symbol table and DWARF.
func (o *options) build(p platform, bin string) error {
	if o.binary != "" {
		return copyFile(o.binary, bin)
	}
	ldflags := strings.Join([]string{"-s", "-w",
		"-X", versionPkg + ".gitVersion=" + o.version,
		"-X", versionPkg + ".gitCommit=" + o.commit,
		"-X", versionPkg + ".buildDate=" + o.date,
	}, " ")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, mainPkg)
	cmd.Dir = o.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %v\n%s", p, err, out)
	}
	return nil
}

// entry is one file of an archive.
type entry struct {
	name string // in the archive
	path string // on disk
	mode int64
}

// archive writes p's archive and its .sha256 file, and returns the sha256
// and size of the archive.
func (o *options) archive(p platform, bin string) (string, int64, error) {
	entries := []entry{
		{p.exe("kubectl-recover"), bin, 0o755},
		{p.exe("oc-recover"), bin, 0o755},
		{"LICENSE", filepath.Join(o.repo, "LICENSE"), 0o644},
		{"README.md", filepath.Join(o.repo, "README.md"), 0o644},
		// Unpacked into ~/.kube/plugins/recover/ the archive is a legacy
		// plugin (kubectl 1.8-1.11, oc 3.x) as it is.
		{"plugin.yaml", filepath.Join(o.repo, "plugins.yaml"), 0o644},
	}
	name := filepath.Join(o.dist, p.archiveName())
	part := name + ".part"
	f, err := os.Create(part)
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(part)
	h := sha256.New()
	w := io.MultiWriter(f, h)
	if p.OS == "windows" {
		err = writeZip(w, entries, o.mtime)
	} else {
		err = writeTarGz(w, entries, o.mtime)
	}
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.WriteFile(name+".sha256", []byte(sum+"  "+p.archiveName()+"\n"), 0o644); err != nil {
		return "", 0, err
	}
	if err := os.Rename(part, name); err != nil {
		return "", 0, err
	}
	fi, err := os.Stat(name)
	if err != nil {
		return "", 0, err
	}
	return sum, fi.Size(), nil
}

// writeTarGz writes entries as a gzipped tar of regular files at the top
// level (krew extracts regular files and directories only: no links). gzip's
// default level: the best one makes the archives 1% smaller in 2.7x the time.
func writeTarGz(w io.Writer, entries []entry, mtime time.Time) error {
	gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := copyEntry(e, func(size int64) (io.Writer, error) {
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: e.mode, Size: size,
				ModTime: mtime.UTC().Truncate(time.Second), Format: tar.FormatPAX}
			return tw, tw.WriteHeader(hdr)
		}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// writeZip writes entries as a zip of files at the top level.
func writeZip(w io.Writer, entries []entry, mtime time.Time) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		if err := copyEntry(e, func(size int64) (io.Writer, error) {
			hdr := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: mtime.UTC()}
			hdr.SetMode(os.FileMode(e.mode))
			return zw.CreateHeader(hdr)
		}); err != nil {
			return err
		}
	}
	return zw.Close()
}

// copyEntry copies e's file into the writer that open returns for its size.
func copyEntry(e entry, open func(size int64) (io.Writer, error)) error {
	f, err := os.Open(e.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w, err := open(fi.Size())
	if err != nil {
		return err
	}
	n, err := io.Copy(w, f)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("%s changed while archived", e.path)
	}
	return err
}

// renderManifest fills the krew manifest template (.krew.yaml: a valid
// manifest with placeholder version, URIs and sha256s) with version and, for
// each platform in sums, the archive's URI under baseURL and its sha256. The
// platforms not in sums are dropped; a platform in sums that the manifest
// lacks is an error.
func renderManifest(manifest []byte, version, baseURL string, sums map[platform]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(manifest, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("not a YAML document")
	}
	spec := mappingValue(doc.Content[0], "spec")
	versionNode := mappingValue(spec, "version")
	platforms := mappingValue(spec, "platforms")
	if versionNode == nil || platforms == nil || platforms.Kind != yaml.SequenceNode {
		return nil, errors.New("no spec.version or spec.platforms")
	}
	versionNode.Value, versionNode.Style = version, 0

	var kept []*yaml.Node
	done := map[platform]bool{}
	for _, item := range platforms.Content {
		labels := mappingValue(mappingValue(item, "selector"), "matchLabels")
		osNode, archNode := mappingValue(labels, "os"), mappingValue(labels, "arch")
		if osNode == nil || archNode == nil {
			return nil, errors.New("a platform without selector.matchLabels os and arch")
		}
		p := platform{osNode.Value, archNode.Value}
		sum, ok := sums[p]
		if !ok {
			continue
		}
		uri, sha := mappingValue(item, "uri"), mappingValue(item, "sha256")
		if uri == nil || sha == nil {
			return nil, fmt.Errorf("platform %s has no uri or sha256", p)
		}
		uri.Value, uri.Style = baseURL+"/"+p.archiveName(), 0
		sha.Value, sha.Style = sum, yaml.DoubleQuotedStyle
		if done[p] {
			return nil, fmt.Errorf("platform %s is listed twice", p)
		}
		done[p] = true
		kept = append(kept, item)
	}
	for p := range sums {
		if !done[p] {
			return nil, fmt.Errorf("no platform %s in the manifest", p)
		}
	}
	platforms.Content = kept

	var buf strings.Builder
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return []byte(buf.String()), nil
}

// mappingValue is the value of key in mapping node m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// copyFile copies a prebuilt binary into the stage.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}
