package actors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"pgregory.net/rapid"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
	"github.com/fluxo-broker/fluxo/testkit"
)

// groupMachine drives one consumer group through a real broker (group
// coordinator actor, journal in Pebble) with member churn, injected panics of
// the coordinator and broker restarts, and compares it with a model after
// every step:
//
//   - members join and sync through the real protocol (JoinGroup, v3 or v4+
//     with MEMBER_ID_REQUIRED; the leader assigns the topic's partitions over
//     the members of its JoinGroup answer; SyncGroup), each member a client
//     goroutine that rejoins when the coordinator says so, as a consumer
//     does; within a generation no partition has two owners, and every
//     assignment answered for a generation is the one its leader sent;
//   - a commit from a stale generation, a departed member or an unknown one
//     is refused, one from a current member (or a simple commit into an empty
//     group) is acknowledged;
//   - CommittedOffsets returns exactly the acknowledged offsets; a commit
//     answered with an error is in doubt until an acknowledged commit of its
//     partition or until a read shows which way it went (once seen, an
//     outcome is settled: a dropped commit never surfaces later, a visible
//     one is never lost);
//   - between steps the group is Stable with exactly the model's members and
//     assignments (or Empty), across coordinator panics and restarts.
type groupMachine struct {
	ctx    context.Context
	dir    string
	inj    *testkit.PanicInjector
	broker *fluxo.Broker
	parts  int32 // partitions of the topic the members consume

	members []*gmMember // the group's members, holding assignments of gen
	gen     int32       // the group's generation as last seen (a lower bound)
	history []gmRef     // every (member, generation) that held an assignment
	offsets []*gmOffset // by partition
	next    int64       // the next offset value to commit (each one unique)
	clients int

	// What the clients saw, per generation: the leader, its member list,
	// the assignment it sent, who was answered which partitions.
	leaders  map[int32]string
	lists    map[int32][]string
	joined   map[int32]map[string]bool
	sent     map[int32]map[string][]int32
	owners   map[int32]map[int32]string
	panics   int          // panics armed this run
	restarts atomic.Int64 // broker restarts done, counted once the broker is closed
	stepFrom time.Time    // when the current step began
}

// gmMember is one consumer: its client state.
type gmMember struct {
	name     string
	version  int16 // the JoinGroup version it speaks
	id       string
	admitted bool      // id has been answered a JoinGroup (it is or was a member)
	issued   int64     // coordinator restarts before its pending id was handed out
	gen      int32     // generation of its assignment; 0 before the first
	parts    []int32   // its assignment in gen
	touched  time.Time // when the last request that refreshed its session was sent
}

type gmRef struct {
	id  string
	gen int32
}

// gmOffset is the model of one partition's committed offset.
type gmOffset struct {
	acked int64   // the last acknowledged offset, -1 for none
	doubt []int64 // offsets of commits answered with an error since
}

const (
	gmGroup       = "g"
	gmTopic       = "t"
	gmSession     = 4 * time.Second        // the broker's minimum, which every member asks for
	gmRebalance   = 250 * time.Millisecond // the members' rebalance timeout
	gmMaxPanics   = 5                      // per run: the supervisor's backoff doubles with each
	gmMaxRestarts = 3                      // per run: a restart takes some 50ms
	gmRound       = 10 * time.Second       // a rebalance that takes longer fails the test
)

func (m *groupMachine) start(t *rapid.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := fluxo.Start(ctx,
		fluxo.WithDataDir(m.dir),
		fluxo.WithLogger(testkit.QuietLogger()),
		fluxo.WithActorMiddleware(m.inj.Middleware),
		fluxo.WithNodeConfig(func(c *actors.Config) {
			c.GroupMinSessionTimeout = gmSession
			c.GroupMaxSessionTimeout = time.Minute
			c.RequestTimeout = 5 * time.Second
			c.OffsetsPartitions = 3 // fewer journals to replay at each start
		}),
	)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	m.broker = b
}

func (m *groupMachine) node() *actors.Node { return m.broker.Node() }

// coordinatorRestarts counts what makes the coordinator forget the member
// ids it handed out and that did not join yet: panics, broker restarts.
func (m *groupMachine) coordinatorRestarts() int64 { return m.inj.Injected() + m.restarts.Load() }

func (m *groupMachine) newMember(t *rapid.T) *gmMember {
	m.clients++
	v := rapid.SampledFrom([]int16{3, 4, 9}).Draw(t, "version")
	return &gmMember{name: fmt.Sprintf("c%d", m.clients), version: v}
}

// --- offsets

