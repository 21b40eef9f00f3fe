package actors

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// MetadataStore is the coordination store as the node uses it;
// *cluster.Store implements it. Errors wrap cluster.ErrTopicExists and
// cluster.ErrTopicNotFound where those apply.
type MetadataStore interface {
	CreateTopic(ctx context.Context, t *fluxopb.TopicMetadata) error
	GetTopic(ctx context.Context, name string) (*fluxopb.TopicMetadata, uint64, error)
	ListTopics(ctx context.Context) ([]*fluxopb.TopicMetadata, error)
	UpdateTopic(ctx context.Context, name string, fn func(*fluxopb.TopicMetadata) error) (*fluxopb.TopicMetadata, error)
	DeleteTopic(ctx context.Context, name string) error
}

// topicSettings are a topic's effective settings: its config over the
// broker defaults.
type topicSettings struct {
	retentionMs     int64
	retentionBytes  int64
	maxMessageBytes int32
	minInsync       int32 // 0: the default (2, or 1 below 3 replicas)
}

func (n *Node) topicConfig(t *fluxopb.TopicMetadata) topicSettings {
	s := topicSettings{
		retentionMs:     n.cfg.DefaultRetentionMs,
		retentionBytes:  n.cfg.DefaultRetentionBytes,
		maxMessageBytes: n.cfg.DefaultMaxMessageBytes,
	}
	if c := t.GetConfig(); c != nil {
		if c.RetentionMs != nil {
			s.retentionMs = *c.RetentionMs
		}
		if c.RetentionBytes != nil {
			s.retentionBytes = *c.RetentionBytes
		}
		if c.MaxMessageBytes != nil {
			s.maxMessageBytes = *c.MaxMessageBytes
		}
		if c.MinInsyncReplicas != nil {
			s.minInsync = *c.MinInsyncReplicas
		}
	}
	return s
}

// validateTopicConfig checks the settings Fluxo understands.
func validateTopicConfig(c *fluxopb.TopicConfig) error {
	if c == nil {
		return nil
	}
	if c.RetentionMs != nil && *c.RetentionMs < -1 {
		return fmt.Errorf("retention.ms %d must be -1 (forever) or >= 0", *c.RetentionMs)
	}
	if c.RetentionBytes != nil && *c.RetentionBytes < -1 {
		return fmt.Errorf("retention.bytes %d must be -1 (no limit) or >= 0", *c.RetentionBytes)
	}
	if c.MaxMessageBytes != nil && *c.MaxMessageBytes < 0 {
		return fmt.Errorf("max.message.bytes %d must be >= 0", *c.MaxMessageBytes)
	}
	if c.MinInsyncReplicas != nil && *c.MinInsyncReplicas < 1 {
		return fmt.Errorf("min.insync.replicas %d must be >= 1", *c.MinInsyncReplicas)
	}
	if c.CleanupPolicy != nil && *c.CleanupPolicy != "delete" {
		return fmt.Errorf("cleanup.policy %q is not supported; only \"delete\"", *c.CleanupPolicy)
	}
	return nil
}

