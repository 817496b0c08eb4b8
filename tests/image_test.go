package tests

// `selfdock import` run by sdtest through the installed setuid binary:
// the image is a docker save archive built here from Debian's static
// busybox, without Docker.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type imgEnt struct {
	name, body, link string
	typ              byte
	mode             int64
}

func imgTar(t testing.TB, ents ...imgEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)),
			ModTime: time.Unix(1e9, 0), Devmajor: 1, Devminor: 3}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func imgSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// imgDockerSave writes a docker save archive (the form before Docker 25) of
// one image with the given layers (the first one gzipped) and config.
func imgDockerSave(t testing.TB, tag string, config map[string]any, layers ...[]byte) []byte {
	t.Helper()
	var diffIDs, names []string
	var ents []imgEnt
	for i, l := range layers {
		diffIDs = append(diffIDs, "sha256:"+imgSHA(l))
		if i == 0 {
			var gz bytes.Buffer
			w := gzip.NewWriter(&gz)
			w.Write(l)
			w.Close()
			l = gz.Bytes()
		}
		id := imgSHA(append([]byte(strconv.Itoa(i)), l...))
		ents = append(ents, imgEnt{name: id + "/layer.tar", body: string(l), typ: tar.TypeReg, mode: 0o644})
		names = append(names, id+"/layer.tar")
	}
	cfg, err := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": config,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := json.Marshal([]map[string]any{{"Config": imgSHA(cfg) + ".json", "RepoTags": []string{tag}, "Layers": names}})
	ents = append(ents, imgEnt{name: imgSHA(cfg) + ".json", body: string(cfg), typ: tar.TypeReg, mode: 0o644},
		imgEnt{name: "manifest.json", body: string(manifest), typ: tar.TypeReg, mode: 0o644})
	return imgTar(t, ents...)
}

// imgBusybox is a two-layer busybox image with a setuid file and a
// device node (which sdtest's import must drop), a whiteout and a hardlink.
func imgBusybox(t testing.TB) []byte {
	bb, err := os.ReadFile(busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := func(name, body string, mode int64) imgEnt {
		return imgEnt{name: name, body: body, typ: tar.TypeReg, mode: mode}
	}
	dir := func(name string, mode int64) imgEnt { return imgEnt{name: name, typ: tar.TypeDir, mode: mode} }
	l1 := imgTar(t, dir("./", 0o755), dir("bin/", 0o755), reg("bin/busybox", string(bb), 0o755),
		imgEnt{name: "bin/sh", link: "busybox", typ: tar.TypeSymlink, mode: 0o777}, reg("bin/su", "not really su", 0o4755),
		dir("etc/", 0o755), reg("etc/motd", "layer 1\n", 0o644), dir("dev/", 0o755),
		imgEnt{name: "dev/null", typ: tar.TypeChar, mode: 0o666}, dir("proc/", 0o555), dir("tmp/", 0o1777))
	l2 := imgTar(t, reg("etc/.wh.motd", "", 0o644), reg("etc/greeting", "from layer 2\n", 0o644),
		imgEnt{name: "bin/ls", link: "bin/busybox", typ: tar.TypeLink, mode: 0o755})
	return imgDockerSave(t, "selfdock-test/busybox:1", map[string]any{
		"Entrypoint": []string{"/bin/sh", "-c"}, "Cmd": []string{`echo "$GREETING from $(pwd) as $(id -u)"`},
		"Env": []string{"PATH=/bin", "GREETING=hello"}, "WorkingDir": "/tmp",
	}, l1, l2)
}

func TestImageImportBusybox(t *testing.T) {
	h := need(t)
	src := filepath.Join(h.dir(t, &h.user, 0o755), "busybox.tar")
	writeFile(t, src, string(imgBusybox(t)), 0o644, &h.user)
	parent := h.dir(t, &h.user, 0o755)
	dest := filepath.Join(parent, "root")
	r := h.sd(t, "import", src, dest)
	if !wantCode(t, r, 0) {
		return
	}
	if got := strings.TrimSpace(r.stderr); got != "selfdock: import: dropped 1 device node, 1 setuid/setgid bit" {
		t.Errorf("summary %q", got)
	}
	imgCheck(t, h, dest)
	uid := strconv.Itoa(h.user.uid)
	wantOut(t, h.sd(t, "--rootfs", dest, "run", "/bin/busybox", "sh", "-c", "cat /etc/greeting; ls /etc; id -u"),
		"from layer 2\ngreeting\n"+uid)
	// No command: the image's Entrypoint and Cmd, with its Env and WorkingDir.
	wantOut(t, h.sd(t, "--rootfs", dest, "run"), "hello from /tmp as "+uid)
	// The same from standard input, quiet.
	dest2 := filepath.Join(parent, "root2")
	r = h.sdo(t, opts{stdin: string(imgBusybox(t))}, "import", "--quiet", "-", dest2)
	if wantCode(t, r, 0) && r.stderr != "" {
		t.Errorf("--quiet printed %q", r.stderr)
	}
	imgCheck(t, h, dest2)
	// A destination that exists and is not empty is refused.
	wantRefused(t, h.sd(t, "import", src, dest), 124)
}

// imgCheck: every file is sdtest's, no setuid bit, no device node.
func imgCheck(t *testing.T, h *harness, dest string) {
	t.Helper()
	seen := 0
	filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		seen++
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Error(err)
			return nil
		}
		if int(st.Uid) != h.user.uid || int(st.Gid) != h.user.gid {
			t.Errorf("%s: owner %d:%d, want sdtest", p, st.Uid, st.Gid)
		}
		if st.Mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 {
			t.Errorf("%s: mode %o keeps a setuid/setgid bit", p, st.Mode)
		}
		if f := st.Mode & syscall.S_IFMT; f == syscall.S_IFCHR || f == syscall.S_IFBLK {
			t.Errorf("%s: a device node", p)
		}
		return nil
	})
	for _, p := range []string{"etc/motd", "dev/null"} {
		mustNotExist(t, filepath.Join(dest, p))
	}
	if b, err := os.ReadFile(filepath.Join(dest, ".selfdock/image.json")); err != nil || !bytes.Contains(b, []byte(`"GREETING=hello"`)) {
		t.Errorf("image config: %q %v", b, err)
	}
	if seen < 12 {
		t.Errorf("only %d entries imported", seen)
	}
}

