package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Atomic batch publish (nats-server 2.12+, stream AllowAtomicPublish): the
// stream leader checks every message's expected-last-subject-sequence
// against the state before the batch and stores all messages or none.
// nats.go v1.55 has no client API for it, so batches are sent with the
// documented headers: every message carries the batch id and its 1-based
// sequence, the last one also the commit flag and a reply subject; the
// commit's PubAck (or error) answers for the whole batch.
const (
	hdrBatchID      = "Nats-Batch-Id"
	hdrBatchSeq     = "Nats-Batch-Sequence"
	hdrBatchCommit  = "Nats-Batch-Commit"
	hdrExpectedLast = "Nats-Expected-Last-Subject-Sequence"

	// maxBatch is the server's default atomic batch size limit.
	maxBatch = 1000

	jsWrongLastSequence      = 10071
	jsWrongLastSequenceConst = 10164
	jsAtomicPublishDisabled  = 10174
)

// casOp writes value at key if the key's latest revision is rev (0: the key
// has never been written).
type casOp struct {
	key   string
	value []byte
	rev   uint64
}

type batchAck struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     uint16 `json:"err_code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
	Sequence  uint64 `json:"seq"`
	BatchSize uint64 `json:"count"`
}

// casBatch writes all ops atomically if every key is at its expected
// revision, else none (ErrConflict). It returns each op's new revision. An
// op's key must appear once. A timeout leaves the outcome unknown
// (ErrUnavailable): re-read before retrying.
func (s *Store) casBatch(ctx context.Context, ops []casOp) ([]uint64, error) {
	if s.down() {
		return nil, errStoreClose
	}
	if len(ops) == 0 || len(ops) > maxBatch {
		return nil, fmt.Errorf("atomic batch of %d writes (1..%d)", len(ops), maxBatch)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	id := nuid.Next()
	var reply *nats.Msg
	for i, op := range ops {
		m := nats.NewMsg("$KV." + Bucket + "." + op.key)
		m.Data = op.value
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		m.Header.Set(hdrExpectedLast, strconv.FormatUint(op.rev, 10))
		if i < len(ops)-1 {
			if err := s.nc.PublishMsg(m); err != nil {
				return nil, err
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		var err error
		if reply, err = s.nc.RequestMsgWithContext(ctx, m); err != nil {
			return nil, err
		}
	}
	var ack batchAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return nil, fmt.Errorf("atomic batch: decode ack: %w", err)
	}
	if e := ack.Error; e != nil {
		switch {
		case e.ErrCode == jsWrongLastSequence || e.ErrCode == jsWrongLastSequenceConst:
			return nil, fmt.Errorf("%w: atomic batch: %s", ErrConflict, e.Description)
		case e.ErrCode == jsAtomicPublishDisabled || e.Code == 503:
			return nil, fmt.Errorf("%w: atomic batch: %s", ErrUnavailable, e.Description)
		}
		return nil, fmt.Errorf("atomic batch: %s (code %d/%d)", e.Description, e.Code, e.ErrCode)
	}
	if ack.BatchSize != uint64(len(ops)) || ack.Sequence < uint64(len(ops)) {
		return nil, fmt.Errorf("atomic batch: ack for %d messages ending at %d, sent %d", ack.BatchSize, ack.Sequence, len(ops))
	}
	revs := make([]uint64, len(ops))
	for i := range ops {
		revs[i] = ack.Sequence - uint64(len(ops)-1-i)
	}
	return revs, nil
}
