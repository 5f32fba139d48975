package backup

import "os"

// removeIfEmpty removes a directory this run created, unless something is
// in it.
func removeIfEmpty(dir string) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
		_ = os.Remove(dir)
	}
}
