package gateway

// Topic and broker configs as the admin APIs (CreateTopics, DescribeConfigs,
// AlterConfigs, IncrementalAlterConfigs) see them.
//
// A topic has exactly the settings Fluxo implements: retention.ms,
// retention.bytes, max.message.bytes and cleanup.policy (only "delete").
// Every other key, including well-known Kafka keys such as segment.bytes or
// min.insync.replicas, is refused with INVALID_CONFIG naming the key, in
// every API alike: accepting a setting we would silently ignore would make
// DescribeConfigs lie or forget it. Unset keys take the broker defaults,
// reported with source DEFAULT_CONFIG (Fluxo does not distinguish a default
// set by the operator at startup from a built-in one); keys set on the topic
// report DYNAMIC_TOPIC_CONFIG. Broker configs are read-only.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// topicConfigKey is one topic setting Fluxo implements.
type topicConfigKey struct {
	name       string
	brokerName string // the broker default's key, its synonym
	typ        kmsg.ConfigType
	doc        string
	// get returns the value set on the topic, if any.
	get func(c *fluxopb.TopicConfig) (string, bool)
	// def is the broker default.
	def func(d actors.TopicDefaults) string
	// set parses v into c.
	set func(c *fluxopb.TopicConfig, v string) error
	// clear reverts to the broker default.
	clear func(c *fluxopb.TopicConfig)
}

func (k *topicConfigKey) isList() bool { return k.typ == kmsg.ConfigTypeList }

func parseInt64(name, v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", name, v)
	}
	return n, nil
}

