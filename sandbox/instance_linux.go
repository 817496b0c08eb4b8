package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Instance is a running sandbox, found in /proc: no state is kept on disk.
type Instance struct {
	PID      int      // the command, PID 1 of the instance, as the host numbers it
	Monitor  int      // the selfdock process waiting for it
	Args     []string // the command line of the instance's PID 1
	Selfdock []string // selfdock's own command line (options, rootfs)
	Age      time.Duration
}

// status reads the fields of /proc/PID/status.
func status(pid int) (map[string]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// ids returns the real and effective ids of a status Uid or Gid line.
func ids(line string) (real, eff int) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return -1, -1
	}
	r, _ := strconv.Atoi(f[0])
	e, _ := strconv.Atoi(f[1])
	return r, e
}

func cmdline(pid int) []string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// instanceOf reports whether pid is the PID 1 of a sandbox owned by uid:
// owned by uid, PID 1 of a nested PID namespace, and the child of a
// selfdock process whose real uid is uid.
func instanceOf(pid, uid int) (*Instance, bool) {
	st, err := status(pid)
	if err != nil {
		return nil, false
	}
	if r, e := ids(st["Uid"]); r != uid || e != uid {
		return nil, false
	}
	ns := strings.Fields(st["NSpid"])
	if len(ns) < 2 || ns[len(ns)-1] != "1" {
		return nil, false
	}
	ppid, _ := strconv.Atoi(st["PPid"])
	pst, err := status(ppid)
	if err != nil {
		return nil, false
	}
	if r, _ := ids(pst["Uid"]); r != uid {
		return nil, false
	}
	// A bundle's monitor is named after the bundle (the kernel names a
	// #! script's process after the script); its argv[0] is the #! line's
	// selfdock.
	self := cmdline(ppid)
	if pst["Name"] != "selfdock" && (len(self) == 0 || filepath.Base(self[0]) != "selfdock") {
		return nil, false
	}
	return &Instance{PID: pid, Monitor: ppid, Args: cmdline(pid), Selfdock: self, Age: age(pid)}, true
}

// age is how long ago pid started.
func age(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0
	}
	ticks, _ := strconv.ParseFloat(f[19], 64)
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	u, _ := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	return time.Duration((u - ticks/100) * float64(time.Second))
}

// Instances lists the running sandboxes of uid.
func Instances(uid int) ([]Instance, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []Instance
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if in, ok := instanceOf(pid, uid); ok {
			out = append(out, *in)
		}
	}
	return out, nil
}
