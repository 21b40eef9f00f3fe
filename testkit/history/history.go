package history

import (
	"fmt"
	"sync"
	"time"
)

// Kind is what an operation does.
type Kind uint8

const (
	// Send produces one record (Key, Value) to Topic/Partition; an ok
	// result carries the acknowledged Offset.
	Send Kind = iota + 1
	// Poll is one consumer poll of one partition; an ok result carries the
	// Records returned, in the order returned. Epoch names the assignment
	// the consumer polled under.
	Poll
	// Commit writes Offset as the committed offset of Group for
	// Topic/Partition.
	Commit
	// FetchCommit reads the committed offset of Group for Topic/Partition;
	// an ok result carries it in Offset (NoOffset when none is committed).
	FetchCommit
	// Assign records that Process owns Partitions in Group at Generation.
	Assign
)

func (k Kind) String() string {
	switch k {
	case Send:
		return "send"
	case Poll:
		return "poll"
	case Commit:
		return "commit"
	case FetchCommit:
		return "fetch-commit"
	case Assign:
		return "assign"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Type is the outcome of an operation, Jepsen style.
type Type uint8

const (
	// Invoke: the operation was started and has not completed (yet).
	Invoke Type = iota
	// Ok: the operation took effect and its result is known.
	Ok
	// Fail: the operation definitely did not take effect.
	Fail
	// Info: the outcome is unknown (timeout, disconnect, ...); the
	// operation may or may not have taken effect, at any time after it was
	// invoked.
	Info
)

func (t Type) String() string {
	switch t {
	case Invoke:
		return "invoke"
	case Ok:
		return "ok"
	case Fail:
		return "fail"
	case Info:
		return "info"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// NoOffset is the offset of a FetchCommit that found nothing committed, and
// of a send that was not acknowledged.
const NoOffset int64 = -1

// Record is one record as read back: its offset and value.
type Record struct {
	Offset int64
	Value  string
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// OpID names one recorded operation.
type OpID int

// Op is one operation: the request at Invoke, completed by Ok, Fail or Info.
type Op struct {
	ID      OpID
	Process int
	Kind    Kind
	Type    Type

	Topic     string
	Partition int32

	// Send.
	Key, Value string
	// Send (acknowledged offset), Commit (offset written), FetchCommit
	// (offset read).
	Offset int64
	// Poll: records returned, in order.
	Records []Record
	// Poll: the assignment epoch the consumer polled under; polls are
	// compared only within one (process, partition, epoch).
	Epoch int64

	// Commit, FetchCommit, Assign.
	Group      string
	Generation int32
	// Assign: the partitions owned.
	Partitions []TopicPartition

	// Invoked and Completed are clock readings; Completed is zero while
	// the operation is pending.
	Invoked, Completed int64
	// Err is the error of a Fail or Info completion.
	Err error
}

// TP is the operation's topic and partition.
func (o Op) TP() TopicPartition { return TopicPartition{o.Topic, o.Partition} }

func (o Op) String() string {
	s := fmt.Sprintf("#%d p%d %s %s", o.ID, o.Process, o.Kind, o.Type)
	switch o.Kind {
	case Send:
		s += fmt.Sprintf(" %s %q", o.TP(), o.Value)
		if o.Type == Ok {
			s += fmt.Sprintf(" @%d", o.Offset)
		}
	case Poll:
		s += fmt.Sprintf(" %s epoch=%d %v", o.TP(), o.Epoch, o.Records)
	case Commit, FetchCommit:
		s += fmt.Sprintf(" %s %s offset=%d", o.Group, o.TP(), o.Offset)
	case Assign:
		s += fmt.Sprintf(" %s gen=%d %v", o.Group, o.Generation, o.Partitions)
	}
	s += fmt.Sprintf(" [%d,%d]", o.Invoked, o.Completed)
	if o.Err != nil {
		s += " err=" + o.Err.Error()
	}
	return s
}

// Result is what an ok completion learned.
type Result struct {
	// Offset: a send's acknowledged offset, or a fetch-commit's committed
	// offset (NoOffset when none).
	Offset int64
	// Records: a poll's records.
	Records []Record
}

// Clock returns monotonic readings; later calls never return less.
type Clock func() int64

// Option configures a History.
type Option func(*History)

// WithClock makes the history take its timestamps from c, e.g. a logical
// counter in tests.
func WithClock(c Clock) Option { return func(h *History) { h.clock = c } }

// History records operations from any number of goroutines.
type History struct {
	mu     sync.Mutex
	clock  Clock
	ops    []Op
	drains map[TopicPartition][]Record
}

// New returns an empty history. Its default clock is the nanoseconds since
// New on Go's monotonic clock.
func New(opts ...Option) *History {
	start := time.Now()
	h := &History{
		clock:  func() int64 { return int64(time.Since(start)) + 1 },
		drains: map[TopicPartition][]Record{},
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Invoke records the start of op by process proc and returns its id. Only
// the request fields of op are used (Kind, Topic, Partition, Key, Value,
// Group, Generation, Partitions, Epoch, and Offset for a Commit).
func (h *History) Invoke(proc int, op Op) OpID {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = OpID(len(h.ops))
	op.Process = proc
	op.Type = Invoke
	op.Invoked = h.clock()
	op.Completed = 0
	op.Err = nil
	if op.Kind == Send || op.Kind == FetchCommit {
		op.Offset = NoOffset
	}
	op.Records = nil
	h.ops = append(h.ops, op)
	return op.ID
}

func (h *History) complete(id OpID, t Type, err error, r *Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if int(id) < 0 || int(id) >= len(h.ops) {
		panic(fmt.Sprintf("history: unknown op %d", id))
	}
	op := &h.ops[id]
	if op.Type != Invoke {
		panic(fmt.Sprintf("history: op %d completed twice (%s, then %s)", id, op.Type, t))
	}
	op.Type = t
	op.Err = err
	op.Completed = h.clock()
	if r != nil {
		switch op.Kind {
		case Send, FetchCommit:
			op.Offset = r.Offset
		case Poll:
			op.Records = append([]Record(nil), r.Records...)
		}
	}
}

// Ok records that operation id took effect with result r.
func (h *History) Ok(id OpID, r Result) { h.complete(id, Ok, nil, &r) }

// Fail records that operation id definitely did not take effect.
func (h *History) Fail(id OpID, err error) { h.complete(id, Fail, err, nil) }

// Info records that the outcome of operation id is unknown.
func (h *History) Info(id OpID, err error) { h.complete(id, Info, err, nil) }

// Drain records the final read of everything in topic/partition after all
// faults healed. Calls for one partition append.
func (h *History) Drain(topic string, partition int32, recs []Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tp := TopicPartition{topic, partition}
	h.drains[tp] = append(h.drains[tp], recs...)
}

// Ops returns a copy of the operations recorded so far, in invocation order.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Op, len(h.ops))
	copy(out, h.ops)
	return out
}

// Drains returns a copy of the drained records per partition.
func (h *History) Drains() map[TopicPartition][]Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[TopicPartition][]Record, len(h.drains))
	for tp, r := range h.drains {
		out[tp] = append([]Record(nil), r...)
	}
	return out
}
