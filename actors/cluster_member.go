package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// clusterMember is a node's part in a cluster: its registration and
// heartbeats, its view of the other brokers and of every partition's state
// (fed by a watch on the coordination store), the controller election and,
// while this node is the controller, the reconcile loop (controller.go).
// Partition actors get their roles from it (roleMsg) and reach other
// brokers' actors through it.
type clusterMember struct {
	n     *Node
	store *cluster.Store
	self  int32

	hb     *cluster.Heartbeater
	live   *cluster.Liveness
	ctrl   *cluster.Controller
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // wakes the controller loop
	// applyMu orders apply: the watch and resync both feed it.
	applyMu sync.Mutex
	joined  bool

	mu           sync.RWMutex
	parts        map[persistence.PartitionID]*fluxopb.PartitionState
	revs         map[persistence.PartitionID]uint64 // revision of each cached state
	brokers      map[int32]cluster.BrokerInfo
	pids         map[int32]*actor.PID
	controllerID int32
	// withheld: the leader epoch of each partition this node led before it
	// joined; leadership in it or an older epoch is not applied
	// (cluster_reclaim.go).
	withheld map[persistence.PartitionID]int32
	// fenced: this node does not hear a majority of the brokers, so it
	// serves none of its leaderships (cluster_fence.go).
	fenced atomic.Bool
}

func newClusterMember(n *Node) *clusterMember {
	return &clusterMember{
		n: n, store: n.cfg.Cluster, self: n.cfg.NodeID,
		kick:         make(chan struct{}, 1),
		parts:        map[persistence.PartitionID]*fluxopb.PartitionState{},
		revs:         map[persistence.PartitionID]uint64{},
		brokers:      map[int32]cluster.BrokerInfo{},
		pids:         map[int32]*actor.PID{},
		controllerID: -1,
		withheld:     map[persistence.PartitionID]int32{},
	}
}

// hooks is what a partition actor of this node uses to replicate.
func (m *clusterMember) hooks() *replicaHooks {
	cfg := m.n.cfg
	return &replicaHooks{
		self:            m.self,
		lagTimeMs:       cfg.ReplicaLagTime.Milliseconds(),
		minISR:          int(cfg.DefaultMinInsyncReplicas),
		mayHaveLostData: cfg.Sync == persistence.SyncNever,
		state:           m.partitionState,
		brokerPID:       m.brokerPID,
		alterISR:        m.store.AlterISR,
		logRole: func(topic string, p int32, role string, epoch, leader int32) {
			m.n.logger.Info("partition role", "topic", topic, "partition", p, "role", role, "epoch", epoch, "leader", leader)
		},
	}
}

func (m *clusterMember) partitionState(topic string, p int32) *fluxopb.PartitionState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id := persistence.PartitionID{Topic: topic, Partition: p}
	return m.roleView(id, m.parts[id])
}

func (m *clusterMember) brokerPID(id int32) *actor.PID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.pids[id]
}

