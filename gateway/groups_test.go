package gateway_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/testkit"
)

// groupMember starts a franz-go group consumer with short heartbeats, so a
// rebalance reaches every member quickly.
func groupMember(t *testing.T, addr, group, topic, name string, balancer kgo.GroupBalancer, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts := append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID(name), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer), kgo.HeartbeatInterval(100 * time.Millisecond), kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	// A group consumer joins when polled.
	go func() {
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
		}
	}()
	return cl
}

// stableGroup waits until the group is Stable with n members whose
// assignments cover the topic's partitions, and returns member (client id)
// to the partitions it owns. It fails if a partition has two owners.
func stableGroup(t *testing.T, adm *kadm.Client, group, topic string, n, partitions int) map[string][]int32 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		owners, why := groupOwners(t, adm, group, topic, n, partitions)
		if why == "" {
			return owners
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s never became stable with %d members: %s", group, n, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func groupOwners(t *testing.T, adm *kadm.Client, group, topic string, n, partitions int) (map[string][]int32, string) {
	ds, err := adm.DescribeGroups(context.Background(), group)
	if err != nil {
		return nil, err.Error()
	}
	d := ds[group]
	if d.State != "Stable" || len(d.Members) != n {
		return nil, fmt.Sprintf("state %s with %d members", d.State, len(d.Members))
	}
	owners := map[string][]int32{}
	seen := map[int32]string{}
	for _, m := range d.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return nil, "assignment not decoded"
		}
		owners[m.ClientID] = []int32{}
		for _, at := range a.Topics {
			for _, p := range at.Partitions {
				if prev, dup := seen[p]; dup {
					t.Fatalf("partition %d owned by %s and %s in one generation", p, prev, m.ClientID)
				}
				seen[p] = m.ClientID
				owners[m.ClientID] = append(owners[m.ClientID], p)
			}
		}
		slices.Sort(owners[m.ClientID])
	}
	if len(seen) != partitions {
		// Cooperative rebalances go through a generation where revoked
		// partitions are unassigned: wait for the next.
		return nil, fmt.Sprintf("%d of %d partitions assigned", len(seen), partitions)
	}
	return owners, ""
}

func traceLine(owners map[string][]int32) string {
	names := make([]string, 0, len(owners))
	for n := range owners {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%v", n, owners[n]))
	}
	return strings.Join(parts, " ")
}

// Members join one at a time, then leave one at a time: after every
// rebalance each partition has exactly one owner, the fourth member of a
// 3-partition topic is idle, and a member leaving hands its partitions over.
func TestGroupMembersSharePartitions(t *testing.T) {
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{{"range", kgo.RangeBalancer()}, {"cooperative-sticky", kgo.CooperativeStickyBalancer()}} {
		t.Run(bal.name, func(t *testing.T) {
			b, cl := startKafka(t)
			adm := kadm.NewClient(cl)
			if _, err := b.CreateTopic(testCtx(t), "shared", 3); err != nil {
				t.Fatal(err)
			}
			var members []*kgo.Client
			for i := 1; i <= 4; i++ {
				members = append(members, groupMember(t, b.KafkaAddr(), "g-"+bal.name, "shared", fmt.Sprintf("m%d", i), bal.b))
				owners := stableGroup(t, adm, "g-"+bal.name, "shared", i, 3)
				_, gen := members[0].GroupMetadata()
				t.Logf("%s: %d members, generation %d: %s", bal.name, i, gen, traceLine(owners))
				idle := 0
				for _, ps := range owners {
					if len(ps) == 0 {
						idle++
					}
				}
				if want := max(i-3, 0); idle != want {
					t.Fatalf("%d members: %d idle, want %d", i, idle, want)
				}
			}
			for i := 0; i < 3; i++ {
				members[i].Close() // leaves the group
				owners := stableGroup(t, adm, "g-"+bal.name, "shared", 3-i, 3)
				_, gen := members[3].GroupMetadata()
				t.Logf("%s: m%d left, generation %d: %s", bal.name, i+1, gen, traceLine(owners))
				if _, ok := owners[fmt.Sprintf("m%d", i+1)]; ok {
					t.Fatalf("m%d still owns partitions after leaving", i+1)
				}
			}
		})
	}
}

