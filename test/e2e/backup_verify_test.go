package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/backup"
)

// takeBackup takes a real backup from the shared box into a new directory.
func takeBackup(t *testing.T) (string, *backup.Manifest) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "backup")
	if r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--output-dir", dir); r.Code != 0 {
		t.Fatalf("backup: %s", r)
	}
	m, err := backup.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// copyDir copies a backup directory so that each case damages its own.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// backup verify finds every way a backup directory can be unusable.
func TestBackupVerifyCatchesDamage(t *testing.T) {
	good, m := takeBackup(t)
	time.Sleep(time.Second) // the file names' timestamps have a resolution of one second
	other, _ := takeBackup(t)
	snapshot, resources := m.Files[0].Name, m.Files[1].Name
	otherManifest, err := backup.ReadManifest(other)
	if err != nil {
		t.Fatal(err)
	}
	if otherManifest.Files[0].Name == snapshot {
		t.Fatal("two backups in the same second: the mixed-backups case would prove nothing")
	}

	cases := []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"truncated snapshot", func(dir string) { truncate(t, filepath.Join(dir, snapshot), 1000) }, "too small"},
		{"snapshot cut short", func(dir string) { cutEnd(t, filepath.Join(dir, snapshot), 100) }, "trailer does not match"},
		{"flipped byte", func(dir string) { flipByte(t, filepath.Join(dir, snapshot), 20000) }, "trailer does not match"},
		{"missing trailer", func(dir string) { cutEnd(t, filepath.Join(dir, snapshot), 32) }, "trailer does not match"},
		{"missing tarball", func(dir string) { remove(t, filepath.Join(dir, resources)) }, "missing"},
		{"renamed tarball", func(dir string) {
			rename(t, filepath.Join(dir, resources), filepath.Join(dir, "resources.tar.gz"))
		}, "missing"},
		{"damaged tarball", func(dir string) { cutEnd(t, filepath.Join(dir, resources), 40) }, "damaged archive"},
		{"sha256 differs from backup.json", func(dir string) {
			mm := *m
			mm.Files = append([]backup.File(nil), m.Files...)
			mm.Files[0].SHA256 = strings.Repeat("0", 64)
			writeManifest(t, dir, &mm)
		}, "does not match backup.json"},
		{"files of two backups", func(dir string) {
			remove(t, filepath.Join(dir, resources))
			data, _ := os.ReadFile(filepath.Join(other, otherManifest.Files[1].Name))
			_ = os.WriteFile(filepath.Join(dir, otherManifest.Files[1].Name), data, 0o600)
			remove(t, filepath.Join(dir, "backup.json"))
		}, "two different backups"},
		{"two snapshots without backup.json", func(dir string) {
			data, _ := os.ReadFile(filepath.Join(other, otherManifest.Files[0].Name))
			_ = os.WriteFile(filepath.Join(dir, otherManifest.Files[0].Name), data, 0o600)
			remove(t, filepath.Join(dir, "backup.json"))
		}, "more than one backup"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, good)
			c.damage(dir)
			r := tools.Run(t, shared, "", "kubectl-recover", "backup", "verify", dir)
			if r.Code != 1 || !strings.Contains(r.Stderr, "NOT usable") || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("verify after %s: want exit 1 and %q: %s", c.name, c.want, r)
			}
		})
	}
	// The undamaged copy passes, with or without backup.json.
	if r := tools.Run(t, shared, "", "kubectl-recover", "backup", "verify", copyDir(t, good)); r.Code != 0 {
		t.Errorf("verify of an intact copy: %s", r)
	}
	noManifest := copyDir(t, good)
	remove(t, filepath.Join(noManifest, "backup.json"))
	if r := tools.Run(t, shared, "", "kubectl-recover", "backup", "verify", noManifest); r.Code != 0 {
		t.Errorf("verify without backup.json: %s", r)
	}
	if r := tools.Run(t, shared, "", "kubectl-recover", "backup", "verify", filepath.Join(good, "nope")); r.Code != 2 {
		t.Errorf("verify of a missing directory: want exit 2: %s", r)
	}
	if r := tools.Run(t, shared, "", "kubectl-recover", "backup", "verify", good, "-o", "xml"); r.Code != 2 {
		t.Errorf("verify -o xml: want exit 2: %s", r)
	}
}

// --keep N keeps the newest N backups of this cluster and nothing else.
func TestBackupKeepPrunesOlderBackups(t *testing.T) {
	parent := t.TempDir()
	unrelated := filepath.Join(parent, "not-a-backup")
	if err := os.Mkdir(unrelated, 0o700); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for i := 0; i < 3; i++ {
		dir := filepath.Join(parent, "b"+string(rune('1'+i)))
		if r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--output-dir", dir, "--keep", "2"); r.Code != 0 {
			t.Fatalf("backup %d: %s", i, r)
		}
		dirs = append(dirs, dir)
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Errorf("oldest backup %s not pruned", dirs[0])
	}
	for _, d := range append(dirs[1:], unrelated) {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
	if r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--keep", "-1"); r.Code != 2 {
		t.Errorf("--keep -1: want exit 2: %s", r)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func cutEnd(t *testing.T, path string, n int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	truncate(t, path, fi.Size()-n)
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func writeManifest(t *testing.T, dir string, m *backup.Manifest) {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "backup.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}
