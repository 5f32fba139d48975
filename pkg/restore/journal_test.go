package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInFlightFindsTheNewestRestoreNotEnded(t *testing.T) {
	dir := t.TempDir()
	if j, err := InFlight(dir); err != nil || j != nil {
		t.Fatalf("no journal: %v %v", j, err)
	}
	older := &Journal{Plan: &Plan{ID: "20261201T030000Z-aaaa", Backup: BackupInfo{Dir: dir}}, FiredAt: time.Now()}
	newer := &Journal{Plan: &Plan{ID: "20261202T030000Z-bbbb", Backup: BackupInfo{Dir: dir}}, FiredAt: time.Now()}
	for _, j := range []*Journal{older, newer} {
		if err := WriteJournal(j); err != nil {
			t.Fatal(err)
		}
	}
	if j, err := InFlight(dir); err != nil || j == nil || j.Plan.ID != newer.Plan.ID {
		t.Fatalf("two in flight: %+v %v", j, err)
	}
	if err := EndJournal(newer, "restored"); err != nil {
		t.Fatal(err)
	}
	if j, err := InFlight(dir); err != nil || j == nil || j.Plan.ID != older.Plan.ID {
		t.Fatalf("the newer ended: %+v %v", j, err)
	}
	if err := EndJournal(older, "not restored"); err != nil {
		t.Fatal(err)
	}
	if j, err := InFlight(dir); err != nil || j != nil {
		t.Fatalf("both ended: %+v %v", j, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*.part")); len(matches) != 0 {
		t.Errorf("left behind: %v", matches)
	}
}

func TestInFlightRefusesAJournalItCannotRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "restore-x.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := InFlight(dir); err == nil || !strings.Contains(err.Error(), "is not a restore journal") {
		t.Fatalf("a broken journal: %v", err)
	}
}
