package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// controllerKey holds the ControllerRecord: which broker is the controller
// and its epoch. It is never deleted, so epochs only grow.
const controllerKey = "controller"

// ErrNotController: this broker is not (or no longer) the controller; a
// fenced write was refused because the controller key moved on.
var ErrNotController = errors.New("not the controller")

// DefaultControllerCheckInterval is how often a broker re-reads the
// controller key (and tries to take over a dead controller's).
const DefaultControllerCheckInterval = 200 * time.Millisecond

// ControllerConfig configures a broker's controller election.
type ControllerConfig struct {
	// NodeID is this broker.
	NodeID int32
	// Liveness says whether the current controller still heartbeats.
	// Required; the broker must also run its own Heartbeater.
	Liveness *Liveness
	// CheckInterval: how often the controller key is re-read
	// (DefaultControllerCheckInterval).
	CheckInterval time.Duration
}

// ControllerEvent reports that this broker became the controller (Active,
// with its new Epoch) or stopped being it.
type ControllerEvent struct {
	Active bool
	Epoch  int64
}

// Controller runs this broker's side of the controller election: it takes
// the controller key when it is absent, or when the broker holding it stops
// heartbeating (CAS at the revision read, epoch+1), and notices when it
// lost it. While active, WritePartitions makes fenced writes.
type Controller struct {
	s      *Store
	cfg    ControllerConfig
	events chan ControllerEvent
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	writeMu sync.Mutex // serializes fenced writes (each moves the key's revision)

	mu        sync.Mutex
	active    bool
	epoch     int64  // our epoch while active
	rev       uint64 // controller key revision we last wrote or confirmed
	confirmed time.Time
}

// StartController starts electing. Stop it before closing the store.
func (s *Store) StartController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Liveness == nil {
		return nil, errors.New("cluster: controller: Liveness is required")
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultControllerCheckInterval
	}
	c := &Controller{
		s: s, cfg: cfg,
		events: make(chan ControllerEvent, 64),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go c.run()
	return c, nil
}

func (c *Controller) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
		case <-c.s.done:
		}
		cancel()
	}()
	t := time.NewTicker(c.cfg.CheckInterval)
	defer t.Stop()
	for {
		c.step(ctx)
		select {
		case <-ctx.Done():
			c.lose()
			return
		case <-t.C:
		}
	}
}

// step reads the controller key through the stream leader and acts on it.
func (c *Controller) step(ctx context.Context) {
	// No fenced write in flight: a revision confirmed here is not older
	// than one a write just installed.
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	cur, rev, err := c.s.readController(ctx)
	if err != nil {
		// Cannot confirm. Stop acting as controller after a liveness window
		// without confirmation: by then the others may have replaced us
		// (our fenced writes would fail anyway).
		c.mu.Lock()
		stale := c.active && time.Since(c.confirmed) > c.cfg.Liveness.Window()
		c.mu.Unlock()
		if stale {
			c.lose()
		}
		return
	}
	c.mu.Lock()
	if c.active && cur != nil && cur.NodeId == c.cfg.NodeID && cur.Epoch == c.epoch {
		c.rev, c.confirmed = rev, time.Now() // still ours
		c.mu.Unlock()
		return
	}
	wasActive := c.active
	c.mu.Unlock()
	if wasActive {
		c.lose() // the key moved to a higher epoch
	}
	next := &fluxopb.ControllerRecord{NodeId: c.cfg.NodeID, Epoch: 1, ElectedUnixMs: time.Now().UnixMilli()}
	if cur != nil {
		// A live holder keeps it. A record naming us with another epoch is
		// from before a restart: take it over with a fresh epoch. Before
		// Liveness has listened a whole window, silence means nothing.
		if cur.NodeId != c.cfg.NodeID && (!c.cfg.Liveness.Settled() || c.cfg.Liveness.Alive(cur.NodeId)) {
			return
		}
		next.Epoch = cur.Epoch + 1
	}
	v, err := marshalOpts.Marshal(next)
	if err != nil {
		return
	}
	var newRev uint64
	if cur == nil && rev == 0 {
		newRev, err = c.s.create(ctx, controllerKey, v)
	} else {
		newRev, err = c.s.update(ctx, controllerKey, v, rev)
	}
	if err != nil {
		return // lost the race or the store is unavailable: next tick re-reads
	}
	c.mu.Lock()
	c.active, c.epoch, c.rev, c.confirmed = true, next.Epoch, newRev, time.Now()
	c.mu.Unlock()
	c.emit(ControllerEvent{Active: true, Epoch: next.Epoch})
}

func (c *Controller) lose() {
	c.mu.Lock()
	was, epoch := c.active, c.epoch
	c.active = false
	c.mu.Unlock()
	if was {
		c.emit(ControllerEvent{Active: false, Epoch: epoch})
	}
}

func (c *Controller) emit(e ControllerEvent) {
	select {
	case c.events <- e:
	default: // consumer far behind: Epoch() is always current
	}
}

