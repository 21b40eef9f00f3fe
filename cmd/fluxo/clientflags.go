package main

// Shared plumbing of the client subcommands (topic, produce, consume, group,
// cluster, bench): the flags every one of them takes, argument parsing that
// allows flags after positional arguments, the connection, error messages a
// user can act on, and table or JSON output.
//
// Exit codes: 0 success, 1 the operation failed (unreachable broker, unknown
// topic, refused request), 2 the command line is wrong (bad flag, missing
// argument).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const defaultBrokers = "127.0.0.1:9092"

// cli is what a client subcommand reads and writes.
type cli struct {
	in       io.Reader
	out, err io.Writer
}

// usageError is a mistake on the command line: exit code 2, with the usage.
type usageError struct {
	fs  *flag.FlagSet
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(fs *flag.FlagSet, format string, args ...any) error {
	return &usageError{fs: fs, msg: fmt.Sprintf(format, args...)}
}

// errHelp means -h was asked for and the help is printed: exit code 0.
var errHelp = errors.New("help printed")

// clientCommand runs a client subcommand; args[0] is the family (topic,
// produce, consume, group, cluster, bench).
func clientCommand(args []string, in io.Reader, stdout, stderr io.Writer) int {
	c := &cli{in: in, out: stdout, err: stderr}
	var err error
	switch args[0] {
	case "topic":
		err = c.sub("topic", args[1:], topicCommands)
	case "group":
		err = c.sub("group", args[1:], groupCommands)
	case "cluster":
		err = c.sub("cluster", args[1:], clusterCommands)
	case "produce":
		err = c.produce(args[1:])
	case "consume":
		err = c.consume(args[1:])
	case "bench":
		err = c.bench(args[1:])
	}
	return c.exit(err)
}

// exit prints err and turns it into an exit code.
func (c *cli) exit(err error) int {
	var ue *usageError
	switch {
	case err == nil || errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		if ue.msg != "" {
			fmt.Fprintf(c.err, "fluxo: %s\n", ue.msg)
		}
		if ue.fs != nil {
			fmt.Fprintf(c.err, "Run '%s -h' for help.\n", ue.fs.Name())
		}
		return 2
	default:
		fmt.Fprintf(c.err, "fluxo: %v\n", err)
		return 1
	}
}

type subcommand struct {
	name    string
	summary string
	run     func(c *cli, args []string) error
}

func (c *cli) sub(family string, args []string, cmds []subcommand) error {
	help := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: fluxo %s COMMAND [flags]\n\nCommands:\n", family)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range cmds {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun 'fluxo %s COMMAND -h' for a command's flags.\n", family)
	}
	if len(args) == 0 {
		help(c.err)
		return &usageError{}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		help(c.out)
		return nil
	}
	for _, s := range cmds {
		if s.name == args[0] {
			return s.run(c, args[1:])
		}
	}
	fmt.Fprintf(c.err, "fluxo: unknown command %q\n\n", family+" "+args[0])
	help(c.err)
	return &usageError{}
}

// connFlags are the connection flags every client subcommand takes.
type connFlags struct {
	brokers string
	timeout time.Duration
}

// flagSet starts a subcommand's flags with the connection flags. name is
// the command ("topic create"), synopsis its arguments, doc the description
// printed by -h.
func (c *cli) flagSet(name, synopsis, doc string) (*flag.FlagSet, *connFlags) {
	usage := name + " " + synopsis
	name = "fluxo " + name
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cf := &connFlags{}
	brokers := defaultBrokers
	if env := strings.TrimSpace(os.Getenv("FLUXO_BROKERS")); env != "" {
		brokers = env
	}
	fs.StringVar(&cf.brokers, "brokers", brokers, "comma-separated seed brokers, host:port (env FLUXO_BROKERS)")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "how long to wait for the broker to connect and answer")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fluxo %s\n\n%s\n\nFlags:\n", usage, strings.TrimSpace(doc))
		fs.PrintDefaults()
	}
	return fs, cf
}

// parseArgs parses flags that may come before, between or after the
// positional arguments ("--" ends the flags) and returns the positional
// arguments. -h prints the help to stdout.
func (c *cli) parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.out.Write(buf.Bytes())
			return nil, errHelp
		}
		if err != nil {
			c.err.Write(buf.Bytes())
			return nil, &usageError{}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// seeds validates --brokers.
func (cf *connFlags) seeds(fs *flag.FlagSet) ([]string, error) {
	var seeds []string
	for _, s := range strings.Split(cf.brokers, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, usagef(fs, "--brokers %q: want host:port[,host:port...]", s)
		}
		seeds = append(seeds, s)
	}
	if len(seeds) == 0 {
		return nil, usagef(fs, "--brokers is empty: want host:port[,host:port...]")
	}
	if cf.timeout <= 0 {
		return nil, usagef(fs, "--timeout %s: want a positive duration such as 10s", cf.timeout)
	}
	return seeds, nil
}

