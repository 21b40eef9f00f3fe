// Package actors holds Fluxo's actors: the broker actor (root supervisor of a
// node and its remote endpoint), the partitions supervisor, and one partition
// actor per hosted partition. Each stateful actor is a pure state machine
// (partition_core.go) inside a thin protoactor shell (partition.go). The Node
// type wires them to storage and the coordination store and is what the
// embeddable Go API and the gateway call.
package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// BrokerActorName is the id of the broker actor; remote clients address
// actor.NewPID(remoteAddress, BrokerActorName).
const BrokerActorName = "broker"

// Node is one running broker: its actor system, storage, and actors.
type Node struct {
	cfg      Config
	logger   *slog.Logger
	system   *actor.ActorSystem
	remote   *remote.Remote
	store    *persistence.Store
	registry *registry

	brokerPID     *actor.PID
	partitionsPID *actor.PID
	groupsPID     *actor.PID
	groups        groupIndex
	member        *clusterMember // nil on a single node
	restarts      restartCounts
	topicMu       sync.Mutex // serialises topic create/delete/alter
	topicsMu      sync.RWMutex
	topics        map[string]*fluxopb.TopicMetadata
	stopRetention chan struct{}
	retentionDone chan struct{}
	actorsStopped chan struct{} // closed once Stop has stopped every actor
	stopOnce      sync.Once
	halting       atomic.Bool // Halt: stop without a controlled shutdown
	stopErr       error
}

// Start opens storage, loads topics from the coordination store, and spawns
// the actor tree. On error everything opened is closed again.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n = &Node{
		cfg:           cfg,
		logger:        cfg.Logger,
		registry:      newRegistry(),
		topics:        make(map[string]*fluxopb.TopicMetadata),
		groups:        groupIndex{groups: map[string]*GroupSummary{}},
		stopRetention: make(chan struct{}),
		retentionDone: make(chan struct{}),
		actorsStopped: make(chan struct{}),
	}
	store, err := persistence.Open(persistence.Options{
		Dir: cfg.DataDir, FS: cfg.FS, Sync: cfg.Sync, SegmentBytes: cfg.SegmentBytes, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	n.store = store
	stopped := false // Stop closed the store already
	defer func() {
		if err != nil && !stopped {
			_ = store.Close()
		}
	}()
	topics, err := cfg.Metadata.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("start: load topics: %w", err)
	}
	for _, t := range topics {
		n.topics[t.Name] = t
	}
	if err := n.removeOrphans(); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}

	if cfg.Cluster != nil {
		n.member = newClusterMember(n)
	}
	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return quietLogger(cfg.Logger)
	}))
	if cfg.RemoteListen != "" {
		if err := n.startRemote(cfg.RemoteListen); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	ready, groupsReady := make(chan *actor.PID, 1), make(chan *actor.PID, 1)
	props := actor.PropsFromProducer(func() actor.Actor { return &brokerActor{node: n, ready: ready, groupsReady: groupsReady} },
		actor.WithSupervisor(newBackoffStrategy(n.logger, &n.restarts)),
		actor.WithReceiverMiddleware(cfg.ActorMiddleware...))
	// The guardian of the broker actor is our strategy too, so a failed
	// request to it is answered and the restart backs off.
	root := n.system.Root.WithGuardian(newBackoffStrategy(n.logger, &n.restarts))
	n.brokerPID, err = root.SpawnNamed(props, BrokerActorName)
	if err != nil {
		n.shutdownRemote()
		return nil, fmt.Errorf("start: spawn broker actor: %w", err)
	}
	for _, c := range []struct {
		pid **actor.PID
		ch  chan *actor.PID
	}{{&n.partitionsPID, ready}, {&n.groupsPID, groupsReady}} {
		select {
		case *c.pid = <-c.ch:
		case <-ctx.Done():
			n.shutdownRemote()
			return nil, ctx.Err()
		}
	}
	// The groups supervisor rebuilds every group in its Started: wait for it,
	// so the first describe or offset fetch sees them.
	if _, err := n.system.Root.RequestFuture(n.groupsPID, &groupsProbe{}, cfg.RequestTimeout).Result(); err != nil {
		n.shutdownRemote()
		return nil, fmt.Errorf("start: load consumer groups: %w", err)
	}
	go n.retentionLoop()
	if n.member != nil {
		return n, nil // partitions start as the controller assigns them (JoinCluster)
	}
	if err := n.waitPartitionsStarted(ctx); err != nil {
		_ = n.Stop()
		stopped = true
		return nil, err
	}
	return n, nil
}

