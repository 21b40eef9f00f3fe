package history

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Family is the name of one class of failure, as in docs/testing.md.
type Family string

// The families Check reports, in report order.
const (
	Lost                Family = "lost"
	InconsistentOffsets Family = "inconsistent-offsets"
	Duplicate           Family = "duplicate"
	AbortedRead         Family = "aborted-read"
	NonmonotonicSend    Family = "nonmonotonic-send"
	PollSkip            Family = "poll-skip"
	NonmonotonicPoll    Family = "nonmonotonic-poll"
	DoubleAssignment    Family = "double-assignment"
	LostCommit          Family = "lost-commit"
)

// Families lists every family Check reports, in report order.
var Families = []Family{
	Lost, InconsistentOffsets, Duplicate, AbortedRead, NonmonotonicSend,
	PollSkip, NonmonotonicPoll, DoubleAssignment, LostCommit,
}

// MaxFindings bounds the findings kept per family; counts are not bounded.
const MaxFindings = 10

// LinearizabilityTimeout bounds porcupine's search per commit register. A
// search that times out is counted in Report.Unknown, not as a failure.
var LinearizabilityTimeout = 10 * time.Second

// Finding is one offending item: what is wrong and the operations involved.
type Finding struct {
	Family Family
	Msg    string
	Ops    []Op
}

func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", f.Family, f.Msg)
	for _, o := range f.Ops {
		fmt.Fprintf(&b, "\n    %s", o)
	}
	return b.String()
}

// Report is the outcome of Check.
type Report struct {
	// Counts per family; every family is present.
	Counts map[Family]int
	// Findings per family, at most MaxFindings each.
	Findings map[Family][]Finding
	// Unknown counts commit registers whose linearizability check timed out.
	Unknown int
}

func newReport() Report {
	r := Report{Counts: map[Family]int{}, Findings: map[Family][]Finding{}}
	for _, f := range Families {
		r.Counts[f] = 0
	}
	return r
}

func (r *Report) add(f Family, msg string, ops ...Op) {
	r.Counts[f]++
	if len(r.Findings[f]) < MaxFindings {
		r.Findings[f] = append(r.Findings[f], Finding{Family: f, Msg: msg, Ops: ops})
	}
}

// Failures is the total count over all families.
func (r Report) Failures() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// String is a table of family and count, followed by the findings kept.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %s\n", "family", "count")
	for _, f := range Families {
		fmt.Fprintf(&b, "%-22s %d\n", f, r.Counts[f])
	}
	if r.Unknown > 0 {
		fmt.Fprintf(&b, "%-22s %d (linearizability check timed out)\n", "unknown", r.Unknown)
	}
	for _, f := range Families {
		for _, fd := range r.Findings[f] {
			fmt.Fprintf(&b, "%s\n", fd)
		}
		if n := r.Counts[f] - len(r.Findings[f]); n > 0 {
			fmt.Fprintf(&b, "%s: ... and %d more\n", f, n)
		}
	}
	return b.String()
}

// Check checks every family over the operations and drains recorded in h.
// Call it after the final drain, when no operation is in flight any more
// (pending operations count as info).
func Check(h *History) Report {
	return check(h.Ops(), h.Drains())
}

type location struct {
	tp     TopicPartition
	offset int64
}

func check(ops []Op, drains map[TopicPartition][]Record) Report {
	r := newReport()

	// The drain as offset -> value per partition, and its sorted offsets.
	drained := map[TopicPartition]map[int64]string{}
	drainedOffsets := map[TopicPartition][]int64{}
	for tp, recs := range drains {
		m := map[int64]string{}
		for _, rec := range recs {
			if _, ok := m[rec.Offset]; !ok {
				drainedOffsets[tp] = append(drainedOffsets[tp], rec.Offset)
			}
			m[rec.Offset] = rec.Value
		}
		drained[tp] = m
		sort.Slice(drainedOffsets[tp], func(i, j int) bool { return drainedOffsets[tp][i] < drainedOffsets[tp][j] })
	}
	drainOp := func(tp TopicPartition, rec Record) Op {
		return Op{ID: -1, Process: -1, Kind: Poll, Type: Ok, Topic: tp.Topic, Partition: tp.Partition, Epoch: -1, Records: []Record{rec}}
	}

	checkLost(&r, ops, drained)
	checkObservations(&r, ops, drains, drainOp)
	checkAbortedReads(&r, ops, drains, drainOp)
	checkNonmonotonicSends(&r, ops)
	checkPolls(&r, ops, drainedOffsets)
	checkAssignments(&r, ops)
	checkCommits(&r, ops)
	return r
}

