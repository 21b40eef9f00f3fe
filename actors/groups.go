package actors

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/actors/group"
	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// OffsetsTopic is the internal topic whose partitions hold the group
// coordinators' journals, named as in Kafka.
const OffsetsTopic = "__consumer_offsets"

// OffsetsPartition is the internal partition of a group: Kafka's
// abs(groupId.hashCode) % partitions, with Java's String.hashCode.
func OffsetsPartition(groupID string, partitions int32) int32 {
	var h int32
	for _, r := range groupID {
		if r >= 0x10000 { // Java hashes UTF-16 code units
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -h && h != 0 { // math.MinInt32: Kafka's Utils.abs gives 0
		h = 0
	}
	if h < 0 {
		h = -h
	}
	return h % partitions
}

// offsetsJournal is the journal name of internal partition p.
func offsetsJournal(p int32) string { return fmt.Sprintf("%s-%d", OffsetsTopic, p) }

// groupIndex is what the node knows of every group without asking its
// actor: its phase and committed offsets as of its last step, for ListGroups
// and lag. The group actor updates it after its events are durable and
// before it replies.
type groupIndex struct {
	mu     sync.RWMutex
	groups map[string]*GroupSummary
	// owned maps each offsets partition this node coordinates to the load
	// that made it so (GroupsFollowLeadership only; written by the groups
	// supervisor). Under mu, so that unloading a partition and dropping
	// its groups' summaries is one step no group actor publishes into.
	owned map[int32]uint64
	// leadership is what SetOffsetsCoordinator last said.
	leadership offsetsLeadershipState
}

// GroupSummary is a group as ListGroups and lag reports show it.
type GroupSummary struct {
	Group        string
	State        string
	ProtocolType string
	Members      int
	Offsets      map[group.TopicPartition]group.Offset
}

func (x *groupIndex) publish(g *group.Group) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.publishLocked(g)
}

func (x *groupIndex) publishLocked(g *group.Group) {
	if !g.Exists() {
		delete(x.groups, g.ID)
		return
	}
	x.groups[g.ID] = &GroupSummary{Group: g.ID, State: g.Describe().State.String(), ProtocolType: g.ProtocolType,
		Members: len(g.Members), Offsets: g.CommittedOffsets(nil)}
}

func (x *groupIndex) list() []*GroupSummary {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]*GroupSummary, 0, len(x.groups))
	for _, s := range x.groups {
		out = append(out, s)
	}
	return out
}

func (x *groupIndex) get(id string) *GroupSummary {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.groups[id]
}

// Messages of the groups supervisor and group actors.
type (
	// groupRequest carries one command (a *group.Join, ... or a read) to the
	// group's actor; the reply is the command's result.
	groupRequest struct {
		Group string
		Cmd   any
	}
	// describeGroup and fetchOffsets are reads answered from the actor's
	// state (a group.Description, a map of offsets).
	describeGroup struct{}
	fetchOffsets  struct{ Partitions []group.TopicPartition }
	groupTick     struct{ gen uint64 }
	groupsProbe   struct{} // answered once the supervisor has loaded every group
)

// groupsSupervisor is the parent of the group actors: at start it replays
// every internal partition's journal once and spawns an actor for each group
// found (their sessions must expire even if no client comes back); later it
// spawns one on a group's first request. It routes requests by group id.
type groupsSupervisor struct {
	node     *Node
	children map[string]*actor.PID
	follow   followState // GroupsFollowLeadership only
}

func groupsSupervisorProps(n *Node) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &groupsSupervisor{node: n} },
		actor.WithSupervisor(newBackoffStrategy(n.logger, &n.restarts)),
		actor.WithReceiverMiddleware(n.cfg.ActorMiddleware...))
}

