package actors_test

import (
	"os"

	"pgregory.net/rapid"
)

// tempDir makes a directory removed when the rapid check ends.
func tempDir(t *rapid.T) string {
	dir, err := os.MkdirTemp("", "fluxo-machine-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
