package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// JournalStream is the JetStream stream holding actor journals in cluster
// mode (the consumer group coordinators' __consumer_offsets-<p>).
//
// Per actor (its name base64url-encoded as one subject token <a>):
//
//	fluxo.journal.<a>.e  events: one message per Append holding the
//	                     appended JournalEvents, plus claim and floor markers
//	fluxo.journal.<a>.s  the latest Snapshot
//	fluxo.journal.<a>.f  the sequence DeleteUpTo deleted up to
//
// Every message on .e carries the actor's last sequence after it
// (hdrJournalLast), so the end of a journal is one leader read away, and
// the id of the claim it was written under (hdrJournalWriter).
const JournalStream = "FLUXO_JOURNAL"

const (
	journalSubjects = "fluxo.journal.>"

	hdrJournalKind   = "Fluxo-Journal-Kind" // absent: events; "claim" or "floor": a marker
	hdrJournalLast   = "Fluxo-Journal-Last"
	hdrJournalWriter = "Fluxo-Journal-Writer"

	kindClaim = "claim"
	kindFloor = "floor"

	typeURLPrefix = "type.googleapis.com/"
	// headerSlack is kept free of event bytes in each message for headers.
	headerSlack = 1024
)

// ErrJournalFenced: another journal handle claimed the actor after this
// one did, so this handle may no longer write it. The writer has been
// deposed: it must stop serving what the journal backs.
var ErrJournalFenced = errors.New("journal fenced: claimed by another writer")

// StreamJournal is an actor journal in a replicated JetStream stream, with
// the method set and semantics of persistence.Journal: events numbered from
// 1 per actor, never reused after DeleteUpTo, one snapshot per actor.
//
// Fencing: Claim makes this handle the actor's writer. Every later write to
// the actor's events expects the stream's last sequence on its subject to be
// the one this handle last wrote; once another handle claimed the actor that
// expectation fails and the write returns ErrJournalFenced (and so does
// every later one, until this handle claims again). Appends to an actor that
// was never claimed through this handle use the same expectation as an
// optimistic lock (re-read and retried on a conflict) but fence nobody.
//
// Appends to one actor are serialized (one round trip to the stream leader
// each); different actors append concurrently. Reads that decide go
// through the stream leader. Every round trip is bounded by the store's
// default operation timeout. Safe for concurrent use.
type StreamJournal struct {
	s      *Store
	stream jetstream.Stream

	mu     sync.Mutex
	actors map[string]*journalActor
}

// journalActor is what a handle knows of one actor's journal. mu serializes
// the actor's writes.
type journalActor struct {
	mu      sync.Mutex
	known   bool   // last and subjSeq are the stream's, as last written or read
	last    uint64 // the actor's last sequence number
	subjSeq uint64 // stream sequence of the latest message on the events subject
	writer  string // claim id; "" if this handle has not claimed the actor
	fenced  bool   // another handle claimed the actor after ours
	unsure  bool   // a write's outcome is unknown (timeout): resolve first
}

// OpenJournal creates (or opens) the journal stream, file-backed and
// replicated like the metadata bucket, with no limits (nothing is ever
// discarded; a full store refuses writes). In a cluster it waits, like
// Open, until JetStream answers or ctx ends.
func (s *Store) OpenJournal(ctx context.Context) (*StreamJournal, error) {
	if s.down() {
		return nil, opError("open journal", errStoreClose)
	}
	cfg := jetstream.StreamConfig{
		Name:              JournalStream,
		Description:       "Fluxo actor journals (consumer group coordinators)",
		Subjects:          []string{journalSubjects},
		Storage:           jetstream.FileStorage,
		Replicas:          s.opts.replicas(),
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardNew,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		DenyDelete:        true,
	}
	var st jetstream.Stream
	var err error
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err = s.js.CreateOrUpdateStream(actx, cfg)
		cancel()
		if err == nil || s.opts.ClusterListen == "" {
			break
		}
		select {
		case <-ctx.Done():
			return nil, opError("open journal", fmt.Errorf("stream %s: %w (last: %v)", JournalStream, ctx.Err(), err))
		case <-time.After(wait):
		}
	}
	if err != nil {
		return nil, opError("open journal", fmt.Errorf("stream %s: %w", JournalStream, err))
	}
	return &StreamJournal{s: s, stream: st, actors: map[string]*journalActor{}}, nil
}

func journalSubject(actor, kind string) string {
	return "fluxo.journal." + base64.RawURLEncoding.EncodeToString([]byte(actor)) + "." + kind
}

func (j *StreamJournal) actor(name string) *journalActor {
	j.mu.Lock()
	defer j.mu.Unlock()
	a := j.actors[name]
	if a == nil {
		a = &journalActor{}
		j.actors[name] = a
	}
	return a
}

