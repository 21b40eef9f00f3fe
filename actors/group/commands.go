package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// Join is a JoinGroup request.
type Join struct {
	Req                              uint64
	Version                          int16
	MemberID, InstanceID             string
	ClientID, ClientHost             string
	ProtocolType                     string
	Protocols                        []Protocol
	SessionTimeout, RebalanceTimeout time.Duration
	Reason                           string
}

// JoinMember is one member as the leader sees it in its JoinGroup answer.
type JoinMember struct {
	MemberID, InstanceID string
	Metadata             []byte
}

// JoinResult answers a JoinGroup. Err is nil or a *kerr.Error.
type JoinResult struct {
	Err                    error
	Generation             int32
	ProtocolType, Protocol string
	Leader, MemberID       string
	Members                []JoinMember
}

// Sync is a SyncGroup request. ProtocolType and Protocol are checked when
// set (v5+).
type Sync struct {
	Req                    uint64
	MemberID, InstanceID   string
	Generation             int32
	ProtocolType, Protocol *string
	Assignments            map[string][]byte
}

// SyncResult answers a SyncGroup.
type SyncResult struct {
	Err                    error
	ProtocolType, Protocol string
	Assignment             []byte
}

// Heartbeat is a Heartbeat request; it is answered with a *HeartbeatResult.
type Heartbeat struct {
	Req                  uint64
	MemberID, InstanceID string
	Generation           int32
}

type HeartbeatResult struct{ Err error }

// Leave is a LeaveGroup request: one member before v3, a batch after.
type Leave struct {
	Req     uint64
	Members []LeaveMember
}

type LeaveMember struct {
	MemberID, InstanceID, Reason string
}

// LeaveResult has one error per member of the request, in order.
type LeaveResult struct {
	Err     error
	Members []error
}

// Commit is an OffsetCommit. A generation of -1 with no member id is a
// simple commit by a consumer outside any group, allowed while the group
// has no members.
type Commit struct {
	Req                  uint64
	MemberID, InstanceID string
	Generation           int32
	Offsets              []CommitOffset
}

type CommitOffset struct {
	TopicPartition
	Offset      int64
	LeaderEpoch int32
	Metadata    string
}

// CommitResult has one error per offset of the request, in order.
type CommitResult struct{ Errs []error }

// DeleteOffsets is an OffsetDelete.
type DeleteOffsets struct {
	Req        uint64
	Partitions []TopicPartition
}

// DeleteOffsetsResult has a group error or one error per partition.
type DeleteOffsetsResult struct {
	Err  error
	Errs []error
}

// DeleteGroup is one group of a DeleteGroups request.
type DeleteGroup struct{ Req uint64 }

type DeleteGroupResult struct{ Err error }

func (s *step) touch(m *Member) { m.deadline = s.now.Add(m.SessionTimeout) }

// fenced reports a static member whose instance id now belongs to another
// member id (a newer incarnation replaced it).
func (g *Group) fenced(memberID, instanceID string) bool {
	if instanceID == "" {
		return false
	}
	owner, ok := g.instances[instanceID]
	return ok && owner != memberID
}

// memberErr is the error for a request naming memberID/instanceID: nil if
// the member is in the group.
func (g *Group) memberErr(memberID, instanceID string) error {
	if g.fenced(memberID, instanceID) {
		return kerr.FencedInstanceID
	}
	if _, ok := g.Members[memberID]; !ok {
		return kerr.UnknownMemberID
	}
	return nil
}

