package logsink

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests.
const waitTimeout = 5 * time.Second

// gatedWriter is a stream that takes one write per token on gate, like a
// pipe whose reader has stalled; entered receives each record as its Write
// starts.
type gatedWriter struct {
	gate    chan struct{}
	entered chan string
	mu      sync.Mutex
	buf     bytes.Buffer
}

func newGatedWriter() *gatedWriter {
	return &gatedWriter{gate: make(chan struct{}), entered: make(chan string, 100)}
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.entered <- string(p)
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *gatedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitEntered waits until the writer goroutine is inside a Write of want.
func (w *gatedWriter) waitEntered(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-w.entered:
		if got != want {
			t.Fatalf("stream got %q, want %q", got, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("stream never got %q", want)
	}
}

// writeBounded writes each line and fails the test if the writes together
// take longer than waitTimeout: Write must never wait on the stream.
func writeBounded(t *testing.T, s *Sink, lines ...string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, l := range lines {
			if n, err := s.Write([]byte(l)); n != len(l) || err != nil {
				t.Errorf("Write(%q) = %d, %v; want %d, nil", l, n, err, len(l))
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("Write blocked on a stalled stream")
	}
}

func closeBounded(t *testing.T, s *Sink, timeout time.Duration) error {
	t.Helper()
	start := time.Now()
	err := s.Close(timeout)
	if d := time.Since(start); d > timeout+waitTimeout {
		t.Errorf("Close(%s) took %s", timeout, d)
	}
	return err
}

func report(dropped, total uint64) []byte {
	return fmt.Appendf(nil, "dropped %d of %d\n", dropped, total)
}

// TestStalledStreamNeverBlocksAndCountsDrops: with the stream stalled, writes
// return at once; what does not fit is dropped and counted; once the stream
// moves again the kept records come out in order, then one report line.
func TestStalledStreamNeverBlocksAndCountsDrops(t *testing.T) {
	w := newGatedWriter()
	s := New(w, Options{MaxLines: 4, Report: report})
	defer func() {
		close(w.gate) // let every write through
		if err := closeBounded(t, s, waitTimeout); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	writeBounded(t, s, "0\n")
	w.waitEntered(t, "0\n") // the stream now holds "0\n" and stalls
	writeBounded(t, s, "1\n", "2\n", "3\n", "4\n", "5\n", "6\n", "7\n", "8\n", "9\n")
	// 0 (being written), 1, 2 and 3 fill the four lines; 4 to 9 are dropped.
	if got := s.Dropped(); got != 6 {
		t.Errorf("Dropped() = %d, want 6", got)
	}
	for _, want := range []string{"1\n", "2\n", "3\n", "dropped 6 of 6\n"} {
		w.gate <- struct{}{}
		w.waitEntered(t, want)
	}
	w.gate <- struct{}{}
	writeBounded(t, s, "10\n")
	w.waitEntered(t, "10\n")
	w.gate <- struct{}{}
	if err := closeBounded(t, s, waitTimeout); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := w.String(), "0\n1\n2\n3\ndropped 6 of 6\n10\n"; got != want {
		t.Errorf("stream got %q, want %q", got, want)
	}
}

// TestReportGoesWhereTheGapIs: records dropped between two kept records are
// reported between them, not after later records.
func TestReportGoesWhereTheGapIs(t *testing.T) {
	w := newGatedWriter()
	s := New(w, Options{MaxLines: 2, Report: report})
	writeBounded(t, s, "a\n")
	w.waitEntered(t, "a\n")
	writeBounded(t, s, "b\n", "x\n", "y\n") // a and b fill it; x, y dropped
	w.gate <- struct{}{}                    // a done; the stream takes b and stalls
	w.waitEntered(t, "b\n")
	writeBounded(t, s, "c\n") // fits beside b
	close(w.gate)
	if err := closeBounded(t, s, waitTimeout); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := w.String(), "a\nb\ndropped 2 of 2\nc\n"; got != want {
		t.Errorf("stream got %q, want %q", got, want)
	}
}

// TestBoundedInBytes: a record that does not fit the byte bound is dropped.
func TestBoundedInBytes(t *testing.T) {
	w := newGatedWriter()
	s := New(w, Options{MaxBytes: 10, Report: report})
	writeBounded(t, s, "12345\n")
	w.waitEntered(t, "12345\n")
	writeBounded(t, s, "abc\n", "toolong\n") // 6+4 fits; 6+4+8 does not
	close(w.gate)
	if err := closeBounded(t, s, waitTimeout); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := w.String(), "12345\nabc\ndropped 1 of 1\n"; got != want {
		t.Errorf("stream got %q, want %q", got, want)
	}
}

// errWriter fails every write, like a pipe whose reader has gone (EPIPE).
type errWriter struct{ writes int }

func (w *errWriter) Write(p []byte) (int, error) {
	w.writes++
	return 0, syscall.EPIPE
}

// TestWriteErrorsAreCounted: records the stream refuses are dropped and
// counted; the sink keeps going.
func TestWriteErrorsAreCounted(t *testing.T) {
	w := &errWriter{}
	s := New(w, Options{Report: report})
	for i := range 5 {
		writeBounded(t, s, fmt.Sprintf("line %d\n", i))
	}
	if err := closeBounded(t, s, waitTimeout); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := s.Dropped(); got != 5 {
		t.Errorf("Dropped() = %d, want 5", got)
	}
}

// TestCloseIsBounded: Close on a stalled stream returns after its timeout
// with ErrCloseTimeout; the writer goroutine stops once the stream moves.
func TestCloseIsBounded(t *testing.T) {
	w := newGatedWriter()
	s := New(w, Options{Report: report})
	writeBounded(t, s, "stuck\n", "queued\n")
	w.waitEntered(t, "stuck\n")
	start := time.Now()
	err := closeBounded(t, s, 100*time.Millisecond)
	if !errors.Is(err, ErrCloseTimeout) {
		t.Errorf("Close on a stalled stream = %v, want ErrCloseTimeout", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("Close returned after %s, before its timeout", d)
	}
	writeBounded(t, s, "after close\n")
	close(w.gate)
	select {
	case <-s.done:
	case <-time.After(waitTimeout):
		t.Fatal("writer goroutine still running after the stream moved")
	}
	if got := w.String(); got != "stuck\n" {
		t.Errorf("stream got %q after an abandoned Close, want only the record in flight", got)
	}
	if got := s.Dropped(); got != 1 {
		t.Errorf("Dropped() = %d, want 1 (the write after Close)", got)
	}
}

// TestCloseFlushes: Close writes out everything queued before it.
func TestCloseFlushes(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	s := New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), Options{})
	var want strings.Builder
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				s.Write(fmt.Appendf(nil, "g%d %d\n", g, i))
			}
		}()
	}
	wg.Wait()
	for g := range 4 {
		for i := range 100 {
			fmt.Fprintf(&want, "g%d %d\n", g, i)
		}
	}
	if err := closeBounded(t, s, waitTimeout); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != 400 || s.Dropped() != 0 {
		t.Fatalf("stream got %d lines, %d dropped; want 400, 0", len(got), s.Dropped())
	}
	// Each goroutine's records keep their order.
	next := map[string]int{}
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d %d", &g, &i); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if k := fmt.Sprint(g); next[k] != i {
			t.Fatalf("goroutine %d: got record %d, want %d", g, i, next[k])
		} else {
			next[k]++
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestDefaultReport: without a Report option the line still says it all.
func TestDefaultReport(t *testing.T) {
	if got := string(plainReport(3, 7)); got != "log lines dropped count=3 total=7\n" {
		t.Errorf("plainReport = %q", got)
	}
}
