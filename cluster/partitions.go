package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// NoLeader is PartitionState.Leader of an offline partition: no in-sync
// replica is alive (and unclean election is off).
const NoLeader int32 = -1

// partitionKeyPrefix is the key prefix of partition states:
// partitions.<topic, base64 RawURL as in topic keys>.<partition>.
const partitionKeyPrefix = "partitions."

func partitionKey(topic string, p int32) string {
	return partitionKeyPrefix + topicNameEnc.EncodeToString([]byte(topic)) + "." + strconv.Itoa(int(p))
}

func parsePartitionKey(key string) (string, int32, error) {
	rest, ok := strings.CutPrefix(key, partitionKeyPrefix)
	enc, num, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return "", 0, fmt.Errorf("key %q is not a partition key", key)
	}
	name, err := topicNameEnc.DecodeString(enc)
	if err != nil {
		return "", 0, fmt.Errorf("key %q: %w", key, err)
	}
	p, err := strconv.ParseInt(num, 10, 32)
	if err != nil || p < 0 {
		return "", 0, fmt.Errorf("key %q: bad partition", key)
	}
	return string(name), int32(p), nil
}

// GetPartition reads a partition's state from the stream leader. If there
// is none, st is nil and rev is still the revision to write at (0, or the
// delete marker's). Pass rev to Controller.WritePartitions.
func (s *Store) GetPartition(ctx context.Context, topic string, p int32) (st *fluxopb.PartitionState, rev uint64, err error) {
	const op = "get partition"
	if err := ValidateTopicName(topic); err != nil {
		return nil, 0, opError(op, err)
	}
	e, err := s.readLatest(ctx, partitionKey(topic, p))
	switch {
	case errors.Is(err, errNoKey):
		return nil, 0, nil
	case err != nil:
		return nil, 0, opError(op, err)
	case e.deleted:
		return nil, e.revision, nil
	}
	st = new(fluxopb.PartitionState)
	if err := proto.Unmarshal(e.value, st); err != nil {
		return nil, 0, opError(op, fmt.Errorf("decode partition state: %w", err))
	}
	return st, e.revision, nil
}

// PartitionRef names one partition's state as listed.
type PartitionRef struct {
	Topic     string
	Partition int32
	State     *fluxopb.PartitionState
	Revision  uint64
}

