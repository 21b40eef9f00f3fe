package main

// fluxo group list|describe|delete|seek.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

var groupCommands = []subcommand{
	{"list", "list consumer groups with their state and member count", (*cli).groupList},
	{"describe", "show members, committed offsets and lag per partition", (*cli).groupDescribe},
	{"delete", "delete groups without members, with their committed offsets", (*cli).groupDelete},
	{"seek", "move a group's committed offsets (dry run unless --execute)", (*cli).groupSeek},
}

func unknownGroup(g string) error {
	return fmt.Errorf("unknown group %q ('fluxo group list' shows the groups)", g)
}

// groupSummary is a group in `group list --format json`.
type groupSummary struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Members      int    `json:"members"`
}

func (c *cli) groupList(args []string) error {
	fs, cf := c.flagSet("group list", "[flags]", "List the consumer groups with their state and member count.")
	format := outputFlag(fs)
	ctx, adm, done, err := c.listCommand(fs, cf, format, args)
	if err != nil {
		return err
	}
	defer done()
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return explain(err, cf.timeout)
	}
	out := []groupSummary{}
	var described kadm.DescribedGroups
	if len(listed) > 0 {
		if described, err = adm.DescribeGroups(ctx, listed.Groups()...); err != nil {
			return explain(err, cf.timeout)
		}
	}
	for _, g := range listed.Sorted() {
		s := groupSummary{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType}
		if d, ok := described[g.Group]; ok && d.Err == nil {
			s.Members = len(d.Members)
			s.State = d.State
		}
		out = append(out, s)
	}
	if *format == "json" {
		return c.printJSON(out)
	}
	tw := c.table()
	row(tw, "GROUP", "STATE", "MEMBERS", "PROTOCOL-TYPE")
	for _, g := range out {
		row(tw, g.Group, g.State, g.Members, dash(g.ProtocolType))
	}
	return tw.Flush()
}

// groupDescription is `group describe --format json`.
type groupDescription struct {
	Group       string           `json:"group"`
	Coordinator int32            `json:"coordinator"`
	State       string           `json:"state"`
	Balancer    string           `json:"balancer"`
	Members     []groupMember    `json:"members"`
	Partitions  []groupPartition `json:"partitions"`
	TotalLag    int64            `json:"total_lag"`
}

type groupMember struct {
	MemberID string `json:"member_id"`
	ClientID string `json:"client_id"`
	Host     string `json:"host"`
}

type groupPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// CurrentOffset is the committed offset, -1 if none.
	CurrentOffset int64  `json:"current_offset"`
	LogEndOffset  int64  `json:"log_end_offset"`
	Lag           int64  `json:"lag"`
	MemberID      string `json:"member_id,omitempty"`
	ClientID      string `json:"client_id,omitempty"`
	Host          string `json:"host,omitempty"`
	Error         string `json:"error,omitempty"`
}

func (c *cli) groupDescribe(args []string) error {
	fs, cf := c.flagSet("group describe", "GROUP... [flags]", `
Show a consumer group: its state and members, and for each partition it
consumes or has committed offsets for, the committed offset
(CURRENT-OFFSET), the partition's end (LOG-END-OFFSET), the LAG between them
and the member it is assigned to; then the group's total lag.`)
	format := outputFlag(fs)
	groups, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return usagef(fs, "group describe: name the group")
	}
	if err := checkOutput(fs, *format); err != nil {
		return err
	}
	ctx, adm, done, err := cf.connectAdmin(fs)
	if err != nil {
		return err
	}
	defer done()
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	var out []groupDescription
	for _, g := range groups {
		l, ok := lags[g]
		if !ok {
			return fmt.Errorf("group %q: no answer from the broker", g)
		}
		if err := l.Error(); err != nil {
			return fmt.Errorf("group %q: %w", g, explain(kafkaErr(err, ""), cf.timeout))
		}
		if l.State == "Dead" && len(l.Lag) == 0 {
			return unknownGroup(g)
		}
		out = append(out, describeLag(l))
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
		c.printGroup(d)
	}
	return nil
}

func describeLag(l kadm.DescribedGroupLag) groupDescription {
	d := groupDescription{Group: l.Group, Coordinator: l.Coordinator.NodeID, State: l.State, Balancer: l.Protocol,
		Members: []groupMember{}, Partitions: []groupPartition{}, TotalLag: l.Lag.Total()}
	for _, m := range l.Members {
		d.Members = append(d.Members, groupMember{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost})
	}
	for _, ml := range l.Lag.Sorted() {
		p := groupPartition{Topic: ml.Topic, Partition: ml.Partition, CurrentOffset: ml.Commit.At, LogEndOffset: ml.End.Offset, Lag: ml.Lag}
		if ml.End.Err != nil {
			p.LogEndOffset = -1
		}
		if ml.Member != nil {
			p.MemberID, p.ClientID, p.Host = ml.Member.MemberID, ml.Member.ClientID, ml.Member.ClientHost
		}
		if ml.Err != nil {
			p.Error = kafkaErr(ml.Err, "").Error()
		}
		d.Partitions = append(d.Partitions, p)
	}
	return d
}

