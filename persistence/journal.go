package persistence

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// typeURLPrefix makes type URLs anypb-compatible.
const typeURLPrefix = "type.googleapis.com/"

// Journal is the event journal of node-local actors: events numbered from 1
// per actor under jrnl/<actor>/<seq>, one snapshot per actor under
// snap/<actor>. Sequence 0 of each actor holds the sequence deleted up to, so
// numbers are never reused after DeleteUpTo. Writes sync under SyncAlways.
type Journal struct {
	s    *Store
	mu   sync.Mutex
	last map[string]uint64 // cached last sequence per actor
}

func typeURL(m proto.Message) string { return typeURLPrefix + string(proto.MessageName(m)) }

// lastSeq returns the actor's last sequence number. j.mu held.
func (j *Journal) lastSeq(actor string) (uint64, error) {
	if seq, ok := j.last[actor]; ok {
		return seq, nil
	}
	p := actorPrefix(kindJournal, actor)
	it, err := j.s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var seq uint64
	if it.Last() {
		seq = seqOfJournalKey(it.Key())
		if seq == 0 {
			seq = binary.BigEndian.Uint64(it.Value())
		}
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	j.last[actor] = seq
	return seq, nil
}

// Append writes events as the actor's next sequence numbers and returns the
// last one. The write is synced under SyncAlways. Numbers are assigned under
// the journal's lock, but the synced commit runs outside it, so appends of
// different callers share their fsyncs (Pebble's commit pipeline groups
// them). Concurrent appends to one actor may become durable out of order: a
// crash can then leave a gap where an append that was never acknowledged
// was; replay reads what is there.
func (j *Journal) Append(actor string, events ...proto.Message) (uint64, error) {
	wrap := func(err error) error { return fmt.Errorf("persistence: journal append %s: %w", actor, err) }
	b := j.s.db.NewBatch()
	defer b.Close()
	j.mu.Lock()
	seq, err := j.lastSeq(actor)
	if err != nil {
		j.mu.Unlock()
		return 0, wrap(err)
	}
	next := seq
	for _, ev := range events {
		payload, err := proto.Marshal(ev)
		if err != nil {
			j.mu.Unlock()
			return 0, wrap(err)
		}
		next++
		v, err := proto.Marshal(&fluxopb.JournalEvent{Sequence: next, TypeUrl: typeURL(ev), Payload: payload})
		if err != nil {
			j.mu.Unlock()
			return 0, wrap(err)
		}
		if err := b.Set(journalKey(actor, next), v, nil); err != nil {
			j.mu.Unlock()
			return 0, wrap(err)
		}
	}
	j.last[actor] = next // numbers are never reused, even if the commit fails
	j.mu.Unlock()
	if len(events) == 0 {
		return seq, nil
	}
	if err := b.Commit(j.s.writeOpts()); err != nil {
		return 0, wrap(err)
	}
	return next, nil
}

// Replay calls fn for each event of the actor with a sequence above afterSeq,
// in order, stopping at fn's first error.
func (j *Journal) Replay(actor string, afterSeq uint64, fn func(seq uint64, ev *fluxopb.JournalEvent) error) error {
	p := actorPrefix(kindJournal, actor)
	it, err := j.s.db.NewIter(&pebble.IterOptions{LowerBound: journalKey(actor, max(afterSeq+1, 1)), UpperBound: prefixEnd(p)})
	if err != nil {
		return fmt.Errorf("persistence: journal replay %s: %w", actor, err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		ev := &fluxopb.JournalEvent{}
		if err := proto.Unmarshal(it.Value(), ev); err != nil {
			return fmt.Errorf("persistence: journal replay %s: decode: %w", actor, err)
		}
		if err := fn(ev.Sequence, ev); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("persistence: journal replay %s: %w", actor, err)
	}
	return nil
}

// SaveSnapshot stores state as the actor's snapshot at seq.
func (j *Journal) SaveSnapshot(actor string, seq uint64, state proto.Message) error {
	payload, err := proto.Marshal(state)
	if err == nil {
		var v []byte
		v, err = proto.Marshal(&fluxopb.Snapshot{Sequence: seq, TypeUrl: typeURL(state), Payload: payload})
		if err == nil {
			err = j.s.db.Set(snapshotKey(actor), v, j.s.writeOpts())
		}
	}
	if err != nil {
		return fmt.Errorf("persistence: journal save snapshot %s: %w", actor, err)
	}
	return nil
}

// LoadSnapshot returns the actor's snapshot, or ErrNotFound.
func (j *Journal) LoadSnapshot(actor string) (*fluxopb.Snapshot, error) {
	v, closer, err := j.s.db.Get(snapshotKey(actor))
	if err == pebble.ErrNotFound {
		return nil, fmt.Errorf("persistence: journal load snapshot %s: %w", actor, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("persistence: journal load snapshot %s: %w", actor, err)
	}
	defer closer.Close()
	snap := &fluxopb.Snapshot{}
	if err := proto.Unmarshal(v, snap); err != nil {
		return nil, fmt.Errorf("persistence: journal load snapshot %s: decode: %w", actor, err)
	}
	return snap, nil
}

// DeleteUpTo deletes the actor's events with sequence <= seq (a range
// delete). Later appends still continue after the highest sequence issued.
func (j *Journal) DeleteUpTo(actor string, seq uint64) error {
	wrap := func(err error) error {
		return fmt.Errorf("persistence: journal delete %s up to %d: %w", actor, seq, err)
	}
	if seq == 0 {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	last, err := j.lastSeq(actor)
	if err != nil {
		return wrap(err)
	}
	b := j.s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(journalKey(actor, 1), journalKey(actor, seq+1), nil); err != nil {
		return wrap(err)
	}
	var floor [8]byte
	binary.BigEndian.PutUint64(floor[:], max(last, seq))
	if err := b.Set(journalKey(actor, 0), floor[:], nil); err != nil {
		return wrap(err)
	}
	if err := b.Commit(j.s.writeOpts()); err != nil {
		return wrap(err)
	}
	j.last[actor] = max(last, seq)
	return nil
}

// DeleteActor removes the actor's journal and snapshot; its sequence
// numbers start again from 1. The caller must not append to the actor
// concurrently (an append committing after the delete would survive it).
func (j *Journal) DeleteActor(actor string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := actorPrefix(kindJournal, actor)
	b := j.s.db.NewBatch()
	defer b.Close()
	err := b.DeleteRange(p, prefixEnd(p), nil)
	if err == nil {
		err = b.Delete(snapshotKey(actor), nil)
	}
	if err == nil {
		err = b.Commit(j.s.writeOpts())
	}
	if err != nil {
		return fmt.Errorf("persistence: journal delete actor %s: %w", actor, err)
	}
	delete(j.last, actor)
	return nil
}
