package cluster

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Liveness.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Liveness marks a broker alive on its first heartbeat and dead once silent
// for longer than the window, reporting each transition once.
func TestLivenessWindowFakeClock(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := newLiveness(LivenessConfig{Window: 2 * time.Second, Now: clk.Now})
	if l.Settled() {
		t.Fatal("settled before a window passed")
	}
	l.observe(1)
	l.observe(2)
	l.observe(1) // no second change
	want := []LivenessChange{{1, true}, {2, true}}
	for _, w := range want {
		if got := <-l.Changes(); got != w {
			t.Fatalf("change %v, want %v", got, w)
		}
	}
	for range 10 { // broker 2 goes silent; broker 1 keeps beating
		clk.Advance(250 * time.Millisecond)
		l.observe(1)
		l.sweep()
	}
	if !l.Settled() {
		t.Fatal("not settled after 2.5 s")
	}
	if got := <-l.Changes(); got != (LivenessChange{2, false}) {
		t.Fatalf("change %v, want 2 dead", got)
	}
	if got := l.AliveSet(); !slices.Equal(got, []int32{1}) {
		t.Fatalf("alive %v, want [1]", got)
	}
	if l.Alive(2) || !l.Alive(1) || l.Alive(7) {
		t.Fatal("Alive disagrees with AliveSet")
	}
	// Exactly at the window it is still alive; just past, dead, even before
	// a sweep ran (Alive reads the clock itself).
	clk.Advance(2 * time.Second)
	if !l.Alive(1) {
		t.Fatal("dead at exactly the window")
	}
	clk.Advance(time.Millisecond)
	if l.Alive(1) {
		t.Fatal("alive past the window")
	}
	l.observe(2)
	if got := <-l.Changes(); got != (LivenessChange{2, true}) {
		t.Fatalf("change %v, want 2 alive again", got)
	}
	select {
	case c := <-l.Changes():
		t.Fatalf("unexpected change %v", c)
	default:
	}
}

// Over real NATS: a broker that stops heartbeating is reported dead within
// about the window, and alive again soon after it resumes.
func TestHeartbeatLivenessStopResume(t *testing.T) {
	s := openStore(t, t.TempDir())
	l, err := s.NewLiveness(LivenessConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h1 := s.StartHeartbeat(1, 0)
	defer h1.Stop()
	h2 := s.StartHeartbeat(2, 0)
	waitChange := func(want LivenessChange, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := time.After(within)
		for {
			select {
			case c := <-l.Changes():
				if c == want {
					return time.Since(start)
				}
			case <-deadline:
				t.Fatalf("no %+v within %s (alive %v)", want, within, l.AliveSet())
			}
		}
	}
	waitChange(LivenessChange{2, true}, time.Second)
	h2.Stop()
	took := waitChange(LivenessChange{2, false}, 4*time.Second)
	t.Logf("broker 2 reported dead %s after its heartbeats stopped", took)
	if took < DefaultLivenessWindow-DefaultHeartbeatInterval || took > DefaultLivenessWindow+500*time.Millisecond {
		t.Fatalf("dead after %s, want about %s", took, DefaultLivenessWindow)
	}
	if !l.Alive(1) {
		t.Fatal("broker 1 still heartbeating but not alive")
	}
	h2 = s.StartHeartbeat(2, 0)
	defer h2.Stop()
	took = waitChange(LivenessChange{2, true}, time.Second)
	t.Logf("broker 2 alive again %s after resuming", took)
	if got := l.AliveSet(); !slices.Equal(got, []int32{1, 2}) {
		t.Fatalf("alive %v, want [1 2]", got)
	}
}
