package persistence

import (
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
)

// TestConcurrentAppendRead appends and syncs on 8 partitions while readers
// read up to the synced end, and retention and truncation run. Run with -race.
func TestConcurrentAppendRead(t *testing.T) {
	s := openMem(t, vfs.NewMem(), 16<<10)
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for p := 0; p < 8; p++ {
		l := mustOpenPartition(t, s, PartitionID{"c", int32(p)})
		var hw sync.Map // "hw" -> int64, published after sync
		hw.Store("hw", int64(0))
		stop := make(chan struct{})
		for r := 0; r < 2; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				off := int64(0)
				for {
					select {
					case <-stop:
						return
					default:
					}
					v, _ := hw.Load("hw")
					upTo := v.(int64)
					if off < l.LogStart() {
						off = l.LogStart()
					}
					b, err := l.Read(off, 4096, upTo)
					if err != nil {
						continue // below a moving log start: retry from it
					}
					bs, err := recordbatch.Split(b)
					if err != nil {
						errs <- err
						return
					}
					for _, x := range bs {
						h, err := recordbatch.Validate(x)
						if err != nil || h.BaseOffset != off {
							errs <- fmt.Errorf("read at %d: base %d err %v", off, h.BaseOffset, err)
							return
						}
						off = h.LastOffset() + 1
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(stop)
			for i := 0; i < 150; i++ {
				appendOne(t, l, makeBatch(t, 4, 200, int64(i), "w"), 0)
				if i%3 == 0 {
					syncWait(t, l)
					hw.Store("hw", l.LogEnd())
				}
				if i%50 == 49 {
					if _, err := l.AdvanceStart(l.LogEnd() - 40); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
