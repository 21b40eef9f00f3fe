package actors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"pgregory.net/rapid"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
)

// The rebalance rounds of TestGroupMachine (group_machine_test.go): member
// clients joining, syncing and heartbeating concurrently until the group
// settles on a generation, recording what each generation assigned.

// --- rebalances

// round is one rebalance: a client goroutine per member runs the consumer
// protocol (join, sync, heartbeat until told to rejoin) until every member
// holds an assignment of one generation newer than the group's last.
type round struct {
	m          *groupMachine
	node       atomic.Pointer[actors.Node] // swapped by a restart during the round
	ctx        context.Context
	minGen     int32       // the group's generation before the round
	restarting atomic.Bool // the broker restarts during the round
	stop       atomic.Bool

	mu     sync.Mutex
	synced map[*gmMember]int32 // generation each member holds an assignment of, 0 while it rejoins
	fail   []string
	log    []string
}

func (r *round) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, fmt.Sprintf("%6.1fms ", float64(time.Since(r.m.stepFrom).Microseconds())/1000)+fmt.Sprintf(format, args...))
}

// violation records a broken invariant; the round stops and the test fails.
func (r *round) violation(format string, args ...any) {
	r.mu.Lock()
	r.fail = append(r.fail, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.stop.Store(true)
}

func (r *round) setSynced(c *gmMember, gen int32) {
	r.mu.Lock()
	r.synced[c] = gen
	r.mu.Unlock()
}

// settled is the generation every member holds an assignment of, if they
// all hold one of the same generation past the round's start.
func (r *round) settled() (int32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gen int32
	for _, g := range r.synced {
		if g <= r.minGen || gen != 0 && g != gen {
			return 0, false
		}
		gen = g
	}
	return gen, true
}

func (r *round) client(c *gmMember) {
	for !r.stop.Load() {
		jr := r.join(c)
		if jr == nil {
			continue
		}
		if !r.sync(c, jr) {
			continue
		}
		r.heartbeat(c)
	}
}

func (r *round) join(c *gmMember) *group.JoinResult {
	r.setSynced(c, 0)
	before, sent := r.m.coordinatorRestarts(), time.Now()
	meta := (&kmsg.ConsumerMemberMetadata{Topics: []string{gmTopic}}).AppendTo(nil)
	res, err := r.node.Load().JoinGroup(r.ctx, gmGroup, &group.Join{Version: c.version, MemberID: c.id, ClientID: c.name,
		ProtocolType: "consumer", Protocols: []group.Protocol{{Name: "range", Metadata: meta}},
		SessionTimeout: gmSession, RebalanceTimeout: gmRebalance})
	if err == nil {
		err = res.Err
	}
	if errors.Is(err, kerr.MemberIDRequired) && c.id == "" && c.version >= 4 {
		r.logf("%s join: MEMBER_ID_REQUIRED %s", c.name, res.MemberID)
		c.id, c.issued, c.admitted = res.MemberID, before, false
		return nil
	}
	if err != nil {
		r.rejected(c, "join", err, sent)
		return nil
	}
	r.logf("%s join %s: gen=%d leader=%s members=%d", c.name, res.MemberID, res.Generation, res.Leader, len(res.Members))
	if c.id != "" && res.MemberID != c.id {
		r.violation("%s joined as %s but was answered member %s", c.name, c.id, res.MemberID)
		return nil
	}
	c.id, c.admitted, c.touched = res.MemberID, true, sent
	if res.Generation < r.minGen || res.Generation < c.gen {
		r.violation("%s (%s) joined generation %d; the group was at %d and the member at %d", c.name, c.id, res.Generation, r.minGen, c.gen)
		return nil
	}
	g := res.Generation
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m
	if l, ok := m.leaders[g]; ok && l != res.Leader {
		r.fail = append(r.fail, fmt.Sprintf("generation %d has two leaders: %s and %s", g, l, res.Leader))
	}
	m.leaders[g] = res.Leader
	if m.joined[g] == nil {
		m.joined[g] = map[string]bool{}
	}
	m.joined[g][c.id] = true
	if res.MemberID == res.Leader {
		var ids []string
		for _, jm := range res.Members {
			ids = append(ids, jm.MemberID)
		}
		sort.Strings(ids)
		if prev, ok := m.lists[g]; ok && !slices.Equal(prev, ids) {
			r.fail = append(r.fail, fmt.Sprintf("generation %d: the leader was told members %v, then %v", g, prev, ids))
		}
		m.lists[g] = ids
	} else if len(res.Members) > 0 {
		r.fail = append(r.fail, fmt.Sprintf("follower %s of generation %d was sent the member list", c.id, g))
	}
	if ids, ok := m.lists[g]; ok {
		for id := range m.joined[g] {
			if _, found := slices.BinarySearch(ids, id); !found {
				r.fail = append(r.fail, fmt.Sprintf("%s was answered generation %d but is not in its member list %v", id, g, ids))
			}
		}
	}
	if len(r.fail) > 0 {
		r.stop.Store(true)
		return nil
	}
	return res
}

func (r *round) sync(c *gmMember, jr *group.JoinResult) bool {
	g, m := jr.Generation, r.m
	var assign map[string][]byte
	if jr.Leader == c.id {
		plan := gmPlan(jr.Members, m.parts)
		r.mu.Lock()
		if prev, ok := m.sent[g]; ok && !samePlan(prev, plan) {
			r.fail = append(r.fail, fmt.Sprintf("leader %s assigned generation %d twice, differently", c.id, g))
		}
		m.sent[g] = plan
		r.mu.Unlock()
		assign = map[string][]byte{}
		for id, ps := range plan {
			assign[id] = gmEncode(ps)
		}
	}
	sent := time.Now()
	res, err := r.node.Load().SyncGroup(r.ctx, gmGroup, &group.Sync{MemberID: c.id, Generation: g, Assignments: assign})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		r.rejected(c, "sync", err, sent)
		return false
	}
	parts, err := gmDecode(res.Assignment)
	if err != nil {
		r.violation("%s (%s) generation %d: assignment %q: %v", c.name, c.id, g, res.Assignment, err)
		return false
	}
	r.logf("%s sync %s: gen=%d parts=%v", c.name, c.id, g, parts)
	r.mu.Lock()
	defer r.mu.Unlock()
	plan, ok := m.sent[g]
	switch {
	case !ok:
		r.fail = append(r.fail, fmt.Sprintf("%s was answered an assignment %v for generation %d, for which no leader sent one", c.id, parts, g))
	case !slices.Equal(plan[c.id], parts):
		r.fail = append(r.fail, fmt.Sprintf("%s was answered %v in generation %d, its leader assigned it %v", c.id, parts, g, plan[c.id]))
	}
	if m.owners[g] == nil {
		m.owners[g] = map[int32]string{}
	}
	for _, p := range parts {
		if o, ok := m.owners[g][p]; ok && o != c.id {
			r.fail = append(r.fail, fmt.Sprintf("partition %d has two owners in generation %d: %s and %s", p, g, o, c.id))
		}
		m.owners[g][p] = c.id
	}
	if len(r.fail) > 0 {
		r.stop.Store(true)
		return false
	}
	c.gen, c.parts, c.touched = g, parts, sent
	r.synced[c] = g
	return true
}

