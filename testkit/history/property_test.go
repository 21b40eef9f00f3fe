package history

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

// sim is a correct in-memory broker: one topic with a few partitions, a
// register per committed offset, and clients that record what they do.
type sim struct {
	h         *History
	logs      [][]string
	committed []int64 // per partition, group "g"
	next      int     // value counter

	// producers: one pending send each.
	sendPending []*pendingSend
	// consumers: assignment, positions, one pending commit each.
	gen          int32
	owned        []map[int32]int64 // consumer -> partition -> position
	commitPend   []*pendingCommit
	okSends      []Op
	sendsDrained bool
}

type pendingSend struct {
	id   OpID
	part int32
	val  string
}

type pendingCommit struct {
	id   OpID
	part int32
	off  int64
	gen  int32
}

const (
	simPartitions = 2
	simProducers  = 3
	simConsumers  = 2
	consumerBase  = 10
	fetcherProc   = 20
)

func newSim() *sim {
	s := &sim{
		h:           newLogical(),
		logs:        make([][]string, simPartitions),
		committed:   make([]int64, simPartitions),
		sendPending: make([]*pendingSend, simProducers),
		owned:       make([]map[int32]int64, simConsumers),
		commitPend:  make([]*pendingCommit, simConsumers),
	}
	for i := range s.committed {
		s.committed[i] = NoOffset
	}
	for i := range s.owned {
		s.owned[i] = map[int32]int64{}
	}
	return s
}

func (s *sim) step(t *rapid.T) {
	switch rapid.IntRange(0, 5).Draw(t, "action") {
	case 0, 1: // a producer invokes or completes a send
		p := rapid.IntRange(0, simProducers-1).Draw(t, "producer")
		ps := s.sendPending[p]
		if ps == nil {
			part := int32(rapid.IntRange(0, simPartitions-1).Draw(t, "partition"))
			s.next++
			val := fmt.Sprintf("v%d", s.next)
			id := s.h.Invoke(p, Op{Kind: Send, Topic: "t", Partition: part, Value: val})
			s.sendPending[p] = &pendingSend{id, part, val}
			return
		}
		s.sendPending[p] = nil
		switch rapid.SampledFrom([]string{"ok", "ok", "info-landed", "info-lost", "fail"}).Draw(t, "outcome") {
		case "ok":
			off := s.appendRec(ps.part, ps.val)
			s.h.Ok(ps.id, Result{Offset: off})
		case "info-landed":
			s.appendRec(ps.part, ps.val)
			s.h.Info(ps.id, errTimeout)
		case "info-lost":
			s.h.Info(ps.id, errTimeout)
		case "fail":
			s.h.Fail(ps.id, fmt.Errorf("NOT_ENOUGH_REPLICAS"))
		}
	case 2: // rebalance: a new generation, partitions dealt out anew
		s.gen++
		for c := range s.owned {
			s.owned[c] = map[int32]int64{}
		}
		for part := int32(0); part < simPartitions; part++ {
			c := rapid.IntRange(0, simConsumers-1).Draw(t, "owner")
			pos := s.committed[part]
			if pos < 0 {
				pos = 0
			}
			s.owned[c][part] = pos
		}
		for c := range s.owned {
			var tps []TopicPartition
			for part := int32(0); part < simPartitions; part++ {
				if _, ok := s.owned[c][part]; ok {
					tps = append(tps, TopicPartition{"t", part})
				}
			}
			id := s.h.Invoke(consumerBase+c, Op{Kind: Assign, Group: "g", Generation: s.gen, Partitions: tps})
			s.h.Ok(id, Result{})
		}
	case 3: // a consumer polls an owned partition
		c := rapid.IntRange(0, simConsumers-1).Draw(t, "consumer")
		if s.commitPend[c] != nil {
			s.completeCommit(t, c)
			return
		}
		part, ok := s.pickOwned(t, c)
		if !ok {
			return
		}
		pos := s.owned[c][part]
		n := rapid.IntRange(0, 3).Draw(t, "max")
		id := s.h.Invoke(consumerBase+c, Op{Kind: Poll, Topic: "t", Partition: part, Epoch: int64(s.gen)})
		var got []Record
		for i := pos; i < int64(len(s.logs[part])) && len(got) < n; i++ {
			got = append(got, Record{i, s.logs[part][i]})
		}
		s.owned[c][part] = pos + int64(len(got))
		s.h.Ok(id, Result{Records: got})
	case 4: // a consumer invokes or completes a commit of its position
		c := rapid.IntRange(0, simConsumers-1).Draw(t, "consumer")
		if s.commitPend[c] != nil {
			s.completeCommit(t, c)
			return
		}
		part, ok := s.pickOwned(t, c)
		if !ok {
			return
		}
		off := s.owned[c][part]
		id := s.h.Invoke(consumerBase+c, Op{Kind: Commit, Group: "g", Topic: "t", Partition: part, Offset: off, Generation: s.gen})
		s.commitPend[c] = &pendingCommit{id, part, off, s.gen}
	case 5: // an admin reads a committed offset
		part := int32(rapid.IntRange(0, simPartitions-1).Draw(t, "partition"))
		id := s.h.Invoke(fetcherProc, Op{Kind: FetchCommit, Group: "g", Topic: "t", Partition: part})
		s.h.Ok(id, Result{Offset: s.committed[part]})
	}
}

