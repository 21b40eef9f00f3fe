package actors_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"pgregory.net/rapid"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
	"github.com/fluxo-broker/fluxo/testkit"
)

// partitionMachine drives one partition through a real broker (actors,
// persistence on a crashable in-memory file system) with random produces,
// lost acknowledgements and retries, injected actor panics, machine crashes
// that drop unsynced data, truncations and DeleteRecords, and compares the
// log with a model after every step: no acknowledged batch lost, offsets dense
// and monotonic, no offset reused.
type partitionMachine struct {
	t      *rapid.T
	ctx    context.Context
	dir    string
	fs     *testkit.CrashFS
	inj    *testkit.PanicInjector
	broker *fluxo.Broker

	// The model: acknowledged records by offset, from logStart to end.
	values   map[int64]string
	bounds   []int64 // base offsets of acknowledged batches, ascending
	logStart int64
	end      int64

	// The idempotent producer.
	epoch   int16
	nextSeq int32
	counter int
	// pending is a batch whose outcome is unknown (error or lost ack).
	pending *pendingBatch
}

type pendingBatch struct {
	bytes  []byte
	values []string
	seq    int32
	// knownOffset is set when the ack was received but dropped: the retry
	// must return exactly this offset.
	knownOffset int64
}

const topic = "machine"

func (m *partitionMachine) start() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := fluxo.Start(ctx,
		fluxo.WithDataDir(m.dir),
		fluxo.WithFS(m.fs),
		fluxo.WithLogger(testkit.QuietLogger()),
		fluxo.WithActorMiddleware(m.inj.Middleware),
		fluxo.WithNodeConfig(func(c *actors.Config) {
			c.SegmentBytes = 1 << 20
			c.RequestTimeout = 10 * time.Second
		}),
	)
	if err != nil {
		m.t.Fatalf("start broker: %v", err)
	}
	m.broker = b
}

func (m *partitionMachine) batch(n int) ([]byte, []string) {
	recs := make([]recordbatch.Record, n)
	vals := make([]string, n)
	for i := range recs {
		m.counter++
		vals[i] = fmt.Sprintf("v%d", m.counter)
		// Values of up to ~20 KiB so segments roll now and then.
		pad := make([]byte, (m.counter*7919)%20000)
		recs[i] = recordbatch.Record{Timestamp: int64(m.counter), Value: append([]byte(vals[i]+"|"), pad...)}
	}
	b, err := recordbatch.Build(recs, recordbatch.Producer{ID: 77, Epoch: m.epoch, Sequence: m.nextSeq})
	if err != nil {
		m.t.Fatal(err)
	}
	return b, vals
}

func (m *partitionMachine) send(b []byte) *fluxopb.ProduceResponse {
	res, err := m.broker.Node().Produce(m.ctx, &fluxopb.ProduceRequest{Topic: topic, Partition: 0, Records: append([]byte(nil), b...), Acks: -1})
	if err != nil {
		m.t.Fatalf("produce: %v", err)
	}
	return res
}

// accept records an acknowledged batch in the model, checking its offset.
func (m *partitionMachine) accept(base int64, vals []string) {
	if base != m.end {
		m.t.Fatalf("batch acknowledged at %d, want the log end %d (offsets dense, none reused)", base, m.end)
	}
	m.bounds = append(m.bounds, base)
	for i, v := range vals {
		m.values[base+int64(i)] = v
	}
	m.end = base + int64(len(vals))
}

func (m *partitionMachine) Produce(t *rapid.T) {
	if m.pending != nil {
		t.Skip("a batch is in doubt; only a retry may follow")
	}
	n := rapid.IntRange(1, 5).Draw(t, "records")
	b, vals := m.batch(n)
	res := m.send(b)
	if res.ErrorCode != 0 {
		t.Fatalf("produce refused: %d %s", res.ErrorCode, res.ErrorMessage)
	}
	m.accept(res.BaseOffset, vals)
	m.nextSeq += int32(n)
}

// ProduceLostAck: the broker acknowledged, but the reply never arrived.
func (m *partitionMachine) ProduceLostAck(t *rapid.T) {
	if m.pending != nil {
		t.Skip("a batch is in doubt")
	}
	b, vals := m.batch(rapid.IntRange(1, 5).Draw(t, "records"))
	res := m.send(b)
	if res.ErrorCode != 0 {
		t.Fatalf("produce refused: %d %s", res.ErrorCode, res.ErrorMessage)
	}
	m.pending = &pendingBatch{bytes: b, values: vals, seq: m.nextSeq, knownOffset: res.BaseOffset}
}

// ProducePanics: the partition actor panics on the request.
func (m *partitionMachine) ProducePanics(t *rapid.T) {
	if m.pending != nil {
		t.Skip("a batch is in doubt")
	}
	b, vals := m.batch(rapid.IntRange(1, 5).Draw(t, "records"))
	m.inj.Arm("/"+topic+"-0", 1, testkit.MessageOf[*fluxopb.ProduceRequest]())
	res := m.send(b)
	if res.ErrorCode != int32(kerr.NotLeaderForPartition.Code) {
		t.Fatalf("produce into a panicking actor: code %d %s, want a retriable NOT_LEADER_OR_FOLLOWER", res.ErrorCode, res.ErrorMessage)
	}
	m.pending = &pendingBatch{bytes: b, values: vals, seq: m.nextSeq, knownOffset: -1}
}