// startRemote starts the protoactor remote endpoint, turning its panic on a
// taken port into an error.
func (n *Node) startRemote(addr string) (err error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("remote listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("remote listen %q: bad port", addr)
	}
	// Probe first: remote.Start panics on a taken port and leaves state behind.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("remote listen %s: %w", addr, err)
	}
	if port == 0 {
		port = l.Addr().(*net.TCPAddr).Port
	}
	l.Close()
	n.remote = remote.NewRemote(n.system, RemoteConfig(host, port))
	defer func() {
		if r := recover(); r != nil {
			n.remote = nil
			err = fmt.Errorf("remote listen %s: %v", addr, r)
		}
	}()
	n.remote.Start()
	return nil
}

func (n *Node) shutdownRemote() {
	if n.remote != nil {
		n.remote.Shutdown(true)
		n.remote = nil
	}
}

// waitPartitionsStarted blocks until every partition of every topic has
// opened its log, so the node serves all of them when Start returns.
func (n *Node) waitPartitionsStarted(ctx context.Context) error {
	for _, t := range n.topicsSnapshot() {
		for p := int32(0); p < t.Partitions; p++ {
			id := persistence.PartitionID{Topic: t.Name, Partition: p}
			if err := n.waitPartition(ctx, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitPartition waits until the partition's actor has published its log.
func (n *Node) waitPartition(ctx context.Context, id persistence.PartitionID) error {
	deadline := time.Now().Add(n.cfg.RequestTimeout)
	for {
		if h := n.registry.get(id); h != nil {
			if _, err := h.view.currentLog(); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("partition %s-%d did not start within %v", id.Topic, id.Partition, n.cfg.RequestTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Stop stops the actors (answering held requests), syncs and closes storage.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		if n.member != nil {
			n.member.leave(n.halting.Load())
		}
		close(n.stopRetention)
		<-n.retentionDone
		if n.brokerPID != nil {
			if _, err := n.system.Root.PoisonFuture(n.brokerPID).Result(); err != nil {
				n.logger.Warn("stop broker actor", "err", err)
			}
		}
		close(n.actorsStopped)
		n.shutdownRemote()
		n.system.Shutdown()
		n.stopErr = n.store.Close()
	})
	return n.stopErr
}

// Halt stops the node as a crash would look to the cluster: no leaving
// announcement and no wait for leaderships to move (tests' broker kill).
func (n *Node) Halt() error {
	n.halting.Store(true)
	return n.Stop()
}

// System is the node's actor system (to spawn actors beside the broker's).
func (n *Node) System() *actor.ActorSystem { return n.system }

// RemoteAddress is the host:port remote clients send actor messages to, or ""
// when the node has no remote endpoint.
func (n *Node) RemoteAddress() string {
	if n.remote == nil {
		return ""
	}
	return n.system.Address()
}

// BrokerPID is the broker actor, the entry point for actor messages.
func (n *Node) BrokerPID() *actor.PID { return n.brokerPID }

// Restarts counts actor restarts since start, across all supervisors.
func (n *Node) Restarts() int64 { return n.restarts.total() }

// RestartsByKind counts actor restarts since start by the kind of actor
// restarted (RestartBroker, RestartPartition, ...); every kind is present.
func (n *Node) RestartsByKind() map[string]int64 {
	out := make(map[string]int64, len(restartKinds))
	for i, k := range restartKinds {
		out[k] = n.restarts[i].Load()
	}
	return out
}

// PartitionPID is the partition's actor, or nil if this node does not host it.
func (n *Node) PartitionPID(topic string, partition int32) *actor.PID {
	if h := n.registry.get(persistence.PartitionID{Topic: topic, Partition: partition}); h != nil {
		return h.pid
	}
	return nil
}

func (n *Node) handle(topic string, partition int32) (*partitionHandle, *kerr.Error) {
	h := n.registry.get(persistence.PartitionID{Topic: topic, Partition: partition})
	if h == nil {
		return nil, kerr.UnknownTopicOrPartition
	}
	return h, nil
}

// Produce appends the request's single record batch. With acks=0 it returns
// at once with no offset; otherwise once the batch is durable.
func (n *Node) Produce(ctx context.Context, req *fluxopb.ProduceRequest) (*fluxopb.ProduceResponse, error) {
	return n.ProduceSend(ctx, req)()
}

// ProduceSend hands the batch to its partition actor now and returns a
// function that waits for the answer. Batches sent one after another reach
// the partition in that order, so a caller that must keep order (a Kafka
// connection pipelining produce requests) sends in order and waits in any.
func (n *Node) ProduceSend(ctx context.Context, req *fluxopb.ProduceRequest) func() (*fluxopb.ProduceResponse, error) {
	h, kerrr := n.handle(req.Topic, req.Partition)
	if kerrr != nil {
		return produceRefused(kerrr, fmt.Sprintf("topic %q partition %d does not exist", req.Topic, req.Partition))
	}
	if n.Fenced() && h.view.leader.Load() {
		return produceRefused(kerr.NotLeaderForPartition, "this broker is cut off from the cluster's majority: its leadership may have moved")
	}
	if req.Acks == 0 {
		n.system.Root.Send(h.pid, req)
		return func() (*fluxopb.ProduceResponse, error) {
			return &fluxopb.ProduceResponse{BaseOffset: -1, LogAppendTimeMs: -1}, nil
		}
	}
	timeout, err := n.timeout(ctx, req.TimeoutMs)
	if err != nil {
		return func() (*fluxopb.ProduceResponse, error) { return nil, err }
	}
	fut := n.system.Root.RequestFuture(h.pid, req, timeout)
	return func() (*fluxopb.ProduceResponse, error) {
		res, err := fut.Result()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTimeout, err)
		}
		pr, ok := res.(*fluxopb.ProduceResponse)
		if !ok {
			return nil, fmt.Errorf("produce: unexpected reply %T", res)
		}
		return pr, nil
	}
}

// produceRefused answers a produce without sending it to the partition.
func produceRefused(e *kerr.Error, msg string) func() (*fluxopb.ProduceResponse, error) {
	res := &fluxopb.ProduceResponse{ErrorCode: int32(e.Code), ErrorMessage: msg, BaseOffset: -1, LogAppendTimeMs: -1}
	return func() (*fluxopb.ProduceResponse, error) { return res, nil }
}

// timeout is the bound of one request: the node's RequestTimeout, lowered by
// timeoutMs (if positive) and the context's deadline.
func (n *Node) timeout(ctx context.Context, timeoutMs int32) (time.Duration, error) {
	timeout := n.cfg.RequestTimeout
	if timeoutMs > 0 && time.Duration(timeoutMs)*time.Millisecond < timeout {
		timeout = time.Duration(timeoutMs) * time.Millisecond
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return 0, context.DeadlineExceeded
	}
	return timeout, nil
}

// request sends msg to pid and waits for the reply, bounded by the context,
// timeoutMs (if positive) and the node's RequestTimeout.
func (n *Node) request(ctx context.Context, pid *actor.PID, msg any, timeoutMs int32) (any, error) {
	timeout, err := n.timeout(ctx, timeoutMs)
	if err != nil {
		return nil, err
	}
	res, err := n.system.Root.RequestFuture(pid, msg, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return res, nil
}

// ErrTimeout: an actor did not answer in time; the request may have taken
// effect.
var ErrTimeout = errors.New("request timed out")

// Fetch reads record batches from the request's offset, long-polling up to
// MaxWaitMs for MinBytes. The first batch may start before the offset.
func (n *Node) Fetch(ctx context.Context, req *fluxopb.FetchRequest) (*fluxopb.FetchResponse, error) {
	h, kerrr := n.handle(req.Topic, req.Partition)
	if kerrr != nil {
		return &fluxopb.FetchResponse{ErrorCode: int32(kerrr.Code), ErrorMessage: fmt.Sprintf("topic %q partition %d does not exist", req.Topic, req.Partition), HighWatermark: -1, LogStartOffset: -1}, nil
	}
	if !n.leads(h) {
		return &fluxopb.FetchResponse{ErrorCode: int32(kerr.NotLeaderForPartition.Code), ErrorMessage: "this broker does not lead the partition", HighWatermark: -1, LogStartOffset: -1}, nil
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	res, err := h.view.fetch(ctx, req.Offset, maxBytes, int(req.MinBytes), time.Duration(req.MaxWaitMs)*time.Millisecond)
	countOut(h.view, res.records)
	out := &fluxopb.FetchResponse{HighWatermark: res.hw, LogStartOffset: res.logStart, Records: res.records}
	switch {
	case err == nil:
	case errors.Is(err, persistence.ErrOffsetOutOfRange):
		out.ErrorCode = int32(kerr.OffsetOutOfRange.Code)
		out.ErrorMessage = fmt.Sprintf("offset %d is outside [%d, %d]", req.Offset, res.logStart, h.view.logEnd.Load())
	case errors.Is(err, errPartitionUnavailable):
		out.ErrorCode = int32(kerr.NotLeaderForPartition.Code)
		out.ErrorMessage = err.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, err
	default:
		out.ErrorCode = int32(kerr.KafkaStorageError.Code)
		out.ErrorMessage = err.Error()
	}
	return out, nil
}

// ListOffsets resolves a timestamp (or -1 latest, -2 earliest, -3 max
// timestamp) to an offset, as Kafka's ListOffsets does.
func (n *Node) ListOffsets(ctx context.Context, req *fluxopb.ListOffsetsRequest) (*fluxopb.ListOffsetsResponse, error) {
	h, kerrr := n.handle(req.Topic, req.Partition)
	if kerrr != nil {
		return &fluxopb.ListOffsetsResponse{ErrorCode: int32(kerrr.Code), Offset: -1, Timestamp: -1}, nil
	}
	log, err := h.view.currentLog()
	if err == nil && !n.leads(h) {
		err = errors.New("this broker does not lead the partition")
	}
	if err != nil {
		return &fluxopb.ListOffsetsResponse{ErrorCode: int32(kerr.NotLeaderForPartition.Code), ErrorMessage: err.Error(), Offset: -1, Timestamp: -1}, nil
	}
	hw := h.view.hw.Load()
	switch req.Timestamp {
	case -1:
		return &fluxopb.ListOffsetsResponse{Offset: hw, Timestamp: -1}, nil
	case -2:
		return &fluxopb.ListOffsetsResponse{Offset: h.view.logStart.Load(), Timestamp: -1}, nil
	case -3:
		maxTS := log.Checkpoint().MaxTimestamp
		if maxTS < 0 {
			return &fluxopb.ListOffsetsResponse{Offset: -1, Timestamp: -1}, nil
		}
		return n.offsetForTimestamp(log, hw, maxTS, true)
	}
	if req.Timestamp < 0 {
		return &fluxopb.ListOffsetsResponse{ErrorCode: int32(kerr.InvalidRequest.Code), ErrorMessage: fmt.Sprintf("timestamp %d", req.Timestamp), Offset: -1, Timestamp: -1}, nil
	}
	return n.offsetForTimestamp(log, hw, req.Timestamp, false)
}

// offsetForTimestamp finds the first record with timestamp >= ts (exact: true
// for the record whose timestamp equals ts, the max-timestamp lookup), by the
// batch index and then the batch's records.
func (n *Node) offsetForTimestamp(log persistence.Log, hw, ts int64, exact bool) (*fluxopb.ListOffsetsResponse, error) {
	notFound := &fluxopb.ListOffsetsResponse{Offset: -1, Timestamp: -1}
	base, _, err := log.OffsetForTimestamp(ts)
	if errors.Is(err, persistence.ErrNotFound) {
		return notFound, nil
	}
	if err != nil {
		return &fluxopb.ListOffsetsResponse{ErrorCode: int32(kerr.KafkaStorageError.Code), ErrorMessage: err.Error(), Offset: -1, Timestamp: -1}, nil
	}
	for base < hw {
		data, err := log.Read(base, 1, hw)
		if err != nil || len(data) == 0 {
			break
		}
		batches, err := recordbatch.Split(data)
		if err != nil || len(batches) == 0 {
			break
		}
		recs, err := recordbatch.Records(batches[0])
		if err != nil {
			return &fluxopb.ListOffsetsResponse{ErrorCode: int32(kerr.CorruptMessage.Code), ErrorMessage: err.Error(), Offset: -1, Timestamp: -1}, nil
		}
		for _, r := range recs {
			if (exact && r.Timestamp == ts) || (!exact && r.Timestamp >= ts) {
				return &fluxopb.ListOffsetsResponse{Offset: r.Offset, Timestamp: r.Timestamp}, nil
			}
		}
		h, _ := recordbatch.ParseHeader(batches[0])
		base = h.LastOffset() + 1
	}
	return notFound, nil
}

// DeleteRecords advances the partition's log start offset.
func (n *Node) DeleteRecords(ctx context.Context, req *fluxopb.DeleteRecordsRequest) (*fluxopb.DeleteRecordsResponse, error) {
	h, kerrr := n.handle(req.Topic, req.Partition)
	if kerrr != nil {
		return &fluxopb.DeleteRecordsResponse{ErrorCode: int32(kerrr.Code), LowWatermark: -1}, nil
	}
	res, err := n.request(ctx, h.pid, req, 0)
	if err != nil {
		return nil, err
	}
	out, ok := res.(*fluxopb.DeleteRecordsResponse)
	if !ok {
		return nil, fmt.Errorf("delete records: unexpected reply %T", res)
	}
	return out, nil
}

// PartitionInfo reports one partition's offsets and size.
func (n *Node) PartitionInfo(ctx context.Context, topic string, partition int32) (*fluxopb.PartitionInfo, error) {
	h, kerrr := n.handle(topic, partition)
	if kerrr != nil {
		return nil, kerrr
	}
	res, err := n.request(ctx, h.pid, &infoMsg{}, 0)
	if err != nil {
		return nil, err
	}
	info, ok := res.(*fluxopb.PartitionInfo)
	if !ok {
		return nil, fmt.Errorf("partition info: unexpected reply %T", res)
	}
	return info, nil
}

// Truncate removes every offset at or after endOffset from a partition (for
// tests and, later, followers after a leader change).
func (n *Node) Truncate(ctx context.Context, topic string, partition int32, endOffset int64) error {
	h, kerrr := n.handle(topic, partition)
	if kerrr != nil {
		return kerrr
	}
	res, err := n.request(ctx, h.pid, &truncateMsg{endOffset: endOffset}, 0)
	if err != nil {
		return err
	}
	if r, ok := res.(*checkpointReply); !ok {
		return fmt.Errorf("truncate: unexpected reply %T", res)
	} else if r.err != nil {
		return fmt.Errorf("truncate: %w", r.err)
	}
	return nil
}

// quietLogger keeps protoactor's chatty info logs out of ours.
func quietLogger(l *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{h: l.Handler(), min: slog.LevelWarn})
}

type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(a), min: f.min}
}
func (f levelFilter) WithGroup(g string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(g), min: f.min}
}

// PartitionState is what a partition last published, read without a round
// trip to its actor.
type PartitionState struct {
	HighWatermark  int64
	LogStartOffset int64
	LogEndOffset   int64
	LeaderEpoch    int32
	Leader         bool // this node leads the partition
}

// Partition reports a hosted partition's published state; ok is false when
// this node does not host it.
func (n *Node) Partition(topic string, partition int32) (st PartitionState, ok bool) {
	h := n.registry.get(persistence.PartitionID{Topic: topic, Partition: partition})
	if h == nil {
		return st, false
	}
	return PartitionState{
		HighWatermark:  h.view.hw.Load(),
		LogStartOffset: h.view.logStart.Load(),
		LogEndOffset:   h.view.logEnd.Load(),
		LeaderEpoch:    h.view.leaderEpoch.Load(),
		Leader:         h.view.leader.Load(),
	}, true
}

// Topic returns a topic's metadata from the node's cache, or nil.
func (n *Node) Topic(name string) *fluxopb.TopicMetadata { return n.cachedTopic(name) }

// TopicByID returns the topic with the given 16-byte id, or nil.
func (n *Node) TopicByID(id [16]byte) *fluxopb.TopicMetadata {
	for _, t := range n.topicsSnapshot() {
		if string(t.Id) == string(id[:]) {
			return t
		}
	}
	return nil
}

// DefaultPartitions is the partition count of topics created without one.
func (n *Node) DefaultPartitions() int32 { return n.cfg.DefaultPartitions }

// PartitionStats is one hosted partition's published state and traffic
// counters (since the partition was opened on this node), for metrics.
type PartitionStats struct {
	Topic     string
	Partition int32
	PartitionState
	BytesIn, RecordsIn   int64 // batches appended
	BytesOut, RecordsOut int64 // batches sent to consumers (CountFetched)
	SizeBytes            int64 // segment bytes on disk; 0 while the partition is restarting
}

// PartitionStats reports every hosted partition, sorted by topic and
// partition, without a round trip to the partition actors.
func (n *Node) PartitionStats() []PartitionStats {
	hs := n.registry.all()
	out := make([]PartitionStats, len(hs))
	for i, h := range hs {
		v := h.view
		out[i] = PartitionStats{
			Topic: h.id.Topic, Partition: h.id.Partition,
			PartitionState: PartitionState{
				HighWatermark:  v.hw.Load(),
				LogStartOffset: v.logStart.Load(),
				LogEndOffset:   v.logEnd.Load(),
				LeaderEpoch:    v.leaderEpoch.Load(),
			},
			BytesIn: v.bytesIn.Load(), RecordsIn: v.recordsIn.Load(),
			BytesOut: v.bytesOut.Load(), RecordsOut: v.recordsOut.Load(),
		}
		if log, err := v.currentLog(); err == nil {
			out[i].SizeBytes = log.Size()
		}
	}
	return out
}

// CountFetched adds records, whole batches sent to a consumer from the
// partition, to its bytes-out and records-out counters. It walks the batch
// headers only.
func (n *Node) CountFetched(topic string, partition int32, records []byte) {
	if len(records) == 0 {
		return
	}
	if h := n.registry.get(persistence.PartitionID{Topic: topic, Partition: partition}); h != nil {
		countOut(h.view, records)
	}
}

func countOut(v *partitionView, records []byte) {
	var count int64
	for p := 0; p+recordbatch.HeaderSize <= len(records); {
		h, err := recordbatch.ParseHeader(records[p:])
		if err != nil || h.Size() <= 0 {
			break
		}
		count += int64(h.RecordCount)
		p += h.Size()
	}
	v.bytesOut.Add(int64(len(records)))
	v.recordsOut.Add(count)
}

// StorageMetrics returns the Pebble metrics of the node's store (disk usage,
// compactions, WAL), or nil once the node is stopped.
func (n *Node) StorageMetrics() *pebble.Metrics { return n.store.Metrics() }

// SegmentSyncs counts the segment fdatasyncs (group-commit rounds per
// segment) since the node started.
func (n *Node) SegmentSyncs() int64 { return n.store.SegmentSyncs() }