// client connects to the brokers and checks one answers, so an unreachable
// broker is reported at once rather than retried until a deadline.
func (cf *connFlags) client(ctx context.Context, fs *flag.FlagSet, opts ...kgo.Opt) (*kgo.Client, error) {
	seeds, err := cf.seeds(fs)
	if err != nil {
		return nil, err
	}
	all := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("fluxo-cli"),
		kgo.DialTimeout(cf.timeout),
		kgo.RetryTimeout(cf.timeout),
	}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, usagef(fs, "%v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil, errors.New("interrupted")
		}
		if pctx.Err() != nil {
			err = fmt.Errorf("no answer in %s", cf.timeout)
		}
		return nil, fmt.Errorf("cannot reach broker %s (%v): is fluxo serve running?", strings.Join(seeds, ","), err)
	}
	return cl, nil
}

// admin is client for the admin commands, with its Close.
func (cf *connFlags) admin(ctx context.Context, fs *flag.FlagSet) (*kadm.Client, func(), error) {
	cl, err := cf.client(ctx, fs)
	if err != nil {
		return nil, nil, err
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(cf.timeout.Milliseconds()))
	return adm, cl.Close, nil
}

// adminContext bounds an admin command by the signals and --timeout.
func (cf *connFlags) adminContext() (context.Context, context.CancelFunc) {
	ctx, stop := signalContext()
	tctx, cancel := context.WithTimeout(ctx, cf.timeout+cf.timeout/2)
	return tctx, func() { cancel(); stop() }
}

// explain turns a client error into one a user can act on.
func explain(err error, timeout time.Duration) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s waiting for the broker (raise --timeout?)", timeout)
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return err
}

// kafkaErr formats a broker error with its extra message, if any.
func kafkaErr(err error, msg string) error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		if msg == "" {
			return fmt.Errorf("%s: %s", ke.Message, ke.Description)
		}
		return fmt.Errorf("%s: %s", ke.Message, msg)
	}
	if msg != "" {
		return fmt.Errorf("%v: %s", err, msg)
	}
	return err
}

// unknownTopic is the message for a topic that does not exist.
func unknownTopic(topic string) error {
	return fmt.Errorf("unknown topic %q ('fluxo topic list' shows the topics)", topic)
}

// topicErr formats a per-topic error.
func topicErr(topic string, err error, msg string) error {
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return unknownTopic(topic)
	}
	return fmt.Errorf("topic %q: %w", topic, kafkaErr(err, msg))
}

// outputFlag registers --format text|json on a list, describe or info
// command.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("format", "text", "output: text (tables) or json")
}

func checkOutput(fs *flag.FlagSet, format string) error {
	if format != "text" && format != "json" {
		return usagef(fs, "--format %q: want text or json", format)
	}
	return nil
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns a writer that aligns tab-separated columns; Flush it.
func (c *cli) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
}

// row writes one tab-separated table row.
func row(w io.Writer, cols ...any) {
	for i, col := range cols {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		fmt.Fprint(w, col)
	}
	io.WriteString(w, "\n")
}

// int32List formats replica lists as [1 2 3].
func int32List(xs []int32) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// keyValue splits "k=v".
func keyValue(s string) (string, string, bool) {
	k, v, ok := strings.Cut(s, "=")
	return k, v, ok && k != ""
}

// plural formats "1 topic", "2 topics".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// listCommand parses a command that takes no positional arguments and an
// output --format, and connects an admin client: the common start of the
// list, info and describe-everything commands. close releases the client
// and the context.
func (c *cli) listCommand(fs *flag.FlagSet, cf *connFlags, format *string, args []string) (ctx context.Context, adm *kadm.Client, done func(), err error) {
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(pos) > 0 {
		return nil, nil, nil, usagef(fs, "%s: unexpected argument %q", strings.TrimPrefix(fs.Name(), "fluxo "), pos[0])
	}
	if err := checkOutput(fs, *format); err != nil {
		return nil, nil, nil, err
	}
	return cf.connectAdmin(fs)
}

// connectAdmin connects an admin client under the command's context;
// done releases both.
func (cf *connFlags) connectAdmin(fs *flag.FlagSet) (ctx context.Context, adm *kadm.Client, done func(), err error) {
	ctx, cancel := cf.adminContext()
	adm, closeClient, err := cf.admin(ctx, fs)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, adm, func() { closeClient(); cancel() }, nil
}
