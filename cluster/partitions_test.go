package cluster

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func genBrokers(t *rapid.T) []int32 {
	return rapid.SliceOfNDistinct(rapid.Int32Range(0, 50), 1, 9, rapid.ID[int32]).Draw(t, "brokers")
}

// Placement: every partition gets rf distinct registered brokers; replica
// counts and leader counts per broker are balanced within 1.
func TestPlaceReplicasProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		brokers := genBrokers(t)
		parts := rapid.IntRange(0, 60).Draw(t, "partitions")
		rf := rapid.IntRange(0, len(brokers)).Draw(t, "rf") // 0: default
		got, err := PlaceReplicas(brokers, parts, rf)
		if err != nil {
			t.Fatal(err)
		}
		if rf == 0 {
			rf = min(3, len(brokers))
		}
		if len(got) != parts {
			t.Fatalf("%d assignments for %d partitions", len(got), parts)
		}
		replicas := map[int32]int{}
		leaders := map[int32]int{}
		for _, b := range brokers {
			replicas[b], leaders[b] = 0, 0
		}
		for p, rs := range got {
			if len(rs) != rf {
				t.Fatalf("partition %d: %v, want %d replicas", p, rs, rf)
			}
			seen := map[int32]bool{}
			for _, r := range rs {
				if seen[r] || !slices.Contains(brokers, r) {
					t.Fatalf("partition %d: replicas %v not distinct registered brokers", p, rs)
				}
				seen[r] = true
				replicas[r]++
			}
			leaders[rs[0]]++
		}
		spread := func(m map[int32]int) int {
			lo, hi := parts*rf, 0
			for _, c := range m {
				lo, hi = min(lo, c), max(hi, c)
			}
			return hi - lo
		}
		if d := spread(replicas); d > 1 {
			t.Fatalf("replica counts %v differ by %d", replicas, d)
		}
		if d := spread(leaders); d > 1 {
			t.Fatalf("leader counts %v differ by %d (placement %v)", leaders, d, got)
		}
	})
}

func TestPlaceReplicasRejects(t *testing.T) {
	if _, err := PlaceReplicas(nil, 1, 0); err == nil {
		t.Error("no brokers accepted")
	}
	if _, err := PlaceReplicas([]int32{1, 2}, 1, 3); err == nil {
		t.Error("rf > brokers accepted")
	}
	if got, err := PlaceReplicas([]int32{1, 1, 2}, 2, 0); err != nil || len(got[0]) != 2 {
		t.Errorf("duplicate broker ids: %v %v", got, err)
	}
}

// Election: a new leader is always alive and (unless unclean) in the old ISR;
// the leader epoch strictly increases exactly when the leader changes; an
// alive in-sync leader is kept; with no alive in-sync replica and unclean
// off the partition is offline; the ISR never becomes empty.
func TestElectLeaderProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		brokers := genBrokers(t)
		rf := rapid.IntRange(1, len(brokers)).Draw(t, "rf")
		replicas := rapid.Permutation(brokers).Draw(t, "perm")[:rf]
		isr := rapid.SliceOfNDistinct(rapid.SampledFrom(replicas), 1, rf, rapid.ID[int32]).Draw(t, "isr")
		leader := rapid.SampledFrom(append(slices.Clone(isr), NoLeader)).Draw(t, "leader")
		st := &fluxopb.PartitionState{Replicas: replicas, Isr: isr, Leader: leader,
			LeaderEpoch: rapid.Int32Range(0, 1000).Draw(t, "epoch"), ControllerEpoch: 3}
		aliveSet := map[int32]bool{}
		for _, b := range brokers {
			aliveSet[b] = rapid.Bool().Draw(t, "alive")
		}
		alive := func(b int32) bool { return aliveSet[b] }
		unclean := rapid.Bool().Draw(t, "unclean")
		before := st.String()

		next, changed := ElectLeader(st, alive, unclean)
		if st.String() != before {
			t.Fatalf("input modified: %v -> %v", before, st)
		}
		aliveISR := slices.ContainsFunc(isr, alive)
		switch {
		case leader != NoLeader && alive(leader):
			if next.Leader != leader || next.LeaderEpoch != st.LeaderEpoch {
				t.Fatalf("alive in-sync leader %d replaced: %v", leader, next)
			}
		case !changed:
			if next.Leader != NoLeader || leader != NoLeader {
				t.Fatalf("dead leader kept: %v", next)
			}
		default:
			if next.LeaderEpoch <= st.LeaderEpoch {
				t.Fatalf("leader epoch %d -> %d", st.LeaderEpoch, next.LeaderEpoch)
			}
		}
		if next.Leader != NoLeader {
			if !alive(next.Leader) {
				t.Fatalf("dead leader %d elected", next.Leader)
			}
			if !unclean && !slices.Contains(isr, next.Leader) {
				t.Fatalf("leader %d not in ISR %v", next.Leader, isr)
			}
			if !slices.Contains(next.Isr, next.Leader) {
				t.Fatalf("leader %d not in its new ISR %v", next.Leader, next.Isr)
			}
		} else if aliveISR || unclean && slices.ContainsFunc(replicas, alive) {
			t.Fatalf("offline although a candidate is alive: %v alive %v", next, aliveSet)
		}
		if len(next.Isr) == 0 {
			t.Fatal("empty ISR")
		}
		for _, r := range next.Isr {
			if !slices.Contains(replicas, r) {
				t.Fatalf("ISR %v outside replicas %v", next.Isr, replicas)
			}
		}
	})
}
