// Package group is the consumer group coordinator's state machine: Kafka's
// classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and
// committed offsets, as a pure step function in the style of etcd's raft.
//
// A Group is stepped with a command and the current time and returns an
// Output: events to persist, then replies to send. It does no I/O, keeps no
// clock and never blocks; a JoinGroup or SyncGroup whose answer must wait for
// the rest of the group is answered by a later step (the reply carries the
// request's Req token). Durable state changes only through apply(event), the
// same function replay uses, so a group rebuilt from its journal is the group
// that wrote it; what is not durable (pending requests, timers, the
// rebalance phase) is rebuilt by Recover.
//
// States, as in Kafka: Empty (no members; may hold offsets),
// PreparingRebalance (waiting for members to join), CompletingRebalance
// (waiting for the leader's assignment), Stable, Dead (deleted or never
// existed, as DescribeGroups reports it).
package group

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// State is a group's phase in the classic protocol.
type State uint8

const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

func (s State) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

// Config holds the coordinator's limits (Kafka's group.* broker settings).
type Config struct {
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms, default 6 s
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms, default 30 min
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms, default 0
	MaxMetadataBytes      int           // offset.metadata.max.bytes, default 4096
	// NewMemberID makes a member id for a client; it must not repeat.
	NewMemberID func(clientID string) string
}

func (c *Config) defaults() {
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = 6 * time.Second
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = 4096
	}
}

// Protocol is one assignment protocol a member supports, with its metadata.
type Protocol struct {
	Name     string
	Metadata []byte
}

// Member is one member of the group.
type Member struct {
	ID, InstanceID, ClientID, ClientHost string
	SessionTimeout, RebalanceTimeout     time.Duration
	ProtocolType                         string
	Protocols                            []Protocol
	Assignment                           []byte

	deadline time.Time // session expiry
	join     *joinWait // a JoinGroup waiting for the join phase to end
	sync     *uint64   // a SyncGroup waiting for the leader's assignment
}

type joinWait struct {
	req     uint64
	version int16
}