type gmCommit struct {
	member string
	gen    int32
	parts  []int32
	values []int64
}

func (m *groupMachine) commitOf(t *rapid.T, member string, gen int32, from []int32) gmCommit {
	parts := rapid.SliceOfNDistinct(rapid.SampledFrom(from), 1, len(from), rapid.ID[int32]).Draw(t, "partitions")
	c := gmCommit{member: member, gen: gen, parts: parts}
	for range parts {
		m.next++
		c.values = append(c.values, m.next)
	}
	return c
}

// send commits; err is the call's error or the first per-offset error, and
// every offset must have the same outcome.
func (m *groupMachine) send(t *rapid.T, c gmCommit) error {
	req := &group.Commit{MemberID: c.member, Generation: c.gen}
	for i, p := range c.parts {
		req.Offsets = append(req.Offsets, group.CommitOffset{TopicPartition: group.TopicPartition{Topic: gmTopic, Partition: p},
			Offset: c.values[i], LeaderEpoch: int32(c.values[i] % 7), Metadata: fmt.Sprintf("m%d", c.values[i])})
	}
	res, err := m.node().CommitOffsets(m.ctx, gmGroup, req)
	if err != nil {
		return err
	}
	if len(res.Errs) != len(c.parts) {
		t.Fatalf("commit of %d offsets answered %d errors", len(c.parts), len(res.Errs))
	}
	for _, e := range res.Errs[1:] {
		if !errors.Is(e, res.Errs[0]) && !(e == nil && res.Errs[0] == nil) {
			t.Fatalf("one commit, mixed outcomes: %v", res.Errs)
		}
	}
	return res.Errs[0]
}

func (m *groupMachine) ack(c gmCommit) {
	for i, p := range c.parts {
		m.offsets[p].acked, m.offsets[p].doubt = c.values[i], nil
	}
}

func (m *groupMachine) inDoubt(c gmCommit) {
	for i, p := range c.parts {
		m.offsets[p].doubt = append(m.offsets[p].doubt, c.values[i])
	}
}

// mustAck sends a commit that must be acknowledged.
func (m *groupMachine) mustAck(t *rapid.T, c gmCommit, what string) {
	if err := m.send(t, c); err != nil {
		t.Fatalf("%s (member %q generation %d) refused: %v", what, c.member, c.gen, err)
	}
	m.ack(c)
}

// mustRefuse sends a commit that must be refused: stale generation, departed
// or unknown member, simple commit into a live group.
func (m *groupMachine) mustRefuse(t *rapid.T, c gmCommit, why string) {
	err := m.send(t, c)
	if err == nil {
		t.Fatalf("commit of %s (member %q generation %d; group at %d with %v) accepted", why, c.member, c.gen, m.gen, m.ids())
	}
	switch actors.GroupErrorCode(err) {
	case kerr.IllegalGeneration.Code, kerr.UnknownMemberID.Code, kerr.RebalanceInProgress.Code, kerr.FencedInstanceID.Code, kerr.NotCoordinator.Code:
	default:
		t.Fatalf("commit of %s refused with %v, not a fencing error", why, err)
	}
}

// --- actions

// Join: a new consumer joins the group, which rebalances.
func (m *groupMachine) Join(t *rapid.T) {
	if len(m.members) >= 5 {
		t.Skip("the group is big enough")
	}
	m.rebalance(t, append(slices.Clone(m.members), m.newMember(t)), -1)
}

