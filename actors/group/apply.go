package group

import (
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// apply changes the durable state by one event: the only way it changes,
// live or in replay.
func (g *Group) apply(ev *fluxopb.GroupEvent) {
	switch e := ev.Event.(type) {
	case *fluxopb.GroupEvent_MemberJoined:
		j := e.MemberJoined
		m := g.Members[j.MemberId]
		if m == nil {
			m = &Member{ID: j.MemberId}
			g.Members[j.MemberId] = m
			g.order = append(g.order, j.MemberId)
		}
		m.InstanceID, m.ClientID, m.ClientHost = j.InstanceId, j.ClientId, j.ClientHost
		m.SessionTimeout = time.Duration(j.SessionTimeoutMs) * time.Millisecond
		m.RebalanceTimeout = time.Duration(j.RebalanceTimeoutMs) * time.Millisecond
		m.ProtocolType = j.ProtocolType
		m.Protocols = m.Protocols[:0]
		for _, p := range j.Protocols {
			m.Protocols = append(m.Protocols, Protocol{Name: p.Name, Metadata: p.Metadata})
		}
		if old := g.Members[j.Replaced]; j.Replaced != "" && old != nil {
			// The new incarnation of a static member takes its place.
			m.Assignment = old.Assignment
			if g.Leader == old.ID {
				g.Leader = m.ID
			}
			g.drop(old.ID)
		} else {
			g.dirty = true
		}
		if m.InstanceID != "" {
			g.instances[m.InstanceID] = m.ID
		}
	case *fluxopb.GroupEvent_MemberLeft:
		g.drop(e.MemberLeft.MemberId)
		g.dirty = true
	case *fluxopb.GroupEvent_Rebalanced:
		r := e.Rebalanced
		g.Generation, g.ProtocolType, g.Protocol, g.Leader = r.Generation, r.ProtocolType, r.Protocol, r.Leader
		g.assigned, g.dirty = false, false
		for _, m := range g.Members {
			m.Assignment = nil
		}
	case *fluxopb.GroupEvent_Assigned:
		if e.Assigned.Generation == g.Generation {
			for id, a := range e.Assigned.Assignments {
				if m := g.Members[id]; m != nil {
					m.Assignment = a
				}
			}
			g.assigned = true
		}
	case *fluxopb.GroupEvent_OffsetsCommitted:
		for _, o := range e.OffsetsCommitted.Offsets {
			g.Offsets[TopicPartition{o.Topic, o.Partition}] = Offset{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTime: o.CommitTimeMs}
		}
	case *fluxopb.GroupEvent_OffsetsDeleted:
		for _, p := range e.OffsetsDeleted.Partitions {
			delete(g.Offsets, TopicPartition{p.Topic, p.Partition})
		}
	case *fluxopb.GroupEvent_Deleted:
		*g = *New(g.ID, g.cfg)
	case *fluxopb.GroupEvent_Snapshot:
		g.restore(e.Snapshot)
	}
}

// Snapshot returns the group's durable state as one event (see restore).
func (g *Group) Snapshot() *fluxopb.GroupEvent {
	sn := &fluxopb.GroupSnapshot{Generation: g.Generation, ProtocolType: g.ProtocolType, Protocol: g.Protocol,
		Leader: g.Leader, Assigned: g.assigned, Dirty: g.dirty}
	for _, id := range g.order {
		m := g.Members[id]
		j := &fluxopb.GroupMemberJoined{MemberId: m.ID, InstanceId: m.InstanceID, ClientId: m.ClientID, ClientHost: m.ClientHost,
			SessionTimeoutMs: int32(m.SessionTimeout.Milliseconds()), RebalanceTimeoutMs: int32(m.RebalanceTimeout.Milliseconds()),
			ProtocolType: m.ProtocolType}
		for _, p := range m.Protocols {
			j.Protocols = append(j.Protocols, &fluxopb.GroupProtocol{Name: p.Name, Metadata: p.Metadata})
		}
		sn.Members = append(sn.Members, &fluxopb.GroupSnapshotMember{Joined: j, Assignment: m.Assignment})
	}
	for _, tp := range SortedPartitions(g.Offsets) {
		o := g.Offsets[tp]
		sn.Offsets = append(sn.Offsets, &fluxopb.GroupOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset,
			LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTimeMs: o.CommitTime})
	}
	return &fluxopb.GroupEvent{Group: g.ID, Event: &fluxopb.GroupEvent_Snapshot{Snapshot: sn}}
}

