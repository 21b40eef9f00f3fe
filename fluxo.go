// Package fluxo embeds a Fluxo broker in a Go program and connects to one in
// another process.
//
// Start runs a broker in-process: its partitions, storage and coordination
// store live in this program, and Broker's methods send actor messages to them
// directly. Dial connects to a broker started elsewhere (for example by
// `fluxo serve`) and sends the same protobuf actor messages over protoactor
// remote. Both satisfy Conn, so code written against one works with the other.
package fluxo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// Record is one record: what Produce sends and Fetch returns. A zero
// Timestamp on produce means now.
type Record = recordbatch.Record

// Header is a record header.
type Header = recordbatch.RecordHeader

// Conn is what an embedded Broker and a remote Client both offer.
type Conn interface {
	CreateTopic(ctx context.Context, name string, partitions int32, opts ...TopicOption) (*fluxopb.TopicMetadata, error)
	DeleteTopic(ctx context.Context, name string) error
	Topics(ctx context.Context) ([]*fluxopb.TopicMetadata, error)
	DescribeTopic(ctx context.Context, name string) (*fluxopb.DescribeTopicResponse, error)
	Produce(ctx context.Context, topic string, partition int32, records ...Record) (int64, error)
	Fetch(ctx context.Context, topic string, partition int32, offset int64, opts ...FetchOption) (*FetchResult, error)
	DeleteRecords(ctx context.Context, topic string, partition int32, before int64) (int64, error)
	Close() error
}

// Error is a request the broker refused, with Kafka's error code.
type Error struct {
	Op      string      // the operation, e.g. "produce orders/0"
	Kafka   *kerr.Error // the code's entry in Kafka's error table
	Message string      // the broker's explanation
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: %s", e.Op, e.Kafka.Message)
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, e.Kafka.Message, e.Message)
}

// Unwrap makes errors.Is(err, kerr.UnknownTopicOrPartition) work.
func (e *Error) Unwrap() error { return e.Kafka }

// Retriable reports whether retrying the request may succeed.
func (e *Error) Retriable() bool { return e.Kafka.Retriable }

// IsRetriable reports whether err is a broker error worth retrying, or a
// timeout.
func IsRetriable(err error) bool {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Retriable()
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout)
}

// ErrTimeout: no answer in time; the request may or may not have taken effect.
var ErrTimeout = errors.New("fluxo: request timed out")

func codeErr(op string, code int32, msg string) error {
	if code == 0 {
		return nil
	}
	ke, ok := kerr.ErrorForCode(int16(code)).(*kerr.Error)
	if !ok {
		ke = kerr.UnknownServerError
	}
	return &Error{Op: op, Kafka: ke, Message: msg}
}

// TopicOption sets a topic config at creation.
type TopicOption func(*fluxopb.TopicConfig)

// RetentionMs sets retention.ms (-1: forever).
func RetentionMs(ms int64) TopicOption { return func(c *fluxopb.TopicConfig) { c.RetentionMs = &ms } }

// RetentionBytes sets retention.bytes per partition (-1: no limit).
func RetentionBytes(b int64) TopicOption {
	return func(c *fluxopb.TopicConfig) { c.RetentionBytes = &b }
}

// MaxMessageBytes sets max.message.bytes, the largest batch accepted.
func MaxMessageBytes(b int32) TopicOption {
	return func(c *fluxopb.TopicConfig) { c.MaxMessageBytes = &b }
}

// FetchOption tunes a Fetch.
type FetchOption func(*fluxopb.FetchRequest)

// MaxBytes bounds the bytes returned (at least one batch is always returned).
func MaxBytes(n int32) FetchOption { return func(r *fluxopb.FetchRequest) { r.MaxBytes = n } }

// Wait makes Fetch wait up to d for at least minBytes (long poll).
func Wait(d time.Duration, minBytes int32) FetchOption {
	return func(r *fluxopb.FetchRequest) { r.MaxWaitMs = int32(d / time.Millisecond); r.MinBytes = minBytes }
}

// FetchResult is what a Fetch read.
type FetchResult struct {
	Records        []Record // offsets >= the requested offset, in order
	HighWatermark  int64    // offsets below it are durable and readable
	LogStartOffset int64
}

// requester sends one actor request and returns its reply.
type requester interface {
	request(ctx context.Context, msg any) (any, error)
}

// ops implements Conn's methods over a requester, once for both transports.
type ops struct{ r requester }

func reply[T any](ctx context.Context, o ops, msg any) (T, error) {
	var zero T
	res, err := o.r.request(ctx, msg)
	if err != nil {
		return zero, err
	}
	out, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("fluxo: unexpected reply %T to %T", res, msg)
	}
	return out, nil
}

