package gateway

// Produce: versions 3-11 (v2 record batches only; v0-2 carry the old
// message sets).
//
// Every partition of a request is appended concurrently: each waits for its
// own fsync (acks=1 and acks=-1 both mean durable on this single node), so a
// request over many partitions costs one group commit, not one per
// partition. The record bytes are the request frame's own: decoding aliases
// them and the partition actor writes them to the log as sent (only the base
// offset and leader epoch, outside the CRC, are rewritten in place). The
// frame comes from bufpool and goes back only once every partition has
// answered (recycle.go).
//
// Checks, each with Kafka's error code, before anything is appended:
//   - acks outside {-1, 0, 1}: INVALID_REQUIRED_ACKS for every partition.
//   - unknown topic: auto-created with the default partition count when the
//     broker allows it (auto.create.topics.enable, as Metadata does), else
//     UNKNOWN_TOPIC_OR_PARTITION; a partition out of range likewise.
//   - no records, several batches, or a batch that is not magic 2:
//     INVALID_RECORD, as Kafka (v3+ carries exactly one v2 batch).
//   - the batch over max.message.bytes: MESSAGE_TOO_LARGE; CRC mismatch or
//     truncation: CORRUPT_MESSAGE (the partition's core decides both).
//   - the records inside a batch with a valid CRC must decode: compressed
//     batches are decompressed as a stream through a small buffer (at most
//     recordbatch.MaxDecompressedBytes inflated; nothing sized by the record
//     count the batch claims) and uncompressed ones walked in place; records that do not
//     parse, a record count that does not match, or inner offsets that are
//     not 0, 1, 2, ... answer INVALID_RECORD (with the record's index in the
//     v8+ record errors when known), as Kafka's LogValidator does. So every
//     stored batch is one a consumer can decode.
//   - idempotence (sequence and epoch checks, duplicates answered with the
//     original offset) is the partition core's.
//
// acks=0 gets no answer; the writes still happen (and their errors are only
// logged at debug level, as in Kafka).
//
// Skipped: transactions. A request with a transactional id gets
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED on every partition (fatal for
// clients, rather than a retriable error they would loop on), and a
// transactional or control batch gets INVALID_RECORD. LogAppendTime topics
// are not supported (log append time is always -1); v10+ leader hints
// (CurrentLeader, NodeEndpoints) are never needed on a single node and left
// empty; v12 (KIP-890 transactions) and v13 (topic ids) are not served.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func init() { register(0, 3, 11, serveProduce) }

func serveProduce(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	s := c.server

	// A request-wide rejection answers every partition with one code.
	var reject *kerr.Error
	var rejectMsg string
	switch {
	case req.Acks != -1 && req.Acks != 0 && req.Acks != 1:
		reject, rejectMsg = kerr.InvalidRequiredAcks, fmt.Sprintf("acks %d is not -1, 0 or 1", req.Acks)
	case req.TransactionID != nil:
		reject, rejectMsg = kerr.TransactionalIDAuthorizationFailed, "transactions are not supported yet"
	}

	// Batches go to their partitions in the order this connection sent its
	// requests (Kafka serves a connection's requests one at a time): wait
	// until the previous produce request has handed over its batches, hand
	// over ours, then let the next one go while we wait for fsyncs.
	gate := produceGateFrom(ctx)
	gate.waitTurn(ctx)
	defer gate.submitted()
	var waits []func() bool
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		out := &resp.Topics[i]
		out.Default()
		out.Topic = rt.Topic
		out.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		var t *fluxopb.TopicMetadata
		if reject == nil {
			t = s.node.Topic(rt.Topic)
			if t == nil && !s.cfg.DisableAutoCreate {
				t = s.autoCreate(ctx, rt.Topic)
			}
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			res := &out.Partitions[j]
			res.Default()
			res.Partition = rp.Partition
			res.BaseOffset, res.LogAppendTime, res.LogStartOffset = -1, -1, -1
			switch {
			case reject != nil:
				setProduceError(res, req.Version, reject, rejectMsg, -1)
			case t == nil:
				setProduceError(res, req.Version, kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %q does not exist", rt.Topic), -1)
			case rp.Partition < 0 || rp.Partition >= t.Partitions:
				setProduceError(res, req.Version, kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %q has no partition %d", rt.Topic, rp.Partition), -1)
			case len(rp.Records) == 0:
				setProduceError(res, req.Version, kerr.InvalidRecord, "a produce request must carry exactly one record batch per partition", -1)
			default:
				var maxBytes int32
				if t.Config != nil && t.Config.MaxMessageBytes != nil {
					maxBytes = *t.Config.MaxMessageBytes
				}
				if wait := s.producePartition(ctx, req, rt.Topic, rp, maxBytes, res); wait != nil {
					waits = append(waits, wait)
				}
			}
		}
	}
	gate.submitted()
	// The frame's body (which the batches alias) may be reused once every
	// partition it went to has answered: an answer comes after the append.
	answered := req.Acks != 0
	for _, wait := range waits {
		if !wait() {
			answered = false
		}
	}
	if answered {
		allowRecycle(ctx)
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if code := resp.Topics[i].Partitions[j].ErrorCode; code != 0 {
				s.cfg.Observer.ErrorCode(0, code)
			}
		}
	}
	if req.Acks == 0 {
		return nil, nil
	}
	return resp, nil
}

// producePartition checks one partition's batch and hands it to the
// partition; the returned function waits for the answer, fills res and
// reports whether the partition answered (false: the batch may still be
// waiting in its mailbox). It returns nil when res is already final.
func (s *Server) producePartition(ctx context.Context, req *kmsg.ProduceRequest, topic string, rp *kmsg.ProduceRequestTopicPartition, maxBytes int32, res *kmsg.ProduceResponseTopicPartition) func() bool {
	if maxBytes <= 0 || len(rp.Records) <= int(maxBytes) {
		if idx, err := recordbatch.CheckRecords(rp.Records); err != nil {
			setProduceError(res, req.Version, kerr.InvalidRecord, err.Error(), idx)
			s.logger.Debug("gateway: produce rejected", "topic", topic, "partition", rp.Partition, "err", err)
			return nil
		}
	}
	wait := s.node.ProduceSend(ctx, &fluxopb.ProduceRequest{
		Topic:     topic,
		Partition: rp.Partition,
		Records:   rp.Records,
		Acks:      int32(req.Acks),
		TimeoutMs: req.TimeoutMillis,
	})
	return func() bool {
		pr, err := wait()
		s.fillProduceResult(req, topic, rp, res, pr, err)
		return err == nil
	}
}

// fillProduceResult turns a partition's answer into the response entry.
func (s *Server) fillProduceResult(req *kmsg.ProduceRequest, topic string, rp *kmsg.ProduceRequestTopicPartition, res *kmsg.ProduceResponseTopicPartition, pr *fluxopb.ProduceResponse, err error) {
	switch {
	case err == nil:
	case errors.Is(err, actors.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		// The batch may have been appended: a timeout, never an error that
		// promises nothing was written.
		setProduceError(res, req.Version, kerr.RequestTimedOut, err.Error(), -1)
		return
	default:
		setProduceError(res, req.Version, kerr.UnknownServerError, err.Error(), -1)
		return
	}
	if pr.ErrorCode != 0 {
		ke, ok := kerr.ErrorForCode(int16(pr.ErrorCode)).(*kerr.Error)
		if !ok {
			ke = kerr.UnknownServerError
		}
		setProduceError(res, req.Version, ke, pr.ErrorMessage, -1)
		if req.Acks == 0 {
			s.logger.Debug("gateway: acks=0 produce failed", "topic", topic, "partition", rp.Partition, "err", pr.ErrorMessage)
		}
		return
	}
	res.BaseOffset = pr.BaseOffset
	res.LogAppendTime = pr.LogAppendTimeMs
	if req.Acks != 0 {
		res.LogStartOffset = pr.LogStartOffset
	}
}

// setProduceError fills an error answer; v8+ carries the message and, when
// one record is to blame (recordIndex >= 0), its index.
func setProduceError(res *kmsg.ProduceResponseTopicPartition, version int16, e *kerr.Error, msg string, recordIndex int32) {
	res.ErrorCode = e.Code
	res.BaseOffset, res.LogAppendTime, res.LogStartOffset = -1, -1, -1
	if version < 8 || msg == "" {
		return
	}
	res.ErrorMessage = &msg
	if recordIndex >= 0 {
		er := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		er.RelativeOffset = recordIndex
		er.ErrorMessage = &msg
		res.ErrorRecords = append(res.ErrorRecords, er)
	}
}
