package group

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// The golden files in testdata/ drive the step function command by command;
// each command's expected output is the events it persisted, the replies it
// sent and the group's state after it. Rewrite them after a deliberate
// change with: go test ./actors/group -run Golden -rewrite
//
// Commands (durations like 10s; lists comma-separated):
//
//	join req=N [member=ID] [inst=ID] [client=C] [v=9] [session=10s] [rebalance=30s] [type=consumer] [protocols=range:meta,roundrobin]
//	sync req=N member=ID gen=G [inst=ID] [assign=(ID:bytes,...)] [ptype=T] [pname=P]
//	heartbeat req=N member=ID gen=G [inst=ID]
//	leave req=N members=(ID[/INST],...)
//	commit req=N [member=ID] gen=G offsets=(topic/p=offset,...) [inst=ID] [meta=M]
//	delete-offsets req=N partitions=(topic/p,...)
//	delete-group req=N
//	tick D           advance the clock by D, then Tick
//	restart          rebuild the group from the events so far (replay, Recover)
//	describe
func TestGolden(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := newHarness()
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return h.run(t, td)
		})
	})
}

type harness struct {
	g      *Group
	cfg    Config
	now    time.Time
	ids    int
	events []*fluxopb.GroupEvent
}

func newHarness() *harness {
	h := &harness{now: time.Unix(1_700_000_000, 0)}
	h.cfg = Config{MaxMetadataBytes: 16, NewMemberID: func(client string) string { h.ids++; return fmt.Sprintf("%s-%d", client, h.ids) }}
	h.g = New("g", h.cfg)
	return h
}

func args(td *datadriven.TestData) map[string]string {
	m := map[string]string{}
	for _, a := range td.CmdArgs {
		m[a.Key] = strings.Join(a.Vals, ",")
	}
	return m
}

func num(t *testing.T, s string, def int64) int64 {
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}

func dur(t *testing.T, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("bad duration %q", s)
	}
	return d
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func tp(t *testing.T, s string) TopicPartition {
	topic, p, ok := strings.Cut(s, "/")
	if !ok {
		t.Fatalf("bad partition %q", s)
	}
	return TopicPartition{topic, int32(num(t, p, 0))}
}

func (h *harness) run(t *testing.T, td *datadriven.TestData) string {
	a := args(td)
	req := uint64(num(t, a["req"], 0))
	var cmd any
	switch td.Cmd {
	case "join":
		j := &Join{Req: req, Version: int16(num(t, a["v"], 9)), MemberID: a["member"], InstanceID: a["inst"],
			ClientID: a["client"], ClientHost: "/127.0.0.1", ProtocolType: "consumer",
			SessionTimeout: dur(t, a["session"], 10*time.Second), RebalanceTimeout: dur(t, a["rebalance"], 30*time.Second)}
		if j.ClientID == "" {
			j.ClientID = "c"
		}
		if pt, ok := a["type"]; ok {
			j.ProtocolType = pt
		}
		ps := a["protocols"]
		if ps == "" {
			ps = "range"
		}
		for _, p := range list(ps) {
			name, meta, _ := strings.Cut(p, ":")
			j.Protocols = append(j.Protocols, Protocol{Name: name, Metadata: []byte(meta)})
		}
		cmd = j
	case "sync":
		s := &Sync{Req: req, MemberID: a["member"], InstanceID: a["inst"], Generation: int32(num(t, a["gen"], 0))}
		if v, ok := a["ptype"]; ok {
			s.ProtocolType = &v
		}
		if v, ok := a["pname"]; ok {
			s.Protocol = &v
		}
		if as := list(a["assign"]); as != nil {
			s.Assignments = map[string][]byte{}
			for _, x := range as {
				id, b, _ := strings.Cut(x, ":")
				s.Assignments[id] = []byte(b)
			}
		}
		cmd = s
	case "heartbeat":
		cmd = &Heartbeat{Req: req, MemberID: a["member"], InstanceID: a["inst"], Generation: int32(num(t, a["gen"], 0))}
	case "leave":
		l := &Leave{Req: req}
		for _, x := range list(a["members"]) {
			id, inst, _ := strings.Cut(x, "/")
			l.Members = append(l.Members, LeaveMember{MemberID: id, InstanceID: inst})
		}
		cmd = l
	case "commit":
		c := &Commit{Req: req, MemberID: a["member"], InstanceID: a["inst"], Generation: int32(num(t, a["gen"], -1))}
		for _, x := range list(a["offsets"]) {
			p, o, _ := strings.Cut(x, "=")
			c.Offsets = append(c.Offsets, CommitOffset{TopicPartition: tp(t, p), Offset: num(t, o, 0), LeaderEpoch: -1, Metadata: a["meta"]})
		}
		cmd = c
	case "delete-offsets":
		d := &DeleteOffsets{Req: req}
		for _, x := range list(a["partitions"]) {
			d.Partitions = append(d.Partitions, tp(t, x))
		}
		cmd = d
	case "delete-group":
		cmd = &DeleteGroup{Req: req}
	case "tick":
		h.now = h.now.Add(dur(t, td.CmdArgs[0].Key, 0))
		cmd = Tick{}
	case "restart":
		g := New("g", h.cfg)
		for _, ev := range h.events {
			g.Replay(ev)
		}
		g.Recover(h.now)
		h.g = g
		return h.state()
	case "describe":
		return describe(h.g)
	default:
		t.Fatalf("unknown command %q", td.Cmd)
	}
	out := h.g.Step(h.now, cmd)
	h.events = append(h.events, out.Events...)
	h.checkDurable(t)
	var b strings.Builder
	for _, ev := range out.Events {
		fmt.Fprintf(&b, "event %s\n", eventString(ev))
	}
	sort.SliceStable(out.Replies, func(i, j int) bool { return out.Replies[i].Req < out.Replies[j].Req })
	for _, r := range out.Replies {
		fmt.Fprintf(&b, "reply %d: %s\n", r.Req, resultString(r.Result))
	}
	b.WriteString(h.state())
	return b.String()
}

