package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// KillGrace is the longest time between SIGTERM and SIGKILL at a hook's
// timeout: long enough for a well-behaved script to clean up, short enough to
// be a small part of the demote budget. It is capped at Timeout/2.
const KillGrace = 500 * time.Millisecond

// WaitDelay bounds each of the two waits after a hook's shell has been killed
// or has exited: for the killed shell to be reaped, and for its output pipes to
// close. A process that escaped the group (setsid) can hold the pipes open
// forever; Run stops reading rather than wait for it. So Run returns at most
// about Timeout + 2*WaitDelay after it started.
const WaitDelay = 100 * time.Millisecond

// MaxLineBytes bounds one logged output line; the rest of a longer line is
// dropped, so a hook cannot exhaust leaderd's memory through its output.
const MaxLineBytes = 64 << 10

// Errors in Result.Err; match with errors.Is.
var (
	ErrTimeout  = errors.New("timed out")
	ErrCanceled = errors.New("canceled")
)

// configPrefix starts every variable of leaderd's own configuration
// (LEADERD_API_TOKEN, LEADERD_PASSWORD, LEADERD_ON_PROMOTE, ...). None of
// them is inherited by a child: only the hook contract, Env.Vars, is set.
const configPrefix = "LEADERD_"

// Runner runs one hook command line. It holds no state between runs: Run may
// be called again once a previous Run has returned. Callers serialise runs.
type Runner struct {
	Name    string        // "promote" or "demote" (used in logs and Result.Hook)
	Command string        // run as /bin/sh -c Command; empty = nothing to run, Run returns success at once; never logged (it may hold secrets)
	Timeout time.Duration // the whole process group has ended by Timeout after start; must be > 0
	Logger  *slog.Logger  // nil = discard
	Dir     string        // working dir, optional ("" = leaderd's)

	// Output, when set, is also given each output line as it is logged:
	// without its line ending, at most MaxLineBytes. stdout and stderr are
	// read by two goroutines, so it must be safe for concurrent use, and
	// return promptly (reading waits for it). Every call has returned by the
	// time Run returns.
	Output func(line string)
}