// metadata is the member's metadata for protocol name.
func (m *Member) metadata(name string) []byte {
	for _, p := range m.Protocols {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is a committed offset with what Kafka keeps beside it.
type Offset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitTime  int64 // ms since the epoch
}

// Group is one consumer group's coordinator state.
type Group struct {
	cfg Config
	ID  string

	State        State
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	Members      map[string]*Member
	order        []string          // member ids in join order (leader choice)
	instances    map[string]string // group.instance.id -> member id
	Offsets      map[TopicPartition]Offset

	pending           map[string]time.Time // ids given with MEMBER_ID_REQUIRED -> expiry
	rebalanceDeadline time.Time
	syncDeadline      time.Time
	initialDelay      bool // an empty group's first join phase waits the full delay
	assigned          bool // the generation has its assignment (durable)
	dirty             bool // membership changed since the last generation (durable)
}

// New returns an empty group.
func New(id string, cfg Config) *Group {
	cfg.defaults()
	return &Group{cfg: cfg, ID: id, Members: map[string]*Member{}, instances: map[string]string{},
		Offsets: map[TopicPartition]Offset{}, pending: map[string]time.Time{}}
}

// Exists reports whether the group has anything a client could see:
// members, a generation or committed offsets. A group that does not exist
// is described as Dead and not listed.
func (g *Group) Exists() bool {
	return len(g.Members) > 0 || len(g.Offsets) > 0 || g.Generation > 0 || len(g.pending) > 0
}

// Reply is the answer to the request whose token is Req. Result is one of
// the *Result types of this package.
type Reply struct {
	Req    uint64
	Result any
}

// Output is what one step decided: persist Events (in order), then send
// Replies. A reply must never go out before its step's events are durable.
type Output struct {
	Events  []*fluxopb.GroupEvent
	Replies []Reply
}

// step collects one step's output.
type step struct {
	g   *Group
	now time.Time
	out Output
}

func (s *step) reply(req uint64, r any) { s.out.Replies = append(s.out.Replies, Reply{req, r}) }

// emit applies an event and records it for persistence.
func (s *step) emit(ev *fluxopb.GroupEvent) {
	ev.Group, ev.TimeMs = s.g.ID, s.now.UnixMilli()
	s.g.apply(ev)
	s.out.Events = append(s.out.Events, ev)
}

// Step applies one command at time now.
func (g *Group) Step(now time.Time, cmd any) Output {
	s := &step{g: g, now: now}
	switch c := cmd.(type) {
	case *Join:
		s.join(c)
	case *Sync:
		s.sync(c)
	case *Heartbeat:
		s.heartbeat(c)
	case *Leave:
		s.leave(c)
	case *Commit:
		s.commit(c)
	case *DeleteOffsets:
		s.deleteOffsets(c)
	case *DeleteGroup:
		s.deleteGroup(c)
	case *ForgetTopic:
		s.forgetTopic(c)
	case Tick:
		s.tick()
	default:
		panic(fmt.Sprintf("group: unknown command %T", cmd))
	}
	return s.out
}

// Tick is the periodic command that expires sessions and ends join and
// sync phases whose time is up.
type Tick struct{}

func (s *step) tick() {
	g := s.g
	for id, exp := range g.pending {
		if !s.now.Before(exp) {
			delete(g.pending, id)
		}
	}
	var expired []string
	for _, id := range g.order {
		m := g.Members[id]
		if m.join == nil && m.sync == nil && !s.now.Before(m.deadline) {
			expired = append(expired, id)
		}
	}
	for _, id := range expired {
		s.remove(id, "session timeout expired")
	}
	if len(expired) > 0 {
		s.membersRemoved()
	}
	switch g.State {
	case PreparingRebalance:
		if !s.now.Before(g.rebalanceDeadline) {
			s.completeJoin()
		} else {
			s.maybeCompleteJoin()
		}
	case CompletingRebalance:
		if !s.now.Before(g.syncDeadline) {
			// The leader did not assign in time: drop whoever did not sync
			// (the leader among them) and start over.
			var late []string
			for _, id := range g.order {
				if g.Members[id].sync == nil {
					late = append(late, id)
				}
			}
			for _, id := range late {
				s.remove(id, "no SyncGroup before the rebalance timeout")
			}
			s.membersRemoved()
		}
	}
}

// NextDeadline is the earliest time a Tick could change something, or the
// zero time when no timer runs.
func (g *Group) NextDeadline() time.Time {
	var next time.Time
	early := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, exp := range g.pending {
		early(exp)
	}
	for _, m := range g.Members {
		if m.join == nil && m.sync == nil {
			early(m.deadline)
		}
	}
	switch g.State {
	case PreparingRebalance:
		early(g.rebalanceDeadline)
	case CompletingRebalance:
		early(g.syncDeadline)
	}
	return next
}

// remove takes a member out (event), failing its waiting requests.
func (s *step) remove(id, reason string) {
	m := s.g.Members[id]
	if m == nil {
		return
	}
	if m.join != nil {
		s.reply(m.join.req, &JoinResult{Err: kerr.UnknownMemberID, MemberID: id})
	}
	if m.sync != nil {
		s.reply(*m.sync, &SyncResult{Err: kerr.UnknownMemberID})
	}
	s.emit(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_MemberLeft{MemberLeft: &fluxopb.GroupMemberLeft{MemberId: id, Reason: reason}}})
}

// membersRemoved moves the group on after members left.
func (s *step) membersRemoved() {
	switch s.g.State {
	case Stable, CompletingRebalance:
		s.prepareRebalance()
	case PreparingRebalance:
		s.maybeCompleteJoin()
	}
}

// prepareRebalance starts a join phase: every member must join again.
func (s *step) prepareRebalance() {
	g := s.g
	if g.State == CompletingRebalance {
		for _, id := range g.order {
			if m := g.Members[id]; m.sync != nil {
				s.reply(*m.sync, &SyncResult{Err: kerr.RebalanceInProgress})
				m.sync = nil
			}
		}
	}
	g.initialDelay = g.State == Empty && g.cfg.InitialRebalanceDelay > 0
	g.State = PreparingRebalance
	if g.initialDelay {
		g.rebalanceDeadline = s.now.Add(g.cfg.InitialRebalanceDelay)
	} else {
		g.rebalanceDeadline = s.now.Add(g.maxRebalanceTimeout())
	}
	s.maybeCompleteJoin() // everyone may already be waiting (or no one is left)
}