func (s *groupsSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.children = map[string]*actor.PID{}
		if s.node.cfg.GroupsFollowLeadership {
			s.startFollowing(ctx)
			break
		}
		// One replay per internal partition rebuilds every group in it.
		loaded := map[string]*group.Group{}
		for p := int32(0); p < s.node.cfg.OffsetsPartitions; p++ {
			if err := s.node.loadOffsetsPartition(p, loaded); err != nil {
				panic(fmt.Errorf("groups: load %s: %w", offsetsJournal(p), err))
			}
		}
		now := s.node.cfg.Now()
		for id, g := range loaded {
			g.Recover(now)
			s.node.groups.publish(g)
			if g.Exists() && s.children[id] == nil {
				s.spawn(ctx, id, g, 0)
			}
		}
	case *groupsProbe:
		respond(ctx, ctx.Sender(), m)
	case *groupRequest:
		if s.node.cfg.GroupsFollowLeadership {
			if err := s.notCoordinator(m.Group); err != nil {
				respond(ctx, ctx.Sender(), err)
				return
			}
		}
		ctx.Forward(s.child(ctx, m.Group))
	case *offsetsLeadership:
		s.leadership(ctx, m)
	case *offsetsLoaded:
		s.loaded(ctx, m)
	case *offsetsFenced:
		s.fenced(ctx, m)
	case *actor.Terminated:
		for id, pid := range s.children {
			if pid.Equal(m.Who) {
				delete(s.children, id)
			}
		}
	}
}

// loadOffsetsPartition claims internal partition p's journal (when the
// journal is fenced by claims), replays it into loaded (one group per id,
// shared across partitions) and compacts it if it is long.
func (n *Node) loadOffsetsPartition(p int32, loaded map[string]*group.Group) error {
	j, name := n.groupJournal(), offsetsJournal(p)
	if c, ok := j.(groupJournalClaimer); ok {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
		err := c.Claim(ctx, name)
		cancel()
		if err != nil {
			return err
		}
	}
	var last uint64
	events, inPartition := 0, map[string]*group.Group{}
	err := j.Replay(name, 0, func(seq uint64, ev *fluxopb.JournalEvent) error {
		ge := &fluxopb.GroupEvent{}
		if err := unmarshalJournal(ev, ge); err != nil {
			return err
		}
		g := loaded[ge.Group]
		if g == nil {
			g = n.newGroup(ge.Group)
			loaded[ge.Group] = g
		}
		g.Replay(ge)
		inPartition[ge.Group] = g
		last, events = seq, events+1
		return nil
	})
	if err != nil {
		return err
	}
	if events >= compactMinEvents && events > 2*len(inPartition) {
		return n.compactOffsets(p, last, inPartition)
	}
	return nil
}

// compactMinEvents is the journal length from which start-up compacts an
// internal partition's journal.
const compactMinEvents = 1000

// compactOffsets replaces the journal of internal partition p, whose last
// event is last, by one snapshot per live group: written in one batch, then
// the events up to last deleted. A crash between the two leaves both, and
// replaying the old events then the snapshots gives the same groups. It
// runs when the partition is loaded, before any group actor appends to the
// journal. A failure only leaves the journal long, so it is logged, not
// fatal; but a fenced journal (another coordinator claimed it) is.
func (n *Node) compactOffsets(p int32, last uint64, groups map[string]*group.Group) error {
	j, name := n.groupJournal(), offsetsJournal(p)
	var snaps []proto.Message
	for _, id := range slices.Sorted(maps.Keys(groups)) {
		if g := groups[id]; g.Exists() {
			snaps = append(snaps, g.Snapshot())
		}
	}
	if len(snaps) > 0 {
		if _, err := j.Append(name, snaps...); err != nil {
			n.logger.Warn("groups: compact journal", "journal", name, "err", err)
			return fencedOnly(err)
		}
	}
	if err := j.DeleteUpTo(name, last); err != nil {
		n.logger.Warn("groups: compact journal", "journal", name, "err", err)
		return fencedOnly(err)
	}
	n.logger.Info("groups: compacted journal", "journal", name, "events", last, "groups", len(snaps))
	return nil
}