// CreateTopic creates a topic; partitions 0 takes the broker's default.
func (o ops) CreateTopic(ctx context.Context, name string, partitions int32, opts ...TopicOption) (*fluxopb.TopicMetadata, error) {
	cfg := &fluxopb.TopicConfig{}
	for _, opt := range opts {
		opt(cfg)
	}
	res, err := reply[*fluxopb.CreateTopicResponse](ctx, o, &fluxopb.CreateTopicRequest{Name: name, Partitions: partitions, Config: cfg})
	if err != nil {
		return nil, err
	}
	if err := codeErr("create topic "+name, res.ErrorCode, res.ErrorMessage); err != nil {
		return nil, err
	}
	return res.Topic, nil
}

// DeleteTopic deletes a topic and its data.
func (o ops) DeleteTopic(ctx context.Context, name string) error {
	res, err := reply[*fluxopb.DeleteTopicResponse](ctx, o, &fluxopb.DeleteTopicRequest{Name: name})
	if err != nil {
		return err
	}
	return codeErr("delete topic "+name, res.ErrorCode, res.ErrorMessage)
}

// Topics lists the topics.
func (o ops) Topics(ctx context.Context) ([]*fluxopb.TopicMetadata, error) {
	res, err := reply[*fluxopb.ListTopicsResponse](ctx, o, &fluxopb.ListTopicsRequest{})
	if err != nil {
		return nil, err
	}
	return res.Topics, nil
}

// DescribeTopic reports a topic and its partitions' offsets.
func (o ops) DescribeTopic(ctx context.Context, name string) (*fluxopb.DescribeTopicResponse, error) {
	res, err := reply[*fluxopb.DescribeTopicResponse](ctx, o, &fluxopb.DescribeTopicRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return res, codeErr("describe topic "+name, res.ErrorCode, res.ErrorMessage)
}

// Produce appends records to one partition as one batch and returns the
// first record's offset once the batch is durable.
func (o ops) Produce(ctx context.Context, topic string, partition int32, records ...Record) (int64, error) {
	now := time.Now().UnixMilli()
	for i := range records {
		if records[i].Timestamp == 0 {
			records[i].Timestamp = now
		}
	}
	batch, err := recordbatch.Build(records, recordbatch.NoProducer)
	if err != nil {
		return -1, fmt.Errorf("produce %s/%d: %w", topic, partition, err)
	}
	res, err := reply[*fluxopb.ProduceResponse](ctx, o, &fluxopb.ProduceRequest{Topic: topic, Partition: partition, Records: batch, Acks: -1})
	if err != nil {
		return -1, err
	}
	if err := codeErr(fmt.Sprintf("produce %s/%d", topic, partition), res.ErrorCode, res.ErrorMessage); err != nil {
		return -1, err
	}
	return res.BaseOffset, nil
}

// Fetch reads records from offset on. By default it returns at once (possibly
// with no records); Wait makes it long-poll.
func (o ops) Fetch(ctx context.Context, topic string, partition int32, offset int64, opts ...FetchOption) (*FetchResult, error) {
	req := &fluxopb.FetchRequest{Topic: topic, Partition: partition, Offset: offset, MaxBytes: 1 << 20}
	for _, opt := range opts {
		opt(req)
	}
	res, err := reply[*fluxopb.FetchResponse](ctx, o, req)
	if err != nil {
		return nil, err
	}
	if err := codeErr(fmt.Sprintf("fetch %s/%d@%d", topic, partition, offset), res.ErrorCode, res.ErrorMessage); err != nil {
		return nil, err
	}
	out := &FetchResult{HighWatermark: res.HighWatermark, LogStartOffset: res.LogStartOffset}
	batches, err := recordbatch.Split(res.Records)
	if err != nil {
		return nil, fmt.Errorf("fetch %s/%d: %w", topic, partition, err)
	}
	for _, b := range batches {
		recs, err := recordbatch.Records(b)
		if err != nil {
			return nil, fmt.Errorf("fetch %s/%d: %w", topic, partition, err)
		}
		for _, r := range recs {
			if r.Offset >= offset {
				out.Records = append(out.Records, r)
			}
		}
	}
	return out, nil
}

// DeleteRecords removes the records before offset (-1: the high watermark)
// and returns the new log start offset.
func (o ops) DeleteRecords(ctx context.Context, topic string, partition int32, before int64) (int64, error) {
	res, err := reply[*fluxopb.DeleteRecordsResponse](ctx, o, &fluxopb.DeleteRecordsRequest{Topic: topic, Partition: partition, Offset: before})
	if err != nil {
		return -1, err
	}
	return res.LowWatermark, codeErr(fmt.Sprintf("delete records %s/%d", topic, partition), res.ErrorCode, res.ErrorMessage)
}