// durable is a fingerprint of the state apply owns: what replay rebuilds.
func durable(g *Group) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gen=%d type=%s proto=%s leader=%s assigned=%v dirty=%v\n", g.Generation, g.ProtocolType, g.Protocol, g.Leader, g.assigned, g.dirty)
	for _, id := range g.order {
		m := g.Members[id]
		fmt.Fprintf(&b, "member %s inst=%s client=%s host=%s session=%v rebalance=%v type=%s protocols=%v assignment=%q\n",
			m.ID, m.InstanceID, m.ClientID, m.ClientHost, m.SessionTimeout, m.RebalanceTimeout, m.ProtocolType, m.Protocols, m.Assignment)
	}
	for _, inst := range slices.Sorted(maps.Keys(g.instances)) {
		fmt.Fprintf(&b, "instance %s=%s\n", inst, g.instances[inst])
	}
	for _, tp := range SortedPartitions(g.Offsets) {
		fmt.Fprintf(&b, "offset %v=%+v\n", tp, g.Offsets[tp])
	}
	return b.String()
}

// checkDurable asserts the event-sourcing invariant after every step: the
// events persisted so far, replayed into a new group, rebuild exactly the
// live group's durable state; and so does that state's snapshot alone.
func (h *harness) checkDurable(t *testing.T) {
	t.Helper()
	replayed := New("g", h.cfg)
	for _, ev := range h.events {
		replayed.Replay(ev)
	}
	if got, want := durable(replayed), durable(h.g); got != want {
		t.Fatalf("replay diverges from the live group:\nreplayed:\n%s\nlive:\n%s", got, want)
	}
	fromSnap := New("g", h.cfg)
	fromSnap.Replay(h.g.Snapshot())
	if got, want := durable(fromSnap), durable(h.g); got != want {
		t.Fatalf("snapshot diverges from the live group:\nsnapshot:\n%s\nlive:\n%s", got, want)
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.(*kerr.Error).Message
}

func resultString(r any) string {
	switch r := r.(type) {
	case *JoinResult:
		if r.Err != nil {
			return fmt.Sprintf("join %s member=%s", errString(r.Err), r.MemberID)
		}
		s := fmt.Sprintf("join ok gen=%d protocol=%s leader=%s member=%s", r.Generation, r.Protocol, r.Leader, r.MemberID)
		if r.Members != nil {
			var ms []string
			for _, m := range r.Members {
				ms = append(ms, m.MemberID+":"+string(m.Metadata))
			}
			s += " members=" + strings.Join(ms, ",")
		}
		return s
	case *SyncResult:
		if r.Err != nil {
			return "sync " + errString(r.Err)
		}
		return fmt.Sprintf("sync ok assignment=%q", r.Assignment)
	case *HeartbeatResult:
		return "heartbeat " + errString(r.Err)
	case *LeaveResult:
		var es []string
		for _, e := range r.Members {
			es = append(es, errString(e))
		}
		return "leave " + errString(r.Err) + " members=" + strings.Join(es, ",")
	case *CommitResult:
		var es []string
		for _, e := range r.Errs {
			es = append(es, errString(e))
		}
		return "commit " + strings.Join(es, ",")
	case *DeleteOffsetsResult:
		var es []string
		for _, e := range r.Errs {
			es = append(es, errString(e))
		}
		return "delete-offsets " + errString(r.Err) + " " + strings.Join(es, ",")
	case *DeleteGroupResult:
		return "delete-group " + errString(r.Err)
	}
	return fmt.Sprintf("%T", r)
}

func eventString(ev *fluxopb.GroupEvent) string {
	switch e := ev.Event.(type) {
	case *fluxopb.GroupEvent_MemberJoined:
		s := "joined " + e.MemberJoined.MemberId
		if e.MemberJoined.InstanceId != "" {
			s += " inst=" + e.MemberJoined.InstanceId
		}
		if e.MemberJoined.Replaced != "" {
			s += " replaced=" + e.MemberJoined.Replaced
		}
		return s
	case *fluxopb.GroupEvent_MemberLeft:
		return fmt.Sprintf("left %s (%s)", e.MemberLeft.MemberId, e.MemberLeft.Reason)
	case *fluxopb.GroupEvent_Rebalanced:
		r := e.Rebalanced
		return fmt.Sprintf("rebalanced gen=%d protocol=%s leader=%s members=%s", r.Generation, r.Protocol, r.Leader, strings.Join(r.Members, ","))
	case *fluxopb.GroupEvent_Assigned:
		var as []string
		for id, a := range e.Assigned.Assignments {
			as = append(as, fmt.Sprintf("%s:%s", id, a))
		}
		sort.Strings(as)
		return fmt.Sprintf("assigned gen=%d %s", e.Assigned.Generation, strings.Join(as, ","))
	case *fluxopb.GroupEvent_OffsetsCommitted:
		var os []string
		for _, o := range e.OffsetsCommitted.Offsets {
			os = append(os, fmt.Sprintf("%s/%d=%d", o.Topic, o.Partition, o.Offset))
		}
		return "committed " + strings.Join(os, ",")
	case *fluxopb.GroupEvent_OffsetsDeleted:
		var ps []string
		for _, p := range e.OffsetsDeleted.Partitions {
			ps = append(ps, fmt.Sprintf("%s/%d", p.Topic, p.Partition))
		}
		return "offsets-deleted " + strings.Join(ps, ",")
	case *fluxopb.GroupEvent_Deleted:
		return "group-deleted"
	}
	return "?"
}

func (h *harness) state() string {
	g := h.g
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s gen=%d", g.Describe().State, g.Generation)
	if g.Leader != "" && len(g.Members) > 0 {
		fmt.Fprintf(&b, " leader=%s", g.Leader)
	}
	if len(g.order) > 0 {
		fmt.Fprintf(&b, " members=%s", strings.Join(g.order, ","))
	}
	if len(g.Offsets) > 0 {
		var os []string
		for _, p := range SortedPartitions(g.Offsets) {
			os = append(os, fmt.Sprintf("%s/%d=%d", p.Topic, p.Partition, g.Offsets[p].Offset))
		}
		fmt.Fprintf(&b, " offsets=%s", strings.Join(os, ","))
	}
	return b.String() + "\n"
}

func describe(g *Group) string {
	d := g.Describe()
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s type=%s protocol=%s\n", d.State, d.ProtocolType, d.Protocol)
	for _, m := range d.Members {
		fmt.Fprintf(&b, "member %s inst=%q metadata=%q assignment=%q\n", m.MemberID, m.InstanceID, m.Metadata, m.Assignment)
	}
	return b.String()
}

func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

// OffsetDelete must refuse the topics a live consumer group subscribes to
// (read from the members' protocol metadata) and delete the others.
func TestOffsetDeleteRefusesSubscribedTopics(t *testing.T) {
	h := newHarness()
	now := h.now
	g := h.g
	g.Step(now, &Commit{Req: 1, Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: 1}, {TopicPartition: TopicPartition{"u", 0}, Offset: 2}}})
	g.Step(now, &Join{Req: 2, Version: 3, ClientID: "c", ProtocolType: "consumer", SessionTimeout: 10 * time.Second, RebalanceTimeout: time.Second,
		Protocols: []Protocol{{Name: "range", Metadata: consumerMeta("t")}}})
	out := g.Step(now, &DeleteOffsets{Req: 3, Partitions: []TopicPartition{{"t", 0}, {"u", 0}}})
	res := out.Replies[0].Result.(*DeleteOffsetsResult)
	if res.Err != nil || res.Errs[0] != kerr.GroupSubscribedToTopic || res.Errs[1] != nil {
		t.Fatalf("delete offsets: %v %v", res.Err, res.Errs)
	}
	if _, ok := g.Offsets[TopicPartition{"t", 0}]; !ok {
		t.Fatal("the subscribed topic's offset was deleted")
	}
	if _, ok := g.Offsets[TopicPartition{"u", 0}]; ok {
		t.Fatal("the unsubscribed topic's offset survived")
	}
}

// The protocol is the candidate most members vote for (each its first
// choice among those all members support).
func TestProtocolSelection(t *testing.T) {
	h := newHarness()
	g := h.g
	join := func(req uint64, client, member string, ps ...string) {
		j := &Join{Req: req, Version: 3, ClientID: client, MemberID: member, ProtocolType: "consumer", SessionTimeout: 10 * time.Second, RebalanceTimeout: time.Second}
		for _, p := range ps {
			j.Protocols = append(j.Protocols, Protocol{Name: p})
		}
		g.Step(h.now, j)
	}
	join(1, "a", "", "roundrobin", "range", "sticky")
	join(2, "b", "", "range", "roundrobin")
	join(3, "c", "", "range", "roundrobin", "cooperative-sticky")
	join(4, "a", "a-1", "roundrobin", "range", "sticky")
	if g.State != CompletingRebalance || len(g.Members) != 3 {
		t.Fatalf("state %s with %d members, want a generation of 3", g.State, len(g.Members))
	}
	if g.Protocol != "range" {
		t.Fatalf("protocol %q, want range (2 votes to 1)", g.Protocol)
	}
}