// Leave: a member leaves; maybe the coordinator panics on the request. While
// the others rejoin, a current member's commit is acknowledged and the
// departed one's refused.
func (m *groupMachine) Leave(t *rapid.T) {
	if len(m.members) == 0 {
		t.Skip("no member")
	}
	i := rapid.IntRange(0, len(m.members)-1).Draw(t, "member")
	c := m.members[i]
	leave := func() error {
		res, err := m.node().LeaveGroup(m.ctx, gmGroup, &group.Leave{Members: []group.LeaveMember{{MemberID: c.id, Reason: "test"}}})
		if err != nil {
			return err
		}
		if len(res.Members) != 1 {
			t.Fatalf("leave of one member answered %d", len(res.Members))
		}
		return errors.Join(res.Err, res.Members[0])
	}
	if m.panics < gmMaxPanics && rapid.Bool().Draw(t, "panic") {
		m.panics++
		m.inj.Arm("/group-"+gmGroup, 1, testkit.MessageOf[*actors.GroupRequest]())
		if err := leave(); actors.GroupErrorCode(err) != kerr.NotCoordinator.Code {
			t.Fatalf("leave into a panicking coordinator: %v, want NOT_COORDINATOR", err)
		}
		// In doubt: the retry finds it gone or takes it out.
		if err := leave(); err != nil && actors.GroupErrorCode(err) != kerr.UnknownMemberID.Code {
			t.Fatalf("leave retried: %v", err)
		}
	} else if err := leave(); err != nil {
		t.Fatalf("leave of %s (%s): %v", c.name, c.id, err)
	}
	rest := slices.Delete(slices.Clone(m.members), i, i+1)
	m.members = rest
	if len(rest) == 0 {
		m.gen++ // the join phase ends at once, with nobody
	} else if rapid.Bool().Draw(t, "commit while rebalancing") {
		// PreparingRebalance: the current generation may still commit.
		o := rapid.SampledFrom(rest).Draw(t, "committer")
		m.mustAck(t, m.commitOf(t, o.id, m.gen, m.allParts()), "commit of the current generation during the join phase")
	}
	if rapid.Bool().Draw(t, "departed commits") {
		m.mustRefuse(t, m.commitOf(t, c.id, c.gen, m.allParts()), "a departed member")
	}
	m.rebalance(t, rest, -1)
}

// Commit: a member commits offsets of its partitions in its generation.
func (m *groupMachine) Commit(t *rapid.T) {
	var owners []*gmMember
	for _, c := range m.members {
		if len(c.parts) > 0 {
			owners = append(owners, c)
		}
	}
	if len(owners) == 0 {
		t.Skip("no member owns a partition")
	}
	c := rapid.SampledFrom(owners).Draw(t, "member")
	sent := time.Now()
	m.mustAck(t, m.commitOf(t, c.id, m.gen, c.parts), "commit of a current member")
	c.touched = sent
}

// StaleCommit: a commit from an old generation, a departed or unknown
// member, or a simple commit into a live group.
func (m *groupMachine) StaleCommit(t *rapid.T) {
	refs := m.staleRefs()
	ref := rapid.SampledFrom(refs).Draw(t, "stale")
	m.mustRefuse(t, m.commitOf(t, ref.id, ref.gen, m.allParts()), "a stale generation or member")
}

// staleRefs are the (member, generation) pairs that must not commit.
func (m *groupMachine) staleRefs() []gmRef {
	current := map[gmRef]bool{}
	for _, c := range m.members {
		current[gmRef{c.id, m.gen}] = true
	}
	var refs []gmRef
	seen := map[gmRef]bool{}
	add := func(r gmRef) {
		if !current[r] && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	for _, r := range m.history {
		add(r)
	}
	for _, c := range m.members {
		add(gmRef{c.id, m.gen - 1})
		add(gmRef{c.id, m.gen + 1})
	}
	add(gmRef{"no-such-member", m.gen})
	if len(m.members) > 0 {
		add(gmRef{"", -1}) // a simple commit into a live group
	}
	return refs
}

// SimpleCommit: a consumer outside any group commits (generation -1) into
// the empty group.
func (m *groupMachine) SimpleCommit(t *rapid.T) {
	if len(m.members) > 0 {
		t.Skip("the group has members")
	}
	m.mustAck(t, m.commitOf(t, "", -1, m.allParts()), "simple commit into an empty group")
}

// Heartbeat: a current member's heartbeat is answered; a stale one is not.
func (m *groupMachine) Heartbeat(t *rapid.T) {
	if len(m.members) == 0 {
		t.Skip("no member")
	}
	if rapid.Bool().Draw(t, "stale") {
		ref := rapid.SampledFrom(m.staleRefs()).Draw(t, "stale member")
		res, err := m.node().Heartbeat(m.ctx, gmGroup, &group.Heartbeat{MemberID: ref.id, Generation: ref.gen})
		if err == nil {
			err = res.Err
		}
		if c := actors.GroupErrorCode(err); c != kerr.IllegalGeneration.Code && c != kerr.UnknownMemberID.Code {
			t.Fatalf("heartbeat of %q generation %d (group at %d with %v): %v", ref.id, ref.gen, m.gen, m.ids(), err)
		}
		return
	}
	c := rapid.SampledFrom(m.members).Draw(t, "member")
	m.mustHeartbeat(t, c)
}

func (m *groupMachine) mustHeartbeat(t *rapid.T, c *gmMember) {
	sent := time.Now()
	res, err := m.node().Heartbeat(m.ctx, gmGroup, &group.Heartbeat{MemberID: c.id, Generation: m.gen})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("heartbeat of %s (%s) in generation %d: %v", c.name, c.id, m.gen, err)
	}
	c.touched = sent
}

