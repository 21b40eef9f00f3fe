package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// brokerKeyPrefix is the key prefix of broker registrations; the node id
// (decimal) follows: brokers.<id>.
const brokerKeyPrefix = "brokers."

func brokerKey(id int32) string { return brokerKeyPrefix + strconv.Itoa(int(id)) }

// BrokerInfo is what a broker registers about itself: where Kafka clients
// reach it and where its peers reach its actors.
type BrokerInfo struct {
	NodeID     int32
	KafkaHost  string // advertised Kafka listener host
	KafkaPort  int32  // advertised Kafka listener port
	RemoteAddr string // protoactor remote address (replica fetches)
	Rack       string // optional
	// RegisteredAt is set by RegisterBroker.
	RegisteredAt time.Time
}

func (b BrokerInfo) proto() *fluxopb.BrokerRegistration {
	return &fluxopb.BrokerRegistration{
		NodeId:           b.NodeID,
		KafkaHost:        b.KafkaHost,
		KafkaPort:        b.KafkaPort,
		RemoteAddr:       b.RemoteAddr,
		Rack:             b.Rack,
		RegisteredUnixMs: b.RegisteredAt.UnixMilli(),
	}
}

func brokerFromProto(p *fluxopb.BrokerRegistration) BrokerInfo {
	return BrokerInfo{
		NodeID:       p.GetNodeId(),
		KafkaHost:    p.GetKafkaHost(),
		KafkaPort:    p.GetKafkaPort(),
		RemoteAddr:   p.GetRemoteAddr(),
		Rack:         p.GetRack(),
		RegisteredAt: time.UnixMilli(p.GetRegisteredUnixMs()),
	}
}

// RegisterBroker records (or replaces) the broker's registration at
// brokers.<id>, with a compare-and-set on the revision read (create when
// absent). A registration says a broker exists, not that it is alive:
// liveness comes from heartbeats (see Liveness).
func (s *Store) RegisterBroker(ctx context.Context, b BrokerInfo) error {
	const op = "register broker"
	if b.NodeID < 0 {
		return opError(op, fmt.Errorf("negative node id %d", b.NodeID))
	}
	if b.RegisteredAt.IsZero() {
		b.RegisteredAt = time.Now()
	}
	v, err := marshalOpts.Marshal(b.proto())
	if err != nil {
		return opError(op, err)
	}
	key := brokerKey(b.NodeID)
	for attempt := range maxCASAttempts {
		if attempt > 0 {
			if err := casBackoff(ctx, attempt); err != nil {
				return opError(op, err)
			}
		}
		e, err := s.readLatest(ctx, key)
		switch {
		case errors.Is(err, errNoKey) || err == nil && e.deleted:
			_, err = s.create(ctx, key, v)
			if errors.Is(err, errKeyExists) {
				continue // raced with another registration: re-read
			}
		case err != nil:
		default:
			_, err = s.update(ctx, key, v, e.revision)
			if errors.Is(err, ErrConflict) {
				continue
			}
		}
		return opError(op, err)
	}
	return opError(op, ErrConflict)
}

// GetBroker returns the broker's registration read from the stream leader;
// ok is false if it is not registered.
func (s *Store) GetBroker(ctx context.Context, id int32) (BrokerInfo, bool, error) {
	e, err := s.readLatest(ctx, brokerKey(id))
	if errors.Is(err, errNoKey) || err == nil && e.deleted {
		return BrokerInfo{}, false, nil
	}
	if err != nil {
		return BrokerInfo{}, false, opError("get broker", err)
	}
	p := new(fluxopb.BrokerRegistration)
	if err := proto.Unmarshal(e.value, p); err != nil {
		return BrokerInfo{}, false, opError("get broker", err)
	}
	return brokerFromProto(p), true, nil
}

// ListBrokers returns every registered broker sorted by node id. Like
// ListTopics it is a snapshot through a watch (a hint, possibly a little
// stale): decisions about one broker re-read it with GetBroker.
func (s *Store) ListBrokers(ctx context.Context) ([]BrokerInfo, error) {
	const op = "list brokers"
	var out []BrokerInfo
	err := s.scan(ctx, brokerKeyPrefix+">", func(e jetstream.KeyValueEntry) error {
		p := new(fluxopb.BrokerRegistration)
		if err := proto.Unmarshal(e.Value(), p); err != nil {
			return fmt.Errorf("key %s: %w", e.Key(), err)
		}
		out = append(out, brokerFromProto(p))
		return nil
	})
	if err != nil {
		return nil, opError(op, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, nil
}

// scan calls fn for the latest live value of every key matching pattern.
func (s *Store) scan(ctx context.Context, pattern string, fn func(jetstream.KeyValueEntry) error) error {
	if s.down() {
		return errStoreClose
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	w, err := s.kv.Watch(ctx, pattern, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("%w: watch closed", ErrUnavailable)
			}
			if e == nil { // all current values delivered
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}
