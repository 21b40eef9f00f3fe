package bufpool

import "testing"

func TestGetLengthAndClass(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 4097, 1 << 20, 1<<20 + 1, 16 << 20} {
		b := Get(n)
		if len(b) != n {
			t.Fatalf("Get(%d): len %d", n, len(b))
		}
		c := cap(b)
		if c&(c-1) != 0 || c < n || c > 2*max(n, 4096) {
			t.Fatalf("Get(%d): cap %d is not the smallest class", n, c)
		}
		Put(b)
	}
	if b := Get(16<<20 + 1); cap(b) != 16<<20+1 {
		t.Fatalf("oversized Get: cap %d, want exact", cap(b))
	}
}

func TestPutIgnoresForeignSlices(t *testing.T) {
	Put(make([]byte, 5000)) // not a class size: must not enter a pool
	Put(nil)
	for i := 0; i < 100; i++ {
		if b := Get(5000); cap(b) != 8192 {
			t.Fatalf("Get(5000) returned cap %d from a pool polluted by a foreign slice", cap(b))
		}
	}
}

func TestRecycled(t *testing.T) {
	// A returned slice is reused, so the read path stops allocating. The pool
	// may drop entries at any GC, so ask several times.
	allocs := testing.AllocsPerRun(100, func() {
		b := Get(1 << 20)
		Put(b)
	})
	if allocs > 0.5 {
		t.Fatalf("Get/Put of 1 MiB allocates %.1f times per run", allocs)
	}
}
