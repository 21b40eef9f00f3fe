package gateway_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/testkit"
)

func adminCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantErr fails unless err is the Kafka error want (nil: no error).
func wantErr(t *testing.T, what string, err error, want *kerr.Error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

var s = kadm.StringPtr

func TestAdminCreateTopics(t *testing.T) {
	ctx := adminCtx(t)
	b, cl := startKafka(t)
	adm := kadm.NewClient(cl)

	res, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": s("60000"), "cleanup.policy": s("delete")}, "a")
	if err != nil {
		t.Fatal(err)
	}
	r := res["a"]
	wantErr(t, "create a", r.Err, nil)
	if r.NumPartitions != 3 || r.ReplicationFactor != 1 || r.ID == (kadm.TopicID{}) {
		t.Fatalf("create a: %+v", r)
	}
	if c := r.Configs["retention.ms"]; c.Source != kmsg.ConfigSourceDynamicTopicConfig || *c.Value != "60000" {
		t.Fatalf("retention.ms in the answer: %+v", c)
	}
	if c := r.Configs["max.message.bytes"]; c.Source != kmsg.ConfigSourceDefaultConfig || *c.Value != "1048588" {
		t.Fatalf("max.message.bytes in the answer: %+v", c)
	}
	if tm := b.Node().Topic("a"); tm == nil || tm.Partitions != 3 || tm.Config.GetRetentionMs() != 60000 || string(tm.Id) != string(r.ID[:]) {
		t.Fatalf("topic a as stored: %v", tm)
	}

	// -1 takes the broker defaults.
	res, err = adm.CreateTopics(ctx, -1, -1, nil, "d")
	if err != nil || res["d"].Err != nil || res["d"].NumPartitions != 1 {
		t.Fatalf("create with defaults: %+v %v", res["d"], err)
	}

	// Validate only creates nothing, but reports what it would.
	res, err = adm.ValidateCreateTopics(ctx, 2, 1, nil, "v")
	if err != nil || res["v"].Err != nil || res["v"].NumPartitions != 2 {
		t.Fatalf("validate only: %+v %v", res["v"], err)
	}
	if b.Node().Topic("v") != nil {
		t.Fatal("validate-only created the topic")
	}

	for _, tc := range []struct {
		name     string
		topic    string
		parts    int32
		rf       int16
		configs  map[string]*string
		validate bool
		want     *kerr.Error
		inMsg    string
	}{
		{"duplicate", "a", 1, 1, nil, false, kerr.TopicAlreadyExists, "already exists"},
		{"duplicate validate only", "a", 1, 1, nil, true, kerr.TopicAlreadyExists, "already exists"},
		{"bad character", "bad name!", 1, 1, nil, false, kerr.InvalidTopicException, "illegal character"},
		{"dot dot", "..", 1, 1, nil, false, kerr.InvalidTopicException, ".."},
		{"zero partitions", "z", 0, 1, nil, false, kerr.InvalidPartitions, "must be positive"},
		{"negative partitions", "z", -5, 1, nil, false, kerr.InvalidPartitions, "must be positive"},
		{"too many partitions", "z", 20000, 1, nil, false, kerr.InvalidPartitions, "between 1 and"},
		{"replication factor 3", "z", 1, 3, nil, false, kerr.InvalidReplicationFactor, "1 broker"},
		{"replication factor 0", "z", 1, 0, nil, false, kerr.InvalidReplicationFactor, "1 broker"},
		{"unsupported config", "z", 1, 1, map[string]*string{"segment.bytes": s("1024")}, false, kerr.InvalidConfig, "segment.bytes"},
		{"min.insync.replicas 0", "z", 1, 1, map[string]*string{"min.insync.replicas": s("0")}, false, kerr.InvalidConfig, "min.insync.replicas"},
		{"unclean not a bool", "z", 1, 1, map[string]*string{"unclean.leader.election.enable": s("yes please")}, false, kerr.InvalidConfig, "unclean.leader.election.enable"},
		{"compact", "z", 1, 1, map[string]*string{"cleanup.policy": s("compact")}, false, kerr.InvalidConfig, "cleanup.policy"},
		{"not a number", "z", 1, 1, map[string]*string{"retention.ms": s("soon")}, false, kerr.InvalidConfig, "retention.ms"},
		{"out of range", "z", 1, 1, map[string]*string{"retention.bytes": s("-2")}, false, kerr.InvalidConfig, "retention.bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			create := adm.CreateTopics
			if tc.validate {
				create = adm.ValidateCreateTopics
			}
			res, err := create(ctx, tc.parts, tc.rf, tc.configs, tc.topic)
			if err != nil {
				t.Fatal(err)
			}
			r := res[tc.topic]
			wantErr(t, tc.name, r.Err, tc.want)
			if !strings.Contains(r.ErrMessage, tc.inMsg) {
				t.Fatalf("message %q lacks %q", r.ErrMessage, tc.inMsg)
			}
			if r.NumPartitions != -1 || r.ReplicationFactor != -1 {
				t.Fatalf("refusal reports %d partitions, factor %d; want -1", r.NumPartitions, r.ReplicationFactor)
			}
		})
	}
	if b.Node().Topic("z") != nil {
		t.Fatal("a refused topic exists")
	}

	// Manual assignments: only this node, every partition once.
	assign := func(topic string, replicas ...[]int32) kmsg.CreateTopicsResponseTopic {
		t.Helper()
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 10000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
		for p, rs := range replicas {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = int32(p), rs
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 {
			t.Fatalf("create %s: %v %v", topic, resp, err)
		}
		return resp.Topics[0]
	}
	if r := assign("assigned", []int32{0}, []int32{0}); r.ErrorCode != 0 || r.NumPartitions != 2 {
		t.Fatalf("assignment on this node: %+v", r)
	}
	if r := assign("elsewhere", []int32{0}, []int32{1}); r.ErrorCode != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("assignment on node 1: %+v", r)
	}
	if r := assign("replicated", []int32{0, 1}); r.ErrorCode != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("two replicas: %+v", r)
	}

	// Created topics serve at once.
	if _, err := b.Produce(ctx, "a", 2, fluxo.Record{Value: []byte("x")}); err != nil {
		t.Fatalf("produce to a new topic: %v", err)
	}
}

