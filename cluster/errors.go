package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sentinel errors. Every error returned by the store wraps one of these (or a
// caller's own error, or a context error) together with the operation's name,
// so callers test with errors.Is.
var (
	// ErrTopicExists: CreateTopic found a live topic with that name.
	ErrTopicExists = errors.New("topic already exists")
	// ErrTopicNotFound: the topic does not exist (or was deleted).
	ErrTopicNotFound = errors.New("topic not found")
	// ErrInvalidTopicName: the name is not a legal Kafka topic name.
	ErrInvalidTopicName = errors.New("invalid topic name")
	// ErrConflict: a compare-and-set lost against a concurrent writer and the
	// bounded retries (if any) were exhausted.
	ErrConflict = errors.New("revision conflict")
	// ErrUnavailable: the coordination store could not be reached or did not
	// answer in time (closed store, no JetStream leader, timeout).
	ErrUnavailable = errors.New("coordination store unavailable")
)

// opError wraps err with the operation's name and, where the cause is a NATS
// transport or availability failure, with ErrUnavailable; revision mismatches
// become ErrConflict. nil stays nil.
func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrTopicExists), errors.Is(err, ErrTopicNotFound),
		errors.Is(err, ErrInvalidTopicName), errors.Is(err, ErrConflict),
		errors.Is(err, ErrUnavailable):
		return fmt.Errorf("cluster: %s: %w", op, err)
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("cluster: %s: %w: %w", op, ErrConflict, err)
	case isUnavailable(err):
		return fmt.Errorf("cluster: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("cluster: %s: %w", op, err)
}

func isUnavailable(err error) bool {
	for _, target := range []error{
		nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionClosed,
		nats.ErrConnectionDraining, nats.ErrDisconnected,
		jetstream.ErrNoStreamResponse, jetstream.ErrJetStreamNotEnabled,
		context.DeadlineExceeded,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