// lost: an ok send absent from the drain at its acknowledged offset.
func checkLost(r *Report, ops []Op, drained map[TopicPartition]map[int64]string) {
	for _, o := range ops {
		if o.Kind != Send || o.Type != Ok {
			continue
		}
		v, ok := drained[o.TP()][o.Offset]
		switch {
		case !ok:
			r.add(Lost, fmt.Sprintf("%s offset %d acknowledged but not in the drain", o.TP(), o.Offset), o)
		case v != o.Value:
			r.add(Lost, fmt.Sprintf("%s offset %d acknowledged for %q but drained as %q", o.TP(), o.Offset, o.Value, v), o)
		}
	}
}

// inconsistent-offsets and duplicate, over ok send acknowledgements, ok
// polls and the drain.
func checkObservations(r *Report, ops []Op, drains map[TopicPartition][]Record, drainOp func(TopicPartition, Record) Op) {
	type obs struct {
		value string
		op    Op
	}
	byOffset := map[location][]obs{}
	byValue := map[string]map[location]Op{}
	var offsetOrder []location
	var valueOrder []string
	see := func(loc location, value string, op Op) {
		if _, ok := byOffset[loc]; !ok {
			offsetOrder = append(offsetOrder, loc)
		}
		byOffset[loc] = append(byOffset[loc], obs{value, op})
		if _, ok := byValue[value]; !ok {
			byValue[value] = map[location]Op{}
			valueOrder = append(valueOrder, value)
		}
		if _, ok := byValue[value][loc]; !ok {
			byValue[value][loc] = op
		}
	}
	for _, o := range ops {
		if o.Type != Ok {
			continue
		}
		switch o.Kind {
		case Send:
			see(location{o.TP(), o.Offset}, o.Value, o)
		case Poll:
			for _, rec := range o.Records {
				see(location{o.TP(), rec.Offset}, rec.Value, o)
			}
		}
	}
	tps := sortedTPs(drains)
	for _, tp := range tps {
		for _, rec := range drains[tp] {
			see(location{tp, rec.Offset}, rec.Value, drainOp(tp, rec))
		}
	}

	for _, loc := range offsetOrder {
		seen := byOffset[loc]
		var values []string
		var offending []Op
		for _, s := range seen {
			if !contains(values, s.value) {
				values = append(values, s.value)
				offending = append(offending, s.op)
			}
		}
		if len(values) > 1 {
			r.add(InconsistentOffsets, fmt.Sprintf("%s offset %d holds %q", loc.tp, loc.offset, values), offending...)
		}
	}
	for _, v := range valueOrder {
		locs := byValue[v]
		if len(locs) < 2 {
			continue
		}
		var keys []location
		for l := range locs {
			keys = append(keys, l)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].tp != keys[j].tp {
				return keys[i].tp.String() < keys[j].tp.String()
			}
			return keys[i].offset < keys[j].offset
		})
		var where []string
		var offending []Op
		for _, l := range keys {
			where = append(where, fmt.Sprintf("%s@%d", l.tp, l.offset))
			offending = append(offending, locs[l])
		}
		r.add(Duplicate, fmt.Sprintf("value %q at %s", v, strings.Join(where, ", ")), offending...)
	}
}

// aborted-read: a value whose send failed definitely, read by a poll or
// the drain.
func checkAbortedReads(r *Report, ops []Op, drains map[TopicPartition][]Record, drainOp func(TopicPartition, Record) Op) {
	failed := map[string]Op{}
	for _, o := range ops {
		if o.Kind == Send && o.Type == Fail {
			failed[o.Value] = o
		}
	}
	if len(failed) == 0 {
		return
	}
	for _, o := range ops {
		if o.Kind != Poll || o.Type != Ok {
			continue
		}
		for _, rec := range o.Records {
			if s, ok := failed[rec.Value]; ok {
				r.add(AbortedRead, fmt.Sprintf("poll read %q at %s offset %d, whose send failed", rec.Value, o.TP(), rec.Offset), s, o)
			}
		}
	}
	for _, tp := range sortedTPs(drains) {
		for _, rec := range drains[tp] {
			if s, ok := failed[rec.Value]; ok {
				r.add(AbortedRead, fmt.Sprintf("drain read %q at %s offset %d, whose send failed", rec.Value, tp, rec.Offset), s, drainOp(tp, rec))
			}
		}
	}
}

