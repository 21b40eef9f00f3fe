package cluster

import (
	"testing"
)

// Registrations are created, replaced by a re-registration (CAS on the
// revision read) and listed in node id order.
func TestRegisterAndListBrokers(t *testing.T) {
	ctx := testCtx(t)
	s := openStore(t, t.TempDir())
	if got, err := s.ListBrokers(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %v, %v", got, err)
	}
	for _, b := range []BrokerInfo{
		{NodeID: 2, KafkaHost: "h2", KafkaPort: 9092, RemoteAddr: "h2:8090"},
		{NodeID: 0, KafkaHost: "h0", KafkaPort: 9092, RemoteAddr: "h0:8090"},
		{NodeID: 2, KafkaHost: "h2b", KafkaPort: 9093, RemoteAddr: "h2b:8090", Rack: "r1"},
	} {
		if err := s.RegisterBroker(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].NodeID != 0 || got[1].NodeID != 2 || got[1].KafkaHost != "h2b" ||
		got[1].KafkaPort != 9093 || got[1].Rack != "r1" || got[1].RegisteredAt.IsZero() {
		t.Fatalf("list %+v", got)
	}
	b, ok, err := s.GetBroker(ctx, 0)
	if err != nil || !ok || b.RemoteAddr != "h0:8090" {
		t.Fatalf("get 0: %+v %v %v", b, ok, err)
	}
	if _, ok, err := s.GetBroker(ctx, 5); err != nil || ok {
		t.Fatalf("get 5: %v %v", ok, err)
	}
	if err := s.RegisterBroker(ctx, BrokerInfo{NodeID: -1}); err == nil {
		t.Fatal("negative id accepted")
	}
}