// JoinCluster registers this node (where Kafka clients reach it), starts
// its heartbeats, failure detection and controller election, and follows
// the partition states the controller writes. Call it once, after Start;
// Stop leaves the cluster. On a single node (no Config.Cluster) it does
// nothing.
func (n *Node) JoinCluster(ctx context.Context, kafkaHost string, kafkaPort int32) error {
	m := n.member
	if m == nil {
		return nil
	}
	if m.joined {
		return errors.New("join cluster: already joined")
	}
	err := m.store.RegisterBroker(ctx, cluster.BrokerInfo{
		NodeID: m.self, KafkaHost: kafkaHost, KafkaPort: kafkaPort, RemoteAddr: n.RemoteAddress(),
	})
	if err != nil {
		return fmt.Errorf("join cluster: %w", err)
	}
	live, err := m.store.NewLiveness(cluster.LivenessConfig{Window: n.cfg.LivenessWindow})
	if err != nil {
		return fmt.Errorf("join cluster: %w", err)
	}
	m.live = live
	m.hb = m.store.StartHeartbeat(m.self, n.cfg.HeartbeatInterval)
	if m.ctrl, err = m.store.StartController(cluster.ControllerConfig{NodeID: m.self, Liveness: live}); err != nil {
		m.hb.Stop()
		live.Close()
		return fmt.Errorf("join cluster: %w", err)
	}
	if err := m.refreshBrokers(ctx); err != nil {
		n.logger.Warn("cluster: list brokers", "err", err)
	}
	old, err := m.withholdOldLeaderships(ctx)
	if err != nil {
		m.ctrl.Stop()
		m.hb.Stop()
		live.Close()
		return fmt.Errorf("join cluster: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	parts, err := m.store.WatchPartitions(wctx)
	if err != nil {
		cancel()
		m.ctrl.Stop()
		m.hb.Stop()
		live.Close()
		return fmt.Errorf("join cluster: %w", err)
	}
	topics, err := m.store.WatchTopics(wctx)
	if err != nil {
		cancel()
		m.ctrl.Stop()
		m.hb.Stop()
		live.Close()
		return fmt.Errorf("join cluster: %w", err)
	}
	m.joined = true
	m.wg.Add(7)
	go m.reclaimLeaderships(wctx, old)
	go m.followPartitions(parts)
	go m.followTopics(wctx, topics)
	go m.refreshLoop(wctx)
	go m.tickLoop(wctx)
	go m.controllerLoop(wctx)
	go m.fenceLoop(wctx)
	n.logger.Info("joined the cluster", "node", m.self, "remote", n.RemoteAddress(), "kafka", fmt.Sprintf("%s:%d", kafkaHost, kafkaPort))
	return nil
}

// leave is the controlled shutdown: stop heartbeating, tell the others
// this node is gone so the controller moves its leaderships now, wait (a
// bounded time) until no partition names it leader, then stop everything.
// With abrupt (a crash, as tests simulate one) nothing is announced: the
// others find out from the silence.
func (m *clusterMember) leave(abrupt bool) {
	if !m.joined {
		return
	}
	m.hb.Stop()
	if !abrupt {
		if err := m.store.AnnounceLeaving(m.self); err != nil {
			m.n.logger.Warn("cluster: announce leaving", "err", err)
		}
		deadline := time.Now().Add(m.n.cfg.ShutdownLeadershipWait)
		for time.Now().Before(deadline) && m.leadsAny() {
			time.Sleep(20 * time.Millisecond)
		}
	}
	m.ctrl.Stop()
	m.cancel()
	m.wg.Wait()
	m.live.Close()
}

// leadsAny reports whether a partition this node leads has another live
// in-sync replica to take over.
func (m *clusterMember) leadsAny() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for id, st := range m.parts {
		if id.Topic == OffsetsTopic || st.Leader != m.self {
			continue
		}
		for _, r := range st.Isr {
			if r != m.self && m.live.Alive(r) {
				return true
			}
		}
	}
	return false
}

// followPartitions applies every partition state change the watch
// delivers. The watch can stall while the store's servers elect leaders, so
// resync (from refreshLoop) re-reads everything too; a state is applied
// only if its revision is newer than the cached one.
func (m *clusterMember) followPartitions(ch <-chan cluster.PartitionEvent) {
	defer m.wg.Done()
	for ev := range ch {
		m.apply(ev)
	}
}

// resync applies the listed states newer than the cached ones.
func (m *clusterMember) resync(ctx context.Context) error {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	refs, err := m.store.ListPartitions(c, "")
	if err != nil {
		return err
	}
	for _, r := range refs {
		m.apply(cluster.PartitionEvent{Topic: r.Topic, Partition: r.Partition, State: r.State, Revision: r.Revision})
	}
	return nil
}

// apply caches a partition state (if newer) and hands it to the local
// replica, spawning it if this node is assigned one.
func (m *clusterMember) apply(ev cluster.PartitionEvent) {
	id := persistence.PartitionID{Topic: ev.Topic, Partition: ev.Partition}
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	if ev.Revision <= m.revs[id] {
		m.mu.Unlock()
		return
	}
	m.revs[id] = ev.Revision
	if ev.State == nil {
		delete(m.parts, id)
	} else {
		m.parts[id] = ev.State
	}
	view := m.roleView(id, ev.State)
	m.mu.Unlock()
	if ev.State == nil {
		return
	}
	if ev.Topic == OffsetsTopic {
		m.n.offsetsLeadership(ev.Partition, ev.State.Leader == m.self)
		return
	}
	if !slices.Contains(ev.State.Replicas, m.self) {
		return
	}
	if h := m.n.registry.get(id); h != nil {
		m.n.system.Root.Send(h.pid, &roleMsg{st: view})
		return
	}
	m.spawn(id)
}

// spawn starts the local replica of a partition; it reads its role from
// the cache when it starts.
func (m *clusterMember) spawn(id persistence.PartitionID) {
	n := m.n
	t := n.cachedTopic(id.Topic)
	if t == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		tt, _, err := m.store.GetTopic(ctx, id.Topic)
		cancel()
		if err != nil {
			n.logger.Warn("cluster: partition of an unknown topic", "topic", id.Topic, "partition", id.Partition, "err", err)
			return
		}
		n.setTopic(tt)
		t = tt
	}
	if id.Partition >= t.Partitions {
		return
	}
	ts := n.topicConfig(t)
	n.system.Root.Send(n.partitionsPID, &startPartitions{ids: []persistence.PartitionID{id}, maxMessageBytes: ts.maxMessageBytes, minInsync: ts.minInsync})
}