func (s *step) join(c *Join) {
	g := s.g
	fail := func(err error) { s.reply(c.Req, &JoinResult{Err: err, MemberID: c.MemberID, Generation: -1}) }
	switch {
	case c.SessionTimeout < g.cfg.MinSessionTimeout || c.SessionTimeout > g.cfg.MaxSessionTimeout:
		fail(kerr.InvalidSessionTimeout)
		return
	case !g.supports(c.ProtocolType, c.Protocols):
		fail(kerr.InconsistentGroupProtocol)
		return
	}
	if c.MemberID == "" {
		s.joinUnknown(c)
		return
	}
	if _, ok := g.pending[c.MemberID]; ok {
		delete(g.pending, c.MemberID)
		s.addMember(c, c.MemberID, "")
		return
	}
	if err := g.memberErr(c.MemberID, c.InstanceID); err != nil {
		fail(err)
		return
	}
	m := g.Members[c.MemberID]
	changed := !sameProtocols(m.Protocols, c.Protocols)
	s.touch(m)
	switch g.State {
	case PreparingRebalance:
		if changed {
			s.emitJoined(c, m.ID, "")
		}
		if m.join != nil { // a duplicate join: the newer one waits
			s.reply(m.join.req, &JoinResult{Err: kerr.RebalanceInProgress, MemberID: m.ID, Generation: -1})
		}
		m.join = &joinWait{c.Req, c.Version}
		s.maybeCompleteJoin()
	case CompletingRebalance, Stable:
		if !changed && (g.State == CompletingRebalance || m.ID != g.Leader) {
			// A retried join, or a follower with nothing new: the current
			// generation stands.
			s.reply(c.Req, g.joinResult(m, c.Version))
			return
		}
		if changed {
			s.emitJoined(c, m.ID, "")
		}
		m.join = &joinWait{c.Req, c.Version}
		s.prepareRebalance()
	default:
		fail(kerr.UnknownMemberID)
	}
}

// joinUnknown serves a JoinGroup with no member id.
func (s *step) joinUnknown(c *Join) {
	g := s.g
	id := g.cfg.NewMemberID(c.ClientID)
	if c.InstanceID != "" {
		if old, ok := g.instances[c.InstanceID]; ok {
			s.replaceStatic(c, id, old)
			return
		}
		s.addMember(c, id, "")
		return
	}
	if c.Version >= 4 {
		// KIP-394: the client must come back with this id, so a join
		// whose answer was lost does not leave a ghost member behind.
		g.pending[id] = s.now.Add(c.SessionTimeout)
		s.reply(c.Req, &JoinResult{Err: kerr.MemberIDRequired, MemberID: id, Generation: -1})
		return
	}
	s.addMember(c, id, "")
}

// addMember adds a new member with a waiting join and moves the join phase on.
func (s *step) addMember(c *Join, id, replaced string) {
	g := s.g
	s.emitJoined(c, id, replaced)
	m := g.Members[id]
	s.touch(m)
	m.join = &joinWait{c.Req, c.Version}
	if g.State == PreparingRebalance {
		s.maybeCompleteJoin()
	} else {
		s.prepareRebalance()
	}
}

// replaceStatic serves a static member coming back with a new member id: the
// old id is fenced. In a stable group with nothing changed it takes the old
// member's place and assignment without a rebalance (KIP-345).
func (s *step) replaceStatic(c *Join, id, oldID string) {
	g := s.g
	old := g.Members[oldID]
	if old.join != nil {
		s.reply(old.join.req, &JoinResult{Err: kerr.FencedInstanceID, MemberID: oldID, Generation: -1})
		old.join = nil
	}
	if old.sync != nil {
		s.reply(*old.sync, &SyncResult{Err: kerr.FencedInstanceID})
		old.sync = nil
	}
	wasLeader := g.Leader == oldID
	quiet := g.State == Stable && !wasLeader && sameProtocols(old.Protocols, c.Protocols)
	s.emitJoined(c, id, oldID)
	m := g.Members[id]
	s.touch(m)
	if quiet {
		s.reply(c.Req, g.joinResult(m, c.Version))
		return
	}
	m.join = &joinWait{c.Req, c.Version}
	if g.State == PreparingRebalance {
		s.maybeCompleteJoin()
	} else {
		s.prepareRebalance()
	}
}

