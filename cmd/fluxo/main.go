// Command fluxo runs a Fluxo broker (`fluxo serve`) and the client
// subcommands (topic, produce, consume, group, cluster, bench), which speak
// the Kafka protocol.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `fluxo: a Kafka-compatible streaming broker

Usage:
  fluxo serve [flags]     run a broker (fluxo serve -h for flags)
  fluxo version           print the version

Client commands (they speak the Kafka protocol, so they work against any
Kafka too):
  fluxo topic create|list|describe|delete|alter-config|add-partitions
  fluxo produce TOPIC     one record per line of stdin or --file
  fluxo consume TOPIC     print records; -n N, --group G, --offset, --format
  fluxo group list|describe|delete|seek
  fluxo cluster info      brokers, controller, partitions and replicas
  fluxo bench produce|consume|e2e
                          measure throughput and latency (fluxo bench -h)

Every client command takes --brokers host:port[,...] (default 127.0.0.1:9092,
or $FLUXO_BROKERS) and --timeout; list, describe, info and bench take
--format json. Run 'fluxo COMMAND -h' for details. Exit codes: 0 ok,
1 failed, 2 bad usage.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "topic", "produce", "consume", "group", "cluster", "bench":
		return clientCommand(args, os.Stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "fluxo", version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "fluxo: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