// last reads the latest message of the actor's events from the stream
// leader: its stream sequence, the actor's last sequence and its writer
// (zeros when there is none).
func (j *StreamJournal) last(ctx context.Context, actor string) (subjSeq, last uint64, writer string, err error) {
	m, err := j.s.leaderLast(ctx, JournalStream, journalSubject(actor, "e"))
	if errors.Is(err, errNoKey) {
		return 0, 0, "", nil
	}
	if err != nil {
		return 0, 0, "", err
	}
	hdr, err := m.headers()
	if err != nil {
		return 0, 0, "", err
	}
	last, err = strconv.ParseUint(hdr.Get(hdrJournalLast), 10, 64)
	if err != nil {
		return 0, 0, "", fmt.Errorf("journal message %d: bad %s header: %w", m.Sequence, hdrJournalLast, err)
	}
	return m.Sequence, last, hdr.Get(hdrJournalWriter), nil
}

// ready brings a's view up to date before a write. a.mu held.
func (j *StreamJournal) ready(ctx context.Context, actor string, a *journalActor) error {
	if a.fenced {
		return ErrJournalFenced
	}
	if a.known && !a.unsure {
		return nil
	}
	subjSeq, last, writer, err := j.last(ctx, actor)
	if err != nil {
		return err
	}
	if a.writer != "" && a.known && subjSeq != a.subjSeq {
		// Something landed since our last known write: ours (the
		// write whose outcome was unknown) or a new claimant's.
		if writer != a.writer {
			a.fenced = true
			return ErrJournalFenced
		}
	}
	a.known, a.unsure, a.subjSeq, a.last = true, false, subjSeq, last
	return nil
}

// publish writes one message on the actor's events subject, expecting the
// subject's last stream sequence to be a.subjSeq, and records the result.
// a.mu held.
func (j *StreamJournal) publish(ctx context.Context, actor string, a *journalActor, kind string, last uint64, data []byte) error {
	if j.s.down() {
		return errStoreClose
	}
	m := nats.NewMsg(journalSubject(actor, "e"))
	m.Data = data
	m.Header.Set(hdrJournalLast, strconv.FormatUint(last, 10))
	if a.writer != "" {
		m.Header.Set(hdrJournalWriter, a.writer)
	}
	if kind != "" {
		m.Header.Set(hdrJournalKind, kind)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	ack, err := j.s.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(a.subjSeq))
	switch {
	case err == nil:
		a.subjSeq, a.last = ack.Sequence, last
		return nil
	case isWrongLastSeq(err):
		if a.writer != "" {
			a.fenced = true
			return ErrJournalFenced
		}
		a.known = false
		return fmt.Errorf("%w: %w", ErrConflict, err)
	default:
		a.unsure = true // it may have landed
		return err
	}
}

func isWrongLastSeq(err error) bool {
	var je jetstream.JetStreamError
	if !errors.As(err, &je) || je.APIError() == nil {
		return false
	}
	c := je.APIError().ErrorCode
	return c == jetstream.JSErrCodeStreamWrongLastSequence || c == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// Claim makes this handle the actor's writer: it reads the journal's end
// from the stream leader and appends a claim marker there, so that any
// earlier claimant's next write fails with ErrJournalFenced. Read the
// journal (Replay) after Claim: nothing but this handle can append to it
// any more. A handle that was fenced may claim again.
func (j *StreamJournal) Claim(ctx context.Context, actor string) error {
	a := j.actor(actor)
	a.mu.Lock()
	defer a.mu.Unlock()
	var err error
	for range maxCASAttempts {
		var subjSeq, last uint64
		if subjSeq, last, _, err = j.last(ctx, actor); err != nil {
			return opError("journal claim "+actor, err)
		}
		a.known, a.unsure, a.fenced = true, false, false
		a.subjSeq, a.last, a.writer = subjSeq, last, nuid.Next()
		if err = j.publish(ctx, actor, a, kindClaim, last, nil); err == nil {
			return nil
		}
		if !errors.Is(err, ErrJournalFenced) {
			a.writer = ""
			return opError("journal claim "+actor, err)
		}
		// Another write landed between our read and our marker: read again.
	}
	a.known, a.fenced = false, false
	a.writer = ""
	return opError("journal claim "+actor, fmt.Errorf("%w: %w", ErrConflict, err))
}

// Append writes events as the actor's next sequence numbers and returns the
// last one, once the stream has stored them (replicated, synced). The
// events of one call go in one message, atomically, unless they exceed the
// server's maximum payload: then in several, in order, and a failure can
// leave a prefix of them written.
func (j *StreamJournal) Append(actor string, events ...proto.Message) (uint64, error) {
	wrap := func(err error) error { return opError("journal append "+actor, err) }
	ctx := context.Background()
	a := j.actor(actor)
	a.mu.Lock()
	defer a.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := j.ready(ctx, actor, a); err != nil {
			return 0, wrap(err)
		}
		if len(events) == 0 {
			return a.last, nil
		}
		chunks, err := j.encode(a.last, events)
		if err != nil {
			return 0, wrap(err)
		}
		for i, c := range chunks {
			err = j.publish(ctx, actor, a, "", c.last, c.data)
			if err == nil {
				continue
			}
			if i == 0 && errors.Is(err, ErrConflict) && attempt < maxCASAttempts {
				break // unclaimed and raced: re-read and renumber
			}
			return 0, wrap(err)
		}
		if err == nil {
			return a.last, nil
		}
	}
}