func (s *step) emitJoined(c *Join, id, replaced string) {
	ev := &fluxopb.GroupMemberJoined{MemberId: id, InstanceId: c.InstanceID, ClientId: c.ClientID, ClientHost: c.ClientHost,
		SessionTimeoutMs: int32(c.SessionTimeout.Milliseconds()), RebalanceTimeoutMs: int32(c.RebalanceTimeout.Milliseconds()),
		ProtocolType: c.ProtocolType, Replaced: replaced}
	for _, p := range c.Protocols {
		ev.Protocols = append(ev.Protocols, &fluxopb.GroupProtocol{Name: p.Name, Metadata: p.Metadata})
	}
	s.emit(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_MemberJoined{MemberJoined: ev}})
}

func (s *step) sync(c *Sync) {
	g := s.g
	fail := func(err error) { s.reply(c.Req, &SyncResult{Err: err}) }
	if err := g.memberErr(c.MemberID, c.InstanceID); err != nil {
		fail(err)
		return
	}
	if c.Generation != g.Generation {
		fail(kerr.IllegalGeneration)
		return
	}
	if c.ProtocolType != nil && *c.ProtocolType != g.ProtocolType || c.Protocol != nil && *c.Protocol != g.Protocol {
		fail(kerr.InconsistentGroupProtocol)
		return
	}
	m := g.Members[c.MemberID]
	s.touch(m)
	switch g.State {
	case PreparingRebalance:
		fail(kerr.RebalanceInProgress)
	case CompletingRebalance:
		if m.sync != nil {
			s.reply(*m.sync, &SyncResult{Err: kerr.RebalanceInProgress})
		}
		req := c.Req
		m.sync = &req
		if m.ID != g.Leader {
			return
		}
		as := &fluxopb.GroupAssigned{Generation: g.Generation, Assignments: map[string][]byte{}}
		for id := range g.Members {
			as.Assignments[id] = c.Assignments[id]
		}
		s.emit(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_Assigned{Assigned: as}})
		g.State = Stable
		for _, id := range g.order {
			if o := g.Members[id]; o.sync != nil {
				s.reply(*o.sync, g.syncResult(o))
				o.sync = nil
				s.touch(o)
			}
		}
	case Stable:
		s.reply(c.Req, g.syncResult(m))
	default:
		fail(kerr.UnknownMemberID)
	}
}

func (g *Group) syncResult(m *Member) *SyncResult {
	a := m.Assignment
	if a == nil {
		a = []byte{}
	}
	return &SyncResult{ProtocolType: g.ProtocolType, Protocol: g.Protocol, Assignment: a}
}

func (s *step) heartbeat(c *Heartbeat) {
	g := s.g
	fail := func(err error) { s.reply(c.Req, &HeartbeatResult{Err: err}) }
	if err := g.memberErr(c.MemberID, c.InstanceID); err != nil {
		fail(err)
		return
	}
	if c.Generation != g.Generation {
		fail(kerr.IllegalGeneration)
		return
	}
	s.touch(g.Members[c.MemberID])
	if g.State == PreparingRebalance {
		fail(kerr.RebalanceInProgress)
		return
	}
	fail(nil)
}

func (s *step) leave(c *Leave) {
	g := s.g
	res := &LeaveResult{Members: make([]error, len(c.Members))}
	removed := false
	for i, lm := range c.Members {
		id := lm.MemberID
		if id == "" && lm.InstanceID != "" {
			id = g.instances[lm.InstanceID]
		}
		if _, ok := g.pending[id]; ok && id != "" {
			delete(g.pending, id)
			s.maybeCompleteJoin()
			continue
		}
		if err := g.memberErr(id, lm.InstanceID); err != nil {
			res.Members[i] = err
			continue
		}
		reason := "left the group"
		if lm.Reason != "" {
			reason += ": " + lm.Reason
		}
		s.remove(id, reason)
		removed = true
	}
	if removed {
		s.membersRemoved()
	}
	s.reply(c.Req, res)
}

