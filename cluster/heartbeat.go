package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Failure detection is by heartbeats on core NATS, not KV TTLs: TTLs are
// whole seconds, and KV writes stall for 4.7-7.4 s when the bucket's stream
// leader dies, which would expire healthy brokers' leases. Core NATS subjects
// travel over the same routes but need no JetStream leader.
const (
	// HeartbeatSubjectPrefix: broker <id> publishes on fluxo.hb.<id>.
	HeartbeatSubjectPrefix = "fluxo.hb."
	// DefaultHeartbeatInterval is how often a broker publishes a heartbeat.
	DefaultHeartbeatInterval = 200 * time.Millisecond
	// DefaultLivenessWindow is how long a broker may stay silent before
	// Liveness reports it dead.
	DefaultLivenessWindow = 2 * time.Second
)

func heartbeatSubject(id int32) string { return HeartbeatSubjectPrefix + strconv.Itoa(int(id)) }

// Heartbeater publishes this broker's heartbeats until Stop.
type Heartbeater struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// StartHeartbeat publishes a heartbeat for nodeID now and then every interval
// (DefaultHeartbeatInterval if zero) through the store's connection. A
// publish that fails (store closing) is skipped; Stop or closing the store
// ends it.
func (s *Store) StartHeartbeat(nodeID int32, interval time.Duration) *Heartbeater {
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	h := &Heartbeater{stop: make(chan struct{}), done: make(chan struct{})}
	subj := heartbeatSubject(nodeID)
	go func() {
		defer close(h.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if !s.down() {
				_ = s.nc.Publish(subj, nil)
			}
			select {
			case <-h.stop:
				return
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// Stop stops publishing and waits for the publisher to end.
func (h *Heartbeater) Stop() {
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// LivenessConfig tunes a Liveness. Zero values take the defaults.
type LivenessConfig struct {
	// Window: a broker not heard from for longer is dead
	// (DefaultLivenessWindow).
	Window time.Duration
	// CheckInterval: how often silence is checked (Window/10).
	CheckInterval time.Duration
	// Now is the clock (time.Now); tests inject their own.
	Now func() time.Time
}

// LivenessChange reports that a broker became alive or dead.
type LivenessChange struct {
	NodeID int32
	Alive  bool
}

// changesBuffer bounds the Changes channel. A consumer that falls that far
// behind misses changes (they are dropped, never blocking the detector) and
// should reconcile with Alive/AliveSet, which are always current.
const changesBuffer = 1024

// Liveness follows every broker's heartbeats and reports which are alive:
// heard from within the window.
type Liveness struct {
	cfg     LivenessConfig
	sub     *nats.Subscription
	started time.Time
	changes chan LivenessChange
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu    sync.Mutex
	last  map[int32]time.Time
	alive map[int32]bool
}

// NewLiveness subscribes to every broker's heartbeats through the store's
// connection and starts checking for silence. Close it when done.
func (s *Store) NewLiveness(cfg LivenessConfig) (*Liveness, error) {
	if s.down() {
		return nil, opError("liveness", errStoreClose)
	}
	l := newLiveness(cfg)
	sub, err := s.nc.Subscribe(HeartbeatSubjectPrefix+"*", func(m *nats.Msg) {
		if s.isolated.Load() {
			return
		}
		id, err := strconv.ParseInt(strings.TrimPrefix(m.Subject, HeartbeatSubjectPrefix), 10, 32)
		switch {
		case err != nil || id < 0:
		case string(m.Data) == leavingPayload:
			l.leave(int32(id))
		default:
			l.observe(int32(id))
		}
	})
	if err != nil {
		return nil, opError("liveness", fmt.Errorf("subscribe: %w", err))
	}
	l.sub = sub
	go l.run(s.done)
	return l, nil
}

func newLiveness(cfg LivenessConfig) *Liveness {
	if cfg.Window <= 0 {
		cfg.Window = DefaultLivenessWindow
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = cfg.Window / 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Liveness{
		cfg:     cfg,
		started: cfg.Now(),
		changes: make(chan LivenessChange, changesBuffer),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		last:    make(map[int32]time.Time),
		alive:   make(map[int32]bool),
	}
}

func (l *Liveness) run(storeDone <-chan struct{}) {
	defer close(l.done)
	t := time.NewTicker(l.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-storeDone:
			return
		case <-t.C:
			l.sweep()
		}
	}
}

// observe records a heartbeat from id.
func (l *Liveness) observe(id int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last[id] = l.cfg.Now()
	if !l.alive[id] {
		l.alive[id] = true
		l.emit(LivenessChange{NodeID: id, Alive: true})
	}
}

// leave declares id dead at once: it announced a controlled shutdown.
func (l *Liveness) leave(id int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last[id] = time.Time{}
	if l.alive[id] {
		l.alive[id] = false
		l.emit(LivenessChange{NodeID: id, Alive: false})
	}
}

// leavingPayload marks a broker's last heartbeat: it is shutting down and
// should be treated as dead now, not after a window of silence.
const leavingPayload = "leaving"

// AnnounceLeaving tells every broker's Liveness that nodeID is shutting
// down (stop its Heartbeater first, or the next beat revives it), so the
// controller moves its leaderships without waiting for the silence window.
func (s *Store) AnnounceLeaving(nodeID int32) error {
	if s.down() {
		return opError("announce leaving", errStoreClose)
	}
	if err := s.nc.Publish(heartbeatSubject(nodeID), []byte(leavingPayload)); err != nil {
		return opError("announce leaving", err)
	}
	return opError("announce leaving", s.nc.Flush())
}

// sweep declares dead every alive broker silent for longer than the window.
func (l *Liveness) sweep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	for id, a := range l.alive {
		if a && now.Sub(l.last[id]) > l.cfg.Window {
			l.alive[id] = false
			l.emit(LivenessChange{NodeID: id, Alive: false})
		}
	}
}

func (l *Liveness) emit(c LivenessChange) {
	select {
	case l.changes <- c:
	default: // consumer too far behind: it reconciles with AliveSet
	}
}

// Alive reports whether id was heard from within the window.
func (l *Liveness) Alive(id int32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.alive[id] && l.cfg.Now().Sub(l.last[id]) <= l.cfg.Window
}

// AliveSet returns the live brokers' ids, sorted.
func (l *Liveness) AliveSet() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	var out []int32
	for id, a := range l.alive {
		if a && now.Sub(l.last[id]) <= l.cfg.Window {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Settled reports whether Liveness has listened for a whole window: before
// that, a broker not heard from yet may just not have been heard *yet*, so
// callers must not act on its absence (e.g. depose a controller).
func (l *Liveness) Settled() bool {
	return l.cfg.Now().Sub(l.started) > l.cfg.Window
}

// Window is the silence after which a broker is declared dead.
func (l *Liveness) Window() time.Duration { return l.cfg.Window }

// Changes delivers alive/dead transitions in the order detected.
func (l *Liveness) Changes() <-chan LivenessChange { return l.changes }

// Close unsubscribes and stops checking. Changes is not closed.
func (l *Liveness) Close() {
	l.once.Do(func() {
		close(l.stop)
		if l.sub != nil {
			_ = l.sub.Unsubscribe()
		}
	})
	<-l.done
}