// Run runs the command in its own process group with env's LEADERD_*
// variables (and no other LEADERD_* variable), logs each output line, and
// returns how it ended.
//
//   - At Timeout-grace (grace = min(KillGrace, Timeout/2)) the whole group gets
//     SIGTERM, and at Timeout SIGKILL if any of it is left: every member keeps
//     its grace even when the shell itself died at once. The Result is
//     TimedOut even if the shell then exits 0. Both signals are sent by
//     timers armed before anything is logged, so they go out on time even
//     if logging stalls.
//   - When ctx ends first, the group gets SIGKILL at once (the caller cancels
//     only when time is short); the Result is Canceled. A ctx already done
//     means the hook is not started.
//   - When the shell exits on its own, whatever is left in its group (say a
//     "daemon &" it started) is killed too: nothing of a hook outlives it. The
//     Result still reports the shell's own exit status, and a warning is
//     logged.
//
// Err is nil exactly when the shell exited 0 within its time and ctx.
func (r *Runner) Run(ctx context.Context, env Env) Result {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := Result{Hook: r.Name, Reason: env.Reason, Start: time.Now(), ExitCode: -1}
	done := func() Result {
		res.End = time.Now()
		res.Duration = res.End.Sub(res.Start)
		return res
	}

	if r.Command == "" {
		res.ExitCode = 0
		return done()
	}
	if r.Timeout <= 0 {
		// An unbounded hook would break the demote-before-lease-expiry budget.
		res.Err = fmt.Errorf("hook %s: timeout must be positive, got %s", r.Name, r.Timeout)
		return r.ended(log, done())
	}
	if ctx.Err() != nil {
		res.Canceled = true
		res.Err = fmt.Errorf("hook %s: not started: %w: %w", r.Name, ErrCanceled, context.Cause(ctx))
		return r.ended(log, done())
	}

	p, err := r.start(env)
	if err != nil {
		res.Err = fmt.Errorf("hook %s: start: %w", r.Name, err)
		return r.ended(log, done())
	}
	// The timers signal the group themselves, from their own goroutines:
	// a hook is stopped at its timeout whatever this goroutine is doing.
	grace := killGrace(r.Timeout)
	deadline := res.Start.Add(r.Timeout)
	termSent := p.signalAt(deadline.Add(-grace), syscall.SIGTERM)
	killSent := p.signalAt(deadline, syscall.SIGKILL)
	defer p.disarm()

	log.Info("hook started", "hook", r.Name, "reason", env.Reason, "pid", p.pid)
	lines := p.readOutput(log, r.Name, r.Output)

	// The shell is reaped only after the timers are disarmed: until then it
	// stays a zombie, so its process group id cannot be reused under a
	// signal of ours.
	var (
		killed    bool             // the group got SIGKILL for the timeout or ctx
		shellDone = p.exited       // nil once the shell's exit has been handled
		groupPoll <-chan time.Time // ticks while the rest of the group has its grace
	)
wait:
	for {
		select {
		case <-shellDone:
			if !res.TimedOut && closed(termSent) {
				// SIGTERM went out as the shell exited: still a timeout.
				res.TimedOut = true
				log.Warn("hook timed out; sent SIGTERM to its process group", "hook", r.Name, "timeout", r.Timeout, "grace", grace)
			}
			if !res.TimedOut {
				break wait
			}
			// SIGTERM has gone out and the shell is gone, but the rest of its
			// group keeps its grace (say a child cleaning up) until Timeout.
			shellDone = nil
			ticker := time.NewTicker(20 * time.Millisecond)
			defer ticker.Stop()
			groupPoll = ticker.C
		case <-groupPoll:
			if !p.othersAlive() {
				break wait
			}
		case <-termSent:
			termSent = nil
			if !res.TimedOut {
				res.TimedOut = true
				log.Warn("hook timed out; sent SIGTERM to its process group", "hook", r.Name, "timeout", r.Timeout, "grace", grace)
			}
		case <-killSent:
			res.TimedOut = true
			log.Warn("hook still running after grace; sent SIGKILL to its process group", "hook", r.Name)
			killed = true
			break wait
		case <-ctx.Done():
			res.Canceled = true
			log.Warn("hook canceled; sending SIGKILL to its process group", "hook", r.Name, "err", context.Cause(ctx))
			p.signalGroup(syscall.SIGKILL)
			killed = true
			break wait
		}
	}
	// From here on Run signals the group itself, and only before the reap.
	p.disarm()

	if killed && !p.waitExited(WaitDelay) {
		// SIGKILL has been sent but the shell is not gone (uninterruptible
		// sleep): report it rather than overrun the caller's budget, and
		// reap it whenever it does exit.
		lines.stop(0)
		go p.reap()
		res.Err = fmt.Errorf("%w; not exited %s after SIGKILL", r.killedErr(ctx, res), WaitDelay)
		return r.ended(log, done())
	}
	// The shell has exited but is not reaped yet (on Linux), so its process
	// group id cannot have been reused: kill whatever the hook left behind.
	// Nothing of a hook outlives it.
	if !killed && !res.TimedOut && p.othersAlive() {
		log.Warn("hook left processes running in its group; killing them", "hook", r.Name)
	}
	p.signalGroup(syscall.SIGKILL)
	waitErr := p.reap()
	if !lines.stop(WaitDelay) {
		log.Warn("hook output still open after it ended (a process escaped its group?); stopped reading", "hook", r.Name)
	}

	res.ExitCode = p.cmd.ProcessState.ExitCode()
	switch {
	case res.Canceled || res.TimedOut:
		res.Err = fmt.Errorf("%w (%s)", r.killedErr(ctx, res), p.cmd.ProcessState)
	case waitErr != nil:
		res.Err = fmt.Errorf("hook %s: %w", r.Name, waitErr)
	}
	return r.ended(log, done())
}

// killedErr is the error of a run that was cut short by ctx or its timeout.
func (r *Runner) killedErr(ctx context.Context, res Result) error {
	if res.Canceled {
		return fmt.Errorf("hook %s: %w: %w", r.Name, ErrCanceled, context.Cause(ctx))
	}
	return fmt.Errorf("hook %s: %w after %s", r.Name, ErrTimeout, r.Timeout)
}

