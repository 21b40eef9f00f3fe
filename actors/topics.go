package actors

import (
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
	t := &fluxopb.TopicMetadata{
		Name:              req.Name,
		Id:                id,
		Partitions:        parts,
		Config:            req.Config,
		CreatedUnixMs:     n.cfg.Now().UnixMilli(),
		ReplicationFactor: 1,
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
	ids := partitionIDs(t, 0)
	res, err := n.request(ctx, n.partitionsPID, &startPartitions{ids: ids, maxMessageBytes: n.topicConfig(t).maxMessageBytes}, 0)
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
	if err := n.cfg.Metadata.DeleteTopic(ctx, req.Name); err != nil {
		if errors.Is(err, cluster.ErrTopicNotFound) {
			res.ErrorCode, res.ErrorMessage = topicErr(kerr.UnknownTopicOrPartition, "topic %q does not exist", req.Name)
			return res, nil
		}
		return nil, fmt.Errorf("delete topic %q: %w", req.Name, err)
	}
	n.topicsMu.Lock()
	delete(n.topics, req.Name)
	n.topicsMu.Unlock()
	if t == nil {
		return res, nil
	}
	ids := partitionIDs(t, 0)
	if _, err := n.request(ctx, n.partitionsPID, &stopPartitions{ids: ids}, 0); err != nil {
		return nil, fmt.Errorf("delete topic %q: stop partitions: %w", req.Name, err)
	}
	for _, id := range ids {
		if err := n.store.DeletePartition(id); err != nil {
			return nil, fmt.Errorf("delete topic %q: %w", req.Name, err)
		}
	}
	return res, nil
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
	maxBytes := n.topicConfig(t).maxMessageBytes
	for _, id := range partitionIDs(t, 0) {
		if h := n.registry.get(id); h != nil {
			h.view.maxMessageBytes.Store(maxBytes)
			n.system.Root.Send(h.pid, &configChanged{})
		}
	}
	res.Topic = t
	return res, nil
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
