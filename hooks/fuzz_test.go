package hooks

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// loggedLine is one "hook output" record.
type loggedLine struct {
	hook, stream string
	level        slog.Level
	line         string
	truncated    bool
	hasLine      bool
}

// lineCollector is a slog.Handler that keeps every record as a loggedLine.
type lineCollector struct {
	mu    sync.Mutex
	lines []loggedLine
}

func (c *lineCollector) Enabled(context.Context, slog.Level) bool { return true }
func (c *lineCollector) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *lineCollector) WithGroup(string) slog.Handler            { return c }

func (c *lineCollector) Handle(_ context.Context, r slog.Record) error {
	l := loggedLine{level: r.Level}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "hook":
			l.hook = a.Value.String()
		case "stream":
			l.stream = a.Value.String()
		case "line":
			l.line, l.hasLine = a.Value.String(), true
		case "truncated":
			l.truncated = a.Value.Bool()
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, l)
	return nil
}

// chunkReader returns at most n bytes per Read, as a pipe may.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// FuzzLogLines: hook output is logged one record per line, as written
// (and Runner.Output is given the same lines): joined with newlines, the
// logged lines give back the output, except that a trailing "\r" is
// dropped from each line (CRLF output) and a line longer than MaxLineBytes
// keeps only its first MaxLineBytes bytes and is marked truncated. No
// logged line holds a newline or exceeds the limit, however the output
// arrives (chunk) and however long a line is (long inserts a line of up to
// twice the limit).
func FuzzLogLines(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), uint16(0), uint8(255))
	f.Add([]byte("no newline at the end"), uint16(0), uint8(0))
	f.Add([]byte("crlf\r\nline\r\n\r\n"), uint16(0), uint8(3))
	f.Add([]byte("\n\n\n"), uint16(0), uint8(1))
	f.Add([]byte(""), uint16(0), uint8(7))
	f.Add([]byte("\x00\xff\xfe binary \x80\n\tend"), uint16(0), uint8(2))
	// The long line goes between the middle two bytes: "a\n" + 2*long
	// bytes + "\nb", or + "x\nb" for an odd length.
	f.Add([]byte("a\n\nb"), uint16(MaxLineBytes/2), uint8(255))                  // exactly MaxLineBytes
	f.Add([]byte("a\nx\nb"), uint16(MaxLineBytes/2-1), uint8(255))               // one short of it
	f.Add([]byte("a\nx\nb"), uint16(MaxLineBytes/2), uint8(200))                 // one over it, then more lines
	f.Add([]byte("a\n\r\n"), uint16(MaxLineBytes/2), uint8(255))                 // CRLF after exactly MaxLineBytes
	f.Add([]byte("a"), uint16(MaxLineBytes/2), uint8(255))                       // a long last line without newline
	f.Add([]byte("\n\r"), uint16(MaxLineBytes/2), uint8(255))                    // exactly MaxLineBytes, then "\r" at the end
	f.Add([]byte("\n\rz"), uint16(MaxLineBytes/2), uint8(255))                   // exactly MaxLineBytes, then "\r" and more
	f.Add([]byte(strings.Repeat("x\n", 1000)), uint16(MaxLineBytes-1), uint8(9)) // nearly twice the limit
	f.Fuzz(func(t *testing.T, data []byte, long uint16, chunk uint8) {
		input := data
		if long > 0 {
			// A long line in the middle: 2*long bytes, no newline in it.
			mid := len(data) / 2
			input = append(append(append([]byte(nil), data[:mid]...), bytes.Repeat([]byte{'y'}, 2*int(long))...), data[mid:]...)
		}
		c := &lineCollector{}
		var given []string // what Runner.Output would get
		readLines(slog.New(c), "promote", "stderr", slog.LevelWarn, chunkReader{bytes.NewReader(input), int(chunk) + 1},
			func(line string) { given = append(given, line) })

		// What should be logged: one record per line; a last line
		// without a newline counts, an empty remainder does not.
		segments := strings.Split(string(input), "\n")
		if segments[len(segments)-1] == "" {
			segments = segments[:len(segments)-1]
		}
		if len(c.lines) != len(segments) {
			t.Fatalf("%d lines logged for %d lines of output", len(c.lines), len(segments))
		}
		truncatedAny := false
		for i, l := range c.lines {
			seg := segments[i]
			if l.hook != "promote" || l.stream != "stderr" || l.level != slog.LevelWarn || !l.hasLine {
				t.Fatalf("line %d logged as %+v", i, l)
			}
			if len(l.line) > MaxLineBytes || strings.Contains(l.line, "\n") {
				t.Fatalf("line %d: %d bytes, newline %v; the limit is %d bytes on one line", i, len(l.line), strings.Contains(l.line, "\n"), MaxLineBytes)
			}
			// Truncated exactly when something was dropped: a line of
			// exactly MaxLineBytes (before its "\r\n" or "\n") is not.
			if want := len(strings.TrimSuffix(seg, "\r")) > MaxLineBytes; l.truncated != want {
				t.Fatalf("line %d of %d bytes: truncated=%v, want %v", i, len(seg), l.truncated, want)
			}
			if len(seg) > MaxLineBytes {
				seg = seg[:MaxLineBytes]
			}
			if want := strings.TrimSuffix(seg, "\r"); l.line != want {
				t.Fatalf("line %d logged as %q (%d bytes), want %q (%d bytes)", i, abbreviate(l.line), len(l.line), abbreviate(want), len(want))
			}
			if i >= len(given) || given[i] != l.line {
				t.Fatalf("line %d logged as %q but given to Output as %q", i, abbreviate(l.line), abbreviate(strings.Join(given[i:min(i+1, len(given))], "")))
			}
			truncatedAny = truncatedAny || l.truncated
		}
		if len(given) != len(c.lines) {
			t.Fatalf("%d lines given to Output, %d logged", len(given), len(c.lines))
		}
		// Without truncation or carriage returns, the lines are the output.
		if !truncatedAny && !bytes.Contains(input, []byte("\r")) {
			var joined strings.Builder
			for _, l := range c.lines {
				joined.WriteString(l.line + "\n")
			}
			got, want := joined.String(), string(input)
			if !strings.HasSuffix(want, "\n") && want != "" {
				want += "\n"
			}
			if got != want {
				t.Fatalf("joined lines %q, want the output %q", abbreviate(got), abbreviate(want))
			}
		}
	})
}

// abbreviate keeps failure messages readable when a line is 64 KiB long.
func abbreviate(s string) string {
	if len(s) <= 200 {
		return s
	}
	return s[:100] + "..." + s[len(s)-100:]
}
