package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// MaxTopicNameLen is Kafka's limit on topic name length.
const MaxTopicNameLen = 249

// topicKeyPrefix is the key prefix of topic records. The name follows,
// base64 RawURL encoded: its alphabet [A-Za-z0-9_-] is legal in KV keys and
// has no '.', so every Kafka name (which may contain '.', or be "a..b")
// maps to exactly one valid single-token key suffix and back.
const topicKeyPrefix = "topics."

var topicNameEnc = base64.RawURLEncoding

// ValidateTopicName reports whether name is a legal Kafka topic name:
// 1 to 249 characters from [a-zA-Z0-9._-], and neither "." nor "..".
func ValidateTopicName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTopicName)
	}
	if len(name) > MaxTopicNameLen {
		return fmt.Errorf("%w: %d characters, max %d", ErrInvalidTopicName, len(name), MaxTopicNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidTopicName, name)
	}
	for i := 0; i < len(name); i++ {
		if !isTopicChar(name[i]) {
			return fmt.Errorf("%w: %q has illegal character %q", ErrInvalidTopicName, name, name[i])
		}
	}
	return nil
}

func isTopicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// topicKey maps a topic name to its KV key.
func topicKey(name string) string {
	return topicKeyPrefix + topicNameEnc.EncodeToString([]byte(name))
}

// topicNameFromKey is topicKey's inverse.
func topicNameFromKey(key string) (string, error) {
	enc, ok := strings.CutPrefix(key, topicKeyPrefix)
	if !ok {
		return "", fmt.Errorf("key %q is not a topic key", key)
	}
	b, err := topicNameEnc.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("key %q: %w", key, err)
	}
	return string(b), nil
}

var marshalOpts = proto.MarshalOptions{Deterministic: true}

func decodeTopic(b []byte) (*fluxopb.TopicMetadata, error) {
	t := new(fluxopb.TopicMetadata)
	if err := proto.Unmarshal(b, t); err != nil {
		return nil, fmt.Errorf("decode topic metadata: %w", err)
	}
	return t, nil
}

// CreateTopic stores a new topic record. ErrTopicExists if a live record with
// that name is present; a deleted topic's name can be created again.
func (s *Store) CreateTopic(ctx context.Context, t *fluxopb.TopicMetadata) error {
	const op = "create topic"
	if t == nil {
		return opError(op, errors.New("nil topic metadata"))
	}
	if err := ValidateTopicName(t.GetName()); err != nil {
		return opError(op, err)
	}
	b, err := marshalOpts.Marshal(t)
	if err != nil {
		return opError(op, err)
	}
	_, err = s.create(ctx, topicKey(t.GetName()), b)
	if errors.Is(err, errKeyExists) {
		err = fmt.Errorf("%w: %q", ErrTopicExists, t.GetName())
	}
	return opError(op, err)
}

// GetTopic returns the topic's record and its revision (for callers that CAS
// on it themselves), read from the stream leader. ErrTopicNotFound if absent.
func (s *Store) GetTopic(ctx context.Context, name string) (*fluxopb.TopicMetadata, uint64, error) {
	const op = "get topic"
	t, rev, err := s.getTopic(ctx, name)
	return t, rev, opError(op, err)
}

func (s *Store) getTopic(ctx context.Context, name string) (*fluxopb.TopicMetadata, uint64, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, 0, err
	}
	e, err := s.readLatest(ctx, topicKey(name))
	if errors.Is(err, errNoKey) || err == nil && e.deleted {
		return nil, 0, fmt.Errorf("%w: %q", ErrTopicNotFound, name)
	}
	if err != nil {
		return nil, 0, err
	}
	t, err := decodeTopic(e.value)
	if err != nil {
		return nil, 0, err
	}
	return t, e.revision, nil
}