func (c *cli) printGroup(d groupDescription) {
	tw := c.table()
	row(tw, "GROUP", d.Group)
	row(tw, "COORDINATOR", d.Coordinator)
	row(tw, "STATE", d.State)
	row(tw, "BALANCER", dash(d.Balancer))
	row(tw, "MEMBERS", len(d.Members))
	tw.Flush()
	fmt.Fprintln(c.out)
	tw = c.table()
	row(tw, "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID", "CLIENT-ID", "HOST")
	var errs []string
	for _, p := range d.Partitions {
		lag := offsetText(p.Lag)
		if p.Error != "" {
			errs = append(errs, fmt.Sprintf("%s/%d: %s", p.Topic, p.Partition, p.Error))
			lag = "?"
		}
		row(tw, p.Topic, p.Partition, offsetText(p.CurrentOffset), offsetText(p.LogEndOffset), lag, dash(p.MemberID), dash(p.ClientID), dash(p.Host))
	}
	tw.Flush()
	fmt.Fprintf(c.out, "\nTOTAL LAG  %d\n", d.TotalLag)
	for _, e := range errs {
		fmt.Fprintf(c.err, "fluxo: warning: %s\n", e)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) groupDelete(args []string) error {
	fs, cf := c.flagSet("group delete", "GROUP... [flags]", "Delete consumer groups and their committed offsets. A group with active members is refused.")
	groups, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return usagef(fs, "group delete: name the group")
	}
	ctx, adm, done, err := cf.connectAdmin(fs)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.DeleteGroups(ctx, groups...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	var failed []error
	for _, g := range groups {
		r, ok := resp[g]
		switch {
		case !ok:
			failed = append(failed, fmt.Errorf("group %q: no answer from the broker", g))
		case errors.Is(r.Err, kerr.GroupIDNotFound):
			failed = append(failed, unknownGroup(g))
		case errors.Is(r.Err, kerr.NonEmptyGroup):
			failed = append(failed, fmt.Errorf("group %q has active members: stop its consumers first", g))
		case r.Err != nil:
			failed = append(failed, fmt.Errorf("group %q: %w", g, kafkaErr(r.Err, r.ErrMessage)))
		default:
			fmt.Fprintf(c.out, "deleted group %s\n", g)
		}
	}
	return errors.Join(failed...)
}

func (c *cli) groupSeek(args []string) error {
	fs, cf := c.flagSet("group seek", "GROUP --to WHERE [--topic T]... [--execute] [flags]", `
Move a consumer group's committed offsets. Without --execute this is a dry
run: it prints the plan (CURRENT-OFFSET and NEW-OFFSET per partition) and
changes nothing. The group must have no active members (stop its consumers
first); Kafka refuses too.

--to: start (earliest), end (latest), N (an offset, clamped to the log), -N
(N before the end), or timestamp:MS (the first record at or after a Unix
time in milliseconds, or timestamp:2006-01-02T15:04:05Z).

Every partition of the topics the group has committed offsets for moves (as
'fluxo group describe' lists them), or of the topics given with --topic.`)
	to := fs.String("to", "", "where to move the offsets: start, end, N, -N or timestamp:MS")
	var topicsFlag multiFlag
	fs.Var(&topicsFlag, "topic", "seek only this topic, all its partitions (repeatable)")
	execute := fs.Bool("execute", false, "commit the new offsets (default: dry run)")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(fs, "group seek: name exactly one group")
	}
	group := pos[0]
	if *to == "" {
		return usagef(fs, "group seek: say where with --to start|end|N|-N|timestamp:MS")
	}
	spec, err := parseOffsetSpec(*to)
	if err != nil {
		return usagef(fs, "--to %v", err)
	}
	ctx, adm, done, err := cf.connectAdmin(fs)
	if err != nil {
		return err
	}
	defer done()

	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return explain(err, cf.timeout)
	}
	d := described[group]
	if d.Err != nil {
		return fmt.Errorf("group %q: %w", group, kafkaErr(d.Err, d.ErrMessage))
	}
	if len(d.Members) > 0 {
		return fmt.Errorf("group %q has %s (state %s): stop its consumers before seeking", group, plural(len(d.Members), "active member"), d.State)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("group %q: %w", group, explain(kafkaErr(err, ""), cf.timeout))
	}
	topics := []string(topicsFlag)
	if len(topics) == 0 {
		topics = committed.Partitions().Topics()
		if len(topics) == 0 {
			if d.State == "Dead" {
				return unknownGroup(group)
			}
			return fmt.Errorf("group %q has no committed offsets: name the topics to seek with --topic", group)
		}
	} else {
		details, err := adm.ListTopics(ctx, topics...)
		if err != nil {
			return explain(err, cf.timeout)
		}
		for _, t := range topics {
			if td, ok := details[t]; !ok || td.Err != nil {
				return topicErr(t, td.Err, "")
			}
		}
	}
	bounds, err := listBounds(ctx, adm, topics...)
	if err != nil {
		return explain(err, cf.timeout)
	}
	target, err := spec.resolve(ctx, adm, bounds)
	if err != nil {
		return explain(err, cf.timeout)
	}

	tw := c.table()
	row(tw, "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET")
	var offsets kadm.Offsets
	for _, tp := range sortedTPs(target) {
		cur := int64(-1)
		if o, ok := committed.Lookup(tp.topic, tp.partition); ok && o.Err == nil {
			cur = o.At
		}
		row(tw, tp.topic, tp.partition, offsetText(cur), target[tp])
		offsets.Add(kadm.Offset{Topic: tp.topic, Partition: tp.partition, At: target[tp], LeaderEpoch: -1})
	}
	tw.Flush()
	if !*execute {
		fmt.Fprintf(c.err, "dry run: nothing changed; run again with --execute to commit these offsets\n")
		return nil
	}
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err != nil {
		return explain(err, cf.timeout)
	}
	var failed []string
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			failed = append(failed, fmt.Sprintf("%s/%d: %v", o.Topic, o.Partition, kafkaErr(o.Err, "")))
		}
	})
	if len(failed) > 0 {
		return fmt.Errorf("group %q: some offsets were not committed: %s", group, strings.Join(failed, "; "))
	}
	fmt.Fprintf(c.out, "committed %s for group %s\n", plural(len(target), "offset"), group)
	return nil
}
