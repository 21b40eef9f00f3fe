package fluxo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/gateway"
	"github.com/fluxo-broker/fluxo/metrics"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// Broker is a broker running inside this program.
type Broker struct {
	ops
	node    *actors.Node
	meta    *cluster.Store
	gateway *gateway.Server  // nil without WithKafkaListen
	metrics *metrics.Metrics // nil without WithMetricsListen
	mserver *metrics.Server  // nil without a metrics listener
}

var _ Conn = (*Broker)(nil)

// Option configures Start.
type Option func(*startConfig)

type startConfig struct {
	node          actors.Config
	cluster       cluster.Options // ClusterListen empty: single node
	gateway       *gateway.Config // nil: no Kafka listener
	metrics       bool
	metricsListen string
}

// WithKafkaListen serves the Kafka wire protocol on addr (host:port; port 0
// picks one). advertise is what Metadata tells clients ("" = the bound
// address).
func WithKafkaListen(addr, advertise string) Option {
	return func(c *startConfig) {
		if c.gateway == nil {
			c.gateway = &gateway.Config{}
		}
		c.gateway.Listen, c.gateway.Advertise = addr, advertise
	}
}

// WithGatewayConfig edits the Kafka gateway's configuration (and turns the
// gateway on, on its default address, if WithKafkaListen was not given).
func WithGatewayConfig(fn func(*gateway.Config)) Option {
	return func(c *startConfig) {
		if c.gateway == nil {
			c.gateway = &gateway.Config{}
		}
		fn(c.gateway)
	}
}

// WithMetricsListen collects Prometheus metrics (Broker.Metrics) and serves
// /metrics, /healthz and /readyz on addr (host:port; port 0 picks one). The
// listener opens first, so /healthz answers and /readyz says 503 while the
// broker loads. An empty addr collects without listening: serve
// Broker.Metrics().Handler() yourself.
func WithMetricsListen(addr string) Option {
	return func(c *startConfig) { c.metrics, c.metricsListen = true, addr }
}

// WithCluster makes the broker node nodeID of a cluster: its embedded NATS
// server accepts routes on clusterListen (host:port) and joins the servers
// at peers (the other brokers' clusterListen addresses). The brokers
// elect a controller, which places each partition's replicas and elects
// their leaders; followers replicate from leaders over protoactor remote,
// so WithRemoteListen is required too. Without WithCluster the broker is a
// single node.
func WithCluster(nodeID int32, clusterListen string, peers []string) Option {
	return func(c *startConfig) {
		c.node.NodeID = nodeID
		c.cluster.NodeID, c.cluster.ClusterListen, c.cluster.Peers = int(nodeID), clusterListen, peers
	}
}

// WithDataDir sets the data directory (default "./data").
func WithDataDir(dir string) Option { return func(c *startConfig) { c.node.DataDir = dir } }

// WithRemoteListen opens a protoactor remote endpoint on addr (host:port,
// port 0 picks one) so Dial can reach this broker from another process.
func WithRemoteListen(addr string) Option {
	return func(c *startConfig) { c.node.RemoteListen = addr }
}

// WithoutFsync acknowledges writes before they reach the disk (benchmarks;
// replicated clusters). The default syncs before acknowledging.
func WithoutFsync() Option {
	return func(c *startConfig) { c.node.Sync = persistence.SyncNever }
}

// WithFS runs storage on fs (tests use vfs.NewCrashableMem to simulate
// crashes). The coordination store still uses the real data directory.
func WithFS(fs vfs.FS) Option { return func(c *startConfig) { c.node.FS = fs } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *startConfig) { c.node.Logger = l } }

// WithDefaultPartitions sets the partition count of topics created without one.
func WithDefaultPartitions(n int32) Option {
	return func(c *startConfig) { c.node.DefaultPartitions = n }
}

// WithRetentionCheckInterval sets how often retention runs (default 5 min).
func WithRetentionCheckInterval(d time.Duration) Option {
	return func(c *startConfig) { c.node.RetentionCheckInterval = d }
}

// WithActorMiddleware wraps the receive of every actor of the node (broker,
// partitions supervisor, partitions); testkit uses
// it to inject panics.
func WithActorMiddleware(m ...actor.ReceiverMiddleware) Option {
	return func(c *startConfig) { c.node.ActorMiddleware = append(c.node.ActorMiddleware, m...) }
}