func (s *sim) appendRec(part int32, val string) int64 {
	s.logs[part] = append(s.logs[part], val)
	return int64(len(s.logs[part]) - 1)
}

func (s *sim) pickOwned(t *rapid.T, c int) (int32, bool) {
	var parts []int32
	for part := int32(0); part < simPartitions; part++ {
		if _, ok := s.owned[c][part]; ok {
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return 0, false
	}
	return rapid.SampledFrom(parts).Draw(t, "owned"), true
}

func (s *sim) completeCommit(t *rapid.T, c int) {
	pc := s.commitPend[c]
	s.commitPend[c] = nil
	if pc.gen != s.gen {
		// The coordinator rejects commits of an older generation.
		s.h.Fail(pc.id, fmt.Errorf("ILLEGAL_GENERATION"))
		return
	}
	switch rapid.SampledFrom([]string{"ok", "ok", "info-landed", "info-lost", "fail"}).Draw(t, "commit-outcome") {
	case "ok":
		s.committed[pc.part] = pc.off
		s.h.Ok(pc.id, Result{})
	case "info-landed":
		s.committed[pc.part] = pc.off
		s.h.Info(pc.id, errTimeout)
	case "info-lost":
		s.h.Info(pc.id, errTimeout)
	case "fail":
		s.h.Fail(pc.id, fmt.Errorf("ILLEGAL_GENERATION"))
	}
}

// run draws and runs a history, leaving some operations pending, and
// returns it with its drain (not recorded in the history).
func runSim(t *rapid.T) ([]Op, map[TopicPartition][]Record) {
	s := newSim()
	n := rapid.IntRange(0, 150).Draw(t, "steps")
	for i := 0; i < n; i++ {
		s.step(t)
	}
	drains := map[TopicPartition][]Record{}
	for part, log := range s.logs {
		var rs []Record
		for off, v := range log {
			rs = append(rs, Record{int64(off), v})
		}
		drains[TopicPartition{"t", int32(part)}] = rs
	}
	return s.h.Ops(), drains
}

func TestPropertyCorrectHistoriesCheckClean(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops, drains := runSim(t)
		if rep := check(ops, drains); rep.Failures() != 0 {
			t.Fatalf("correct history reported failures:\n%s", rep)
		}
	})
}

func TestPropertyDroppedAckedRecordIsLost(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops, drains := runSim(t)
		var acked []Op
		for _, o := range ops {
			if o.Kind == Send && o.Type == Ok {
				acked = append(acked, o)
			}
		}
		if len(acked) == 0 {
			t.Skip("no acknowledged send")
		}
		victim := rapid.SampledFrom(acked).Draw(t, "victim")
		var kept []Record
		for _, r := range drains[victim.TP()] {
			if r.Offset != victim.Offset {
				kept = append(kept, r)
			}
		}
		drains[victim.TP()] = kept
		rep := check(ops, drains)
		if rep.Counts[Lost] != 1 {
			t.Fatalf("dropped %s: lost = %d, want 1\n%s", victim, rep.Counts[Lost], rep)
		}
	})
}