func TestAdminDeleteTopics(t *testing.T) {
	ctx := adminCtx(t)
	b, cl := startKafka(t)
	adm := kadm.NewClient(cl)
	for _, name := range []string{"x", "y"} {
		if _, err := b.CreateTopic(ctx, name, 2); err != nil {
			t.Fatal(err)
		}
	}
	res, err := adm.DeleteTopics(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete x", res["x"].Err, nil)
	if b.Node().Topic("x") != nil {
		t.Fatal("x still exists")
	}
	res, err = adm.DeleteTopics(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete x again", res["x"].Err, kerr.UnknownTopicOrPartition)
	res, err = adm.DeleteTopics(ctx, "bad name!")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete a bad name", res["bad name!"].Err, kerr.UnknownTopicOrPartition)

	// By id (v6).
	byID := func(id [16]byte) kmsg.DeleteTopicsResponseTopic {
		t.Helper()
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TimeoutMillis = 10000
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.TopicID = id
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 {
			t.Fatalf("delete by id: %v %v", resp, err)
		}
		if resp.Version != 6 {
			t.Fatalf("answered at version %d, want 6", resp.Version)
		}
		return resp.Topics[0]
	}
	var id [16]byte
	copy(id[:], b.Node().Topic("y").Id)
	r := byID(id)
	if r.ErrorCode != 0 || r.Topic == nil || *r.Topic != "y" || r.TopicID != id {
		t.Fatalf("delete y by id: %+v", r)
	}
	if b.Node().Topic("y") != nil {
		t.Fatal("y still exists")
	}
	if r := byID(id); r.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("delete a gone id: %+v", r)
	}
	// The name can be used again, with fresh data.
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "y"); err != nil {
		t.Fatal(err)
	}
	if st, ok := b.Node().Partition("y", 0); !ok || st.LogEndOffset != 0 {
		t.Fatalf("recreated y: %+v %v", st, ok)
	}
}

