package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/actors/group"
	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// Group coordination in a cluster (Config.GroupsFollowLeadership): the
// node coordinates the groups of the offsets partitions the cluster
// controller made it leader of, told through SetOffsetsCoordinator. Loading
// a partition claims its journal (a *cluster.StreamJournal shared by the
// brokers), replays it and spawns its groups, as start-up does for every
// partition on a single node; until then, and after it is unloaded, every
// request for its groups answers NOT_COORDINATOR (COORDINATOR_LOAD_IN_PROGRESS
// while it loads). A group whose append is fenced (another broker claimed
// the journal) answers NOT_COORDINATOR and its partition is unloaded; the
// node does not claim it back until told to lead it again.

// GroupJournal is the journal of the group coordinators, one per offsets
// partition: *persistence.Journal (a node's Pebble) and
// *cluster.StreamJournal (replicated) implement it.
type GroupJournal interface {
	Append(actor string, events ...proto.Message) (uint64, error)
	Replay(actor string, afterSeq uint64, fn func(seq uint64, ev *fluxopb.JournalEvent) error) error
	DeleteUpTo(actor string, seq uint64) error
}

// groupJournalClaimer is a GroupJournal whose writers are fenced by claims
// (*cluster.StreamJournal): loading a partition claims its journal first.
type groupJournalClaimer interface {
	Claim(ctx context.Context, actor string) error
}

func (n *Node) groupJournal() GroupJournal {
	if n.cfg.GroupJournal != nil {
		return n.cfg.GroupJournal
	}
	return n.store.Journal()
}

// fencedOnly keeps err if it says the journal was fenced, else drops it.
func fencedOnly(err error) error {
	if errors.Is(err, cluster.ErrJournalFenced) {
		return err
	}
	return nil
}

var (
	errNotCoordinator     = fmt.Errorf("this broker does not coordinate the group's offsets partition: %w", kerr.NotCoordinator)
	errCoordinatorLoading = fmt.Errorf("the group's offsets partition is loading: %w", kerr.CoordinatorLoadInProgress)
)

// offsetsLeadershipState is what SetOffsetsCoordinator last said: the
// partitions to lead, each with the number of the call that said so.
type offsetsLeadershipState struct {
	mu    sync.Mutex
	calls uint64
	loads uint64
	want  map[int32]uint64
}

func (l *offsetsLeadershipState) set(p int32, lead bool) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.want == nil {
		l.want = map[int32]uint64{}
	}
	if lead {
		l.want[p] = l.calls
	} else {
		delete(l.want, p)
	}
	return l.calls
}

func (l *offsetsLeadershipState) wanted() map[int32]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int32]uint64, len(l.want))
	for p, c := range l.want {
		out[p] = c
	}
	return out
}

func (l *offsetsLeadershipState) get(p int32) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.want[p]
	return c, ok
}

// forget drops p from the partitions to lead if call is still the last word
// on it.
func (l *offsetsLeadershipState) forget(p int32, call uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.want[p] == call {
		delete(l.want, p)
	}
}

// nextLoad numbers partition loads (never 0).
func (l *offsetsLeadershipState) nextLoad() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loads++
	return l.loads
}

// ownedLoad returns the load under which the node coordinates p.
func (x *groupIndex) ownedLoad(p int32) (uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	load, ok := x.owned[p]
	return load, ok
}

func (x *groupIndex) setOwned(p int32, load uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.owned == nil {
		x.owned = map[int32]uint64{}
	}
	x.owned[p] = load
}