// restore resets the durable state to a snapshot.
func (g *Group) restore(sn *fluxopb.GroupSnapshot) {
	*g = *New(g.ID, g.cfg)
	for _, sm := range sn.Members {
		g.apply(&fluxopb.GroupEvent{Event: &fluxopb.GroupEvent_MemberJoined{MemberJoined: sm.Joined}})
		g.Members[sm.Joined.MemberId].Assignment = sm.Assignment
	}
	for _, o := range sn.Offsets {
		g.Offsets[TopicPartition{o.Topic, o.Partition}] = Offset{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTime: o.CommitTimeMs}
	}
	g.Generation, g.ProtocolType, g.Protocol, g.Leader = sn.Generation, sn.ProtocolType, sn.Protocol, sn.Leader
	g.assigned, g.dirty = sn.Assigned, sn.Dirty
}

// drop removes a member from the maps (no event: apply's helper).
func (g *Group) drop(id string) {
	m := g.Members[id]
	if m == nil {
		return
	}
	delete(g.Members, id)
	g.order = slices.DeleteFunc(g.order, func(o string) bool { return o == id })
	if m.InstanceID != "" && g.instances[m.InstanceID] == id {
		delete(g.instances, m.InstanceID)
	}
}

// Replay applies a journaled event to a group being rebuilt.
func (g *Group) Replay(ev *fluxopb.GroupEvent) { g.apply(ev) }

// Recover sets the phase after replay, at time now: a group whose members
// all belong to an assigned generation is Stable; one whose membership moved
// since (or whose leader never assigned) rebalances, and its members must
// join again; sessions start afresh. Requests that were waiting when the
// coordinator stopped are gone: their clients time out and retry.
func (g *Group) Recover(now time.Time) {
	for _, m := range g.Members {
		m.deadline = now.Add(m.SessionTimeout)
		m.join, m.sync = nil, nil
	}
	g.pending = map[string]time.Time{}
	switch {
	case len(g.Members) == 0:
		g.State = Empty
	case g.assigned && !g.dirty:
		g.State = Stable
	default:
		g.State = PreparingRebalance
		g.rebalanceDeadline = now.Add(g.maxRebalanceTimeout())
	}
}

// Description is what DescribeGroups shows of a group.
type Description struct {
	State                  State
	ProtocolType, Protocol string
	Members                []MemberDescription
}

type MemberDescription struct {
	MemberID, InstanceID, ClientID, ClientHost string
	Metadata, Assignment                       []byte
}

// Describe returns the group as DescribeGroups shows it; a group that does
// not exist is Dead.
func (g *Group) Describe() Description {
	if !g.Exists() {
		return Description{State: Dead}
	}
	d := Description{State: g.State, ProtocolType: g.ProtocolType, Protocol: g.Protocol}
	for _, id := range g.order {
		m := g.Members[id]
		md := MemberDescription{MemberID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		if g.State == Stable || g.State == CompletingRebalance {
			md.Metadata = m.metadata(g.Protocol)
		}
		if g.State == Stable {
			md.Assignment = m.Assignment
		}
		d.Members = append(d.Members, md)
	}
	return d
}

// CommittedOffsets returns the committed offsets of the given partitions
// (all when nil), sorted; unknown partitions are absent.
func (g *Group) CommittedOffsets(tps []TopicPartition) map[TopicPartition]Offset {
	out := map[TopicPartition]Offset{}
	if tps == nil {
		for tp, o := range g.Offsets {
			out[tp] = o
		}
		return out
	}
	for _, tp := range tps {
		if o, ok := g.Offsets[tp]; ok {
			out[tp] = o
		}
	}
	return out
}

// SortedPartitions returns the keys of offsets in topic, partition order.
func SortedPartitions(offsets map[TopicPartition]Offset) []TopicPartition {
	tps := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	return tps
}

// subscribedTopics are the topics the members of a consumer group subscribe
// to (from their protocol metadata), which OffsetDelete must not touch.
func (g *Group) subscribedTopics() map[string]bool {
	out := map[string]bool{}
	if g.ProtocolType != "consumer" || len(g.Members) == 0 {
		return out
	}
	for _, m := range g.Members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadata(g.Protocol)); err != nil {
			continue
		}
		for _, t := range md.Topics {
			out[t] = true
		}
	}
	return out
}

// Assignments decodes each member's consumer-protocol assignment: member id
// to the partitions it owns. Members whose assignment does not decode are
// absent. For tests and tools; the broker never needs it.
func (g *Group) Assignments() map[string][]TopicPartition {
	out := map[string][]TopicPartition{}
	for id, m := range g.Members {
		var a kmsg.ConsumerMemberAssignment
		if len(m.Assignment) == 0 || a.ReadFrom(m.Assignment) != nil {
			continue
		}
		for _, t := range a.Topics {
			for _, p := range t.Partitions {
				out[id] = append(out[id], TopicPartition{t.Topic, p})
			}
		}
	}
	return out
}