func TestAdminCreatePartitions(t *testing.T) {
	ctx := adminCtx(t)
	b, cl := startKafka(t)
	adm := kadm.NewClient(cl)
	if _, err := b.CreateTopic(ctx, "p", 1); err != nil {
		t.Fatal(err)
	}
	res, err := adm.CreatePartitions(ctx, 2, "p")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "add 2", res["p"].Err, nil)
	if n := b.Node().Topic("p").Partitions; n != 3 {
		t.Fatalf("p has %d partitions, want 3", n)
	}
	if off, err := b.Produce(ctx, "p", 2, fluxo.Record{Value: []byte("new")}); err != nil || off != 0 {
		t.Fatalf("produce to new partition: %d %v", off, err)
	}
	md, err := adm.Metadata(ctx, "p")
	if err != nil || len(md.Topics["p"].Partitions) != 3 {
		t.Fatalf("metadata after growing: %+v %v", md.Topics["p"], err)
	}

	for _, tc := range []struct {
		name  string
		call  func() (kadm.CreatePartitionsResponses, error)
		topic string
		want  *kerr.Error
	}{
		{"same count", func() (kadm.CreatePartitionsResponses, error) { return adm.UpdatePartitions(ctx, 3, "p") }, "p", kerr.InvalidPartitions},
		{"fewer", func() (kadm.CreatePartitionsResponses, error) { return adm.UpdatePartitions(ctx, 2, "p") }, "p", kerr.InvalidPartitions},
		{"unknown topic", func() (kadm.CreatePartitionsResponses, error) { return adm.CreatePartitions(ctx, 1, "nope") }, "nope", kerr.UnknownTopicOrPartition},
		{"validate only", func() (kadm.CreatePartitionsResponses, error) { return adm.ValidateCreatePartitions(ctx, 5, "p") }, "p", nil},
		{"validate only too few", func() (kadm.CreatePartitionsResponses, error) { return adm.ValidateUpdatePartitions(ctx, 1, "p") }, "p", kerr.InvalidPartitions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			wantErr(t, tc.name, res[tc.topic].Err, tc.want)
			if tc.want != nil && tc.topic != "nope" && res[tc.topic].ErrMessage == "" {
				t.Fatal("no error message")
			}
			if n := b.Node().Topic("p").Partitions; n != 3 {
				t.Fatalf("p has %d partitions, want 3", n)
			}
		})
	}
}

func configOf(t *testing.T, rc kadm.ResourceConfig, key string) kadm.Config {
	t.Helper()
	for _, c := range rc.Configs {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("%s: no config %q in %+v", rc.Name, key, rc.Configs)
	return kadm.Config{}
}

func TestAdminDescribeConfigs(t *testing.T) {
	ctx := adminCtx(t)
	b, cl := startKafka(t)
	adm := kadm.NewClient(cl)
	if _, err := b.CreateTopic(ctx, "c", 1, fluxo.RetentionMs(1234)); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "c", "nope")
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		switch rc.Name {
		case "nope":
			wantErr(t, "describe nope", rc.Err, kerr.UnknownTopicOrPartition)
		case "c":
			wantErr(t, "describe c", rc.Err, nil)
			if len(rc.Configs) != 6 {
				t.Fatalf("want 6 configs, got %+v", rc.Configs)
			}
			for _, w := range []struct {
				key, value string
				source     kmsg.ConfigSource
			}{
				{"retention.ms", "1234", kmsg.ConfigSourceDynamicTopicConfig},
				{"retention.bytes", "-1", kmsg.ConfigSourceDefaultConfig},
				{"max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig},
				{"cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig},
				{"min.insync.replicas", "2", kmsg.ConfigSourceDefaultConfig},
				{"unclean.leader.election.enable", "false", kmsg.ConfigSourceDefaultConfig},
			} {
				c := configOf(t, rc, w.key)
				if c.Value == nil || *c.Value != w.value || c.Source != w.source || c.Sensitive {
					t.Fatalf("%s: %+v, want %s from %v", w.key, c, w.value, w.source)
				}
			}
			syn := configOf(t, rc, "retention.ms").Synonyms
			if len(syn) != 2 || syn[0].Source != kmsg.ConfigSourceDynamicTopicConfig ||
				syn[1].Key != "log.retention.ms" || *syn[1].Value != "604800000" {
				t.Fatalf("retention.ms synonyms: %+v", syn)
			}
		default:
			t.Fatalf("unexpected resource %q", rc.Name)
		}
	}

	for _, brokers := range [][]int32{nil, {0}} {
		rcs, err := adm.DescribeBrokerConfigs(ctx, brokers...)
		if err != nil || len(rcs) != 1 {
			t.Fatalf("describe broker %v: %+v %v", brokers, rcs, err)
		}
		wantErr(t, "describe broker", rcs[0].Err, nil)
		for key, value := range map[string]string{
			"num.partitions":            "1",
			"log.retention.ms":          "604800000",
			"log.retention.bytes":       "-1",
			"message.max.bytes":         "1048588",
			"auto.create.topics.enable": "true",
		} {
			if c := configOf(t, rcs[0], key); *c.Value != value {
				t.Fatalf("broker %s = %s, want %s", key, *c.Value, value)
			}
		}
	}
	// Another broker, and read-only flags, through the raw request.
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeDocumentation = true
	for _, r := range []struct {
		typ  kmsg.ConfigResourceType
		name string
	}{{kmsg.ConfigResourceTypeBroker, "0"}, {kmsg.ConfigResourceTypeBroker, "7"}, {kmsg.ConfigResourceTypeTopic, "c"}} {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = r.typ, r.name
		req.Resources = append(req.Resources, rr)
	}
	req.Resources[2].ConfigNames = []string{"retention.ms", "segment.bytes"}
	// Straight to broker 0: the client would route broker 7's resource to
	// broker 7.
	kresp, err := cl.Broker(0).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.DescribeConfigsResponse)
	if len(resp.Resources) != 3 {
		t.Fatalf("describe: %v %v", resp, err)
	}
	for _, c := range resp.Resources[0].Configs {
		if !c.ReadOnly || c.Documentation == nil || c.ConfigType == kmsg.ConfigTypeUnknown {
			t.Fatalf("broker config %+v: want read-only, documented, typed", c)
		}
	}
	if resp.Resources[1].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("broker 7: %+v", resp.Resources[1])
	}
	if cs := resp.Resources[2].Configs; len(cs) != 1 || cs[0].Name != "retention.ms" || cs[0].ReadOnly || cs[0].ConfigType != kmsg.ConfigTypeLong {
		t.Fatalf("named configs of c: %+v", cs)
	}
}