// publishLoaded publishes g, of partition p, if p is still owned under load.
func (x *groupIndex) publishLoaded(g *group.Group, p int32, load uint64) {
	if cur, ok := x.ownedLoad(p); !ok || cur != load {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur, ok := x.owned[p]; ok && cur == load {
		x.publishLocked(g)
	}
}

// drop forgets that the node owns the partitions for which in is true, and
// their groups.
func (x *groupIndex) drop(partitions int32, in func(p int32) bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for p := range x.owned {
		if in(p) {
			delete(x.owned, p)
		}
	}
	for id := range x.groups {
		if in(OffsetsPartition(id, partitions)) {
			delete(x.groups, id)
		}
	}
}

// Messages of the groups supervisor in GroupsFollowLeadership mode.
type (
	// offsetsLeadership is one SetOffsetsCoordinator call (the call-th).
	offsetsLeadership struct {
		P    int32
		Lead bool
		call uint64
	}
	// offsetsLoaded is the outcome of loading partition P.
	offsetsLoaded struct {
		P      int32
		load   uint64
		groups map[string]*group.Group
		err    error
	}
	// offsetsFenced: a group of P, served under load, found its journal
	// claimed by another broker.
	offsetsFenced struct {
		P    int32
		load uint64
	}
)

// SetOffsetsCoordinator makes the node coordinate the groups of offsets
// partition p (lead) or stop doing so. Safe from any goroutine; it returns
// at once, the groups supervisor loads or unloads the partition after.
// Without Config.GroupsFollowLeadership it does nothing: the node
// coordinates every group.
func (n *Node) SetOffsetsCoordinator(p int32, lead bool) {
	if !n.cfg.GroupsFollowLeadership {
		return
	}
	if p < 0 || p >= n.cfg.OffsetsPartitions {
		n.logger.Warn("groups: offsets partition out of range", "partition", p, "partitions", n.cfg.OffsetsPartitions)
		return
	}
	call := n.groups.leadership.set(p, lead)
	n.system.Root.Send(n.groupsPID, &offsetsLeadership{P: p, Lead: lead, call: call})
}

// OwnsOffsetsPartition reports whether the node coordinates the groups of
// offsets partition p now (loaded, not fenced). Without
// Config.GroupsFollowLeadership it owns every partition.
func (n *Node) OwnsOffsetsPartition(p int32) bool {
	if p < 0 || p >= n.cfg.OffsetsPartitions {
		return false
	}
	if !n.cfg.GroupsFollowLeadership {
		return true
	}
	_, ok := n.groups.ownedLoad(p)
	return ok
}

// checkCoordinator is NOT_COORDINATOR if the node does not coordinate the
// group (for reads answered without asking its actor).
func (n *Node) checkCoordinator(groupID string) error {
	if n.OwnsOffsetsPartition(OffsetsPartition(groupID, n.cfg.OffsetsPartitions)) {
		return nil
	}
	return errNotCoordinator
}

// followState is the supervisor's part of GroupsFollowLeadership: the
// loads in flight and, per partition, the call that last asked to lead it.
type followState struct {
	loading map[int32]uint64
	call    map[int32]uint64
}

// startFollowing runs at the supervisor's (re)start: nothing is owned (the
// children are gone); load what the node was told to lead.
func (s *groupsSupervisor) startFollowing(ctx actor.Context) {
	n := s.node
	s.follow = followState{loading: map[int32]uint64{}, call: map[int32]uint64{}}
	n.groups.drop(n.cfg.OffsetsPartitions, func(int32) bool { return true })
	for p, call := range n.groups.leadership.wanted() {
		s.startLoad(ctx, p, call)
	}
}

func (s *groupsSupervisor) notCoordinator(groupID string) error {
	p := OffsetsPartition(groupID, s.node.cfg.OffsetsPartitions)
	if _, ok := s.node.groups.ownedLoad(p); ok {
		return nil
	}
	if s.follow.loading[p] != 0 {
		return errCoordinatorLoading
	}
	return errNotCoordinator
}

func (s *groupsSupervisor) leadership(ctx actor.Context, m *offsetsLeadership) {
	if !m.Lead {
		s.unload(ctx, m.P)
		return
	}
	s.follow.call[m.P] = m.call
	if _, ok := s.node.groups.ownedLoad(m.P); ok || s.follow.loading[m.P] != 0 {
		return
	}
	s.startLoad(ctx, m.P, m.call)
}

// startLoad claims and replays partition p's journal on a goroutine (a
// store round trip must not stall the supervisor's other partitions) and
// gets the result as offsetsLoaded.
func (s *groupsSupervisor) startLoad(ctx actor.Context, p int32, call uint64) {
	n := s.node
	load := n.groups.leadership.nextLoad()
	s.follow.loading[p], s.follow.call[p] = load, call
	self, root := ctx.Self(), ctx.ActorSystem().Root
	go func() {
		groups := map[string]*group.Group{}
		err := n.loadOffsetsPartition(p, groups)
		root.Send(self, &offsetsLoaded{P: p, load: load, groups: groups, err: err})
	}()
}

// loadRetry is the pause before loading a partition again after a failure.
const loadRetry = 500 * time.Millisecond

func (s *groupsSupervisor) loaded(ctx actor.Context, m *offsetsLoaded) {
	n := s.node
	if s.follow.loading[m.P] != m.load {
		return // unloaded (or loaded again) meanwhile
	}
	delete(s.follow.loading, m.P)
	if m.err != nil {
		if errors.Is(m.err, cluster.ErrJournalFenced) {
			n.logger.Warn("groups: offsets partition claimed by another broker while loading", "partition", m.P, "err", m.err)
			n.groups.leadership.forget(m.P, s.follow.call[m.P])
			return
		}
		n.logger.Warn("groups: load offsets partition; retrying", "partition", m.P, "err", m.err, "retry", loadRetry)
		self, root, p := ctx.Self(), ctx.ActorSystem().Root, m.P
		time.AfterFunc(loadRetry, func() {
			if call, ok := n.groups.leadership.get(p); ok {
				root.Send(self, &offsetsLeadership{P: p, Lead: true, call: call})
			}
		})
		return
	}
	n.groups.setOwned(m.P, m.load)
	now := n.cfg.Now()
	for id, g := range m.groups {
		g.Recover(now)
		if g.Exists() && s.children[id] == nil {
			n.groups.publishLoaded(g, m.P, m.load)
			s.spawn(ctx, id, g, m.load)
		}
	}
	n.logger.Info("groups: coordinating offsets partition", "partition", m.P, "groups", len(m.groups))
}

// unload stops coordinating partition p: its group actors stop (requests
// already queued at them are answered NOT_COORDINATOR) and its groups
// leave the index.
func (s *groupsSupervisor) unload(ctx actor.Context, p int32) {
	n := s.node
	delete(s.follow.loading, p)
	_, owned := n.groups.ownedLoad(p)
	n.groups.drop(n.cfg.OffsetsPartitions, func(q int32) bool { return q == p })
	for id, pid := range s.children {
		if OffsetsPartition(id, n.cfg.OffsetsPartitions) == p {
			ctx.Poison(pid)
			delete(s.children, id)
		}
	}
	if owned {
		n.logger.Info("groups: stopped coordinating offsets partition", "partition", p)
	}
}

func (s *groupsSupervisor) fenced(ctx actor.Context, m *offsetsFenced) {
	if load, ok := s.node.groups.ownedLoad(m.P); !ok || load != m.load {
		return
	}
	s.node.logger.Warn("groups: offsets partition claimed by another broker; no longer coordinating", "partition", m.P)
	s.unload(ctx, m.P)
	// Not claimed back unless told to lead it again.
	s.node.groups.leadership.forget(m.P, s.follow.call[m.P])
}

// serving is whether the actor may still act for its group.
func (a *groupActor) serving() bool {
	if a.fenced {
		return false
	}
	if a.load == 0 {
		return true
	}
	load, ok := a.node.groups.ownedLoad(OffsetsPartition(a.id, a.node.cfg.OffsetsPartitions))
	return ok && load == a.load
}

// deposed handles a fenced append: another broker coordinates the group
// now. Its state is past what is durable; it serves nothing more, every
// waiting request is answered NOT_COORDINATOR, and the supervisor unloads
// the partition.
func (a *groupActor) deposed(ctx actor.Context, err error) {
	a.fenced = true
	a.node.logger.Warn("group coordinator deposed", "group", a.id, "err", err)
	for _, pid := range a.waiting {
		ctx.Send(pid, errNotCoordinator)
	}
	a.waiting = map[uint64]*actor.PID{}
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	if a.load != 0 {
		ctx.Send(ctx.Parent(), &offsetsFenced{P: OffsetsPartition(a.id, a.node.cfg.OffsetsPartitions), load: a.load})
	}
}