// Import runs with the caller's rights only: what sdtest cannot read or
// write, selfdock import cannot either; a bad archive leaves nothing.
func TestImageImportRefused(t *testing.T) {
	h := need(t)
	img := imgBusybox(t)
	mine := h.dir(t, &h.user, 0o755)
	src := writeFile(t, filepath.Join(mine, "busybox.tar"), string(img), 0o644, &h.user)
	rootOnly := writeFile(t, filepath.Join(h.dir(t, nil, 0o755), "busybox.tar"), string(img), 0o600, nil)
	rootDir := h.dir(t, nil, 0o755)
	bad := writeFile(t, filepath.Join(mine, "bad.tar"), string(img[:len(img)/2]), 0o644, &h.user)
	escape := writeFile(t, filepath.Join(mine, "escape.tar"), string(imgDockerSave(t, "x:1", map[string]any{},
		imgTar(t, imgEnt{name: "evil", link: mine, typ: tar.TypeSymlink, mode: 0o777},
			imgEnt{name: "evil/pwned", body: "x", typ: tar.TypeReg, mode: 0o644}))), 0o644, &h.user)
	before := snapshot(t, mine)
	for _, tc := range []struct{ src, dest, why string }{
		{src, filepath.Join(rootDir, "root"), "permission denied"},
		{rootOnly, filepath.Join(mine, "root"), "permission denied"},
		{"/etc/shadow", filepath.Join(mine, "root"), "permission denied"},
		{bad, filepath.Join(mine, "root"), "unexpected EOF"},
		{escape, filepath.Join(mine, "root"), "points outside the image"},
		{src, filepath.Join(mine, "missing", "root"), "no such file or directory"},
	} {
		r := h.sd(t, "import", tc.src, tc.dest)
		wantRefused(t, r, 124)
		if !strings.Contains(r.stderr, tc.why) {
			t.Errorf("want %q in:\n%v", tc.why, r)
		}
		mustNotExist(t, tc.dest)
	}
	sameSnapshot(t, mine, before, snapshot(t, mine))
	if ents, _ := os.ReadDir(rootDir); len(ents) != 0 {
		t.Errorf("written into root's directory: %v", ents)
	}
}