// hostedStates lists the partitions (of known topics) this node holds a
// replica of, for the partitions supervisor's (re)start.
func (m *clusterMember) hostedStates() []persistence.PartitionID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []persistence.PartitionID
	for id, st := range m.parts {
		if id.Topic != OffsetsTopic && slices.Contains(st.Replicas, m.self) {
			if t := m.n.cachedTopic(id.Topic); t != nil && id.Partition < t.Partitions {
				out = append(out, id)
			}
		}
	}
	return out
}

// followTopics keeps the topic cache in step with the store: topics
// created or altered on other brokers, and deleted ones (whose local
// replicas and data go).
func (m *clusterMember) followTopics(ctx context.Context, ch <-chan cluster.TopicEvent) {
	defer m.wg.Done()
	n := m.n
	for ev := range ch {
		switch ev.Op {
		case cluster.TopicPut:
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			t, _, err := m.store.GetTopic(c, ev.Name)
			cancel()
			if err != nil {
				continue
			}
			old := n.cachedTopic(ev.Name)
			n.setTopic(t)
			if old != nil && string(old.Id) == string(t.Id) {
				n.configChanged(t)
			}
			m.kickController()
		case cluster.TopicDelete:
			t := n.cachedTopic(ev.Name)
			if t == nil {
				continue
			}
			c, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
			if err := n.dropLocalTopic(c, t); err != nil {
				n.logger.Warn("cluster: drop deleted topic", "topic", ev.Name, "err", err)
			}
			cancel()
		}
	}
}

// refreshLoop re-reads the broker registrations and the controller.
func (m *clusterMember) refreshLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.refreshBrokers(ctx); err != nil && ctx.Err() == nil {
			m.n.logger.Debug("cluster: refresh brokers", "err", err)
		}
		if err := m.resync(ctx); err != nil && ctx.Err() == nil {
			m.n.logger.Debug("cluster: resync partition states", "err", err)
		}
	}
}

func (m *clusterMember) refreshBrokers(ctx context.Context) error {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	bs, err := m.store.ListBrokers(c)
	if err != nil {
		return err
	}
	ctrl := int32(-1)
	if m.ctrl != nil {
		if _, active := m.ctrl.Epoch(); active {
			ctrl = m.self
		}
	}
	if ctrl < 0 {
		if id, _, ok, err := m.store.CurrentController(c); err == nil && ok {
			ctrl = id
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range bs {
		old, had := m.brokers[b.NodeID]
		m.brokers[b.NodeID] = b
		if b.RemoteAddr != "" && (!had || old.RemoteAddr != b.RemoteAddr) {
			m.pids[b.NodeID] = actor.NewPID(b.RemoteAddr, BrokerActorName)
		}
	}
	m.controllerID = ctrl
	return nil
}

// tickLoop drives every local replica's timers (fetch retries, long-poll
// expiry, in-sync set shrinking).
func (m *clusterMember) tickLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, h := range m.n.registry.all() {
			m.n.system.Root.Send(h.pid, &replTick{})
		}
	}
}