// nonmonotonic-send: per partition, send A completed ok before send B was
// invoked (strictly), yet off(A) >= off(B).
func checkNonmonotonicSends(r *Report, ops []Op) {
	byTP := map[TopicPartition][]Op{}
	for _, o := range ops {
		if o.Kind == Send && o.Type == Ok {
			byTP[o.TP()] = append(byTP[o.TP()], o)
		}
	}
	for _, tp := range sortedTPs(byTP) {
		sends := byTP[tp]
		byInvoke := append([]Op(nil), sends...)
		sort.SliceStable(byInvoke, func(i, j int) bool { return byInvoke[i].Invoked < byInvoke[j].Invoked })
		byComplete := append([]Op(nil), sends...)
		sort.SliceStable(byComplete, func(i, j int) bool { return byComplete[i].Completed < byComplete[j].Completed })
		// Sweep: for each B in invocation order, the highest offset of
		// the sends that completed strictly before B was invoked.
		var best *Op
		next := 0
		for _, b := range byInvoke {
			for next < len(byComplete) && byComplete[next].Completed < b.Invoked {
				a := byComplete[next]
				if best == nil || a.Offset > best.Offset {
					best = &byComplete[next]
				}
				next++
			}
			if best != nil && best.Offset >= b.Offset {
				r.add(NonmonotonicSend, fmt.Sprintf("%s: send at %d completed before send at %d was invoked", tp, best.Offset, b.Offset), *best, b)
			}
		}
	}
}

// poll-skip and nonmonotonic-poll: the records of successive ok polls of
// one process on one partition within one assignment epoch must advance by
// exactly the offsets present in the drain.
func checkPolls(r *Report, ops []Op, drainedOffsets map[TopicPartition][]int64) {
	type key struct {
		proc  int
		tp    TopicPartition
		epoch int64
	}
	polls := map[key][]Op{}
	var order []key
	for _, o := range ops {
		if o.Kind != Poll || o.Type != Ok {
			continue
		}
		k := key{o.Process, o.TP(), o.Epoch}
		if _, ok := polls[k]; !ok {
			order = append(order, k)
		}
		polls[k] = append(polls[k], o)
	}
	for _, k := range order {
		ps := polls[k]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Invoked < ps[j].Invoked })
		offsets := drainedOffsets[k.tp]
		var prev *Op
		var prevOff int64
		for _, p := range ps {
			for _, rec := range p.Records {
				if prev != nil {
					if rec.Offset <= prevOff {
						r.add(NonmonotonicPoll, fmt.Sprintf("process %d on %s epoch %d read offset %d after %d", k.proc, k.tp, k.epoch, rec.Offset, prevOff), *prev, p)
					} else {
						// Drained offsets strictly between prevOff and rec.Offset.
						lo := sort.Search(len(offsets), func(i int) bool { return offsets[i] > prevOff })
						hi := sort.Search(len(offsets), func(i int) bool { return offsets[i] >= rec.Offset })
						if hi > lo {
							r.add(PollSkip, fmt.Sprintf("process %d on %s epoch %d skipped from %d to %d over %d drained offsets (first %d)", k.proc, k.tp, k.epoch, prevOff, rec.Offset, hi-lo, offsets[lo]), *prev, p)
						}
					}
				}
				pp := p
				prev, prevOff = &pp, rec.Offset
			}
		}
	}
}

// double-assignment: two processes own one partition in one group
// generation.
func checkAssignments(r *Report, ops []Op) {
	type key struct {
		group string
		gen   int32
		tp    TopicPartition
	}
	owners := map[key][]Op{}
	var order []key
	for _, o := range ops {
		if o.Kind != Assign || o.Type != Ok {
			continue
		}
		for _, tp := range o.Partitions {
			k := key{o.Group, o.Generation, tp}
			if _, ok := owners[k]; !ok {
				order = append(order, k)
			}
			owners[k] = append(owners[k], o)
		}
	}
	checkStaleCommits(r, ops)
	for _, k := range order {
		var procs []int
		var offending []Op
		for _, o := range owners[k] {
			if !containsInt(procs, o.Process) {
				procs = append(procs, o.Process)
				offending = append(offending, o)
			}
		}
		if len(procs) > 1 {
			r.add(DoubleAssignment, fmt.Sprintf("group %s generation %d: %s owned by processes %v", k.group, k.gen, k.tp, procs), offending...)
		}
	}
}

