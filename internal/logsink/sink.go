// Package logsink is leaderd's log stream: a writer that never blocks its
// caller. A primary must demote on time whatever its stderr does (a full
// pipe nobody reads, a stalled journald or Docker log driver), so log
// records are queued in a bounded buffer and written by one goroutine; when
// the buffer is full they are dropped, counted, and reported in one line once
// the stream takes writes again.
package logsink

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the buffer by default: enough for a burst of hook output (a line
// is at most 64 KiB), small enough to be no memory concern.
const (
	DefaultMaxBytes = 1 << 20
	DefaultMaxLines = 8192
)

// ErrCloseTimeout is returned by Close when the stream did not take the
// buffered records in time; they are abandoned.
var ErrCloseTimeout = errors.New("logsink: stream stalled; buffered log lines abandoned")

// Options tune a Sink. Zero values take the defaults.
type Options struct {
	// MaxBytes and MaxLines bound what is buffered, the record being written
	// included. Defaults: DefaultMaxBytes, DefaultMaxLines.
	MaxBytes int
	MaxLines int
	// Report formats the line written once the stream recovers: dropped
	// lines since the last report, and in total. Default: a plain
	// "log lines dropped count=N total=M" line.
	Report func(dropped, total uint64) []byte
}

// Sink is an io.Writer for log records: each Write is one record (slog's
// handlers write a record in one call). Write copies the record and returns
// at once; it never fails, so a logger never sees an error it cannot act on.
// Safe for concurrent use.
type Sink struct {
	out      io.Writer
	maxBytes int
	maxLines int
	report   func(dropped, total uint64) []byte

	dropped atomic.Uint64 // records lost: buffer full, write error, or after Close

	mu         sync.Mutex
	queue      []entry
	bytes      int    // bytes of records queued or being written
	lines      int    // records queued or being written
	unreported uint64 // dropped by Write since the last marker
	closing    bool   // Close was called: drain what is queued, then stop
	abandoned  bool   // Close gave up waiting: stop after the current write

	wake chan struct{} // one pending wake-up for the writer goroutine
	done chan struct{} // closed when the writer goroutine has returned
}

// entry is a queued record, or a marker saying that so many records were
// dropped at this point of the stream.
type entry struct {
	record  []byte
	dropped uint64
}

// New starts a sink writing to out. Call Close when done.
func New(out io.Writer, opts Options) *Sink {
	s := &Sink{
		out:      out,
		maxBytes: opts.MaxBytes,
		maxLines: opts.MaxLines,
		report:   opts.Report,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxBytes
	}
	if s.maxLines <= 0 {
		s.maxLines = DefaultMaxLines
	}
	if s.report == nil {
		s.report = plainReport
	}
	go s.drain()
	return s
}

func plainReport(dropped, total uint64) []byte {
	return fmt.Appendf(nil, "log lines dropped count=%d total=%d\n", dropped, total)
}

// Write queues a copy of p, or drops it when the buffer is full or the sink
// is closed. It never blocks on the stream and always reports success.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.lines+1 > s.maxLines || s.bytes+len(p) > s.maxBytes {
		s.unreported++
		s.dropped.Add(1)
		return len(p), nil
	}
	if s.unreported > 0 {
		// The report goes where the gap is, before the first record kept.
		s.queue = append(s.queue, entry{dropped: s.unreported})
		s.unreported = 0
	}
	s.queue = append(s.queue, entry{record: append([]byte(nil), p...)})
	s.lines++
	s.bytes += len(p)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Dropped is the number of records lost so far: buffer full, a failed write
// (EPIPE once the reader is gone), or written after Close.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// Close writes out what is buffered, waiting at most timeout for a stalled
// stream, and stops the sink; later writes are dropped. It returns
// ErrCloseTimeout when it gave up. A second call waits again.
func (s *Sink) Close(timeout time.Duration) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.done:
		return nil
	case <-t.C:
		s.mu.Lock()
		s.abandoned = true
		s.mu.Unlock()
		return ErrCloseTimeout
	}
}

// drain is the one goroutine that writes to the stream.
func (s *Sink) drain() {
	defer close(s.done)
	var owed uint64 // dropped records not reported yet
	for {
		s.mu.Lock()
		if s.abandoned {
			s.mu.Unlock()
			return
		}
		if len(s.queue) == 0 {
			// Idle: report drops nobody has written after yet.
			owed += s.unreported
			s.unreported = 0
			closing := s.closing
			s.mu.Unlock()
			if owed > 0 && s.writeReport(owed) {
				owed = 0
			}
			if closing {
				return
			}
			<-s.wake
			continue
		}
		e := s.queue[0]
		s.queue[0] = entry{}
		s.queue = s.queue[1:]
		s.mu.Unlock()

		if e.record == nil {
			owed += e.dropped
			continue
		}
		if owed > 0 && s.writeReport(owed) {
			owed = 0
		}
		if _, err := s.out.Write(e.record); err != nil {
			s.dropped.Add(1)
			owed++
		}
		s.mu.Lock()
		s.lines--
		s.bytes -= len(e.record)
		s.mu.Unlock()
	}
}

// writeReport writes the drop report and says whether the stream took it.
func (s *Sink) writeReport(dropped uint64) bool {
	_, err := s.out.Write(s.report(dropped, s.dropped.Load()))
	return err == nil
}