func (m *clusterMember) kickController() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// ClusterBroker is a live broker as Kafka clients see it.
type ClusterBroker struct {
	NodeID int32
	Host   string
	Port   int32
}

// Clustered reports whether the node runs in a cluster (Config.Cluster).
func (n *Node) Clustered() bool { return n.member != nil }

// NodeID is this broker's id.
func (n *Node) NodeID() int32 { return n.cfg.NodeID }

// LiveBrokers lists the registered brokers heard from within the liveness
// window (every registered broker while fenced), sorted by id (nil before
// JoinCluster).
func (n *Node) LiveBrokers() []ClusterBroker {
	m := n.member
	if m == nil || !m.joined {
		return nil
	}
	fenced := m.fenced.Load()
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []ClusterBroker
	for id, b := range m.brokers {
		// Fenced, this node cannot tell who is alive: it lists everyone,
		// so clients can reach the brokers that still form the cluster.
		if fenced || id == m.self || m.live.Alive(id) {
			out = append(out, ClusterBroker{NodeID: id, Host: b.KafkaHost, Port: b.KafkaPort})
		}
	}
	slices.SortFunc(out, func(a, b ClusterBroker) int { return int(a.NodeID - b.NodeID) })
	return out
}

// ControllerID is the controller's node id as last read (-1: unknown).
func (n *Node) ControllerID() int32 {
	m := n.member
	if m == nil {
		return n.cfg.NodeID
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.controllerID
}

// Leadership is a partition's recorded leader, epoch, replicas and in-sync
// replicas.
type Leadership struct {
	Leader      int32 // -1: offline
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
}

// PartitionLeadership reports a partition's recorded leadership; ok is
// false when the controller has not placed it yet.
func (n *Node) PartitionLeadership(topic string, p int32) (Leadership, bool) {
	m := n.member
	if m == nil {
		return Leadership{}, false
	}
	st := m.partitionState(topic, p)
	if st == nil {
		return Leadership{}, false
	}
	l := Leadership{Leader: st.Leader, LeaderEpoch: st.LeaderEpoch, Replicas: slices.Clone(st.Replicas), ISR: slices.Clone(st.Isr)}
	switch {
	case m.fenced.Load():
		// Cut off, this node's liveness view is no guide to the others;
		// its own leaderships may have moved already.
		if l.Leader == m.self {
			l.Leader = -1
		}
	case l.Leader >= 0 && l.Leader != m.self && m.live != nil && !m.live.Alive(l.Leader):
		l.Leader = -1 // dead: the controller is about to elect another
	}
	return l, true
}

// GroupCoordinatorNode is the broker coordinating groupID: the leader of
// its __consumer_offsets partition (this node on a single node); ok is
// false while that partition has no live leader.
func (n *Node) GroupCoordinatorNode(groupID string) (int32, bool) {
	if n.member == nil {
		return n.cfg.NodeID, true
	}
	l, ok := n.PartitionLeadership(OffsetsTopic, OffsetsPartition(groupID, n.cfg.OffsetsPartitions))
	if !ok || l.Leader < 0 {
		return -1, false
	}
	return l.Leader, true
}

// liveCount is the number of live brokers (1 on a single node).
func (n *Node) liveCount() int {
	if n.member == nil || n.member.live == nil {
		return 1
	}
	return len(n.member.live.AliveSet())
}

// waitLeaders waits until the controller has placed partitions [from,
// t.Partitions) of t and each has a leader.
func (n *Node) waitLeaders(ctx context.Context, t *fluxopb.TopicMetadata, from int32) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	for p := from; p < t.Partitions; {
		if st := n.member.partitionState(t.Name, p); st != nil && st.Leader >= 0 {
			p++
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("partition %s-%d has no leader yet: %w", t.Name, p, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
