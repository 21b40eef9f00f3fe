package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/persistence"
)

// Config configures a Node. Zero fields take the default in their comment;
// EnsureDefaults fills them and Validate checks ranges.
type Config struct {
	// DataDir holds segments, Pebble and the coordination store. Required.
	DataDir string
	// FS is the file system for segments and Pebble. Default vfs.Default.
	FS vfs.FS
	// Sync is the durability policy. Default persistence.SyncAlways (fsync
	// before acknowledging, with group commit).
	Sync persistence.SyncPolicy
	// SegmentBytes is the segment roll and preallocation size. Default 128 MiB.
	SegmentBytes int64

	// RemoteListen is the protoactor remote endpoint (host:port) Go clients
	// send actor messages to. Empty: no remote endpoint (in-process only).
	RemoteListen string

	// DefaultPartitions is the partition count of a topic created without one.
	// Default 1 (Kafka's num.partitions).
	DefaultPartitions int32
	// MaxPartitionsPerTopic bounds CreateTopic. Default 10000.
	MaxPartitionsPerTopic int32
	// DefaultRetentionMs is retention.ms for topics that do not set it.
	// Default 7 days; -1 keeps records forever.
	DefaultRetentionMs int64
	// DefaultRetentionBytes is retention.bytes per partition. Default -1 (no
	// size limit).
	DefaultRetentionBytes int64
	// DefaultMaxMessageBytes is max.message.bytes, the largest record batch
	// accepted. Default 1048588 (Kafka's).
	DefaultMaxMessageBytes int32
	// RetentionCheckInterval is how often retention runs. Default 5 minutes.
	RetentionCheckInterval time.Duration
	// RequestTimeout bounds a request to an actor. Default 30 s.
	RequestTimeout time.Duration
	// ReplicaLagTime is replica.lag.time.max.ms: a follower that has not
	// caught up with the leader's log end for longer leaves the in-sync set.
	// Default 30 s (Kafka's).
	ReplicaLagTime time.Duration
	// DefaultMinInsyncReplicas is min.insync.replicas for topics that do not
	// set it. Default 0: 2 for three or more replicas, else 1.
	DefaultMinInsyncReplicas int32

	// NodeID is this broker's id, unique in its cluster. Default 0.
	NodeID int32
	// Cluster is the coordination store shared by the brokers of a cluster
	// (the same store as Metadata). Nil: a single node that leads every
	// partition. With it the node needs RemoteListen (replicas fetch over
	// protoactor remote) and JoinCluster after Start.
	Cluster *cluster.Store
	// HeartbeatInterval is how often this node heartbeats. Default 200 ms.
	HeartbeatInterval time.Duration
	// LivenessWindow is the silence after which a broker is dead and its
	// leaderships move. Default 2 s.
	LivenessWindow time.Duration
	// PreferredLeaderDelay: a partition's preferred replica (its first)
	// takes leadership back once it has been alive and in sync this long.
	// Default 10 s.
	PreferredLeaderDelay time.Duration
	// ShutdownLeadershipWait bounds how long Stop waits for the controller
	// to move this node's leaderships away. Default 5 s.
	ShutdownLeadershipWait time.Duration

	// Metadata is the coordination store holding topics. Required.
	Metadata MetadataStore
	// ProducerIDs allocates producer ids for idempotent producers
	// (cluster.NewProducerIDs over the coordination store). Nil: the node
	// hands out none and InitProducerId fails.
	ProducerIDs ProducerIDs
	// ActorMiddleware wraps the receive of every actor of the node: the
	// broker actor, the partitions supervisor and each partition (tests inject
	// faults with it; see testkit).
	ActorMiddleware []actor.ReceiverMiddleware
	// OffsetsPartitions is the number of internal __consumer_offsets
	// partitions group journals are spread over (a group's id hashed, as
	// Kafka's offsets.topic.num.partitions). Default 50. Changing it moves
	// groups to other journals: set it once.
	OffsetsPartitions int32
	// GroupMinSessionTimeout and GroupMaxSessionTimeout bound the session
	// timeout a member may ask for. Defaults 6 s and 30 min (Kafka's).
	GroupMinSessionTimeout, GroupMaxSessionTimeout time.Duration
	// GroupInitialRebalanceDelay holds an empty group's first rebalance so
	// members starting together join one generation. Default 0 (Kafka: 3 s).
	GroupInitialRebalanceDelay time.Duration
	// GroupJournal holds the groups' events (__consumer_offsets-<p>). Nil:
	// the node's Pebble journal. In cluster mode a *cluster.StreamJournal,
	// replicated, which every broker that may coordinate groups shares.
	GroupJournal GroupJournal
	// GroupsFollowLeadership: the node coordinates only the offsets
	// partitions it is told to (SetOffsetsCoordinator) and answers
	// NOT_COORDINATOR for groups of the others; start-up loads none.
	// False (single node): every partition is loaded at start.
	GroupsFollowLeadership bool

	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 128 << 20
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = 1
	}
	if c.MaxPartitionsPerTopic == 0 {
		c.MaxPartitionsPerTopic = 10000
	}
	if c.DefaultRetentionMs == 0 {
		c.DefaultRetentionMs = 7 * 24 * time.Hour.Milliseconds()
	}
	if c.DefaultRetentionBytes == 0 {
		c.DefaultRetentionBytes = -1
	}
	if c.DefaultMaxMessageBytes == 0 {
		c.DefaultMaxMessageBytes = 1048588
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = 5 * time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.ReplicaLagTime == 0 {
		c.ReplicaLagTime = 30 * time.Second
	}
	if c.OffsetsPartitions == 0 {
		c.OffsetsPartitions = 50
	}
	if c.GroupMinSessionTimeout == 0 {
		c.GroupMinSessionTimeout = 6 * time.Second
	}
	if c.GroupMaxSessionTimeout == 0 {
		c.GroupMaxSessionTimeout = 30 * time.Minute
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 200 * time.Millisecond
	}
	if c.LivenessWindow == 0 {
		c.LivenessWindow = 2 * time.Second
	}
	if c.PreferredLeaderDelay == 0 {
		c.PreferredLeaderDelay = 10 * time.Second
	}
	if c.ShutdownLeadershipWait == 0 {
		c.ShutdownLeadershipWait = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first setting out of range, naming it.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("config: DataDir is required")
	case c.Metadata == nil:
		return errors.New("config: Metadata (the coordination store) is required")
	case c.Sync != persistence.SyncAlways && c.Sync != persistence.SyncNever:
		return fmt.Errorf("config: Sync %d is not a known policy", c.Sync)
	case c.SegmentBytes < 1<<20 || c.SegmentBytes > 1<<30:
		return fmt.Errorf("config: SegmentBytes %d out of range [1 MiB, 1 GiB]", c.SegmentBytes)
	case c.DefaultPartitions < 1 || c.DefaultPartitions > c.MaxPartitionsPerTopic:
		return fmt.Errorf("config: DefaultPartitions %d out of range [1, %d]", c.DefaultPartitions, c.MaxPartitionsPerTopic)
	case c.DefaultRetentionMs < -1:
		return fmt.Errorf("config: DefaultRetentionMs %d must be -1 or positive", c.DefaultRetentionMs)
	case c.DefaultRetentionBytes < -1:
		return fmt.Errorf("config: DefaultRetentionBytes %d must be -1 or positive", c.DefaultRetentionBytes)
	case c.DefaultMaxMessageBytes < 1:
		return fmt.Errorf("config: DefaultMaxMessageBytes %d must be positive", c.DefaultMaxMessageBytes)
	case c.RetentionCheckInterval < 10*time.Millisecond:
		return fmt.Errorf("config: RetentionCheckInterval %v below 10ms", c.RetentionCheckInterval)
	case c.OffsetsPartitions < 1 || c.OffsetsPartitions > 1000:
		return fmt.Errorf("config: OffsetsPartitions %d out of range [1, 1000]", c.OffsetsPartitions)
	case c.GroupMinSessionTimeout < time.Millisecond || c.GroupMaxSessionTimeout < c.GroupMinSessionTimeout:
		return fmt.Errorf("config: group session timeouts [%v, %v] are not a range", c.GroupMinSessionTimeout, c.GroupMaxSessionTimeout)
	case c.GroupInitialRebalanceDelay < 0:
		return fmt.Errorf("config: GroupInitialRebalanceDelay %v is negative", c.GroupInitialRebalanceDelay)
	case c.RequestTimeout < time.Millisecond:
		return fmt.Errorf("config: RequestTimeout %v below 1ms", c.RequestTimeout)
	case c.ReplicaLagTime < time.Millisecond:
		return fmt.Errorf("config: ReplicaLagTime %v below 1ms", c.ReplicaLagTime)
	case c.Cluster != nil && c.RemoteListen == "":
		return errors.New("config: a clustered node needs RemoteListen (replicas fetch over protoactor remote)")
	case c.NodeID < 0:
		return fmt.Errorf("config: NodeID %d is negative", c.NodeID)
	case c.HeartbeatInterval >= c.LivenessWindow:
		return fmt.Errorf("config: HeartbeatInterval %v must be below LivenessWindow %v", c.HeartbeatInterval, c.LivenessWindow)
	case c.DefaultMinInsyncReplicas < 0:
		return fmt.Errorf("config: DefaultMinInsyncReplicas %d is negative", c.DefaultMinInsyncReplicas)
	}
	return nil
}