// readController returns the controller record and its revision (nil and
// 0 if there is none), read through the stream leader.
func (s *Store) readController(ctx context.Context) (*fluxopb.ControllerRecord, uint64, error) {
	e, err := s.readLatest(ctx, controllerKey)
	if errors.Is(err, errNoKey) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if e.deleted {
		return nil, e.revision, nil
	}
	r := new(fluxopb.ControllerRecord)
	if err := proto.Unmarshal(e.value, r); err != nil {
		return nil, 0, fmt.Errorf("decode controller record: %w", err)
	}
	return r, e.revision, nil
}

// CurrentController reads who the controller is (ok false if none yet).
func (s *Store) CurrentController(ctx context.Context) (nodeID int32, epoch int64, ok bool, err error) {
	r, _, err := s.readController(ctx)
	if err != nil || r == nil {
		return 0, 0, false, opError("current controller", err)
	}
	return r.NodeId, r.Epoch, true, nil
}

// Epoch returns this broker's controller epoch and whether it is the
// controller (as of its last check).
func (c *Controller) Epoch() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch, c.active
}

// Events delivers became/lost controller transitions. Buffered; if the
// consumer falls far behind, events are dropped and Epoch is the truth.
func (c *Controller) Events() <-chan ControllerEvent { return c.events }

// Stop stops electing (reporting the loss if active) and waits. It does not
// give up the key: the others take it over once this broker's heartbeats
// stop.
func (c *Controller) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

// PartitionWrite is one partition state a controller writes at the
// revision it read (GetPartition's rev; 0 for a partition never written).
type PartitionWrite struct {
	Topic     string
	Partition int32
	State     *fluxopb.PartitionState
	Rev       uint64
}

// WritePartitions writes partition states as the controller, fenced: one
// atomic batch re-writes the controller key at the revision this controller
// holds (same record) and each partition key at its expected revision. The
// stream leader applies all or nothing, so if another broker took the
// controller key since (a higher epoch), nothing is written and
// ErrNotController is returned; a partition that changed since it was read
// gives ErrConflict (re-read and retry). Each state's ControllerEpoch is set
// to this controller's epoch. Returns the partitions' new revisions.
//
// Re-writing the controller key moves its revision; that is what makes the
// check atomic with the writes (the server checks expected revisions only
// on keys written in the batch, or on one other subject per message). It
// also means a contender's CAS on the key, made from an older read, fails
// and re-reads, which is what it should do.
func (c *Controller) WritePartitions(ctx context.Context, ws []PartitionWrite) ([]uint64, error) {
	const op = "fenced write"
	if len(ws) == 0 || len(ws) >= maxBatch {
		return nil, opError(op, fmt.Errorf("%d partition writes (1..%d)", len(ws), maxBatch-1))
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	active, epoch, rev := c.active, c.epoch, c.rev
	c.mu.Unlock()
	if !active {
		return nil, opError(op, ErrNotController)
	}
	revs, err := c.s.fencedWrite(ctx, c.cfg.NodeID, epoch, rev, ws)
	if err != nil {
		if errors.Is(err, ErrNotController) {
			c.lose()
		}
		return nil, opError(op, err)
	}
	c.mu.Lock()
	if c.active && c.epoch == epoch {
		c.rev = revs[0]
	}
	c.mu.Unlock()
	return revs[1:], nil
}

// fencedWrite is WritePartitions for a controller (nodeID, epoch) holding
// the controller key at ctrlRev. It returns the new revisions, the
// controller key's first.
//
// The revision is the fence: a stream sequence identifies one message, so
// "the key is still at ctrlRev" means "the key still holds the record we
// wrote (or confirmed) with our epoch". ctrlRev must therefore only ever be a
// revision at which this controller's own record was read or written, which
// Controller guarantees (it adopts a revision only when the record there
// names its node and epoch); passing a revision read from someone else's
// record would overwrite their record with ours.
func (s *Store) fencedWrite(ctx context.Context, nodeID int32, epoch int64, ctrlRev uint64, ws []PartitionWrite) ([]uint64, error) {
	rec, err := marshalOpts.Marshal(&fluxopb.ControllerRecord{NodeId: nodeID, Epoch: epoch, ElectedUnixMs: time.Now().UnixMilli()})
	if err != nil {
		return nil, err
	}
	ops := []casOp{{key: controllerKey, value: rec, rev: ctrlRev}}
	for _, w := range ws {
		if err := ValidateTopicName(w.Topic); err != nil {
			return nil, err
		}
		if w.State == nil || w.Partition < 0 {
			return nil, fmt.Errorf("partition write %s/%d: no state", w.Topic, w.Partition)
		}
		st := proto.Clone(w.State).(*fluxopb.PartitionState)
		st.ControllerEpoch = epoch
		v, err := marshalOpts.Marshal(st)
		if err != nil {
			return nil, err
		}
		ops = append(ops, casOp{key: partitionKey(w.Topic, w.Partition), value: v, rev: w.Rev})
	}
	revs, err := s.casBatch(ctx, ops)
	if err == nil || !errors.Is(err, ErrConflict) {
		return revs, err
	}
	// Which key moved? Ours, to another epoch: deposed.
	cur, _, rerr := s.readController(ctx)
	if rerr == nil && (cur == nil || cur.NodeId != nodeID || cur.Epoch != epoch) {
		return nil, fmt.Errorf("%w: controller key holds %v, we are node %d epoch %d: %w", ErrNotController, cur, nodeID, epoch, err)
	}
	return nil, err
}