// A consumer commits, closes, and the next member of the group resumes
// exactly after the committed offsets; another group reads everything.
func TestGroupCommitResume(t *testing.T) {
	ctx := testCtx(t)
	b, cl := startKafka(t)
	if _, err := b.CreateTopic(ctx, "resume", 2); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		for i := 0; i < 20; i++ {
			if _, err := b.Produce(ctx, "resume", p, fluxo.Record{Value: []byte(fmt.Sprintf("p%d-%d", p, i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	first, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumerGroup("resumers"), kgo.ConsumeTopics("resume"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	got := consume(t, ctx, first, 40)
	// Commit the 5th record of each partition: the next reader starts at 5.
	var commit []*kgo.Record
	for _, r := range got {
		if r.Offset == 4 {
			commit = append(commit, r)
		}
	}
	if err := first.CommitRecords(ctx, commit...); err != nil {
		t.Fatal(err)
	}
	first.Close()

	adm := kadm.NewClient(cl)
	offs, err := adm.FetchOffsets(ctx, "resumers")
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if o, ok := offs.Lookup("resume", p); !ok || o.At != 5 {
			t.Fatalf("committed offset of partition %d: %+v, want 5", p, o)
		}
	}
	lags, err := adm.Lag(ctx, "resumers")
	if err != nil {
		t.Fatal(err)
	}
	if l := lags["resumers"].Lag.Total(); l != 30 {
		t.Fatalf("total lag %d, want 30", l)
	}

	second, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumerGroup("resumers"), kgo.ConsumeTopics("resume"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	rest := consume(t, ctx, second, 30)
	for _, r := range rest {
		if r.Offset < 5 {
			t.Fatalf("resumed at %s/%d offset %d, before the committed 5", r.Topic, r.Partition, r.Offset)
		}
	}
	if len(rest) != 30 {
		t.Fatalf("resumed with %d records, want 30", len(rest))
	}

	// A different group gets every record.
	other, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumerGroup("others"), kgo.ConsumeTopics("resume"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if all := consume(t, ctx, other, 40); len(all) != 40 {
		t.Fatalf("second group read %d records, want 40", len(all))
	}
}

// Group administration through kadm: list with states, describe, offset
// delete of an unsubscribed topic, delete of an empty group.
func TestGroupAdmin(t *testing.T) {
	ctx := testCtx(t)
	b, cl := startKafka(t)
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"a", "b"} {
		if _, err := b.CreateTopic(ctx, topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	// Simple commits (no membership) create the group.
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "a", Partition: 0, At: 3, LeaderEpoch: -1, Metadata: "m"})
	os.Add(kadm.Offset{Topic: "b", Partition: 0, At: 4, LeaderEpoch: -1})
	res, err := adm.CommitOffsets(ctx, "admin", os)
	if err != nil || res.Error() != nil {
		t.Fatalf("commit: %v %v", err, res.Error())
	}
	// A partition that does not exist is refused.
	bad := kadm.Offsets{}
	bad.Add(kadm.Offset{Topic: "missing", Partition: 0, At: 1, LeaderEpoch: -1})
	if res, err := adm.CommitOffsets(ctx, "admin", bad); err == nil && res.Error() == nil {
		t.Fatal("commit to a missing topic accepted")
	}
	fetched, err := adm.FetchOffsets(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := fetched.Lookup("a", 0); o.At != 3 || o.Metadata != "m" {
		t.Fatalf("fetched %+v", o)
	}
	listed, err := adm.ListGroups(ctx, "Empty")
	if err != nil || !slices.Contains(listed.Groups(), "admin") {
		t.Fatalf("list Empty: %v %v", listed.Groups(), err)
	}
	if listed, _ := adm.ListGroups(ctx, "Stable"); len(listed.Groups()) != 0 {
		t.Fatalf("list Stable: %v", listed.Groups())
	}
	dres, err := adm.DeleteOffsets(ctx, "admin", kadm.TopicsSet{"b": {0: {}}})
	if err != nil || dres.Error() != nil {
		t.Fatalf("delete offsets: %v %v", err, dres.Error())
	}
	fetched, _ = adm.FetchOffsets(ctx, "admin")
	if _, ok := fetched.Lookup("b", 0); ok {
		t.Fatal("offset of b survived OffsetDelete")
	}
	// An unknown group: no offsets, no error.
	if f, err := adm.FetchOffsets(ctx, "nobody"); err != nil || len(f) != 0 {
		t.Fatalf("unknown group offsets: %v %v", f, err)
	}
	del, err := adm.DeleteGroups(ctx, "admin", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if del["admin"].Err != nil {
		t.Fatalf("delete admin: %v", del["admin"].Err)
	}
	if del["nobody"].Err == nil {
		t.Fatal("deleting an unknown group succeeded")
	}
	if ds, _ := adm.DescribeGroups(ctx, "admin"); ds["admin"].State != "Dead" {
		t.Fatalf("deleted group is %q", ds["admin"].State)
	}
}

// Committed offsets and the group survive a broker restart.
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	b := testkit.StartBrokerAt(t, dir, fluxo.WithKafkaListen("127.0.0.1:0", ""))
	if _, err := b.CreateTopic(ctx, "r", 1); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "r", Partition: 0, At: 42, LeaderEpoch: 0})
	if res, err := kadm.NewClient(cl).CommitOffsets(ctx, "persisted", os); err != nil || res.Error() != nil {
		t.Fatalf("commit: %v %v", err, res.Error())
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = testkit.StartBrokerAt(t, dir, fluxo.WithKafkaListen("127.0.0.1:0", ""))
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	f, err := kadm.NewClient(cl).FetchOffsets(ctx, "persisted")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := f.Lookup("r", 0); !ok || o.At != 42 {
		t.Fatalf("after restart: %+v %v", o, ok)
	}
}
