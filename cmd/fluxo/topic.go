package main

// fluxo topic create|list|describe|delete|alter-config|add-partitions.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

var topicCommands = []subcommand{
	{"create", "create topics", (*cli).topicCreate},
	{"list", "list topics with their partition and replica counts", (*cli).topicList},
	{"describe", "show a topic's partitions, offsets and configs", (*cli).topicDescribe},
	{"delete", "delete topics and their data", (*cli).topicDelete},
	{"alter-config", "set or reset topic configs", (*cli).topicAlterConfig},
	{"add-partitions", "add partitions to topics", (*cli).topicAddPartitions},
}

func (c *cli) topicCreate(args []string) error {
	fs, cf := c.flagSet("topic create", "NAME... [flags]", `
Create topics. Without --partitions the broker's default partition count
applies (fluxo serve --default-partitions). Without --replicas the broker
picks the replication factor: min(3, live brokers), 1 on a single node;
more replicas than live brokers fails with INVALID_REPLICATION_FACTOR.`)
	partitions := fs.Int("partitions", -1, "partitions per topic (-1: the broker default)")
	replicas := fs.Int("replicas", -1, "replication factor (-1: the broker default)")
	fs.IntVar(replicas, "replication-factor", -1, "the same as --replicas")
	var configs multiFlag
	fs.Var(&configs, "config", "topic config `key=value` (repeatable), e.g. retention.ms=3600000")
	names, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usagef(fs, "topic create: name the topic to create")
	}
	if *partitions == 0 || *partitions < -1 {
		return usagef(fs, "--partitions %d: want 1 or more (or -1 for the broker default)", *partitions)
	}
	if *replicas == 0 || *replicas < -1 || *replicas > 32767 {
		return usagef(fs, "--replicas %d: want 1 or more (or -1 for the broker default)", *replicas)
	}
	cfg := map[string]*string{}
	for _, kv := range configs {
		k, v, ok := keyValue(kv)
		if !ok {
			return usagef(fs, "--config %q: want key=value", kv)
		}
		cfg[k] = &v
	}
	ctx, adm, done, err := cf.connectAdmin(fs)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.CreateTopics(ctx, int32(*partitions), int16(*replicas), cfg, names...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	var failed []error
	tw := c.table()
	header := false
	for _, name := range names {
		r, ok := resp[name]
		if !ok {
			failed = append(failed, fmt.Errorf("topic %q: no answer from the broker", name))
			continue
		}
		if r.Err != nil {
			failed = append(failed, fmt.Errorf("cannot create topic %q: %w", name, kafkaErr(r.Err, r.ErrMessage)))
			continue
		}
		if !header {
			row(tw, "TOPIC", "PARTITIONS", "REPLICAS", "STATUS")
			header = true
		}
		row(tw, name, r.NumPartitions, r.ReplicationFactor, "created")
	}
	tw.Flush()
	return errors.Join(failed...)
}

// topicSummary is a topic in `topic list --format json`.
type topicSummary struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Partitions int    `json:"partitions"`
	Replicas   int    `json:"replicas"`
}

func (c *cli) topicList(args []string) error {
	fs, cf := c.flagSet("topic list", "[flags]", "List the topics with their partition and replica counts.")
	format := outputFlag(fs)
	ctx, adm, done, err := c.listCommand(fs, cf, format, args)
	if err != nil {
		return err
	}
	defer done()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return explain(err, cf.timeout)
	}
	list := []topicSummary{}
	for _, t := range topics.Sorted() {
		if t.Err != nil {
			return topicErr(t.Topic, t.Err, "")
		}
		list = append(list, topicSummary{Name: t.Topic, ID: topicID(t.ID), Partitions: len(t.Partitions), Replicas: t.Partitions.NumReplicas()})
	}
	if *format == "json" {
		return c.printJSON(list)
	}
	tw := c.table()
	row(tw, "NAME", "PARTITIONS", "REPLICAS")
	for _, t := range list {
		row(tw, t.Name, t.Partitions, t.Replicas)
	}
	return tw.Flush()
}

// topicDescription is `topic describe --format json`.
type topicDescription struct {
	Name       string             `json:"name"`
	ID         string             `json:"id"`
	Partitions []partitionOffsets `json:"partitions"`
	Configs    []configEntry      `json:"configs"`
}

type partitionOffsets struct {
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	LogStartOffset int64   `json:"log_start_offset"`
	HighWatermark  int64   `json:"high_watermark"`
}

type configEntry struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