func TestAdminAlterConfigs(t *testing.T) {
	ctx := adminCtx(t)
	b, cl := startKafka(t)
	adm := kadm.NewClient(cl)
	if _, err := b.CreateTopic(ctx, "alt", 1, fluxo.RetentionMs(1000), fluxo.RetentionBytes(5000)); err != nil {
		t.Fatal(err)
	}
	big := fluxo.Record{Value: make([]byte, 1000)}
	cfg := func() string { return b.Node().Topic("alt").GetConfig().String() }

	// Non-incremental: the set given replaces the whole config.
	res, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: s("200")}}, "alt")
	if err != nil || len(res) != 1 {
		t.Fatal(res, err)
	}
	wantErr(t, "alter state", res[0].Err, nil)
	c := b.Node().Topic("alt").GetConfig()
	if c.GetMaxMessageBytes() != 200 || c.RetentionMs != nil || c.RetentionBytes != nil {
		t.Fatalf("after replacing: %v", c)
	}
	if _, err := b.Produce(ctx, "alt", 0, big); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("produce above the lowered limit: %v", err)
	}

	// Incremental: SET one, DELETE another (back to the default).
	res, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: s("777")},
		{Op: kadm.DeleteConfig, Name: "max.message.bytes"},
	}, "alt")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "incremental", res[0].Err, nil)
	c = b.Node().Topic("alt").GetConfig()
	if c.GetRetentionMs() != 777 || c.MaxMessageBytes != nil {
		t.Fatalf("after incremental: %v", c)
	}
	if _, err := b.Produce(ctx, "alt", 0, big); err != nil {
		t.Fatalf("produce after reverting the limit: %v", err)
	}
	res, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: s("300")}}, "alt")
	if err != nil || res[0].Err != nil {
		t.Fatalf("incremental lower: %v %v", res, err)
	}
	if _, err := b.Produce(ctx, "alt", 0, big); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("produce above the incrementally lowered limit: %v", err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "alt")
	if err != nil || *configOf(t, rcs[0], "max.message.bytes").Value != "300" || configOf(t, rcs[0], "retention.bytes").Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("describe after altering: %+v %v", rcs, err)
	}

	before := cfg()
	for _, tc := range []struct {
		name string
		call func() (kadm.AlterConfigsResponses, error)
		want *kerr.Error
	}{
		{"append to a number", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "retention.ms", Value: s("1")}}, "alt")
		}, kerr.InvalidRequest},
		{"subtract from a number", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SubtractConfig, Name: "max.message.bytes", Value: s("1")}}, "alt")
		}, kerr.InvalidRequest},
		{"append compact", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: s("compact")}}, "alt")
		}, kerr.InvalidConfig},
		{"subtract delete", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: s("delete")}}, "alt")
		}, kerr.InvalidConfig},
		{"incremental unsupported key", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: s("1")}}, "alt")
		}, kerr.InvalidConfig},
		{"state unsupported key", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: s("1")}}, "alt")
		}, kerr.InvalidConfig},
		{"one bad op spoils the resource", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
				{Op: kadm.SetConfig, Name: "retention.ms", Value: s("5")},
				{Op: kadm.SetConfig, Name: "retention.bytes", Value: s("-9")},
			}, "alt")
		}, kerr.InvalidConfig},
		{"validate only", func() (kadm.AlterConfigsResponses, error) {
			return adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: s("5")}}, "alt")
		}, nil},
		{"validate only state", func() (kadm.AlterConfigsResponses, error) {
			return adm.ValidateAlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: s("5")}}, "alt")
		}, nil},
		{"validate only state invalid", func() (kadm.AlterConfigsResponses, error) {
			return adm.ValidateAlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: s("-5")}}, "alt")
		}, kerr.InvalidConfig},
		{"unknown topic", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: s("5")}}, "nope")
		}, kerr.UnknownTopicOrPartition},
		{"broker", func() (kadm.AlterConfigsResponses, error) {
			return adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "num.partitions", Value: s("5")}}, 0)
		}, kerr.InvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.call()
			if err != nil || len(res) != 1 {
				t.Fatal(res, err)
			}
			wantErr(t, tc.name, res[0].Err, tc.want)
			if tc.want != nil && res[0].ErrMessage == "" {
				t.Fatal("no error message")
			}
			if now := cfg(); now != before {
				t.Fatalf("config changed: %s -> %s", before, now)
			}
		})
	}

	// APPEND of a value already in the list is accepted and stored.
	res, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: s("delete")}}, "alt")
	if err != nil || res[0].Err != nil || b.Node().Topic("alt").GetConfig().GetCleanupPolicy() != "delete" {
		t.Fatalf("append delete: %v %v %v", res, err, cfg())
	}
}

