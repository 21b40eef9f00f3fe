package gateway

import (
	"context"
	"sync"
	"sync/atomic"
)

// byteBudget is a counting semaphore over bytes: frames take their size
// before their body is read and give it back once answered, so the memory
// held by requests in flight across all connections stays bounded.
type byteBudget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	free  int64
	total int64
}

func newByteBudget(total int64) *byteBudget {
	b := &byteBudget{free: total, total: total}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire waits until n bytes are free or ctx ends.
func (b *byteBudget) acquire(ctx context.Context, n int64) bool {
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.free < n {
		if ctx.Err() != nil {
			return false
		}
		b.cond.Wait()
	}
	b.free -= n
	return true
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.free += n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// frameToken is one frame's share of the budget; release is idempotent.
type frameToken struct {
	budget *byteBudget
	size   int64
	done   atomic.Bool
}

func (t *frameToken) release() {
	if t != nil && t.done.CompareAndSwap(false, true) {
		t.budget.release(t.size)
	}
}

// tokenSet holds a connection's outstanding tokens so that closing the
// connection gives back the budget of frames never answered.
type tokenSet struct {
	mu     sync.Mutex
	set    map[*frameToken]struct{}
	closed bool
}

// add records t, or releases it at once if the set is closed.
func (s *tokenSet) add(t *frameToken) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		t.release()
		return false
	}
	if s.set == nil {
		s.set = make(map[*frameToken]struct{})
	}
	s.set[t] = struct{}{}
	return true
}

func (s *tokenSet) done(t *frameToken) {
	t.release()
	s.mu.Lock()
	delete(s.set, t)
	s.mu.Unlock()
}

// close releases every outstanding token and refuses new ones.
func (s *tokenSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for t := range s.set {
		t.release()
	}
	s.set = nil
}