// ended logs the end of a run and returns res.
func (r *Runner) ended(log *slog.Logger, res Result) Result {
	level := slog.LevelInfo
	switch {
	case res.Canceled:
		// Its caller ended it on purpose (a lost tenure, a leader-change
		// hook made moot): not a failure of the hook.
		level = slog.LevelWarn
	case res.Err != nil:
		level = slog.LevelError
	}
	log.Log(context.Background(), level, "hook ended", "hook", r.Name, "reason", res.Reason,
		"exit_code", res.ExitCode, "duration", res.Duration, "err", res.Err)
	return res
}

// killGrace is the time between SIGTERM and SIGKILL for a timeout.
func killGrace(timeout time.Duration) time.Duration {
	return min(KillGrace, timeout/2)
}

// hookEnv is the inherited environment without any LEADERD_* variable
// (leaderd's own configuration: the API token, the password, the hook
// command lines...), followed by env's variables, the hook contract.
func hookEnv(inherited []string, env Env) []string {
	vars := env.Vars()
	out := make([]string, 0, len(inherited)+len(vars))
	for _, kv := range inherited {
		if !strings.HasPrefix(kv, configPrefix) {
			out = append(out, kv)
		}
	}
	return append(out, vars...)
}

// process is one started hook shell.
type process struct {
	cmd    *exec.Cmd
	pid    int // also the process group id
	stdout *os.File
	stderr *os.File

	exited  chan struct{} // closed when the shell has exited (on Linux, still unreaped)
	reaped  bool          // set before exited is closed: the waiter already reaped it
	waitErr error         // set before exited is closed, when reaped

	timersMu sync.Mutex    // orders the timers' signals before disarm
	disarmed bool          // the timers must not signal any more
	timers   []*time.Timer // armed by signalAt
}

// start starts the shell with its output on pipes whose read ends Run owns,
// so Run decides how long to read them (exec's own copying would tie Wait to
// the pipes' closing).
func (r *Runner) start(env Env) (*process, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", r.Command)
	cmd.Env = hookEnv(os.Environ(), env)
	cmd.Dir = r.Dir
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	// The child has its copies; ours must go so the read ends see EOF.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, stdout: outR, stderr: errR, exited: make(chan struct{})}
	go func() {
		p.reaped, p.waitErr = waitExit(p.cmd)
		close(p.exited)
	}()
	return p, nil
}

// signalAt sends sig to the group at t, from a timer of its own, unless
// disarm was called first; the returned channel is closed as it is sent.
func (p *process) signalAt(t time.Time, sig syscall.Signal) <-chan struct{} {
	sent := make(chan struct{})
	p.timersMu.Lock()
	defer p.timersMu.Unlock()
	p.timers = append(p.timers, time.AfterFunc(time.Until(t), func() {
		p.timersMu.Lock()
		defer p.timersMu.Unlock()
		if !p.disarmed {
			// Closed first: Run may see the hook exit of this signal
			// before this goroutine runs again.
			close(sent)
			p.signalGroup(sig)
		}
	}))
	return sent
}

// disarm stops the timers of signalAt. Once it returns none of them signals
// the group, so Run may reap the shell (and free its group id). Idempotent.
func (p *process) disarm() {
	p.timersMu.Lock()
	defer p.timersMu.Unlock()
	p.disarmed = true
	for _, t := range p.timers {
		t.Stop()
	}
}

// closed reports whether ch is closed (a nil ch is not).
func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (p *process) signalGroup(sig syscall.Signal) {
	// ESRCH: the group is already gone, which is what we want.
	_ = syscall.Kill(-p.pid, sig)
}

// othersAlive reports whether a process other than the shell is still running
// in its group.
func (p *process) othersAlive() bool {
	return groupAlive(p.pid, p.pid)
}

// waitExited waits up to d for the shell to exit.
func (p *process) waitExited(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	}
}

// reap waits for the shell to exit, reaps it and returns exec's Wait error.
func (p *process) reap() error {
	<-p.exited
	if p.reaped {
		return p.waitErr
	}
	return p.cmd.Wait()
}