// topicConfigKeys are sorted by name, the order DescribeConfigs reports.
var topicConfigKeys = []*topicConfigKey{
	{
		name: "cleanup.policy", brokerName: "log.cleanup.policy", typ: kmsg.ConfigTypeList,
		doc: `What happens to old segments: "delete" removes them by retention.ms and retention.bytes. Fluxo does not implement "compact".`,
		get: func(c *fluxopb.TopicConfig) (string, bool) { return c.GetCleanupPolicy(), c.CleanupPolicy != nil },
		def: func(d actors.TopicDefaults) string { return d.CleanupPolicy },
		set: func(c *fluxopb.TopicConfig, v string) error {
			var items []string
			for _, it := range strings.Split(v, ",") {
				if it = strings.TrimSpace(it); it != "" && !contains(items, it) {
					items = append(items, it)
				}
			}
			if len(items) == 0 {
				return errors.New(`cleanup.policy: empty; only "delete" is supported`)
			}
			joined := strings.Join(items, ",")
			c.CleanupPolicy = &joined
			return nil
		},
		clear: func(c *fluxopb.TopicConfig) { c.CleanupPolicy = nil },
	},
	{
		name: "max.message.bytes", brokerName: "message.max.bytes", typ: kmsg.ConfigTypeInt,
		doc: "The largest record batch size accepted, in bytes.",
		get: func(c *fluxopb.TopicConfig) (string, bool) {
			return strconv.FormatInt(int64(c.GetMaxMessageBytes()), 10), c.MaxMessageBytes != nil
		},
		def: func(d actors.TopicDefaults) string { return strconv.FormatInt(int64(d.MaxMessageBytes), 10) },
		set: func(c *fluxopb.TopicConfig, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return fmt.Errorf("max.message.bytes: %q is not a 32-bit number", v)
			}
			n32 := int32(n)
			c.MaxMessageBytes = &n32
			return nil
		},
		clear: func(c *fluxopb.TopicConfig) { c.MaxMessageBytes = nil },
	},
	{
		name: "min.insync.replicas", brokerName: "min.insync.replicas", typ: kmsg.ConfigTypeInt,
		doc: "The in-sync replicas an acks=all produce needs; fewer is NOT_ENOUGH_REPLICAS, before anything is appended. The broker default is 2, and 1 on topics with fewer than 3 replicas.",
		get: func(c *fluxopb.TopicConfig) (string, bool) {
			return strconv.FormatInt(int64(c.GetMinInsyncReplicas()), 10), c.MinInsyncReplicas != nil
		},
		def: func(d actors.TopicDefaults) string { return strconv.FormatInt(int64(d.MinInsyncReplicas), 10) },
		set: func(c *fluxopb.TopicConfig, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return fmt.Errorf("min.insync.replicas: %q is not a 32-bit number", v)
			}
			n32 := int32(n)
			c.MinInsyncReplicas = &n32
			return nil
		},
		clear: func(c *fluxopb.TopicConfig) { c.MinInsyncReplicas = nil },
	},
	{
		name: "retention.bytes", brokerName: "log.retention.bytes", typ: kmsg.ConfigTypeLong,
		doc: "The size a partition may grow to before its oldest segments are deleted; -1 for no limit.",
		get: func(c *fluxopb.TopicConfig) (string, bool) {
			return strconv.FormatInt(c.GetRetentionBytes(), 10), c.RetentionBytes != nil
		},
		def: func(d actors.TopicDefaults) string { return strconv.FormatInt(d.RetentionBytes, 10) },
		set: func(c *fluxopb.TopicConfig, v string) error {
			n, err := parseInt64("retention.bytes", v)
			c.RetentionBytes = &n
			return err
		},
		clear: func(c *fluxopb.TopicConfig) { c.RetentionBytes = nil },
	},
	{
		name: "retention.ms", brokerName: "log.retention.ms", typ: kmsg.ConfigTypeLong,
		doc: "How long records are kept before their segment is deleted, in milliseconds; -1 keeps them forever.",
		get: func(c *fluxopb.TopicConfig) (string, bool) {
			return strconv.FormatInt(c.GetRetentionMs(), 10), c.RetentionMs != nil
		},
		def: func(d actors.TopicDefaults) string { return strconv.FormatInt(d.RetentionMs, 10) },
		set: func(c *fluxopb.TopicConfig, v string) error {
			n, err := parseInt64("retention.ms", v)
			c.RetentionMs = &n
			return err
		},
		clear: func(c *fluxopb.TopicConfig) { c.RetentionMs = nil },
	},
	{
		name: "unclean.leader.election.enable", brokerName: "unclean.leader.election.enable", typ: kmsg.ConfigTypeBoolean,
		doc: "Elect a replica that is not in sync when no in-sync one is alive: the partition comes back sooner but acknowledged records may be lost.",
		get: func(c *fluxopb.TopicConfig) (string, bool) {
			return strconv.FormatBool(c.GetUncleanLeaderElection()), c.UncleanLeaderElection != nil
		},
		def: func(actors.TopicDefaults) string { return "false" },
		set: func(c *fluxopb.TopicConfig, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("unclean.leader.election.enable: %q is not true or false", v)
			}
			c.UncleanLeaderElection = &b
			return nil
		},
		clear: func(c *fluxopb.TopicConfig) { c.UncleanLeaderElection = nil },
	},
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func lookupTopicConfig(name string) *topicConfigKey {
	for _, k := range topicConfigKeys {
		if k.name == name {
			return k
		}
	}
	return nil
}

// configErr is a refusal with INVALID_CONFIG.
func configErr(format string, args ...any) *actors.TopicError {
	return &actors.TopicError{Err: kerr.InvalidConfig, Message: fmt.Sprintf(format, args...)}
}

// setTopicConfig sets one key from its Kafka string value. Ranges are
// checked by the node when the whole config is applied.
func setTopicConfig(c *fluxopb.TopicConfig, name string, value *string) *actors.TopicError {
	k := lookupTopicConfig(name)
	if k == nil {
		return configErr("config %q is not supported by Fluxo (supported: cleanup.policy, max.message.bytes, retention.bytes, retention.ms)", name)
	}
	if value == nil {
		return configErr("config %q: null value", name)
	}
	if err := k.set(c, *value); err != nil {
		return configErr("%v", err)
	}
	return nil
}

