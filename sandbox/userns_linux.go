//go:build cgo

package sandbox

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// selfdock_userns is 0 when the constructor did nothing, 1 when it moved the
// process into a new user and mount namespace, and -errno when that failed.
int selfdock_userns;
// selfdock_userns_step names the step that failed.
const char *selfdock_userns_step = "";

static int write_file(const char *path, const char *data) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, data, strlen(data));
	int err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

// wants_sandbox reports whether the command line asks for run or build:
// the first word that is neither an option nor an option's value. It mirrors
// the CLI's grammar loosely; a miss costs only a clear error later, never
// privilege, because this code runs only without privilege.
static int wants_sandbox(int argc, char **argv) {
	static const char *two[] = {"-m", "--map", "-v", "--vol", "-t", "--tmpfs", "-e", "--env", 0};
	static const char *one[] = {"-r", "--rootfs", "-C", "--chdir", "-E", "--unset", "--image", "--bundle", "--name", "--hostname", "--seccomp", "--overlay-size", 0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int skip = 0;
		if (strcmp(a, "--") == 0)
			return 0;
		if (a[0] != '-')
			return strcmp(a, "run") == 0 || strcmp(a, "build") == 0;
		if (strchr(a, '='))
			continue;
		for (int k = 0; two[k]; k++)
			if (strcmp(a, two[k]) == 0)
				skip = 2;
		for (int k = 0; one[k]; k++)
			if (strcmp(a, one[k]) == 0)
				skip = 1;
		i += skip;
	}
	return 0;
}

// selfdock_enter_userns runs before the Go runtime starts any thread, which
// unshare(CLONE_NEWUSER) requires. It returns at once when euid is 0: then
// the process is setuid root (or real root) and its environment and
// arguments are hostile input that must not steer anything here.
__attribute__((constructor)) static void selfdock_enter_userns(int argc, char **argv, char **envp) {
	(void)envp;
	if (geteuid() == 0 || !wants_sandbox(argc, argv))
		return;
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
		selfdock_userns = -errno;
		selfdock_userns_step = "unshare user namespace";
		return;
	}
	int err = write_file("/proc/self/setgroups", "deny");
	if (err == 0) {
		snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
		err = write_file("/proc/self/uid_map", map);
	}
	if (err == 0) {
		snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
		err = write_file("/proc/self/gid_map", map);
	}
	if (err < 0) {
		selfdock_userns = err;
		selfdock_userns_step = "write user namespace map";
		return;
	}
	selfdock_userns = 1;
}
*/
import "C"

import (
	"fmt"
	"syscall"
)

// userNamespace reports what the constructor did: entered is true when the
// process runs in its own user namespace; err says why entering failed.
func userNamespace() (entered bool, err error) {
	switch v := int(C.selfdock_userns); {
	case v == 1:
		return true, nil
	case v < 0:
		return false, fmt.Errorf("%s: %w", C.GoString(C.selfdock_userns_step), syscall.Errno(-v))
	}
	return false, nil
}