func TestAdminDescribeCluster(t *testing.T) {
	ctx := adminCtx(t)
	b, cl := startKafka(t)
	req := kmsg.NewPtrDescribeClusterRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || resp.ClusterID != "fluxo" || resp.ControllerID != 0 || len(resp.Brokers) != 1 {
		t.Fatalf("describe cluster: %+v", resp)
	}
	br := resp.Brokers[0]
	if addr := b.KafkaAddr(); br.NodeID != 0 || !strings.HasSuffix(addr, ":"+itoa(br.Port)) || !strings.HasPrefix(addr, br.Host) {
		t.Fatalf("broker %+v, listening on %s", br, addr)
	}
	req.EndpointType = 2 // controllers
	resp, err = req.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != kerr.UnsupportedEndpointType.Code {
		t.Fatalf("controllers endpoint: %+v %v", resp, err)
	}

	// ApiVersions advertises the admin APIs.
	vs, err := kadm.NewClient(cl).ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		for key, max := range map[int16]int16{19: 7, 20: 6, 32: 4, 33: 2, 37: 3, 44: 1, 60: 2} {
			if got, ok := v.KeyMaxVersion(key); !ok || got != max {
				t.Fatalf("%s: max version %d %v, want %d", kmsg.NameForKey(key), got, ok, max)
			}
		}
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestAdminCreateTopicsTimeout: a creation whose partitions do not start
// within the request's timeout answers REQUEST_TIMED_OUT in about that time;
// the topic exists and its partitions start afterwards.
func TestAdminCreateTopicsTimeout(t *testing.T) {
	ctx := adminCtx(t)
	var slow atomic.Bool
	delay := func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			if slow.Load() && strings.HasSuffix(c.Self().Id, "/partitions") {
				time.Sleep(time.Second)
			}
			next(c, env)
		}
	}
	b := testkit.StartBroker(t, fluxo.WithKafkaListen("127.0.0.1:0", ""), fluxo.WithActorMiddleware(delay))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(200)
	slow.Store(true)
	start := time.Now()
	res, err := adm.CreateTopics(ctx, 1, 1, nil, "slow")
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Fatalf("answered after %v, timeout was 200ms", took)
	}
	wantErr(t, "create slow", res["slow"].Err, kerr.RequestTimedOut)
	slow.Store(false)
	if b.Node().Topic("slow") == nil {
		t.Fatal("the topic was not recorded")
	}
	for {
		if _, ok := b.Node().Partition("slow", 0); ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the partition never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
