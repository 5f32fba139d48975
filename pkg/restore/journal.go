package restore

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Journal is the local record of a restore that was fired, kept in the
// backup's directory: when the command is run again while the API does not
// answer, it tells a restore under way (wait for it) from a cluster that
// lost its quorum (the console procedure), and once the API answers, a
// restore to finish from one never begun.
type Journal struct {
	Plan    *Plan     `json:"plan"`
	FiredAt time.Time `json:"firedAt"`
	// Ended: the restore finished, or ended without restoring.
	Ended   bool   `json:"ended,omitempty"`
	Outcome string `json:"outcome,omitempty"`
}

func journalPath(backupDir, id string) string {
	return filepath.Join(backupDir, "restore-"+id+".json")
}

// WriteJournal writes j into the backup's directory, replacing it whole.
func WriteJournal(j *Journal) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	path := journalPath(j.Plan.Backup.Dir, j.Plan.ID)
	tmp := path + ".part"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write the restore's journal %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write the restore's journal %s: %w", path, err)
	}
	return nil
}

// EndJournal marks j ended with outcome.
func EndJournal(j *Journal, outcome string) error {
	j.Ended, j.Outcome = true, outcome
	return WriteJournal(j)
}

// InFlight is the newest restore of the backup in dir that was fired and
// has not ended, nil if none.
func InFlight(dir string) (*Journal, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "restore-*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	for i := len(paths) - 1; i >= 0; i-- {
		data, err := os.ReadFile(paths[i])
		if err != nil {
			return nil, err
		}
		j := &Journal{}
		if err := json.Unmarshal(data, j); err != nil || j.Plan == nil {
			return nil, fmt.Errorf("%s is not a restore journal (%v): move it away if no restore of this backup is under way", paths[i], err)
		}
		if !j.Ended {
			return j, nil
		}
	}
	return nil, nil
}