type journalChunk struct {
	data []byte
	last uint64
}

// encode numbers events after last and packs them into messages: each a
// sequence of JournalEvents as a repeated bytes field 1.
func (j *StreamJournal) encode(last uint64, events []proto.Message) ([]journalChunk, error) {
	limit := int(j.s.nc.MaxPayload()) - headerSlack
	var chunks []journalChunk
	var cur []byte
	for _, ev := range events {
		payload, err := proto.Marshal(ev)
		if err != nil {
			return nil, err
		}
		last++
		b, err := proto.Marshal(&fluxopb.JournalEvent{Sequence: last, TypeUrl: typeURLPrefix + string(proto.MessageName(ev)), Payload: payload})
		if err != nil {
			return nil, err
		}
		if len(cur) > 0 && len(cur)+len(b)+16 > limit {
			chunks = append(chunks, journalChunk{data: cur, last: last - 1})
			cur = nil
		}
		cur = protowire.AppendTag(cur, 1, protowire.BytesType)
		cur = protowire.AppendBytes(cur, b)
	}
	return append(chunks, journalChunk{data: cur, last: last}), nil
}

func decodeJournalEvents(data []byte, fn func(*fluxopb.JournalEvent) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return errors.New("malformed journal message")
		}
		data = data[n:]
		b, n := protowire.ConsumeBytes(data)
		if n < 0 {
			return errors.New("malformed journal message")
		}
		data = data[n:]
		ev := &fluxopb.JournalEvent{}
		if err := proto.Unmarshal(b, ev); err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}

// Replay calls fn for each event of the actor with a sequence above afterSeq,
// in order, stopping at fn's first error. Its end is the journal's end as
// the stream leader knows it when Replay starts: every message up to there
// is read, even from a replica that lags (it waits for it, within the
// timeout of each read).
func (j *StreamJournal) Replay(actor string, afterSeq uint64, fn func(seq uint64, ev *fluxopb.JournalEvent) error) error {
	wrap := func(err error) error { return opError("journal replay "+actor, err) }
	ctx := context.Background()
	end, _, _, err := j.last(ctx, actor)
	if err != nil || end == 0 {
		return wrap(err)
	}
	floor, err := j.floor(ctx, actor)
	if err != nil {
		return wrap(err)
	}
	after := max(afterSeq, floor)
	return wrap(j.scan(ctx, actor, false, end, func(m jetstream.Msg, seq uint64) (bool, error) {
		if m.Headers().Get(hdrJournalKind) != "" {
			return true, nil
		}
		return true, decodeJournalEvents(m.Data(), func(ev *fluxopb.JournalEvent) error {
			if ev.Sequence <= after {
				return nil
			}
			return fn(ev.Sequence, ev)
		})
	}))
}

// scan reads the actor's events subject in order up to stream sequence end,
// calling fn with each message and its stream sequence until fn returns
// false or an error.
func (j *StreamJournal) scan(ctx context.Context, actor string, headersOnly bool, end uint64, fn func(m jetstream.Msg, seq uint64) (bool, error)) error {
	if j.s.down() {
		return errStoreClose
	}
	cctx, cancel := withDefaultTimeout(ctx)
	cons, err := j.stream.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{journalSubject(actor, "e")},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		HeadersOnly:    headersOnly,
	})
	cancel()
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextMaxWait(defaultOpTimeout))
		if err != nil {
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		seq := meta.Sequence.Stream
		if seq > end {
			return nil
		}
		more, err := fn(m, seq)
		if err != nil || !more || seq == end {
			return err
		}
	}
}

// floor is the sequence the actor's events were deleted up to (0: none).
func (j *StreamJournal) floor(ctx context.Context, actor string) (uint64, error) {
	m, err := j.s.leaderLast(ctx, JournalStream, journalSubject(actor, "f"))
	if errors.Is(err, errNoKey) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(m.Data), 10, 64)
}