// WithNodeConfig edits the full node configuration (every setting, for
// callers that need more than the options above).
func WithNodeConfig(fn func(*actors.Config)) Option { return func(c *startConfig) { fn(&c.node) } }

// Start starts a broker in this program. Close stops it.
func Start(ctx context.Context, opts ...Option) (*Broker, error) {
	c := startConfig{node: actors.Config{DataDir: "data"}}
	for _, opt := range opts {
		opt(&c)
	}
	if c.node.DataDir == "" {
		return nil, errors.New("fluxo: data directory is empty")
	}
	var (
		ms   *metrics.Metrics
		msrv *metrics.Server
		err  error
	)
	if c.metrics {
		ms = metrics.New()
		if c.metricsListen != "" {
			if msrv, err = metrics.Listen(c.metricsListen, ms.Handler()); err != nil {
				return nil, fmt.Errorf("fluxo: %w", err)
			}
		}
	}
	closeMetrics := func() {
		if msrv != nil {
			_ = msrv.Close()
		}
	}
	copts := c.cluster
	copts.DataDir, copts.Logger = filepath.Join(c.node.DataDir, "meta"), c.node.Logger
	clustered := copts.ClusterListen != ""
	if clustered && c.node.RemoteListen == "" {
		closeMetrics()
		return nil, errors.New("fluxo: a cluster member needs a remote listener (WithRemoteListen): replicas fetch over it")
	}
	meta, err := cluster.Open(ctx, copts)
	if err != nil {
		closeMetrics()
		return nil, fmt.Errorf("fluxo: coordination store: %w", err)
	}
	c.node.Metadata = meta
	if clustered {
		c.node.Cluster = meta
		if c.node.GroupJournal == nil {
			j, err := meta.OpenJournal(ctx)
			if err != nil {
				_ = meta.Close()
				closeMetrics()
				return nil, fmt.Errorf("fluxo: group journal: %w", err)
			}
			c.node.GroupJournal = j
		}
		c.node.GroupsFollowLeadership = true
	}
	if c.node.ProducerIDs == nil {
		c.node.ProducerIDs = cluster.NewProducerIDs(meta, cluster.DefaultProducerIDBlockSize)
	}
	node, err := actors.Start(ctx, c.node)
	if err != nil {
		_ = meta.Close()
		closeMetrics()
		return nil, fmt.Errorf("fluxo: %w", err)
	}
	b := &Broker{node: node, meta: meta, metrics: ms, mserver: msrv}
	b.ops = ops{r: localRequester{node}}
	if ms != nil {
		ms.SetNode(node)
	}
	if c.gateway != nil {
		gc := *c.gateway
		if gc.Logger == nil {
			gc.Logger = c.node.Logger
		}
		if gc.Observer == nil && ms != nil {
			gc.Observer = ms
		}
		gc.NodeID = c.node.NodeID
		if b.gateway, err = gateway.Start(node, gc); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("fluxo: %w", err)
		}
	}
	if clustered {
		var host string
		var port int32
		if b.gateway != nil {
			host, port = b.gateway.Advertised()
		}
		if err := node.JoinCluster(ctx, host, port); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("fluxo: %w", err)
		}
	}
	if ms != nil {
		ms.SetReady(true) // partitions and groups are loaded: actors.Start waited for them
	}
	return b, nil
}

// Close stops the broker: the Kafka listener first, then the actors (held
// requests are answered), then storage is synced and closed.
func (b *Broker) Close() error {
	var errs []error
	if b.metrics != nil {
		b.metrics.SetReady(false)
	}
	if b.gateway != nil {
		errs = append(errs, b.gateway.Close())
	}
	errs = append(errs, b.node.Stop(), b.meta.Close())
	if b.metrics != nil {
		b.metrics.SetNode(nil)
	}
	if b.mserver != nil {
		errs = append(errs, b.mserver.Close())
	}
	return errors.Join(errs...)
}

// Kill stops the broker as abruptly as an in-process test can: the Kafka
// listener and the coordination store's server go at once, the node
// without a controlled shutdown (the other brokers notice the silence).
// Unsynced writes are lost only with a CrashFS (WithFS).
func (b *Broker) Kill() error {
	var errs []error
	if b.metrics != nil {
		b.metrics.SetReady(false)
	}
	if b.gateway != nil {
		errs = append(errs, b.gateway.Close())
	}
	errs = append(errs, b.meta.Close(), b.node.Halt())
	if b.metrics != nil {
		b.metrics.SetNode(nil)
	}
	if b.mserver != nil {
		errs = append(errs, b.mserver.Close())
	}
	return errors.Join(errs...)
}