func (m *partitionMachine) Retry(t *rapid.T) {
	if m.pending == nil {
		t.Skip("nothing in doubt")
	}
	var res *fluxopb.ProduceResponse
	for i := 0; ; i++ {
		res = m.send(m.pending.bytes)
		if res.ErrorCode != int32(kerr.NotLeaderForPartition.Code) || i > 50 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the actor is restarting
	}
	if res.ErrorCode != 0 {
		t.Fatalf("retry refused: %d %s", res.ErrorCode, res.ErrorMessage)
	}
	if k := m.pending.knownOffset; k >= 0 && res.BaseOffset != k {
		t.Fatalf("retry of a batch acknowledged at %d answered %d: duplicate", k, res.BaseOffset)
	}
	m.accept(res.BaseOffset, m.pending.values)
	m.nextSeq = m.pending.seq + int32(len(m.pending.values))
	m.pending = nil
}

// Crash simulates power loss: everything not synced is dropped, and the
// broker starts again on what the disk kept.
func (m *partitionMachine) Crash(t *rapid.T) {
	crashed := m.fs.Crash()
	_ = m.broker.Close()
	m.fs = crashed
	m.start()
}

// Restart stops cleanly and starts again.
func (m *partitionMachine) Restart(t *rapid.T) {
	if err := m.broker.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	m.start()
}

func (m *partitionMachine) Truncate(t *rapid.T) {
	var candidates []int64
	for _, b := range m.bounds {
		if b >= m.logStart {
			candidates = append(candidates, b)
		}
	}
	candidates = append(candidates, m.end)
	end := rapid.SampledFrom(candidates).Draw(t, "end")
	if err := m.broker.Node().Truncate(m.ctx, topic, 0, end); err != nil {
		t.Fatalf("truncate to %d: %v", end, err)
	}
	for off := end; off < m.end; off++ {
		delete(m.values, off)
	}
	for len(m.bounds) > 0 && m.bounds[len(m.bounds)-1] >= end {
		m.bounds = m.bounds[:len(m.bounds)-1]
	}
	m.end = end
	// Whatever was in doubt is gone now; the producer starts a new epoch,
	// as a Kafka producer does after its sequence state is lost.
	m.pending = nil
	m.epoch++
	m.nextSeq = 0
}

func (m *partitionMachine) DeleteRecords(t *rapid.T) {
	if m.pending != nil {
		t.Skip("keep the high watermark unambiguous")
	}
	off := rapid.Int64Range(m.logStart, m.end).Draw(t, "before")
	low, err := m.broker.DeleteRecords(m.ctx, topic, 0, off)
	if err != nil || low != off {
		t.Fatalf("delete records before %d: low %d err %v", off, low, err)
	}
	for o := m.logStart; o < off; o++ {
		delete(m.values, o)
	}
	m.logStart = off
}

// Check compares the whole readable log with the model.
func (m *partitionMachine) Check(t *rapid.T) {
	var got []fluxo.Record
	var hw int64
	for off := m.logStart; ; {
		res, err := m.broker.Fetch(m.ctx, topic, 0, off, fluxo.MaxBytes(256<<10))
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		hw = res.HighWatermark
		if res.LogStartOffset != m.logStart {
			t.Fatalf("log start %d, model %d", res.LogStartOffset, m.logStart)
		}
		got = append(got, res.Records...)
		if len(res.Records) == 0 || off >= hw {
			break
		}
		off = res.Records[len(res.Records)-1].Offset + 1
		if off >= hw {
			break
		}
	}
	extra := int64(0)
	if m.pending != nil {
		extra = int64(len(m.pending.values))
	}
	if hw != m.end && !(m.pending != nil && hw == m.end+extra) {
		t.Fatalf("high watermark %d, model end %d (in doubt: %d)", hw, m.end, extra)
	}
	for i, r := range got {
		want := m.logStart + int64(i)
		if r.Offset != want {
			t.Fatalf("record %d has offset %d, want %d (dense)", i, r.Offset, want)
		}
		v := string(r.Value)
		if j := indexByte(v, '|'); j >= 0 {
			v = v[:j]
		}
		if r.Offset < m.end {
			if m.values[r.Offset] != v {
				t.Fatalf("offset %d holds %q, model %q", r.Offset, v, m.values[r.Offset])
			}
		} else if m.pending == nil || m.pending.values[r.Offset-m.end] != v {
			t.Fatalf("offset %d past the model end holds %q", r.Offset, v)
		}
	}
	if int64(len(got)) != hw-m.logStart {
		t.Fatalf("read %d records between log start %d and high watermark %d", len(got), m.logStart, hw)
	}
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func TestPartitionStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		m := &partitionMachine{
			t: t, ctx: ctx, dir: tempDir(t), fs: testkit.NewCrashFS(), inj: &testkit.PanicInjector{},
			values: map[int64]string{},
		}
		m.start()
		defer func() { _ = m.broker.Close() }()
		if _, err := m.broker.CreateTopic(ctx, topic, 1, fluxo.RetentionMs(-1)); err != nil {
			t.Fatal(err)
		}
		t.Repeat(rapid.StateMachineActions(m))
	})
}
