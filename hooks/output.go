package hooks

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"time"
)

// outputReader logs a hook's stdout and stderr line by line as they arrive,
// and hands each line to the Runner's Output.
type outputReader struct {
	files []*os.File
	done  chan struct{} // closed when every stream has been read to its end
}

// readOutput starts one reader per stream; output may be nil. The caller
// must call stop.
func (p *process) readOutput(log *slog.Logger, hook string, output func(line string)) *outputReader {
	o := &outputReader{files: []*os.File{p.stdout, p.stderr}, done: make(chan struct{})}
	streamDone := make(chan struct{}, 2)
	go func() {
		readLines(log, hook, "stdout", slog.LevelInfo, p.stdout, output)
		streamDone <- struct{}{}
	}()
	go func() {
		readLines(log, hook, "stderr", slog.LevelWarn, p.stderr, output)
		streamDone <- struct{}{}
	}()
	go func() {
		<-streamDone
		<-streamDone
		close(o.done)
	}()
	return o
}

// stop waits up to d for both streams to reach EOF, then closes the read
// ends (which ends the readers at once) and waits for the readers. It reports
// whether the streams ended by themselves.
func (o *outputReader) stop(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	drained := true
	select {
	case <-o.done:
	case <-t.C:
		drained = false
	}
	for _, f := range o.files {
		f.Close() // the read ends are pollable, so Close wakes a blocked Read
	}
	<-o.done
	return drained
}

// readLines logs each line of r and hands it to output (when not nil); a
// line longer than MaxLineBytes is cut there (logged with truncated=true)
// and the rest of it dropped.
func readLines(log *slog.Logger, hook, stream string, level slog.Level, r io.Reader, output func(line string)) {
	br := bufio.NewReaderSize(r, MaxLineBytes)
	emit := func(raw []byte, truncated bool) {
		line := string(bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r")))
		attrs := []slog.Attr{slog.String("hook", hook), slog.String("stream", stream), slog.String("line", line)}
		if truncated {
			attrs = append(attrs, slog.Bool("truncated", true))
		}
		log.LogAttrs(context.Background(), level, "hook output", attrs...)
		if output != nil {
			output(line)
		}
	}
	skipping := false // dropping the rest of an over-long line
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			if !skipping {
				emit(line, false)
			}
			skipping = false
		case err == bufio.ErrBufferFull:
			if skipping {
				continue
			}
			// The buffer filled before a newline: a line of exactly
			// MaxLineBytes (its "\n" or "\r\n" next, or the end of the
			// output) lost nothing and is not marked truncated. The copy
			// is needed as Peek refills the buffer line points into.
			line = bytes.Clone(line)
			if lineEnds(br) {
				emit(line, false)
				continue
			}
			emit(line, true)
			skipping = true
		default: // EOF, or the read end closed by stop
			if len(line) > 0 && !skipping {
				emit(line, false)
			}
			return
		}
	}
}

// lineEnds reports whether the line whose first MaxLineBytes br just
// returned ends there: the output ends, or a newline (after an optional
// "\r") follows. Those bytes are consumed.
func lineEnds(br *bufio.Reader) bool {
	next, err := br.Peek(1)
	switch {
	case err != nil:
		return true // nothing more: the line ended with the output
	case next[0] == '\n':
		_, _ = br.Discard(1)
		return true
	case next[0] != '\r':
		return false
	}
	next, err = br.Peek(2)
	if err != nil || next[1] == '\n' {
		_, _ = br.Discard(len(next))
		return true
	}
	return false
}
