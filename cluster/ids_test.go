package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
)

func TestProducerIDBlocksNeverOverlapAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	type block struct{ first, size int64 }
	var blocks []block
	for restart := range 3 {
		s, err := Open(ctx, Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int64{1, 1000, 7} {
			first, err := s.AllocateProducerIDBlock(ctx, size)
			if err != nil {
				t.Fatalf("restart %d: %v", restart, err)
			}
			blocks = append(blocks, block{first, size})
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if blocks[0].first != 0 {
		t.Errorf("first block starts at %d, want 0", blocks[0].first)
	}
	for i := 1; i < len(blocks); i++ {
		prev := blocks[i-1]
		if blocks[i].first != prev.first+prev.size {
			t.Fatalf("block %d starts at %d, previous ended at %d", i, blocks[i].first, prev.first+prev.size)
		}
	}
}

func TestProducerIDsConcurrentUnique(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := testCtx(t)
	if _, err := s.AllocateProducerIDBlock(ctx, 0); err == nil {
		t.Error("block size 0 accepted")
	}
	// Two helpers (think: two brokers) sharing the store, small blocks so
	// both reserve many blocks concurrently.
	helpers := []*ProducerIDs{NewProducerIDs(s, 5), NewProducerIDs(s, 3)}
	const goroutines, each = 8, 50
	var mu sync.Mutex
	seen := make(map[int64]bool)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			p := helpers[g%2]
			for range each {
				id, err := p.Next(ctx)
				if err != nil {
					t.Errorf("Next: %v", err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d handed out twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct ids, want %d", len(seen), goroutines*each)
	}
}

func TestAllocateProducerIDBlockClosedStore(t *testing.T) {
	s, err := Open(testCtx(t), Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.AllocateProducerIDBlock(testCtx(t), 10); !errors.Is(err, ErrUnavailable) {
		t.Errorf("AllocateProducerIDBlock after Close: %v, want ErrUnavailable", err)
	}
}

type failingAllocator struct{ calls int }

func (f *failingAllocator) AllocateProducerIDBlock(context.Context, int64) (int64, error) {
	f.calls++
	if f.calls == 1 {
		return 100, nil
	}
	return 0, ErrUnavailable
}

func TestProducerIDsBlocksAndErrors(t *testing.T) {
	f := &failingAllocator{}
	p := NewProducerIDs(f, 2)
	ctx := testCtx(t)
	for want := int64(100); want < 102; want++ {
		if id, err := p.Next(ctx); err != nil || id != want {
			t.Fatalf("Next = %d, %v; want %d", id, err, want)
		}
	}
	if _, err := p.Next(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Next after exhausted block with failing allocator: %v", err)
	}
	if f.calls != 2 {
		t.Fatalf("allocator called %d times, want 2", f.calls)
	}
}