func (s *groupsSupervisor) child(ctx actor.Context, id string) *actor.PID {
	if pid, ok := s.children[id]; ok {
		return pid
	}
	var load uint64
	if s.node.cfg.GroupsFollowLeadership {
		load, _ = s.node.groups.ownedLoad(OffsetsPartition(id, s.node.cfg.OffsetsPartitions))
	}
	return s.spawn(ctx, id, nil, load)
}

// spawn starts a group's actor, with its state when the supervisor already
// rebuilt it (at start); otherwise the actor replays its journal. load is
// the load of the group's offsets partition the actor serves under
// (GroupsFollowLeadership; 0 otherwise).
func (s *groupsSupervisor) spawn(ctx actor.Context, id string, initial *group.Group, load uint64) *actor.PID {
	n := s.node
	first := initial // for the first start only: a restart must replay
	props := actor.PropsFromProducer(func() actor.Actor {
		a := &groupActor{node: n, id: id, initial: first, load: load}
		first = nil
		return a
	},
		actor.WithReceiverMiddleware(n.cfg.ActorMiddleware...))
	// Group ids may hold any character; actor names are paths. An
	// unloaded partition's actors may still be stopping when it is
	// loaded again: the load tells their names apart.
	name := "group-" + url.PathEscape(id)
	if load != 0 {
		name += "@" + strconv.FormatUint(load, 10)
	}
	pid, err := ctx.SpawnNamed(props, name)
	if err != nil {
		panic(fmt.Errorf("groups: spawn %q: %w", id, err))
	}
	s.children[id] = pid
	return pid
}

// groupActor is one group's coordinator: the group.Group state machine in a
// protoactor shell. Each request is stepped; the step's events are appended
// to the group's internal partition journal (synced) before any reply goes
// out; a timer sends a tick at the state machine's next deadline.
type groupActor struct {
	node    *Node
	id      string
	initial *group.Group // the state rebuilt by the supervisor, for the first start only
	load    uint64       // the partition load it serves under (GroupsFollowLeadership), else 0
	fenced  bool         // another coordinator took the journal: serve nothing more
	journal string
	g       *group.Group
	nextReq uint64
	waiting map[uint64]*actor.PID // requests whose answer a later step gives
	timer   *time.Timer
	tickGen uint64
}

func (a *groupActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.recover()
		a.schedule(ctx)
	case *actor.Restarting, *actor.Stopping:
		// Requests waiting on the old state will never be answered by it.
		for _, pid := range a.waiting {
			ctx.Send(pid, errGroupCoordinatorRestarting)
		}
		a.waiting = nil
		if a.timer != nil {
			a.timer.Stop()
		}
	case *groupRequest:
		if !a.serving() {
			respond(ctx, ctx.Sender(), errNotCoordinator)
			return
		}
		a.request(ctx, m.Cmd)
	case *groupTick:
		if m.gen == a.tickGen && a.serving() {
			a.step(ctx, group.Tick{})
		}
	}
}

// newGroup is an empty group with the node's settings.
func (n *Node) newGroup(id string) *group.Group {
	return group.New(id, group.Config{
		MinSessionTimeout: n.cfg.GroupMinSessionTimeout, MaxSessionTimeout: n.cfg.GroupMaxSessionTimeout,
		InitialRebalanceDelay: n.cfg.GroupInitialRebalanceDelay, NewMemberID: newMemberID,
	})
}

// recover rebuilds the group from its internal partition's journal (or
// takes the state the supervisor rebuilt at start).
func (a *groupActor) recover() {
	n := a.node
	a.journal = offsetsJournal(OffsetsPartition(a.id, n.cfg.OffsetsPartitions))
	a.waiting = map[uint64]*actor.PID{}
	if a.initial != nil {
		a.g, a.initial = a.initial, nil
		return
	}
	a.g = n.newGroup(a.id)
	err := n.groupJournal().Replay(a.journal, 0, func(_ uint64, ev *fluxopb.JournalEvent) error {
		ge := &fluxopb.GroupEvent{}
		if err := unmarshalJournal(ev, ge); err != nil {
			return err
		}
		if ge.Group == a.id {
			a.g.Replay(ge)
		}
		return nil
	})
	if err != nil {
		panic(fmt.Errorf("group %q: replay: %w", a.id, err))
	}
	a.g.Recover(n.cfg.Now())
	a.publish()
}

