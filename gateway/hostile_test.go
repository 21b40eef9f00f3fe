package gateway_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// frame builds a request frame: size, key, version, correlation id, client
// id, then body. Flexible versions need the header's tag byte in body.
func frame(key, version int16, corr int32, body []byte) []byte {
	b := make([]byte, 4, 64+len(body))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "evil"...)
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectClosed waits for the server to close the connection.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection still open after hostile input")
		}
		return // EOF or reset: closed
	}
}

// readResponse reads one response frame and returns its body after the
// correlation id.
func readResponse(t *testing.T, c net.Conn) (int32, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("read response: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return int32(binary.BigEndian.Uint32(body)), body[4:]
}

// canary checks that a well-behaved client is still served.
func canary(t *testing.T, adm *kadm.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.ListTopics(ctx); err != nil {
		t.Fatalf("canary client refused after hostile input: %v", err)
	}
}

func TestHostileFrames(t *testing.T) {
	b, cl := startKafka(t)
	adm := kadm.NewClient(cl)
	canary(t, adm)

	huge := make([]byte, 4)
	binary.BigEndian.PutUint32(huge, 2<<30-1) // a 2 GiB size prefix
	negative := []byte{0xff, 0xff, 0xff, 0xf0}
	bigMetadata := make([]byte, 4)
	binary.BigEndian.PutUint32(bigMetadata, 9<<20) // over the 8 MiB non-produce cap
	bigMetadata = append(bigMetadata, 0, 3)        // Metadata key
	cases := []struct {
		name string
		send []byte
	}{
		{"2 GiB size prefix", huge},
		{"negative size", negative},
		{"metadata frame over the small-frame cap", bigMetadata},
		{"frame shorter than a header", []byte{0, 0, 0, 3, 1, 2, 3}},
		{"unknown API key", frame(999, 0, 1, nil)},
		{"metadata version out of range", frame(3, 99, 1, nil)},
		{"body shorter than it declares", frame(3, 1, 1, []byte{0, 0, 0, 5, 0, 3})},
		{"flexible header with bad tags", frame(3, 12, 1, []byte{0xff, 0xff, 0xff})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, b.KafkaAddr())
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			canary(t, adm)
		})
	}
	t.Run("truncated frame then hang-up", func(t *testing.T) {
		c := rawDial(t, b.KafkaAddr())
		f := frame(3, 1, 1, []byte{0, 0, 0, 0})
		c.Write(f[:len(f)-3])
		c.Close()
		canary(t, adm)
	})
}

func TestApiVersionsTooNewGetsV0Answer(t *testing.T) {
	b, _ := startKafka(t)
	c := rawDial(t, b.KafkaAddr())
	if _, err := c.Write(frame(18, 99, 42, nil)); err != nil {
		t.Fatal(err)
	}
	corr, body := readResponse(t, c)
	if corr != 42 {
		t.Fatalf("correlation id %d", corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
		t.Fatalf("answer %+v", resp)
	}
	// The connection stays usable: ask again at a version we serve.
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(0)
	if _, err := c.Write(frame(18, 0, 43, req.AppendTo(nil))); err != nil {
		t.Fatal(err)
	}
	if corr, _ := readResponse(t, c); corr != 43 {
		t.Fatalf("second answer has correlation id %d", corr)
	}
}

// TestPipelinedAnswersInOrder sends many requests without waiting and
// expects the answers in request order.
func TestPipelinedAnswersInOrder(t *testing.T) {
	b, _ := startKafka(t)
	c := rawDial(t, b.KafkaAddr())
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(1)
	body := req.AppendTo(nil)
	var all []byte
	for i := int32(0); i < 200; i++ {
		all = append(all, frame(3, 1, i, body)...)
	}
	go c.Write(all)
	for i := int32(0); i < 200; i++ {
		if corr, _ := readResponse(t, c); corr != i {
			t.Fatalf("answer %d has correlation id %d", i, corr)
		}
	}
}

// TestSlowReaderAndConnectionFlood: a client that pipelines without reading
// makes the broker stop reading it (bounded memory), and a flood of idle
// connections does not stop the canary.
func TestSlowReaderAndConnectionFlood(t *testing.T) {
	b, cl := startKafka(t)
	adm := kadm.NewClient(cl)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	slow := rawDial(t, b.KafkaAddr())
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(1)
	f := frame(3, 1, 1, req.AppendTo(nil))
	slow.SetWriteDeadline(time.Now().Add(3 * time.Second))
	written := 0
	for i := 0; i < 200000; i++ {
		n, err := slow.Write(f)
		written += n
		if err != nil {
			break // the broker stopped reading us: backpressure works
		}
	}
	t.Logf("slow client wrote %d bytes before the broker stopped reading", written)

	var wg sync.WaitGroup
	for i := 0; i < 300; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", b.KafkaAddr(), 5*time.Second)
			if err == nil {
				c.Write(frame(3, 1, 1, req.AppendTo(nil))[:7])
				time.Sleep(200 * time.Millisecond)
				c.Close()
			}
		}()
	}
	canary(t, adm)
	wg.Wait()
	canary(t, adm)

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if growth := int64(after.HeapAlloc) - int64(before.HeapAlloc); growth > 64<<20 {
		t.Fatalf("heap grew by %d MiB under hostile clients", growth>>20)
	}
}