// Panic: the coordinator actor panics on a request: a commit (then in
// doubt), a heartbeat, or a request of a rebalance in progress (then every
// waiting request is answered NOT_COORDINATOR and the members rejoin).
func (m *groupMachine) Panic(t *rapid.T) {
	if m.panics >= gmMaxPanics {
		t.Skip("enough panics for one run")
	}
	m.panics++
	kinds := []string{"commit"}
	if len(m.members) > 0 {
		kinds = append(kinds, "heartbeat")
	}
	if len(m.members) < 5 {
		kinds = append(kinds, "rebalance")
	}
	const target = "/group-" + gmGroup
	switch rapid.SampledFrom(kinds).Draw(t, "panic on") {
	case "commit":
		var c gmCommit
		if len(m.members) == 0 {
			c = m.commitOf(t, "", -1, m.allParts())
		} else {
			o := rapid.SampledFrom(m.members).Draw(t, "member")
			c = m.commitOf(t, o.id, m.gen, m.allParts())
		}
		m.inj.Arm(target, 1, testkit.MessageOf[*actors.GroupRequest]())
		if err := m.send(t, c); actors.GroupErrorCode(err) != kerr.NotCoordinator.Code {
			t.Fatalf("commit into a panicking coordinator: %v, want NOT_COORDINATOR", err)
		}
		m.inDoubt(c)
	case "heartbeat":
		c := rapid.SampledFrom(m.members).Draw(t, "member")
		m.inj.Arm(target, 1, testkit.MessageOf[*actors.GroupRequest]())
		_, err := m.node().Heartbeat(m.ctx, gmGroup, &group.Heartbeat{MemberID: c.id, Generation: m.gen})
		if actors.GroupErrorCode(err) != kerr.NotCoordinator.Code {
			t.Fatalf("heartbeat into a panicking coordinator: %v, want NOT_COORDINATOR", err)
		}
	case "rebalance":
		// A new member joins, and the k-th request of the rebalance
		// (a join, a sync or a heartbeat) panics.
		k := rapid.IntRange(1, 4+3*len(m.members)).Draw(t, "panic at request")
		var seen int
		m.inj.Arm(target, 1, func(msg any) bool {
			if _, ok := msg.(*actors.GroupRequest); ok {
				seen++
			}
			return seen == k
		})
		m.rebalance(t, append(slices.Clone(m.members), m.newMember(t)), -1)
		m.inj.Disarm()
	}
}

// Restart closes the broker and starts it again on the same data; maybe
// while a new member joins and the others rejoin, under their requests.
func (m *groupMachine) Restart(t *rapid.T) {
	if m.restarts.Load() >= gmMaxRestarts {
		t.Skip("enough restarts for one run")
	}
	if len(m.members) < 5 && rapid.Bool().Draw(t, "during a rebalance") {
		at := rapid.IntRange(1, 3+2*len(m.members)).Draw(t, "restart after requests")
		m.rebalance(t, append(slices.Clone(m.members), m.newMember(t)), at)
		return
	}
	from := time.Now()
	m.restart(t)
	for _, c := range m.members {
		c.touched = from // sessions start afresh
	}
}

func (m *groupMachine) restart(t *rapid.T) {
	if err := m.broker.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	m.restarts.Add(1)
	m.start(t)
}

// --- checks

