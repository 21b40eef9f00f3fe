package actors_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
	"github.com/fluxo-broker/fluxo/testkit"
)

// produceRetrying produces one record, retrying retriable errors as a client
// would, and returns the acknowledged offset.
func produceRetrying(t *testing.T, ctx context.Context, c fluxo.Conn, topic string, p int32, v string) int64 {
	t.Helper()
	for i := 0; ; i++ {
		off, err := c.Produce(ctx, topic, p, fluxo.Record{Value: []byte(v)})
		if err == nil {
			return off
		}
		if !fluxo.IsRetriable(err) || i > 100 {
			t.Fatalf("produce %q: %v", v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fetchAll(t *testing.T, ctx context.Context, c fluxo.Conn, topic string, p int32) []string {
	t.Helper()
	var out []string
	for off := int64(0); ; {
		res, err := c.Fetch(ctx, topic, p, off)
		if err != nil {
			t.Fatalf("fetch %s/%d@%d: %v", topic, p, off, err)
		}
		for _, r := range res.Records {
			out = append(out, string(r.Value))
			off = r.Offset + 1
		}
		if len(res.Records) == 0 || off >= res.HighWatermark {
			return out
		}
	}
}

// TestActorCrashes injects panics into the broker actor, the partitions
// supervisor and a partition actor mid-request: each request in flight is
// answered with a retriable error (never a silent hang), the actors restart,
// and nothing acknowledged is lost.
func TestActorCrashes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inj := &testkit.PanicInjector{}
	b := testkit.StartBroker(t, fluxo.WithActorMiddleware(inj.Middleware))
	// Requests go through the broker actor, as from a protoactor program.
	c := b.ActorClient()
	if _, err := c.CreateTopic(ctx, "crashy", 2); err != nil {
		t.Fatal(err)
	}
	var want []string
	add := func(v string) {
		if off := produceRetrying(t, ctx, c, "crashy", 0, v); off != int64(len(want)) {
			t.Fatalf("%q acknowledged at %d, want %d", v, off, len(want))
		}
		want = append(want, v)
	}
	add("before")

	cases := []struct {
		actor string
		msg   func(any) bool
		do    func() error
	}{
		{"broker", testkit.MessageOf[*fluxopb.ProduceRequest](), func() error {
			_, err := c.Produce(ctx, "crashy", 0, fluxo.Record{Value: []byte("lost-in-broker")})
			return err
		}},
		{"/crashy-0", testkit.MessageOf[*fluxopb.ProduceRequest](), func() error {
			_, err := c.Produce(ctx, "crashy", 0, fluxo.Record{Value: []byte("lost-in-partition")})
			return err
		}},
		{"broker", testkit.MessageOf[*fluxopb.FetchRequest](), func() error {
			_, err := c.Fetch(ctx, "crashy", 0, 0)
			return err
		}},
		{"broker/partitions", nil, func() error {
			_, err := b.CreateTopic(ctx, "other", 1)
			return err
		}},
	}
	for _, tc := range cases {
		inj.Arm(tc.actor, 1, tc.msg)
		start := time.Now()
		err := tc.do()
		if err == nil {
			t.Fatalf("%s: request into a panicking actor succeeded", tc.actor)
		}
		var fe *fluxo.Error
		if !errors.As(err, &fe) || !fe.Retriable() {
			t.Fatalf("%s: error %v is not a retriable broker error", tc.actor, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s: the failed request took %v to be answered", tc.actor, d)
		}
		add("after-" + tc.actor)
	}
	if got := inj.Injected(); got != int64(len(cases)) {
		t.Fatalf("injected %d panics, want %d", got, len(cases))
	}
	if b.Node().Restarts() < int64(len(cases)) {
		t.Fatalf("restarts %d, want at least %d", b.Node().Restarts(), len(cases))
	}
	kinds := b.Node().RestartsByKind()
	for kind, want := range map[string]int64{actors.RestartBroker: 2, actors.RestartPartition: 1, actors.RestartPartitionsSupervisor: 1} {
		if kinds[kind] < want {
			t.Fatalf("%s restarts %d, want at least %d (all: %v)", kind, kinds[kind], want, kinds)
		}
	}
	// Records written before, between and after the crashes are all there, in
	// order. The injected panics fire before the actor sees the message, so
	// the writes that failed did not land.
	got := fetchAll(t, ctx, c, "crashy", 0)
	j := 0
	for _, v := range got {
		if j < len(want) && v == want[j] {
			j++
		}
	}
	if j != len(want) || len(got) != len(want) {
		t.Fatalf("after crashes read %q, want %q", got, want)
	}
	// The topic created through the crashed supervisor's retry works.
	if _, err := b.CreateTopic(ctx, "other", 1); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatal(err)
	}
	produceRetrying(t, ctx, c, "other", 0, "x")
}