// heartbeat keeps the member's session until the round ends or the
// coordinator tells it to rejoin.
func (r *round) heartbeat(c *gmMember) {
	for !r.stop.Load() {
		time.Sleep(2 * time.Millisecond)
		sent := time.Now()
		res, err := r.node.Load().Heartbeat(r.ctx, gmGroup, &group.Heartbeat{MemberID: c.id, Generation: c.gen})
		if err == nil {
			err = res.Err
		}
		if err != nil {
			r.rejected(c, "heartbeat", err, sent)
			return
		}
		c.touched = sent
	}
}

// rejected handles an error answer: the client joins again, with a new
// identity when the group dropped it, if that can have been legitimate.
func (r *round) rejected(c *gmMember, what string, err error, sent time.Time) {
	r.logf("%s %s %s gen=%d: %v", c.name, what, c.id, c.gen, err)
	switch actors.GroupErrorCode(err) {
	case kerr.NotCoordinator.Code, kerr.RebalanceInProgress.Code, kerr.IllegalGeneration.Code:
		// The coordinator restarted, or the group moved on: join again.
	case kerr.CoordinatorNotAvailable.Code:
		if !r.restarting.Load() {
			r.violation("%s %s (%s, generation %d): %v", what, c.name, c.id, c.gen, err)
			return
		}
		// The broker is closed or closing: retry on the new one.
	case kerr.UnknownMemberID.Code:
		now := time.Now()
		switch {
		case !c.admitted && r.m.coordinatorRestarts() > c.issued:
			// A coordinator restart forgot the id it handed out.
		case now.Sub(r.m.stepFrom) >= gmRebalance:
			// The member may have missed a join or sync deadline.
		case !c.touched.IsZero() && now.Sub(c.touched) >= gmSession:
			// Its session may have expired.
		default:
			r.violation("%s %s (%s, generation %d) answered UNKNOWN_MEMBER_ID %v into the step: no deadline can have passed",
				what, c.name, c.id, c.gen, time.Since(r.m.stepFrom))
			return
		}
		c.id, c.admitted, c.gen, c.parts = "", false, 0, nil
	default:
		r.violation("%s %s (%s, generation %d): unexpected %v", what, c.name, c.id, c.gen, err)
		return
	}
	time.Sleep(time.Millisecond)
}