// ListTopics returns every live topic sorted by name (empty, not an error,
// when there are none). It is a snapshot read through a consumer on the
// stream; decisions about one topic should re-read it with GetTopic.
func (s *Store) ListTopics(ctx context.Context) ([]*fluxopb.TopicMetadata, error) {
	const op = "list topics"
	if s.down() {
		return nil, opError(op, errStoreClose)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	w, err := s.kv.Watch(ctx, topicKeyPrefix+">", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, opError(op, err)
	}
	defer w.Stop()
	var out []*fluxopb.TopicMetadata
	for {
		select {
		case <-ctx.Done():
			return nil, opError(op, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, opError(op, fmt.Errorf("%w: watch closed", ErrUnavailable))
			}
			if e == nil { // all current values delivered
				sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
				return out, nil
			}
			t, err := decodeTopic(e.Value())
			if err != nil {
				return nil, opError(op, fmt.Errorf("key %s: %w", e.Key(), err))
			}
			out = append(out, t)
		}
	}
}

// UpdateTopic applies fn to the topic's latest record and writes the result
// with a compare-and-set on the revision read, re-reading and re-applying fn
// on conflict (bounded; ErrConflict when exhausted). fn may be called more
// than once and must not change the name; an error from fn aborts the update
// and is returned wrapped. Returns the record as written.
func (s *Store) UpdateTopic(ctx context.Context, name string, fn func(*fluxopb.TopicMetadata) error) (*fluxopb.TopicMetadata, error) {
	const op = "update topic"
	var lastErr error
	for attempt := range maxCASAttempts {
		if attempt > 0 {
			if err := casBackoff(ctx, attempt); err != nil {
				return nil, opError(op, err)
			}
		}
		t, rev, err := s.getTopic(ctx, name)
		if err != nil {
			return nil, opError(op, err)
		}
		if err := fn(t); err != nil {
			return nil, opError(op, err)
		}
		if t.GetName() != name {
			return nil, opError(op, fmt.Errorf("update must not rename topic %q to %q", name, t.GetName()))
		}
		b, err := marshalOpts.Marshal(t)
		if err != nil {
			return nil, opError(op, err)
		}
		_, err = s.update(ctx, topicKey(name), b, rev)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, opError(op, err)
		}
		lastErr = err
	}
	return nil, opError(op, lastErr)
}

// DeleteTopic deletes the topic's record (a delete marker, compare-and-set on
// the revision read; retried if the record changed meanwhile).
// ErrTopicNotFound if it does not exist.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	const op = "delete topic"
	var lastErr error
	for attempt := range maxCASAttempts {
		if attempt > 0 {
			if err := casBackoff(ctx, attempt); err != nil {
				return opError(op, err)
			}
		}
		_, rev, err := s.getTopic(ctx, name)
		if err != nil {
			return opError(op, err)
		}
		err = s.delete(ctx, topicKey(name), rev)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return opError(op, err)
		}
		lastErr = err
	}
	return opError(op, lastErr)
}

// TopicEventOp is the kind of change a TopicEvent reports.
type TopicEventOp int

const (
	// TopicPut: the topic was created or updated.
	TopicPut TopicEventOp = iota + 1
	// TopicDelete: the topic was deleted.
	TopicDelete
)

func (o TopicEventOp) String() string {
	switch o {
	case TopicPut:
		return "put"
	case TopicDelete:
		return "delete"
	}
	return fmt.Sprintf("TopicEventOp(%d)", int(o))
}

// TopicEvent is a hint that a topic changed. Watches skip intermediate
// revisions and may lag: callers re-read the topic (GetTopic) on each hint.
type TopicEvent struct {
	Op       TopicEventOp
	Name     string
	Revision uint64
}

// WatchTopics delivers a TopicPut hint for every existing topic, then a hint
// per change, until ctx is done or the store is closed; then the channel is
// closed.
func (s *Store) WatchTopics(ctx context.Context) (<-chan TopicEvent, error) {
	return watchKV(ctx, s, "watch topics", topicKeyPrefix+">", 64, func(e jetstream.KeyValueEntry, initial bool) (TopicEvent, bool) {
		name, err := topicNameFromKey(e.Key())
		if err != nil {
			return TopicEvent{}, false
		}
		ev := TopicEvent{Op: TopicPut, Name: name, Revision: e.Revision()}
		if e.Operation() != jetstream.KeyValuePut {
			if initial {
				return TopicEvent{}, false // a topic deleted before the watch started
			}
			ev.Op = TopicDelete
		}
		return ev, true
	})
}