func (s *step) commit(c *Commit) {
	g := s.g
	res := &CommitResult{Errs: make([]error, len(c.Offsets))}
	defer s.reply(c.Req, res)
	var err error
	switch {
	case c.Generation < 0 && len(g.Members) == 0:
		// A simple commit: the group only stores offsets.
	case g.State == CompletingRebalance:
		err = kerr.RebalanceInProgress
	default:
		if err = g.memberErr(c.MemberID, c.InstanceID); err == nil && c.Generation != g.Generation {
			err = kerr.IllegalGeneration
		}
	}
	if err != nil {
		for i := range res.Errs {
			res.Errs[i] = err
		}
		return
	}
	if m := g.Members[c.MemberID]; m != nil {
		s.touch(m)
	}
	ev := &fluxopb.GroupOffsetsCommitted{Generation: c.Generation, MemberId: c.MemberID}
	for i, o := range c.Offsets {
		if len(o.Metadata) > g.cfg.MaxMetadataBytes {
			res.Errs[i] = kerr.OffsetMetadataTooLarge
			continue
		}
		ev.Offsets = append(ev.Offsets, &fluxopb.GroupOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset,
			LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTimeMs: s.now.UnixMilli()})
	}
	if len(ev.Offsets) > 0 {
		s.emit(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_OffsetsCommitted{OffsetsCommitted: ev}})
	}
}

func (s *step) deleteOffsets(c *DeleteOffsets) {
	g := s.g
	if !g.Exists() {
		s.reply(c.Req, &DeleteOffsetsResult{Err: kerr.GroupIDNotFound})
		return
	}
	subscribed := g.subscribedTopics()
	res := &DeleteOffsetsResult{Errs: make([]error, len(c.Partitions))}
	ev := &fluxopb.GroupOffsetsDeleted{}
	for i, tp := range c.Partitions {
		if subscribed[tp.Topic] {
			res.Errs[i] = kerr.GroupSubscribedToTopic
			continue
		}
		if _, ok := g.Offsets[tp]; ok {
			ev.Partitions = append(ev.Partitions, &fluxopb.GroupOffsetPartition{Topic: tp.Topic, Partition: tp.Partition})
		}
	}
	if len(ev.Partitions) > 0 {
		s.emit(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_OffsetsDeleted{OffsetsDeleted: ev}})
	}
	s.reply(c.Req, res)
}

func (s *step) deleteGroup(c *DeleteGroup) {
	g := s.g
	switch {
	case len(g.Members) > 0 || len(g.pending) > 0:
		s.reply(c.Req, &DeleteGroupResult{Err: kerr.NonEmptyGroup})
	case !g.Exists():
		s.reply(c.Req, &DeleteGroupResult{Err: kerr.GroupIDNotFound})
	default:
		s.emit(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_Deleted{Deleted: &fluxopb.GroupDeleted{}}})
		s.reply(c.Req, &DeleteGroupResult{})
	}
}

// ForgetTopic drops every committed offset of a deleted topic; it is
// answered with a *DeleteOffsetsResult.
type ForgetTopic struct {
	Req   uint64
	Topic string
}

func (s *step) forgetTopic(c *ForgetTopic) {
	ev := &fluxopb.GroupOffsetsDeleted{}
	for _, tp := range SortedPartitions(s.g.Offsets) {
		if tp.Topic == c.Topic {
			ev.Partitions = append(ev.Partitions, &fluxopb.GroupOffsetPartition{Topic: tp.Topic, Partition: tp.Partition})
		}
	}
	if len(ev.Partitions) > 0 {
		s.emit(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_OffsetsDeleted{OffsetsDeleted: ev}})
	}
	s.reply(c.Req, &DeleteOffsetsResult{})
}

// Request is a command that waits for an answer: the coordinator's shell
// stamps each with a token, which its Reply carries back.
type Request interface{ SetReq(uint64) }

func (c *Join) SetReq(r uint64)          { c.Req = r }
func (c *Sync) SetReq(r uint64)          { c.Req = r }
func (c *Heartbeat) SetReq(r uint64)     { c.Req = r }
func (c *Leave) SetReq(r uint64)         { c.Req = r }
func (c *Commit) SetReq(r uint64)        { c.Req = r }
func (c *DeleteOffsets) SetReq(r uint64) { c.Req = r }
func (c *DeleteGroup) SetReq(r uint64)   { c.Req = r }
func (c *ForgetTopic) SetReq(r uint64)   { c.Req = r }