// SaveSnapshot stores state as the actor's snapshot at seq (replacing the
// previous one). It is not fenced by the claim: only a fenced handle's
// check (ErrJournalFenced once it knows) stops it.
func (j *StreamJournal) SaveSnapshot(actor string, seq uint64, state proto.Message) error {
	wrap := func(err error) error { return opError("journal save snapshot "+actor, err) }
	a := j.actor(actor)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fenced {
		return wrap(ErrJournalFenced)
	}
	payload, err := proto.Marshal(state)
	if err != nil {
		return wrap(err)
	}
	v, err := proto.Marshal(&fluxopb.Snapshot{Sequence: seq, TypeUrl: typeURLPrefix + string(proto.MessageName(state)), Payload: payload})
	if err != nil {
		return wrap(err)
	}
	return wrap(j.replaceLatest(context.Background(), journalSubject(actor, "s"), v))
}

// replaceLatest publishes data on subject and purges the subject's older
// messages.
func (j *StreamJournal) replaceLatest(ctx context.Context, subject string, data []byte) error {
	if j.s.down() {
		return errStoreClose
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if _, err := j.s.js.Publish(ctx, subject, data); err != nil {
		return err
	}
	return j.stream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeKeep(1))
}

// LoadSnapshot returns the actor's snapshot, or an error wrapping
// persistence.ErrNotFound.
func (j *StreamJournal) LoadSnapshot(actor string) (*fluxopb.Snapshot, error) {
	wrap := func(err error) error { return opError("journal load snapshot "+actor, err) }
	m, err := j.s.leaderLast(context.Background(), JournalStream, journalSubject(actor, "s"))
	if errors.Is(err, errNoKey) {
		return nil, wrap(persistence.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err)
	}
	snap := &fluxopb.Snapshot{}
	if err := proto.Unmarshal(m.Data, snap); err != nil {
		return nil, wrap(fmt.Errorf("decode: %w", err))
	}
	return snap, nil
}

// DeleteUpTo deletes the actor's events with sequence <= seq. Later appends
// still continue after the highest sequence issued. It is fenced like
// Append: it first appends a floor marker (which also keeps the events
// subject, and so the claim's expectation, from ever becoming empty), then
// records the floor, then purges the messages holding only events up to
// seq (Replay skips the rest of them by the floor).
func (j *StreamJournal) DeleteUpTo(actor string, seq uint64) error {
	wrap := func(err error) error {
		return opError(fmt.Sprintf("journal delete %s up to %d", actor, seq), err)
	}
	if seq == 0 {
		return nil
	}
	ctx := context.Background()
	a := j.actor(actor)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := j.ready(ctx, actor, a); err != nil {
		return wrap(err)
	}
	if err := j.publish(ctx, actor, a, kindFloor, max(a.last, seq), nil); err != nil {
		return wrap(err)
	}
	marker := a.subjSeq
	floor, err := j.floor(ctx, actor)
	if err != nil {
		return wrap(err)
	}
	if seq > floor {
		if err := j.replaceLatest(ctx, journalSubject(actor, "f"), []byte(strconv.FormatUint(seq, 10))); err != nil {
			return wrap(err)
		}
	}
	// Purge before the first message holding an event above seq (its
	// Last header is above seq), at the latest before our marker.
	keepFrom := marker
	err = j.scan(ctx, actor, true, marker, func(m jetstream.Msg, at uint64) (bool, error) {
		last, err := strconv.ParseUint(m.Headers().Get(hdrJournalLast), 10, 64)
		if err != nil {
			return false, err
		}
		if last > seq && m.Headers().Get(hdrJournalKind) == "" {
			keepFrom = at
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return wrap(err)
	}
	pctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return wrap(j.stream.Purge(pctx, jetstream.WithPurgeSubject(journalSubject(actor, "e")), jetstream.WithPurgeSequence(keepFrom)))
}

// DeleteActor removes the actor's journal and snapshot; its sequence
// numbers start again from 1. A claim this handle holds stays (its next
// append expects the empty journal); a fenced handle gets ErrJournalFenced.
// The purge itself is not fenced: the caller must not delete an actor it
// may have lost.
func (j *StreamJournal) DeleteActor(actor string) error {
	wrap := func(err error) error { return opError("journal delete actor "+actor, err) }
	a := j.actor(actor)
	a.mu.Lock()
	defer a.mu.Unlock()
	// A marker first, so that a deposed writer learns it here rather
	// than purging its successor's journal.
	ctx, cancel := withDefaultTimeout(context.Background())
	defer cancel()
	if err := j.ready(ctx, actor, a); err != nil {
		return wrap(err)
	}
	if err := j.publish(ctx, actor, a, kindFloor, a.last, nil); err != nil {
		return wrap(err)
	}
	sub := "fluxo.journal." + base64.RawURLEncoding.EncodeToString([]byte(actor)) + ".*"
	if err := j.stream.Purge(ctx, jetstream.WithPurgeSubject(sub)); err != nil {
		a.unsure = true // fails closed: a purge that went through reads as fenced
		return wrap(err)
	}
	a.known, a.unsure, a.last, a.subjSeq = true, false, 0, 0
	return nil
}