func (c *cli) topicDescribe(args []string) error {
	fs, cf := c.flagSet("topic describe", "NAME... [flags]", "Show topics' partitions (leader, replicas, in-sync replicas, offsets) and configs.")
	format := outputFlag(fs)
	names, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usagef(fs, "topic describe: name the topic to describe")
	}
	if err := checkOutput(fs, *format); err != nil {
		return err
	}
	ctx, adm, done, err := cf.connectAdmin(fs)
	if err != nil {
		return err
	}
	defer done()
	topics, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	for _, name := range names {
		if t, ok := topics[name]; !ok || t.Err != nil {
			return topicErr(name, t.Err, "")
		}
	}
	starts, err := adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	var out []topicDescription
	for _, name := range names {
		t := topics[name]
		d := topicDescription{Name: name, ID: topicID(t.ID), Partitions: []partitionOffsets{}, Configs: []configEntry{}}
		for _, p := range t.Partitions.Sorted() {
			po := partitionOffsets{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: p.Replicas, ISR: p.ISR, LogStartOffset: -1, HighWatermark: -1}
			if o, ok := starts.Lookup(name, p.Partition); ok && o.Err == nil {
				po.LogStartOffset = o.Offset
			}
			if o, ok := ends.Lookup(name, p.Partition); ok && o.Err == nil {
				po.HighWatermark = o.Offset
			}
			d.Partitions = append(d.Partitions, po)
		}
		if rc, err := configs.On(name, nil); err == nil && rc.Err == nil {
			for _, cfg := range rc.Configs {
				d.Configs = append(d.Configs, configEntry{Key: cfg.Key, Value: cfg.MaybeValue(), Source: cfg.Source.String()})
			}
			sort.Slice(d.Configs, func(i, j int) bool { return d.Configs[i].Key < d.Configs[j].Key })
		}
		out = append(out, d)
	}
	if *format == "json" {
		if len(out) == 1 {
			return c.printJSON(out[0])
		}
		return c.printJSON(out)
	}
	for i, d := range out {
		if i > 0 {
			fmt.Fprintln(c.out)
		}
		tw := c.table()
		row(tw, "NAME", d.Name)
		row(tw, "ID", d.ID)
		row(tw, "PARTITIONS", len(d.Partitions))
		tw.Flush()
		fmt.Fprintln(c.out)
		tw = c.table()
		row(tw, "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START-OFFSET", "HIGH-WATERMARK")
		for _, p := range d.Partitions {
			row(tw, p.Partition, p.Leader, p.LeaderEpoch, int32List(p.Replicas), int32List(p.ISR), offsetText(p.LogStartOffset), offsetText(p.HighWatermark))
		}
		tw.Flush()
		if len(d.Configs) > 0 {
			fmt.Fprintln(c.out)
			tw = c.table()
			row(tw, "CONFIG", "VALUE", "SOURCE")
			for _, cfg := range d.Configs {
				row(tw, cfg.Key, cfg.Value, cfg.Source)
			}
			tw.Flush()
		}
	}
	return nil
}

// topicID formats a topic id as Kafka's tools do (URL-safe base64).
func topicID(id kadm.TopicID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// offsetText shows -1 (unknown) as "-".
func offsetText(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

func (c *cli) topicDelete(args []string) error {
	fs, cf := c.flagSet("topic delete", "NAME... [flags]", "Delete topics and all their records.")
	names, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usagef(fs, "topic delete: name the topic to delete")
	}
	ctx, adm, done, err := cf.connectAdmin(fs)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.DeleteTopics(ctx, names...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	var failed []error
	for _, name := range names {
		r, ok := resp[name]
		switch {
		case !ok:
			failed = append(failed, fmt.Errorf("topic %q: no answer from the broker", name))
		case r.Err != nil:
			failed = append(failed, topicErr(name, r.Err, r.ErrMessage))
		default:
			fmt.Fprintf(c.out, "deleted topic %s\n", name)
		}
	}
	return errors.Join(failed...)
}

func (c *cli) topicAlterConfig(args []string) error {
	fs, cf := c.flagSet("topic alter-config", "NAME... --set KEY=VALUE... --delete KEY... [flags]", `
Change topic configs incrementally: --set sets a key, --delete reverts it to
the broker default; keys not named keep their values. Fluxo topics have
cleanup.policy, max.message.bytes, retention.bytes and retention.ms.`)
	var sets, dels multiFlag
	fs.Var(&sets, "set", "set config `key=value` (repeatable)")
	fs.Var(&dels, "delete", "revert config `key` to the broker default (repeatable)")
	names, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usagef(fs, "topic alter-config: name the topic")
	}
	if len(sets)+len(dels) == 0 {
		return usagef(fs, "topic alter-config: nothing to change: give --set key=value or --delete key")
	}
	var alter []kadm.AlterConfig
	for _, kv := range sets {
		k, v, ok := keyValue(kv)
		if !ok {
			return usagef(fs, "--set %q: want key=value", kv)
		}
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	for _, k := range dels {
		alter = append(alter, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	ctx, adm, done, err := cf.connectAdmin(fs)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.AlterTopicConfigs(ctx, alter, names...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	var failed []error
	for _, name := range names {
		r, err := resp.On(name, nil)
		switch {
		case err != nil:
			failed = append(failed, fmt.Errorf("topic %q: no answer from the broker", name))
		case r.Err != nil:
			failed = append(failed, topicErr(name, r.Err, r.ErrMessage))
		default:
			for _, kv := range sets {
				fmt.Fprintf(c.out, "%s: set %s\n", name, kv)
			}
			for _, k := range dels {
				fmt.Fprintf(c.out, "%s: reverted %s to the broker default\n", name, k)
			}
		}
	}
	return errors.Join(failed...)
}

func (c *cli) topicAddPartitions(args []string) error {
	fs, cf := c.flagSet("topic add-partitions", "NAME... --num N [flags]", "Add N partitions to each topic. Partitions cannot be removed.")
	num := fs.Int("num", 0, "how many partitions to add")
	names, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usagef(fs, "topic add-partitions: name the topic")
	}
	if *num < 1 {
		return usagef(fs, "--num %d: want 1 or more partitions to add", *num)
	}
	ctx, adm, done, err := cf.connectAdmin(fs)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.CreatePartitions(ctx, *num, names...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	topics, _ := adm.ListTopics(ctx, names...)
	var failed []error
	for _, name := range names {
		r, ok := resp[name]
		switch {
		case !ok:
			failed = append(failed, topicErr(name, kerr.UnknownTopicOrPartition, ""))
		case r.Err != nil:
			failed = append(failed, topicErr(name, r.Err, r.ErrMessage))
		default:
			if t, ok := topics[name]; ok && t.Err == nil {
				fmt.Fprintf(c.out, "%s: added %d partitions, now %d\n", name, *num, len(t.Partitions))
			} else {
				fmt.Fprintf(c.out, "%s: added %d partitions\n", name, *num)
			}
		}
	}
	return errors.Join(failed...)
}