// SetIsolated cuts the broker off from the cluster's coordination store, or
// reconnects it (fault injection for tests; see testkit.Cluster.Isolate).
func (b *Broker) SetIsolated(on bool) { b.meta.SetIsolated(on) }

// StoreLeader is the node leading the coordination store's Raft group now
// (ok false on a single node, or when it cannot be told). Tests use it to
// tell a broker kill that also stalls the store (5-7 s) from one that does
// not.
func (b *Broker) StoreLeader(ctx context.Context) (int32, bool) {
	if !b.node.Clustered() {
		return 0, false
	}
	return b.meta.StreamLeader(ctx)
}

// Metrics is the broker's metrics (nil without WithMetricsListen).
func (b *Broker) Metrics() *metrics.Metrics { return b.metrics }

// MetricsAddr is the bound address of the metrics listener ("" without one).
func (b *Broker) MetricsAddr() string {
	if b.mserver == nil {
		return ""
	}
	return b.mserver.Addr()
}

// KafkaAddr is the bound address of the Kafka listener ("" without one).
func (b *Broker) KafkaAddr() string {
	if b.gateway == nil {
		return ""
	}
	return b.gateway.Addr()
}

// Node exposes the actor layer (for the gateway, tests and advanced use).
func (b *Broker) Node() *actors.Node { return b.node }

// ActorClient returns a Conn that sends every request as an actor message to
// this broker's broker actor, as a protoactor program in this process would
// (Broker's own methods call the node directly instead). Close is a no-op.
func (b *Broker) ActorClient() Conn {
	return actorConn{ops{r: actorRequester{system: b.node.System(), broker: b.node.BrokerPID(), timeout: 30 * time.Second}}}
}

type actorConn struct{ ops }

func (actorConn) Close() error { return nil }

// RemoteAddress is where Dial reaches this broker ("" without WithRemoteListen).
func (b *Broker) RemoteAddress() string { return b.node.RemoteAddress() }

// localRequester calls the node directly: same messages, no serialisation.
type localRequester struct{ n *actors.Node }

func (l localRequester) request(ctx context.Context, msg any) (any, error) {
	var (
		res any
		err error
	)
	switch m := msg.(type) {
	case *fluxopb.ProduceRequest:
		res, err = l.n.Produce(ctx, m)
	case *fluxopb.FetchRequest:
		res, err = l.n.Fetch(ctx, m)
	case *fluxopb.ListOffsetsRequest:
		res, err = l.n.ListOffsets(ctx, m)
	case *fluxopb.CreateTopicRequest:
		res, err = l.n.CreateTopic(ctx, m)
	case *fluxopb.DeleteTopicRequest:
		res, err = l.n.DeleteTopic(ctx, m)
	case *fluxopb.ListTopicsRequest:
		var ts []*fluxopb.TopicMetadata
		ts, err = l.n.ListTopics(ctx)
		res = &fluxopb.ListTopicsResponse{Topics: ts}
	case *fluxopb.DescribeTopicRequest:
		res, err = l.n.DescribeTopic(ctx, m)
	case *fluxopb.AlterTopicConfigRequest:
		res, err = l.n.AlterTopicConfig(ctx, m)
	case *fluxopb.DeleteRecordsRequest:
		res, err = l.n.DeleteRecords(ctx, m)
	default:
		return nil, fmt.Errorf("fluxo: no handler for %T", msg)
	}
	if errors.Is(err, actors.ErrTimeout) {
		err = fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return res, err
}

// PartitionLag is a consumer group's lag on one partition: its committed
// offset against the partition's high watermark.
type PartitionLag = actors.PartitionLag

// GroupSummary is a consumer group as ListGroups shows it: id, state,
// protocol type, member count and committed offsets.
type GroupSummary = actors.GroupSummary

// GroupLag returns a consumer group's lag on every partition it has
// committed an offset for, sorted by topic and partition; ok is false when
// the group does not exist.
func (b *Broker) GroupLag(group string) (lags []PartitionLag, ok bool) { return b.node.GroupLag(group) }

// ListGroups returns the consumer groups of this broker, sorted by id.
func (b *Broker) ListGroups() []*GroupSummary { return b.node.ListGroups() }
