package hooks

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"syscall"
)

// groupAlive reports whether the process group pgid has a member, other than
// pid except, that is not a zombie. Zombies count as gone: they have ended,
// and where nobody reaps orphans (leaderd as PID 1 without an init) they
// would otherwise look alive forever.
//
// It runs after every hook, so on the step-down path: it lists /proc with
// getdents into a stack buffer and asks getpgid(2) of each pid, reading the
// stat file only of the group's members, instead of opening every stat file.
func groupAlive(pgid, except int) bool {
	dir, err := syscall.Open("/proc", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	defer syscall.Close(dir)
	var buf [8 << 10]byte
	for {
		n, err := syscall.Getdents(dir, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return syscall.Kill(-pgid, 0) == nil
		}
		if n <= 0 {
			return false
		}
		for ents := buf[:n]; len(ents) > 0; {
			name, reclen, ok := direntName(ents)
			if !ok {
				return syscall.Kill(-pgid, 0) == nil
			}
			ents = ents[reclen:]
			if pid, ok := parsePID(name); ok && pid != except && memberAlive(dir, pid, pgid) {
				return true
			}
		}
	}
}

// direntName returns the name of the linux_dirent64 at the start of b and
// the record's length; ok is false for a record the kernel would not write.
func direntName(b []byte) (name []byte, reclen int, ok bool) {
	const nameOff = 19 // after d_ino, d_off, d_reclen and d_type
	if len(b) < nameOff {
		return nil, 0, false
	}
	reclen = int(binary.NativeEndian.Uint16(b[16:18]))
	if reclen < nameOff || reclen > len(b) {
		return nil, 0, false
	}
	name = b[nameOff:reclen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return name, reclen, true
}

// parsePID parses a /proc entry's name; only processes' names are numbers.
func parsePID(name []byte) (pid int, ok bool) {
	if len(name) == 0 || len(name) > 9 {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
		pid = pid*10 + int(c-'0')
	}
	return pid, true
}

// memberAlive reports whether pid is in group pgid and not a zombie.
// getpgid(2) is one syscall with no file to open: it filters out the rest of
// the host; the stat file then tells a zombie, which getpgid still answers for.
func memberAlive(proc, pid, pgid int) bool {
	switch g, err := syscall.Getpgid(pid); {
	case err == syscall.ESRCH:
		return false // exited meanwhile
	case err == nil && g != pgid:
		return false
	}
	// A member, or getpgid was refused (an LSM): the stat file decides.
	var stat [512]byte
	n, ok := readStat(proc, pid, stat[:])
	if !ok {
		return false // exited meanwhile
	}
	zombie, g, ok := parseStat(stat[:n])
	return ok && !zombie && g == pgid
}

// readStat reads /proc/<pid>/stat, through the /proc descriptor proc, into
// buf. One read suffices: the fields wanted come within the first hundred
// bytes or so, and no field after comm holds a ')'.
func readStat(proc, pid int, buf []byte) (n int, ok bool) {
	fd, err := syscall.Openat(proc, strconv.Itoa(pid)+"/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer syscall.Close(fd)
	for {
		n, err = syscall.Read(fd, buf)
		if err != syscall.EINTR {
			return n, err == nil
		}
	}
}

// parseStat parses "pid (comm) state ppid pgrp ..." from a stat file and
// reports whether the process is a zombie (state Z or X) and its group. comm
// may hold anything, spaces and ')' too, so the fields start after its last ')'.
func parseStat(stat []byte) (zombie bool, pgrp int, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false, 0, false
	}
	state, rest := nextField(stat[i+1:])
	_, rest = nextField(rest) // ppid
	g, _ := nextField(rest)
	pgrp, ok = atoi(g)
	if len(state) == 0 || !ok {
		return false, 0, false
	}
	zombie = string(state) == "Z" || string(state) == "X"
	return zombie, pgrp, true
}

// nextField splits off b's first field separated by ASCII white space, as
// strings.Fields would (after comm a stat file is ASCII).
func nextField(b []byte) (field, rest []byte) {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	i := 0
	for i < len(b) && !isSpace(b[i]) {
		i++
	}
	return b[:i], b[i:]
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\v' || c == '\f' || c == '\r'
}

// atoi parses a decimal int, with an optional sign as strconv.Atoi takes,
// without allocating.
func atoi(b []byte) (int, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, b = b[0] == '-', b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
