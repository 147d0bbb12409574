package peertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Default deadlines for readiness and stopping. Generous: two cores are
// shared with compilers while tests run.
const (
	ReadyTimeout = 60 * time.Second
	StopTimeout  = 20 * time.Second
	pollEvery    = 20 * time.Millisecond
)

// Proc is a child process started in its own process group, with stdout and
// stderr going to one log file. Signals go to the whole group, so forked
// children (storescp --fork) go with it.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string

	done    chan struct{}
	waitErr error
	logFile *os.File
}

// Launch starts name with args and env (nil = inherit) in dir, appending
// stdout and stderr to logPath.
func Launch(name string, args, env []string, dir, logPath string) (*Proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("peertest: %s log: %w", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = lf
	cmd.Stderr = lf
	// Own process group so a group kill takes forked children too; a
	// parent-death signal so nothing survives a crashed test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("peertest: start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{}), logFile: lf}
	go func() {
		p.waitErr = cmd.Wait()
		_ = lf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process ID (also its process group ID).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its Wait error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Wait waits for the process to exit, up to timeout.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("peertest: %s (pid %d) still running after %s", p.Name, p.Pid(), timeout)
	}
}

// Signal sends sig to the whole process group. Once the leader has been
// reaped, its PID could in principle be reused; a process group ID cannot
// be while the group has members, so the group is signalled only while
// some process is still in it.
func (p *Proc) Signal(sig syscall.Signal) error {
	if done, _ := p.Exited(); done && !groupAlive(p.Pid()) {
		return nil
	}
	err := syscall.Kill(-p.Pid(), sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Stop sends SIGTERM to the group and waits up to timeout, then SIGKILLs
// it. It returns the process's Wait error if it exited on SIGTERM.
func (p *Proc) Stop(timeout time.Duration) error {
	if done, err := p.Exited(); done {
		_ = p.Signal(syscall.SIGKILL) // stray children
		return err
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		_ = p.Signal(syscall.SIGKILL)
		return p.waitErr
	case <-time.After(timeout):
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("peertest: %s (pid %d) ignored SIGTERM for %s; killed", p.Name, p.Pid(), timeout)
	}
}

// Kill SIGKILLs the group and waits for the process to be reaped.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Log returns the log file's content.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogSize is the log file's current size: an offset for LogSince.
func (p *Proc) LogSize() int64 {
	st, err := os.Stat(p.LogPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// LogSince returns what was logged after offset.
func (p *Proc) LogSince(offset int64) string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// LogTail returns at most the last n bytes of the log, for failure messages.
func (p *Proc) LogTail(n int) string {
	s := p.Log()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// WaitLog polls the log after offset until re matches, up to timeout, and
// returns the matching line.
func (p *Proc) WaitLog(offset int64, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(p.LogSince(offset), "\n") {
			if re.MatchString(line) {
				return line, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("peertest: no log line of %s matching %q within %s", p.Name, re, timeout)
		}
		time.Sleep(pollEvery)
	}
}

// groupAlive reports whether any process is in process group pgid
// (/proc/PID/stat field 5).
func groupAlive(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true // cannot tell; signalling a dead group is harmless (ESRCH)
	}
	want := strconv.Itoa(pgid)
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// comm may hold spaces; fields after the last ')' are: state ppid pgrp …
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[2] == want {
			return true
		}
	}
	return false
}

// ProcStatus reads a field of /proc/PID/status in bytes (VmHWM, VmRSS…).
func ProcStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		return n, nil
	}
	return 0, fmt.Errorf("peertest: no %s in /proc/%d/status", field, pid)
}

// errExited is returned by the wait helpers when the process died first.
func (p *Proc) errExited() error {
	if done, err := p.Exited(); done {
		return fmt.Errorf("peertest: %s exited before it was ready (%v); log:\n%s", p.Name, err, p.LogTail(4000))
	}
	return nil
}

// WaitTCP polls until addr accepts a TCP connection, the process exits, or
// the deadline passes.
func (p *Proc) WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := p.errExited(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("peertest: %s not accepting on %s after %s: %v", p.Name, addr, timeout, err)
		}
		time.Sleep(pollEvery)
	}
}

// WaitHTTP polls url until it answers status want, the process exits, or the
// deadline passes.
func (p *Proc) WaitHTTP(url string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for {
		if err := p.errExited(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == want {
				cancel()
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("peertest: %s: %s did not answer %d within %s (last: %s)", p.Name, url, want, timeout, last)
		}
		time.Sleep(pollEvery)
	}
}

// cleanupProc registers p's stop with t, dumping the log tail when t failed.
func cleanupProc(t testing.TB, p *Proc) {
	t.Cleanup(func() {
		_ = p.Stop(StopTimeout)
		if t.Failed() {
			t.Logf("%s log (%s), tail:\n%s", p.Name, p.LogPath, p.LogTail(3000))
		}
	})
}