// ListPartitions returns every partition state (of one topic, or of all
// topics if topic is ""), sorted by topic and partition. A snapshot hint:
// decisions re-read with GetPartition.
func (s *Store) ListPartitions(ctx context.Context, topic string) ([]PartitionRef, error) {
	const op = "list partitions"
	pattern := partitionKeyPrefix + ">"
	if topic != "" {
		pattern = partitionKeyPrefix + topicNameEnc.EncodeToString([]byte(topic)) + ".*"
	}
	var out []PartitionRef
	err := s.scan(ctx, pattern, func(e jetstream.KeyValueEntry) error {
		name, p, err := parsePartitionKey(e.Key())
		if err != nil {
			return err
		}
		st := new(fluxopb.PartitionState)
		if err := proto.Unmarshal(e.Value(), st); err != nil {
			return fmt.Errorf("key %s: %w", e.Key(), err)
		}
		out = append(out, PartitionRef{Topic: name, Partition: p, State: st, Revision: e.Revision()})
		return nil
	})
	if err != nil {
		return nil, opError(op, err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// DefaultReplicationFactor is min(3, brokers).
func DefaultReplicationFactor(brokers int) int { return min(3, brokers) }

// PlaceReplicas assigns rf distinct brokers to each of partitions partitions
// (rf <= 0: DefaultReplicationFactor). Each partition's replica list starts
// with its preferred leader. Replica counts per broker differ by at most 1,
// and so do leader counts. Deterministic for a given input.
//
// Brokers are sorted and partitions taken in blocks of n = len(brokers).
// In a full block partition p gets brokers p, p+1, ..., p+rf-1 (mod n), led
// by p: every broker holds exactly rf replicas and leads once per block. The
// last, partial block of r < n partitions lays its r*rf replica slots
// round-robin (partition i takes slots i*rf .. i*rf+rf-1, so consecutive,
// hence distinct, brokers), which spreads them within 1; each of its
// partitions is led by one of its replicas that leads none of the others
// (r < n partitions, each with rf >= 1 consecutive brokers, so distinct
// leaders exist and a greedy pass over the cyclic intervals finds them).
func PlaceReplicas(brokers []int32, partitions, rf int) ([][]int32, error) {
	bs := slices.Clone(brokers)
	slices.Sort(bs)
	bs = slices.Compact(bs)
	n := len(bs)
	if rf <= 0 {
		rf = DefaultReplicationFactor(n)
	}
	switch {
	case partitions < 0:
		return nil, fmt.Errorf("cluster: place replicas: %d partitions", partitions)
	case n == 0:
		return nil, errors.New("cluster: place replicas: no brokers")
	case rf > n:
		return nil, fmt.Errorf("cluster: place replicas: replication factor %d exceeds %d brokers", rf, n)
	}
	out := make([][]int32, partitions)
	full := partitions - partitions%n
	for p := range full {
		rs := make([]int32, rf)
		for j := range rf {
			rs[j] = bs[(p+j)%n]
		}
		out[p] = rs
	}
	leading := make([]bool, n)
	for i := range partitions - full {
		lead := -1
		for j := range rf {
			if b := (i*rf + j) % n; !leading[b] {
				lead = j
				break
			}
		}
		if lead < 0 { // cannot happen (see above); stay correct anyway
			lead = 0
		}
		rs := make([]int32, rf)
		for j := range rf {
			rs[j] = bs[(i*rf+(lead+j)%rf)%n]
		}
		leading[(i*rf+lead)%n] = true
		out[full+i] = rs
	}
	return out, nil
}

// NewPartitionState is a new partition's state: all replicas in sync, the
// first one leading, leader epoch 0.
func NewPartitionState(replicas []int32) *fluxopb.PartitionState {
	return &fluxopb.PartitionState{
		Replicas: slices.Clone(replicas),
		Leader:   replicas[0],
		Isr:      slices.Clone(replicas),
	}
}

// ElectLeader decides a partition's leader given which brokers are alive.
// If the current leader is alive and in sync it stays, and only dead
// followers leave the ISR (false if none did). Otherwise the new leader is the first replica, in replica order, that is
// both in the ISR and alive; dead brokers leave the ISR (but it never becomes
// empty: the last in-sync replica stays in it, so it can lead again when it
// returns). With none alive, unclean election (an explicit per-topic
// opt-in) picks the first alive replica, which becomes the whole ISR, and
// otherwise the partition goes offline (Leader NoLeader). Every leader
// change, including going offline, bumps LeaderEpoch. The input is not
// modified; the result is a copy.
func ElectLeader(st *fluxopb.PartitionState, alive func(int32) bool, unclean bool) (*fluxopb.PartitionState, bool) {
	inISR := func(b int32) bool { return slices.Contains(st.GetIsr(), b) }
	next := proto.Clone(st).(*fluxopb.PartitionState)
	if l := st.GetLeader(); l != NoLeader && alive(l) && inISR(l) {
		// Leader stays; dead followers leave the ISR (no new leader epoch).
		isr := slices.DeleteFunc(slices.Clone(st.GetIsr()), func(r int32) bool { return !alive(r) })
		if len(isr) == len(st.GetIsr()) {
			return st, false
		}
		next.Isr = isr
		return next, true
	}
	leader := NoLeader
	for _, r := range st.GetReplicas() {
		if inISR(r) && alive(r) {
			leader = r
			break
		}
	}
	if leader != NoLeader {
		var isr []int32
		for _, r := range st.GetIsr() {
			if alive(r) {
				isr = append(isr, r)
			}
		}
		next.Isr = isr
	} else if unclean {
		for _, r := range st.GetReplicas() {
			if alive(r) {
				leader = r
				next.Isr = []int32{r}
				break
			}
		}
	}
	if leader == st.GetLeader() {
		return st, false // was offline and still is
	}
	next.Leader = leader
	next.LeaderEpoch = st.GetLeaderEpoch() + 1
	return next, true
}