func (g *Group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.Members {
		d = max(d, m.RebalanceTimeout)
	}
	return d
}

// maybeCompleteJoin ends the join phase once every member (and every member
// id handed out) has joined.
func (s *step) maybeCompleteJoin() {
	g := s.g
	if g.State != PreparingRebalance || g.initialDelay || len(g.pending) > 0 {
		return
	}
	for _, m := range g.Members {
		if m.join == nil {
			return
		}
	}
	s.completeJoin()
}

// completeJoin starts the next generation with the members that joined,
// dropping those that did not, and answers their JoinGroups.
func (s *step) completeJoin() {
	g := s.g
	var late []string
	for _, id := range g.order {
		if g.Members[id].join == nil {
			late = append(late, id)
		}
	}
	for _, id := range late {
		s.remove(id, "did not join before the rebalance timeout")
	}
	g.initialDelay = false
	reb := &fluxopb.GroupRebalanced{Generation: g.Generation + 1, Members: slices.Clone(g.order)}
	if len(g.Members) > 0 {
		reb.ProtocolType = g.Members[g.order[0]].ProtocolType
		reb.Protocol = g.selectProtocol()
		reb.Leader = g.Leader
		if _, ok := g.Members[reb.Leader]; !ok {
			reb.Leader = g.order[0]
		}
	}
	s.emit(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_Rebalanced{Rebalanced: reb}})
	if len(g.Members) == 0 {
		g.State = Empty
		return
	}
	g.State = CompletingRebalance
	g.syncDeadline = s.now.Add(g.maxRebalanceTimeout())
	for _, id := range g.order {
		m := g.Members[id]
		s.reply(m.join.req, g.joinResult(m, m.join.version))
		m.join = nil
		m.deadline = s.now.Add(m.SessionTimeout)
	}
}

// joinResult is the JoinGroup answer of the current generation for m; the
// leader gets every member's metadata.
func (g *Group) joinResult(m *Member, version int16) *JoinResult {
	r := &JoinResult{Generation: g.Generation, ProtocolType: g.ProtocolType, Protocol: g.Protocol, Leader: g.Leader, MemberID: m.ID}
	if m.ID == g.Leader {
		for _, id := range g.order {
			o := g.Members[id]
			r.Members = append(r.Members, JoinMember{MemberID: o.ID, InstanceID: o.InstanceID, Metadata: o.metadata(g.Protocol)})
		}
	}
	return r
}

// candidates are the protocols every member supports, in the first
// member's order of preference.
func (g *Group) candidates() []string {
	if len(g.order) == 0 {
		return nil
	}
	var out []string
	for _, p := range g.Members[g.order[0]].Protocols {
		all := true
		for _, m := range g.Members {
			if !hasProtocol(m.Protocols, p.Name) {
				all = false
				break
			}
		}
		if all {
			out = append(out, p.Name)
		}
	}
	return out
}

func hasProtocol(ps []Protocol, name string) bool {
	return slices.ContainsFunc(ps, func(p Protocol) bool { return p.Name == name })
}

// selectProtocol picks the candidate most members prefer (each votes for
// its first supported candidate), ties going to the earlier candidate.
func (g *Group) selectProtocol() string {
	cands := g.candidates()
	votes := map[string]int{}
	for _, m := range g.Members {
		for _, p := range m.Protocols {
			if slices.Contains(cands, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, c := range cands {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// supports reports whether a joining member's protocols fit the group.
func (g *Group) supports(protocolType string, ps []Protocol) bool {
	if protocolType == "" || len(ps) == 0 {
		return false
	}
	if len(g.Members) == 0 {
		return true
	}
	if protocolType != g.Members[g.order[0]].ProtocolType {
		return false
	}
	for _, c := range g.candidates() {
		if hasProtocol(ps, c) {
			return true
		}
	}
	return false
}

func sameProtocols(a, b []Protocol) bool {
	return slices.EqualFunc(a, b, func(x, y Protocol) bool { return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata) })
}