// Check compares the coordinator with the model.
func (m *groupMachine) Check(t *rapid.T) {
	n := m.node()
	offs, err := n.CommittedOffsets(m.ctx, gmGroup, nil)
	if err != nil {
		t.Fatalf("committed offsets: %v", err)
	}
	for tp := range offs {
		if tp.Topic != gmTopic || tp.Partition < 0 || tp.Partition >= m.parts {
			t.Fatalf("an offset for %s/%d, never committed", tp.Topic, tp.Partition)
		}
	}
	for p, want := range m.offsets {
		got, ok := offs[group.TopicPartition{Topic: gmTopic, Partition: int32(p)}]
		v := int64(-1)
		if ok {
			v = got.Offset
			if got.LeaderEpoch != int32(v%7) || got.Metadata != fmt.Sprintf("m%d", v) {
				t.Fatalf("partition %d: offset %d with epoch %d metadata %q, committed with %d %q", p, v, got.LeaderEpoch, got.Metadata, v%7, fmt.Sprintf("m%d", v))
			}
		}
		if v != want.acked && !slices.Contains(want.doubt, v) {
			t.Fatalf("partition %d: committed offset %d, acknowledged %d (in doubt: %v)", p, v, want.acked, want.doubt)
		}
		want.acked, want.doubt = v, nil // settled
	}
	lags, ok := n.GroupLag(gmGroup)
	if len(offs) > 0 && !ok {
		t.Fatalf("group lag: no group, yet offsets %v", offs)
	}
	if len(lags) != len(offs) {
		t.Fatalf("group lag of %d partitions, %d committed", len(lags), len(offs))
	}
	for _, l := range lags {
		if o := offs[group.TopicPartition{Topic: l.Topic, Partition: l.Partition}]; l.Committed != o.Offset {
			t.Fatalf("group lag: %s/%d committed %d, the coordinator says %d", l.Topic, l.Partition, l.Committed, o.Offset)
		}
	}

	d, err := n.DescribeGroup(m.ctx, gmGroup)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if len(m.members) == 0 {
		exists := m.gen > 0 || len(offs) > 0
		if d.State != group.Empty && !(d.State == group.Dead && !exists) || len(d.Members) > 0 {
			t.Fatalf("group with no member: %v with %d members (generation %d, %d offsets)", d.State, len(d.Members), m.gen, len(offs))
		}
	} else {
		if d.State != group.Stable || len(d.Members) != len(m.members) {
			t.Fatalf("group: %v with %d members, want Stable with %v", d.State, len(d.Members), m.ids())
		}
		byID := map[string]*gmMember{}
		for _, c := range m.members {
			byID[c.id] = c
		}
		for _, dm := range d.Members {
			c := byID[dm.MemberID]
			if c == nil {
				t.Fatalf("group has member %s, not one of %v", dm.MemberID, m.ids())
			}
			parts, err := gmDecode(dm.Assignment)
			if err != nil || !slices.Equal(parts, c.parts) {
				t.Fatalf("member %s: assignment %v (%v), synced %v", c.id, parts, err, c.parts)
			}
		}
	}
	// Keep sessions alive, as a consumer's heartbeat thread does.
	for _, c := range m.members {
		if time.Since(c.touched) > gmSession/4 {
			m.mustHeartbeat(t, c)
		}
	}
	m.stepFrom = time.Now()
}

func (m *groupMachine) ids() []string {
	var ids []string
	for _, c := range m.members {
		ids = append(ids, c.id)
	}
	return ids
}

func (m *groupMachine) allParts() []int32 {
	ps := make([]int32, m.parts)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

// gmPlan is the leader's assignment: partitions round-robin over the
// members sorted by id.
func gmPlan(members []group.JoinMember, parts int32) map[string][]int32 {
	var ids []string
	for _, jm := range members {
		ids = append(ids, jm.MemberID)
	}
	sort.Strings(ids)
	plan := map[string][]int32{}
	for _, id := range ids {
		plan[id] = nil
	}
	for p := int32(0); p < parts && len(ids) > 0; p++ {
		id := ids[int(p)%len(ids)]
		plan[id] = append(plan[id], p)
	}
	return plan
}

func samePlan(a, b map[string][]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for id, ps := range a {
		if qs, ok := b[id]; !ok || !slices.Equal(ps, qs) {
			return false
		}
	}
	return true
}

func gmEncode(parts []int32) []byte {
	a := kmsg.ConsumerMemberAssignment{}
	if len(parts) > 0 {
		a.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: gmTopic, Partitions: parts}}
	}
	return a.AppendTo(nil)
}

func gmDecode(b []byte) ([]int32, error) {
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(b); err != nil {
		return nil, err
	}
	var parts []int32
	for _, tp := range a.Topics {
		if tp.Topic != gmTopic {
			return nil, fmt.Errorf("topic %q", tp.Topic)
		}
		parts = append(parts, tp.Partitions...)
	}
	return parts, nil
}

func TestGroupMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		m := &groupMachine{
			ctx: ctx, dir: tempDir(t), inj: &testkit.PanicInjector{},
			parts:   rapid.Int32Range(3, 4).Draw(t, "partitions"),
			leaders: map[int32]string{}, lists: map[int32][]string{}, joined: map[int32]map[string]bool{},
			sent: map[int32]map[string][]int32{}, owners: map[int32]map[int32]string{},
		}
		for range m.parts {
			m.offsets = append(m.offsets, &gmOffset{acked: -1})
		}
		m.start(t)
		defer func() { _ = m.broker.Close() }()
		if _, err := m.broker.CreateTopic(ctx, gmTopic, m.parts); err != nil {
			t.Fatal(err)
		}
		m.stepFrom = time.Now()
		t.Repeat(rapid.StateMachineActions(m))
	})
}