// topicConfigFromKafka builds a topic config from name/value pairs; a key
// given twice is refused.
func topicConfigFromKafka(n int, pair func(i int) (string, *string)) (*fluxopb.TopicConfig, *actors.TopicError) {
	c := &fluxopb.TopicConfig{}
	seen := make(map[string]bool, n)
	for i := range n {
		name, value := pair(i)
		if seen[name] {
			return nil, configErr("config %q is given more than once", name)
		}
		seen[name] = true
		if err := setTopicConfig(c, name, value); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// topicConfigValue is one key's effective value and whether the topic sets it.
func topicConfigValue(k *topicConfigKey, c *fluxopb.TopicConfig, d actors.TopicDefaults) (string, bool) {
	if c != nil {
		if v, ok := k.get(c); ok {
			return v, true
		}
	}
	return k.def(d), false
}

// brokerConfig is one read-only broker setting.
type brokerConfig struct {
	name  string
	value string
	typ   kmsg.ConfigType
	doc   string
}

func (s *Server) brokerConfigs() []brokerConfig {
	d := s.node.TopicDefaults()
	return []brokerConfig{
		{"auto.create.topics.enable", strconv.FormatBool(!s.cfg.DisableAutoCreate), kmsg.ConfigTypeBoolean, "Whether Metadata and Produce create unknown topics."},
		{"log.cleanup.policy", d.CleanupPolicy, kmsg.ConfigTypeList, "The default cleanup.policy of topics."},
		{"log.retention.bytes", strconv.FormatInt(d.RetentionBytes, 10), kmsg.ConfigTypeLong, "The default retention.bytes of topics."},
		{"log.retention.ms", strconv.FormatInt(d.RetentionMs, 10), kmsg.ConfigTypeLong, "The default retention.ms of topics."},
		{"message.max.bytes", strconv.FormatInt(int64(d.MaxMessageBytes), 10), kmsg.ConfigTypeInt, "The default max.message.bytes of topics."},
		{"num.partitions", strconv.FormatInt(int64(d.Partitions), 10), kmsg.ConfigTypeInt, "The partition count of topics created without one."},
	}
}

// isThisBroker reports whether a broker resource name designates this node
// ("" means the cluster-wide default, which is this node's too).
func (s *Server) isThisBroker(name string) bool {
	return name == "" || name == strconv.FormatInt(int64(s.cfg.NodeID), 10)
}

// adminTimeout bounds an admin request by its timeout_ms; zero or negative
// takes 30 s.
func adminTimeout(ctx context.Context, timeoutMs int32) (context.Context, context.CancelFunc) {
	d := 30 * time.Second
	if timeoutMs > 0 {
		d = time.Duration(timeoutMs) * time.Millisecond
	}
	return context.WithTimeout(ctx, d)
}

// topicErrCode maps a node error to a Kafka code and message: refusals as
// they are, a passed deadline to REQUEST_TIMED_OUT, anything else to
// UNKNOWN_SERVER_ERROR (logged).
func (s *Server) topicErrCode(ctx context.Context, op string, err error) (int16, *string) {
	var te *actors.TopicError
	msg := err.Error()
	switch {
	case errors.As(err, &te):
		msg = te.Message
		return te.Err.Code, &msg
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code, &msg
	}
	s.logger.Warn("gateway: "+op, "err", err)
	return kerr.UnknownServerError.Code, &msg
}

// codeMsg wraps a Kafka error and a message for a response.
func codeMsg(e *kerr.Error, format string, args ...any) (int16, *string) {
	m := fmt.Sprintf(format, args...)
	return e.Code, &m
}

// resourceKey names a config resource in an alter request.
type resourceKey struct {
	t kmsg.ConfigResourceType
	n string
}

// duplicateResources reports, per entry of a request's n resources, whether
// the same resource is listed more than once (Kafka refuses all copies).
func duplicateResources(n int, key func(i int) resourceKey) []bool {
	count := make(map[resourceKey]int, n)
	for i := 0; i < n; i++ {
		count[key(i)]++
	}
	dup := make([]bool, n)
	for i := range dup {
		dup[i] = count[key(i)] > 1
	}
	return dup
}

// alterable is the check both alter APIs make before touching a resource:
// listed once, and of a kind that can be altered.
func (s *Server) alterable(dup bool, typ kmsg.ConfigResourceType, name string) (int16, *string, bool) {
	if dup {
		code, msg := codeMsg(kerr.InvalidRequest, "resource %q is listed more than once", name)
		return code, msg, false
	}
	return s.alterableResource(typ, name)
}
