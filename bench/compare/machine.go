package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fluxo-broker/fluxo/internal/loadgen"
)

// Machine describes where the run happened.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemBytes int64  `json:"mem_bytes"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Disk     string `json:"disk"` // file system and device of the data directory
}

// Limits are the machine's own limits, measured in the same run.
type Limits struct {
	DiskBytes     int64         `json:"disk_bytes"`
	DiskElapsed   time.Duration `json:"disk_elapsed_ns"`
	DiskSyncAvg   time.Duration `json:"disk_fdatasync_avg_ns"`
	DiskMBps      float64       `json:"disk_mb_per_s"`
	LoopbackBytes int64         `json:"loopback_bytes"`
	LoopbackGBps  float64       `json:"loopback_gb_per_s"`
}

func describeMachine(dir string) Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Go: runtime.Version(), Kernel: runtime.GOOS}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kib, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemBytes = kib << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.Disk = mountOf(dir)
	return m
}

// mountOf is "ext4 on /dev/vda" for the mount holding dir.
func mountOf(dir string) string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	best, desc := "", "unknown"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 3 {
			continue
		}
		mnt := fl[1]
		if (dir == mnt || strings.HasPrefix(dir, strings.TrimSuffix(mnt, "/")+"/")) && len(mnt) >= len(best) {
			best, desc = mnt, fmt.Sprintf("%s on %s", fl[2], fl[0])
		}
	}
	return desc
}

// freeBytes is the space available to this user under dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// machine measures the limits: sequential writes of 1 MiB blocks with an
// fdatasync after each, in the brokers' directory, and one loopback TCP
// connection's throughput.
func (h *harness) machine(ctx context.Context) {
	h.rep.Machine = describeMachine(h.dir)
	m := h.rep.Machine
	h.logf("== machine: %s, %d cores, %s, %s, %s, %s (%s)", m.CPU, m.Cores, sizeString(m.MemBytes), m.Kernel, m.Go, h.dir, m.Disk)
	var l Limits
	var err error
	if l.DiskBytes, l.DiskElapsed, l.DiskSyncAvg, err = diskWrite(ctx, h.dir, h.o.diskBytes); err != nil {
		h.fail("machine", "disk", err)
	} else {
		l.DiskMBps = float64(l.DiskBytes) / 1e6 / l.DiskElapsed.Seconds()
		h.logf("  disk: %s written in 1 MiB blocks, fdatasync after each: %.0f MB/s (fdatasync %.2f ms on average)",
			sizeString(l.DiskBytes), l.DiskMBps, float64(l.DiskSyncAvg)/1e6)
	}
	var took time.Duration
	if l.LoopbackBytes, took, err = loopbackStream(ctx, h.o.loopbackFor); err != nil {
		h.fail("machine", "loopback", err)
	} else {
		l.LoopbackGBps = float64(l.LoopbackBytes) / 1e9 / took.Seconds()
		h.logf("  loopback TCP, one connection: %.2f GB/s", l.LoopbackGBps)
	}
	h.rep.Limits = l
}

// diskWrite writes total bytes in 1 MiB blocks to a new file under dir,
// with an fdatasync after each block.
func diskWrite(ctx context.Context, dir string, total int64) (int64, time.Duration, time.Duration, error) {
	f, err := os.CreateTemp(dir, "disk-*")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := loadgen.NewValues(1 << 20).At(0)
	var written int64
	var syncs time.Duration
	n := 0
	start := time.Now()
	for written < total && ctx.Err() == nil {
		if _, err := f.Write(block); err != nil {
			return 0, 0, 0, err
		}
		s := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, 0, err
		}
		syncs += time.Since(s)
		written += int64(len(block))
		n++
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	return written, time.Since(start), syncs / time.Duration(max(n, 1)), nil
}

// loopbackStream sends 1 MiB writes over one 127.0.0.1 TCP connection for
// d and returns the bytes the reader received and the time it took.
func loopbackStream(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	type result struct {
		n    int64
		took time.Duration
		err  error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		start := time.Now()
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
		got <- result{n, time.Since(start), err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, 0, err
	}
	buf := loadgen.NewValues(1 << 20).At(1)
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, 0, err
		}
	}
	c.Close()
	r := <-got
	return r.n, r.took, r.err
}
