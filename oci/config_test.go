package oci

import (
	"strings"
	"testing"
)

const slurm = `{"ociVersion":"1.0.0","process":{"terminal":false,"user":{"uid":1000,"gid":1000},
"args":["/tmp/slurm/startup"],"env":["SLURM_ARRAY_TASK_ID=3","PATH=/bin"],"cwd":"/work"},
"root":{"path":"rootfs","readonly":true},"hostname":"node1",
"mounts":[{"destination":"/proc","type":"proc","source":"proc"},
{"destination":"/tmp/slurm/startup","type":"none","source":"/var/spool/slurm/job1/script","options":["bind","ro"]},
{"destination":"/out","type":"bind","source":"/home/u/out","options":["rbind","rw"]},
{"destination":"/scratch","type":"tmpfs","source":"tmpfs","options":["nosuid","size=64m","mode=1777"]}],
"linux":{"namespaces":[{"type":"pid"}]},"annotations":{"a":"b"},"weird":1}`

func TestParseSlurm(t *testing.T) {
	b, err := Parse([]byte(slurm), "/b", 1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if b.Root != "/b/rootfs" || !b.Readonly || b.Cwd != "/work" || b.Hostname != "node1" || b.Args[0] != "/tmp/slurm/startup" {
		t.Errorf("parsed %+v", b)
	}
	if len(b.Binds) != 2 || b.Binds[0] != (Bind{"/var/spool/slurm/job1/script", "/tmp/slurm/startup", true}) ||
		b.Binds[1] != (Bind{"/home/u/out", "/out", false}) {
		t.Errorf("binds %+v", b.Binds)
	}
	if len(b.Tmpfs) != 1 || b.Tmpfs[0] != (Tmpfs{"/scratch", "size=64m,mode=1777"}) {
		t.Errorf("tmpfs %+v", b.Tmpfs)
	}
	if strings.Join(b.Warnings, ",") != "weird" {
		t.Errorf("warnings %v", b.Warnings)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tt := range []struct{ json, want string }{
		{`{"process":{"user":{"uid":0,"gid":1000},"args":["x"]},"root":{"path":"r"}}`, "process.user.uid"},
		{`{"process":{"user":{"uid":1000,"gid":0},"args":["x"]},"root":{"path":"r"}}`, "process.user.gid"},
		{`{"process":{"args":["x"],"capabilities":{"bounding":["CAP_SYS_ADMIN"]}},"root":{"path":"r"}}`, "capabilities"},
		{`{"process":{"args":["x"]},"root":{"path":"r"},"linux":{"devices":[{"path":"/dev/sda"}]}}`, "linux.devices"},
		{`{"process":{"args":["x"]},"root":{"path":"r"},"linux":{"uidMappings":[{"containerID":0}]}}`, "uidMappings"},
		{`{"process":{"args":["x"]},"root":{"path":"r"},"mounts":[{"destination":"/x","type":"nfs","source":"s"}]}`, "only binds"},
		{`{"process":{"args":["x"]},"root":{"path":"r"},"mounts":[{"destination":"rel","type":"bind","source":"s"}]}`, "not absolute"},
		{`{"process":{"args":["x"]}}`, "root.path"},
		{`not json`, "config.json"},
	} {
		_, err := Parse([]byte(tt.json), "/b", 1000, 1000)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.json, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(slurm))
	f.Fuzz(func(t *testing.T, b []byte) {
		bu, err := Parse(b, "/b", 1000, 1000)
		if err != nil {
			return
		}
		if !strings.HasPrefix(bu.Root, "/") {
			t.Fatalf("relative root %q", bu.Root)
		}
		for _, m := range bu.Binds {
			if !strings.HasPrefix(m.Dest, "/") || !strings.HasPrefix(m.Source, "/") {
				t.Fatalf("bind %+v", m)
			}
		}
	})
}