// publish shows the group's state in the node's index (if the actor still
// serves its partition's current load).
func (a *groupActor) publish() {
	if a.load == 0 {
		a.node.groups.publish(a.g)
		return
	}
	a.node.groups.publishLoaded(a.g, OffsetsPartition(a.id, a.node.cfg.OffsetsPartitions), a.load)
}

func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	u := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s-%s", clientID, u[0:8], u[8:12], u[12:16], u[16:20], u[20:32])
}

func (a *groupActor) request(ctx actor.Context, cmd any) {
	switch c := cmd.(type) {
	case *describeGroup:
		respond(ctx, ctx.Sender(), a.g.Describe())
		return
	case *fetchOffsets:
		respond(ctx, ctx.Sender(), a.g.CommittedOffsets(c.Partitions))
		return
	}
	a.nextReq++
	req := a.nextReq
	r, ok := cmd.(group.Request)
	if !ok {
		respond(ctx, ctx.Sender(), fmt.Errorf("group: unknown request %T", cmd))
		return
	}
	r.SetReq(req)
	if s := ctx.Sender(); s != nil {
		a.waiting[req] = s
	}
	a.step(ctx, cmd)
}

// step runs one command: persist its events, publish, reply, re-arm the timer.
func (a *groupActor) step(ctx actor.Context, cmd any) {
	out := a.g.Step(a.node.cfg.Now(), cmd)
	if len(out.Events) > 0 {
		evs := make([]proto.Message, len(out.Events))
		for i, ev := range out.Events {
			evs[i] = ev
		}
		if _, err := a.node.groupJournal().Append(a.journal, evs...); err != nil {
			if errors.Is(err, cluster.ErrJournalFenced) {
				a.deposed(ctx, err)
				return
			}
			// The state already moved past what is durable: crash, so the
			// restart rebuilds it from the journal and waiting requests are
			// told to retry.
			panic(fmt.Errorf("group %q: journal append: %w", a.id, err))
		}
		for _, ev := range out.Events {
			if r := ev.GetRebalanced(); r != nil {
				a.node.logger.Info("group rebalanced", "group", a.id, "generation", r.Generation,
					"members", len(r.Members), "protocol", r.Protocol, "leader", r.Leader)
			}
		}
	}
	a.publish()
	for _, r := range out.Replies {
		if pid, ok := a.waiting[r.Req]; ok {
			ctx.Send(pid, r.Result)
			delete(a.waiting, r.Req)
		}
	}
	a.schedule(ctx)
}

// schedule arms one timer for the state machine's next deadline.
func (a *groupActor) schedule(ctx actor.Context) {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	next := a.g.NextDeadline()
	if next.IsZero() {
		return
	}
	a.tickGen++
	gen, self, system := a.tickGen, ctx.Self(), ctx.ActorSystem()
	a.timer = time.AfterFunc(next.Sub(a.node.cfg.Now()), func() { system.Root.Send(self, &groupTick{gen: gen}) })
}

// errGroupCoordinatorRestarting answers a request the coordinator dropped
// (restarting or stopping): NOT_COORDINATOR makes clients find the
// coordinator again and retry.
var errGroupCoordinatorRestarting = fmt.Errorf("group coordinator restarting: %w", kerr.NotCoordinator)

// unmarshalJournal decodes a journal entry's payload into msg, checking its
// type.
func unmarshalJournal(ev *fluxopb.JournalEvent, msg proto.Message) error {
	if want := string(proto.MessageName(msg)); !strings.HasSuffix(ev.TypeUrl, "/"+want) {
		return fmt.Errorf("journal entry %d is a %s, want %s", ev.Sequence, ev.TypeUrl, want)
	}
	return proto.Unmarshal(ev.Payload, msg)
}