// rebalance runs a round with members ms and makes its outcome the model's.
// With restartAt >= 0 the broker restarts under the clients once the
// coordinator has received that many requests of the round.
func (m *groupMachine) rebalance(t *rapid.T, ms []*gmMember, restartAt int) {
	if len(ms) == 0 {
		m.members = nil
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, gmRound+5*time.Second)
	defer cancel()
	r := &round{m: m, ctx: ctx, minGen: m.gen, synced: map[*gmMember]int32{}}
	r.node.Store(m.node())
	for _, c := range ms {
		r.synced[c] = 0
	}
	var requests atomic.Int64
	if restartAt >= 0 {
		r.restarting.Store(true)
		m.inj.Arm("/group-"+gmGroup, 1, func(msg any) bool {
			if _, ok := msg.(*actors.GroupRequest); ok {
				requests.Add(1)
			}
			return false
		})
		defer m.inj.Disarm()
	}
	var wg sync.WaitGroup
	defer func() { // also when a failed check ends the run
		r.stop.Store(true)
		wg.Wait()
	}()
	for _, c := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.client(c)
		}()
	}
	deadline := time.Now().Add(gmRound)
	var gen int32
	for {
		if restartAt >= 0 && requests.Load() >= int64(restartAt) {
			r.logf("restart")
			restartAt = -1
			m.restart(t)
			r.node.Store(m.node())
			r.logf("restarted")
		}
		g, ok := r.settled()
		if ok && restartAt < 0 || r.stop.Load() {
			gen = g
			break
		}
		if time.Now().After(deadline) {
			r.violation("no generation settled after %v", gmRound)
			break
		}
		time.Sleep(time.Millisecond)
	}
	r.stop.Store(true)
	wg.Wait()
	if len(r.fail) > 0 {
		t.Fatalf("rebalance of %d members: %s\n%s", len(ms), strings.Join(r.fail, "\n"), strings.Join(r.log, "\n"))
	}
	if g, ok := r.settled(); !ok || g != gen {
		t.Fatalf("rebalance: generation %d settled, then %d (%v)\n%s", gen, g, ok, strings.Join(r.log, "\n"))
	}
	if ids := m.lists[gen]; len(ids) != len(ms) {
		t.Fatalf("generation %d has members %v, the clients are %d", gen, ids, len(ms))
	}
	m.members, m.gen = ms, gen
	for _, c := range ms {
		m.history = append(m.history, gmRef{c.id, gen})
	}
}
