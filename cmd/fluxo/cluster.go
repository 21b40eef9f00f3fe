package main

// fluxo cluster info.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
)

var clusterCommands = []subcommand{
	{"info", "show brokers, the controller and every partition's replicas", (*cli).clusterInfo},
}

// clusterDescription is `cluster info --format json`.
type clusterDescription struct {
	ClusterID       string             `json:"cluster_id"`
	Controller      int32              `json:"controller"`
	Brokers         []brokerInfo       `json:"brokers"`
	Partitions      []partitionReplica `json:"partitions"`
	UnderReplicated int                `json:"under_replicated"`
	Offline         int                `json:"offline"`
}

type brokerInfo struct {
	NodeID int32  `json:"node_id"`
	Host   string `json:"host"`
	Port   int32  `json:"port"`
	Rack   string `json:"rack,omitempty"`
}

type partitionReplica struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
}

func (c *cli) clusterInfo(args []string) error {
	fs, cf := c.flagSet("cluster info", "[flags]", `
Show the cluster: its id, the brokers (the controller marked *), and every
topic partition's leader, replicas and in-sync replicas (ISR), with the
number of under-replicated partitions (fewer in-sync replicas than replicas)
and offline ones (no leader).`)
	format := outputFlag(fs)
	ctx, adm, done, err := c.listCommand(fs, cf, format, args)
	if err != nil {
		return err
	}
	defer done()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return explain(err, cf.timeout)
	}
	d := describeCluster(md)
	if *format == "json" {
		return c.printJSON(d)
	}
	tw := c.table()
	row(tw, "CLUSTER", dash(d.ClusterID))
	row(tw, "CONTROLLER", d.Controller)
	tw.Flush()
	fmt.Fprintln(c.out)
	tw = c.table()
	row(tw, "BROKER", "HOST", "PORT", "RACK")
	for _, b := range d.Brokers {
		id := fmt.Sprint(b.NodeID)
		if b.NodeID == d.Controller {
			id += "*"
		}
		row(tw, id, b.Host, b.Port, dash(b.Rack))
	}
	tw.Flush()
	fmt.Fprintln(c.out)
	tw = c.table()
	row(tw, "TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR")
	for _, p := range d.Partitions {
		row(tw, p.Topic, p.Partition, p.Leader, int32List(p.Replicas), int32List(p.ISR))
	}
	tw.Flush()
	fmt.Fprintf(c.out, "\n%s, %s, %d under-replicated, %d offline\n", plural(len(md.Topics), "topic"), plural(len(d.Partitions), "partition"), d.UnderReplicated, d.Offline)
	return nil
}

func describeCluster(md kadm.Metadata) clusterDescription {
	d := clusterDescription{ClusterID: md.Cluster, Controller: md.Controller, Brokers: []brokerInfo{}, Partitions: []partitionReplica{}}
	for _, b := range md.Brokers {
		bi := brokerInfo{NodeID: b.NodeID, Host: b.Host, Port: b.Port}
		if b.Rack != nil {
			bi.Rack = *b.Rack
		}
		d.Brokers = append(d.Brokers, bi)
	}
	for _, t := range md.Topics.Sorted() {
		for _, p := range t.Partitions.Sorted() {
			d.Partitions = append(d.Partitions, partitionReplica{Topic: t.Topic, Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR})
			if len(p.ISR) < len(p.Replicas) {
				d.UnderReplicated++
			}
			if p.Leader < 0 {
				d.Offline++
			}
		}
	}
	return d
}
