package persistence

import (
	"os"
	"testing"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"golang.org/x/sys/unix"
)

func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

func parseHeaderForBench(p []byte) (int64, error) {
	h, err := recordbatch.ParseHeader(p)
	return h.LastOffset(), err
}

func batchSize(p []byte) int {
	h, _ := recordbatch.ParseHeader(p)
	return h.Size()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gibDir != "" {
		os.RemoveAll(gibDir)
	}
	os.Exit(code)
}