// Stale-generation commits, reported as double-assignment (the same
// property in docs/testing.md): an ok commit carrying generation g
// (g > 0; standalone commits carry -1 or 0 and are not checked) invoked
// after an assignment of a later generation of its group had completed, so
// the coordinator was already past g and should have rejected it.
func checkStaleCommits(r *Report, ops []Op) {
	type newest struct {
		gen int32
		op  Op
	}
	// Assignments by completion time, then commits by invocation time,
	// swept together.
	var assigns, commits []Op
	for _, o := range ops {
		switch {
		case o.Kind == Assign && o.Type == Ok:
			assigns = append(assigns, o)
		case o.Kind == Commit && o.Type == Ok && o.Generation > 0:
			commits = append(commits, o)
		}
	}
	if len(commits) == 0 || len(assigns) == 0 {
		return
	}
	sort.SliceStable(assigns, func(i, j int) bool { return assigns[i].Completed < assigns[j].Completed })
	sort.SliceStable(commits, func(i, j int) bool { return commits[i].Invoked < commits[j].Invoked })
	latest := map[string]newest{}
	next := 0
	for _, c := range commits {
		for next < len(assigns) && assigns[next].Completed < c.Invoked {
			a := assigns[next]
			if cur, ok := latest[a.Group]; !ok || a.Generation > cur.gen {
				latest[a.Group] = newest{a.Generation, a}
			}
			next++
		}
		if cur, ok := latest[c.Group]; ok && cur.gen > c.Generation {
			r.add(DoubleAssignment, fmt.Sprintf("group %s: commit of generation %d accepted after generation %d was assigned", c.Group, c.Generation, cur.gen), cur.op, c)
		}
	}
}

type registerInput struct {
	write bool
	value int64
}

// registerModel is a register holding a committed offset, NoOffset at first.
var registerModel = porcupine.Model{
	Init: func() interface{} { return NoOffset },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(registerInput)
		if in.write {
			return true, in.value
		}
		return output.(int64) == state.(int64), state
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(registerInput)
		if in.write {
			return fmt.Sprintf("commit(%d)", in.value)
		}
		return fmt.Sprintf("fetch() -> %d", output.(int64))
	},
}

// lost-commit: per (group, topic, partition), commits and fetch-commits must
// be linearizable as a register. Ok operations span [Invoked, Completed];
// info and pending commits may take effect any time after invocation;
// failed commits and unacknowledged fetches are left out.
func checkCommits(r *Report, ops []Op) {
	type key struct {
		group string
		tp    TopicPartition
	}
	regs := map[key][]Op{}
	var order []key
	for _, o := range ops {
		if o.Kind != Commit && o.Kind != FetchCommit {
			continue
		}
		k := key{o.Group, o.TP()}
		if _, ok := regs[k]; !ok {
			order = append(order, k)
		}
		regs[k] = append(regs[k], o)
	}
	for _, k := range order {
		var hist []porcupine.Operation
		var involved []Op
		for _, o := range regs[k] {
			switch {
			case o.Kind == Commit && o.Type == Ok:
				hist = append(hist, porcupine.Operation{ClientId: o.Process, Input: registerInput{true, o.Offset}, Call: o.Invoked, Output: int64(0), Return: o.Completed})
			case o.Kind == Commit && (o.Type == Info || o.Type == Invoke):
				hist = append(hist, porcupine.Operation{ClientId: o.Process, Input: registerInput{true, o.Offset}, Call: o.Invoked, Output: int64(0), Return: math.MaxInt64})
			case o.Kind == FetchCommit && o.Type == Ok:
				hist = append(hist, porcupine.Operation{ClientId: o.Process, Input: registerInput{false, 0}, Call: o.Invoked, Output: o.Offset, Return: o.Completed})
			default:
				continue
			}
			involved = append(involved, o)
		}
		if len(hist) == 0 {
			continue
		}
		switch porcupine.CheckOperationsTimeout(registerModel, hist, LinearizabilityTimeout) {
		case porcupine.Illegal:
			if len(involved) > MaxFindings {
				involved = involved[:MaxFindings]
			}
			r.add(LostCommit, fmt.Sprintf("group %s %s: committed offsets are not linearizable (%d operations)", k.group, k.tp, len(hist)), involved...)
		case porcupine.Unknown:
			r.Unknown++
		}
	}
}

func sortedTPs[V any](m map[TopicPartition]V) []TopicPartition {
	out := make([]TopicPartition, 0, len(m))
	for tp := range m {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