func (n *Node) topicsSnapshot() []*fluxopb.TopicMetadata {
	n.topicsMu.RLock()
	defer n.topicsMu.RUnlock()
	out := make([]*fluxopb.TopicMetadata, 0, len(n.topics))
	for _, t := range n.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (n *Node) cachedTopic(name string) *fluxopb.TopicMetadata {
	n.topicsMu.RLock()
	defer n.topicsMu.RUnlock()
	return n.topics[name]
}

func (n *Node) setTopic(t *fluxopb.TopicMetadata) {
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	if t == nil {
		return
	}
	n.topics[t.Name] = t
}

func topicErr(e *kerr.Error, format string, args ...any) (int32, string) {
	return int32(e.Code), fmt.Sprintf(format, args...)
}

// CreateTopic records the topic in the coordination store and starts its
// partitions. Partitions 0 takes the default count.
func (n *Node) CreateTopic(ctx context.Context, req *fluxopb.CreateTopicRequest) (*fluxopb.CreateTopicResponse, error) {
	res := &fluxopb.CreateTopicResponse{}
	if err := cluster.ValidateTopicName(req.Name); err != nil {
		res.ErrorCode, res.ErrorMessage = topicErr(kerr.InvalidTopicException, "%v", err)
		return res, nil
	}
	parts := req.Partitions
	if parts == 0 {
		parts = n.cfg.DefaultPartitions
	}
	if parts < 1 || parts > n.cfg.MaxPartitionsPerTopic {
		res.ErrorCode, res.ErrorMessage = topicErr(kerr.InvalidPartitions, "partition count %d must be between 1 and %d", parts, n.cfg.MaxPartitionsPerTopic)
		return res, nil
	}
	if err := validateTopicConfig(req.Config); err != nil {
		res.ErrorCode, res.ErrorMessage = topicErr(kerr.InvalidConfig, "%v", err)
		return res, nil
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("create topic: uuid: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	rf, live := req.ReplicationFactor, int32(n.liveCount())
	if rf <= 0 {
		rf = int32(cluster.DefaultReplicationFactor(int(live)))
	}
	if rf > live {
		res.ErrorCode, res.ErrorMessage = topicErr(kerr.InvalidReplicationFactor, "replication factor %d exceeds the %d live brokers", rf, live)
		return res, nil
	}
	t := &fluxopb.TopicMetadata{
		Name:              req.Name,
		Id:                id,
		Partitions:        parts,
		Config:            req.Config,
		CreatedUnixMs:     n.cfg.Now().UnixMilli(),
		ReplicationFactor: rf,
	}
	if t.Config == nil {
		t.Config = &fluxopb.TopicConfig{}
	}
	res.Topic = t
	if req.ValidateOnly {
		if n.cachedTopic(req.Name) != nil {
			res.ErrorCode, res.ErrorMessage = topicErr(kerr.TopicAlreadyExists, "topic %q already exists", req.Name)
		}
		return res, nil
	}
	n.topicMu.Lock()
	defer n.topicMu.Unlock()
	if err := n.cfg.Metadata.CreateTopic(ctx, t); err != nil {
		if errors.Is(err, cluster.ErrTopicExists) {
			res.ErrorCode, res.ErrorMessage = topicErr(kerr.TopicAlreadyExists, "topic %q already exists", req.Name)
			return res, nil
		}
		return nil, fmt.Errorf("create topic %q: %w", req.Name, err)
	}
	n.setTopic(t)
	n.logger.Info("topic created", "topic", t.Name, "partitions", t.Partitions)
	if err := n.startTopicPartitions(ctx, t); err != nil {
		// The topic exists; its partitions start when the supervisor
		// recovers. Kafka answers a creation still in progress the same way.
		n.logger.Warn("create topic: partitions not started yet", "topic", req.Name, "err", err)
		res.ErrorCode, res.ErrorMessage = topicErr(kerr.RequestTimedOut, "topic %q was created but its partitions are not serving yet: %v", req.Name, err)
	}
	return res, nil
}

func partitionIDs(t *fluxopb.TopicMetadata, from int32) []persistence.PartitionID {
	var ids []persistence.PartitionID
	for p := from; p < t.Partitions; p++ {
		ids = append(ids, persistence.PartitionID{Topic: t.Name, Partition: p})
	}
	return ids
}

func (n *Node) startTopicPartitions(ctx context.Context, t *fluxopb.TopicMetadata) error {
	if n.member != nil {
		// The controller places the partitions; each broker starts its
		// replicas as the states arrive (clusterMember.followPartitions).
		n.member.kickController()
		return n.waitLeaders(ctx, t, 0)
	}
	ids := partitionIDs(t, 0)
	res, err := n.request(ctx, n.partitionsPID, &startPartitions{ids: ids, maxMessageBytes: n.topicConfig(t).maxMessageBytes, minInsync: n.topicConfig(t).minInsync}, 0)
	if err != nil {
		return err
	}
	if d, ok := res.(*doneMsg); !ok || d.err != nil {
		return fmt.Errorf("start partitions: %v", res)
	}
	for _, id := range ids {
		if err := n.waitPartition(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// DeleteTopic removes the topic from the coordination store, stops its
// partitions and deletes their data.
func (n *Node) DeleteTopic(ctx context.Context, req *fluxopb.DeleteTopicRequest) (*fluxopb.DeleteTopicResponse, error) {
	res := &fluxopb.DeleteTopicResponse{}
	n.topicMu.Lock()
	defer n.topicMu.Unlock()
	t := n.cachedTopic(req.Name)
	if len(req.Id) > 0 && (t == nil || string(t.Id) != string(req.Id)) {
		res.ErrorCode, res.ErrorMessage = topicErr(kerr.UnknownTopicID, "no topic has id %x", req.Id)
		return res, nil
	}
	if err := n.cfg.Metadata.DeleteTopic(ctx, req.Name); err != nil {
		if errors.Is(err, cluster.ErrTopicNotFound) {
			res.ErrorCode, res.ErrorMessage = topicErr(kerr.UnknownTopicOrPartition, "topic %q does not exist", req.Name)
			return res, nil
		}
		return nil, fmt.Errorf("delete topic %q: %w", req.Name, err)
	}
	n.logger.Info("topic deleted", "topic", req.Name)
	if n.member != nil {
		// The other brokers drop their replicas when their topic watch
		// sees the deletion.
		if err := n.member.store.DeletePartitionStates(ctx, req.Name); err != nil {
			n.logger.Warn("delete topic: partition states", "topic", req.Name, "err", err)
		}
	}
	if t == nil {
		return res, nil
	}
	if err := n.dropLocalTopic(ctx, t); err != nil {
		return nil, fmt.Errorf("delete topic %q: %w", req.Name, err)
	}
	return res, nil
}

// dropLocalTopic forgets a deleted topic here: its cache entry, its
// partition actors and data, and the groups' offsets for it.
func (n *Node) dropLocalTopic(ctx context.Context, t *fluxopb.TopicMetadata) error {
	n.topicsMu.Lock()
	if cur := n.topics[t.Name]; cur != nil && string(cur.Id) == string(t.Id) {
		delete(n.topics, t.Name)
	}
	n.topicsMu.Unlock()
	ids := partitionIDs(t, 0)
	if _, err := n.request(ctx, n.partitionsPID, &stopPartitions{ids: ids}, 0); err != nil {
		return fmt.Errorf("stop partitions: %w", err)
	}
	for _, id := range ids {
		if err := n.store.DeletePartition(id); err != nil {
			return err
		}
	}
	n.forgetTopicOffsets(ctx, t.Name)
	return nil
}

// ListTopics lists the topics, sorted by name.
func (n *Node) ListTopics(ctx context.Context) ([]*fluxopb.TopicMetadata, error) {
	return n.topicsSnapshot(), nil
}

// DescribeTopic reports the topic and each partition's offsets.
func (n *Node) DescribeTopic(ctx context.Context, req *fluxopb.DescribeTopicRequest) (*fluxopb.DescribeTopicResponse, error) {
	t := n.cachedTopic(req.Name)
	if t == nil {
		return &fluxopb.DescribeTopicResponse{ErrorCode: int32(kerr.UnknownTopicOrPartition.Code), ErrorMessage: fmt.Sprintf("topic %q does not exist", req.Name)}, nil
	}
	res := &fluxopb.DescribeTopicResponse{Topic: t}
	for p := int32(0); p < t.Partitions; p++ {
		info, err := n.PartitionInfo(ctx, t.Name, p)
		if err != nil {
			return nil, fmt.Errorf("describe topic %q: %w", req.Name, err)
		}
		res.Partitions = append(res.Partitions, info)
	}
	return res, nil
}

// AlterTopicConfig replaces the config fields the request sets.
func (n *Node) AlterTopicConfig(ctx context.Context, req *fluxopb.AlterTopicConfigRequest) (*fluxopb.AlterTopicConfigResponse, error) {
	res := &fluxopb.AlterTopicConfigResponse{}
	if err := validateTopicConfig(req.Config); err != nil {
		res.ErrorCode, res.ErrorMessage = topicErr(kerr.InvalidConfig, "%v", err)
		return res, nil
	}
	n.topicMu.Lock()
	defer n.topicMu.Unlock()
	t, err := n.cfg.Metadata.UpdateTopic(ctx, req.Name, func(t *fluxopb.TopicMetadata) error {
		if t.Config == nil {
			t.Config = &fluxopb.TopicConfig{}
		}
		proto.Merge(t.Config, req.Config)
		return nil
	})
	if errors.Is(err, cluster.ErrTopicNotFound) {
		res.ErrorCode, res.ErrorMessage = topicErr(kerr.UnknownTopicOrPartition, "topic %q does not exist", req.Name)
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("alter topic %q: %w", req.Name, err)
	}
	n.setTopic(t)
	n.configChanged(t)
	res.Topic = t
	return res, nil
}

// configChanged hands the topic's new settings to its running partitions.
func (n *Node) configChanged(t *fluxopb.TopicMetadata) {
	ts := n.topicConfig(t)
	for _, id := range partitionIDs(t, 0) {
		if h := n.registry.get(id); h != nil {
			h.view.maxMessageBytes.Store(ts.maxMessageBytes)
			h.view.minInsync.Store(ts.minInsync)
			n.system.Root.Send(h.pid, &configChanged{})
		}
	}
}

// TopicError is a topic operation refused with a Kafka error code: nothing
// was changed. Other errors from the topic functions are failures of the
// node or the coordination store.
type TopicError struct {
	Err     *kerr.Error
	Message string
}

func (e *TopicError) Error() string { return e.Err.Message + ": " + e.Message }

// Unwrap lets errors.Is match the Kafka error.
func (e *TopicError) Unwrap() error { return e.Err }

func newTopicError(e *kerr.Error, format string, args ...any) *TopicError {
	return &TopicError{Err: e, Message: fmt.Sprintf(format, args...)}
}

// TopicDefaults are the broker-wide settings topics fall back to.
type TopicDefaults struct {
	Partitions            int32
	MaxPartitionsPerTopic int32
	RetentionMs           int64
	RetentionBytes        int64
	MaxMessageBytes       int32
	CleanupPolicy         string
	MinInsyncReplicas     int32
}

// TopicDefaults reports the broker defaults of topic settings.
func (n *Node) TopicDefaults() TopicDefaults {
	return TopicDefaults{
		Partitions:            n.cfg.DefaultPartitions,
		MaxPartitionsPerTopic: n.cfg.MaxPartitionsPerTopic,
		RetentionMs:           n.cfg.DefaultRetentionMs,
		RetentionBytes:        n.cfg.DefaultRetentionBytes,
		MaxMessageBytes:       n.cfg.DefaultMaxMessageBytes,
		CleanupPolicy:         "delete",
		MinInsyncReplicas:     cmp.Or(n.cfg.DefaultMinInsyncReplicas, 2),
	}
}

// checkAddPartitions validates growing t to newCount partitions.
func (n *Node) checkAddPartitions(t *fluxopb.TopicMetadata, newCount int32) error {
	if newCount <= t.Partitions {
		return newTopicError(kerr.InvalidPartitions, "topic %q has %d partitions; the new count %d must be larger", t.Name, t.Partitions, newCount)
	}
	if newCount > n.cfg.MaxPartitionsPerTopic {
		return newTopicError(kerr.InvalidPartitions, "partition count %d exceeds the maximum %d", newCount, n.cfg.MaxPartitionsPerTopic)
	}
	return nil
}

// AddPartitions grows topic to newCount partitions: it compare-and-sets the
// count in the coordination store and starts the new partitions. With
// validateOnly it only checks. Refusals are *TopicError
// (UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS); partitions that do not
// start in time give REQUEST_TIMED_OUT, the topic having grown.
func (n *Node) AddPartitions(ctx context.Context, topic string, newCount int32, validateOnly bool) (*fluxopb.TopicMetadata, error) {
	if validateOnly {
		t := n.cachedTopic(topic)
		if t == nil {
			return nil, newTopicError(kerr.UnknownTopicOrPartition, "topic %q does not exist", topic)
		}
		if err := n.checkAddPartitions(t, newCount); err != nil {
			return nil, err
		}
		t = proto.Clone(t).(*fluxopb.TopicMetadata)
		t.Partitions = newCount
		return t, nil
	}
	n.topicMu.Lock()
	defer n.topicMu.Unlock()
	t, err := n.cfg.Metadata.UpdateTopic(ctx, topic, func(t *fluxopb.TopicMetadata) error {
		if err := n.checkAddPartitions(t, newCount); err != nil {
			return err
		}
		t.Partitions = newCount
		return nil
	})
	if err != nil {
		return nil, n.topicUpdateErr("add partitions", topic, err)
	}
	n.setTopic(t)
	n.logger.Info("partitions added", "topic", topic, "partitions", newCount)
	if err := n.startTopicPartitions(ctx, t); err != nil {
		n.logger.Warn("add partitions: partitions not started yet", "topic", topic, "err", err)
		return t, newTopicError(kerr.RequestTimedOut, "topic %q now has %d partitions but they are not all serving yet: %v", topic, newCount, err)
	}
	return t, nil
}

// topicUpdateErr maps an UpdateTopic failure: a refusal from the update
// function as is, a missing topic to UNKNOWN_TOPIC_OR_PARTITION.
func (n *Node) topicUpdateErr(op, topic string, err error) error {
	var te *TopicError
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, cluster.ErrTopicNotFound) {
		return newTopicError(kerr.UnknownTopicOrPartition, "topic %q does not exist", topic)
	}
	if errors.Is(err, cluster.ErrInvalidTopicName) {
		return newTopicError(kerr.InvalidTopicException, "%v", err)
	}
	return fmt.Errorf("%s %q: %w", op, topic, err)
}

// UpdateTopicConfig applies fn to a copy of the topic's config, validates
// the result and stores it (compare-and-set; fn may run more than once), then
// hands the new settings to the running partitions. fn may clear fields
// (revert to the broker default) or replace the whole config. With
// validateOnly nothing is stored. Refusals are *TopicError (fn's own,
// UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG). Returns the topic as stored
// (or as it would be).
func (n *Node) UpdateTopicConfig(ctx context.Context, topic string, fn func(*fluxopb.TopicConfig) error, validateOnly bool) (*fluxopb.TopicMetadata, error) {
	apply := func(t *fluxopb.TopicMetadata) error {
		if t.Config == nil {
			t.Config = &fluxopb.TopicConfig{}
		}
		if err := fn(t.Config); err != nil {
			return err
		}
		if err := validateTopicConfig(t.Config); err != nil {
			return newTopicError(kerr.InvalidConfig, "%v", err)
		}
		return nil
	}
	if validateOnly {
		t := n.cachedTopic(topic)
		if t == nil {
			return nil, newTopicError(kerr.UnknownTopicOrPartition, "topic %q does not exist", topic)
		}
		t = proto.Clone(t).(*fluxopb.TopicMetadata)
		if err := apply(t); err != nil {
			return nil, err
		}
		return t, nil
	}
	n.topicMu.Lock()
	defer n.topicMu.Unlock()
	t, err := n.cfg.Metadata.UpdateTopic(ctx, topic, apply)
	if err != nil {
		return nil, n.topicUpdateErr("alter topic config", topic, err)
	}
	n.setTopic(t)
	n.configChanged(t)
	return t, nil
}

// removeOrphans deletes partition data the coordination store no longer
// lists (a topic deleted while this node was down, or mid-delete crash).
func (n *Node) removeOrphans() error {
	ids, err := n.store.Partitions()
	if err != nil {
		return fmt.Errorf("list partitions on disk: %w", err)
	}
	for _, id := range ids {
		t := n.topics[id.Topic]
		if t != nil && id.Partition < t.Partitions {
			continue
		}
		n.logger.Info("removing data of a deleted partition", "topic", id.Topic, "partition", id.Partition)
		if err := n.store.DeletePartition(id); err != nil {
			return err
		}
	}
	return nil
}
