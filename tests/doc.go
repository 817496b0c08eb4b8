// Package tests holds the end-to-end tests of the installed setuid
// selfdock binary. TestMain builds the binary once, installs it setuid root
// in a fresh 0755 directory under /var/tmp (the sandbox has a private /tmp,
// so anything it must see lives there), creates the unprivileged users
// sdtest and sdother, and every test runs selfdock as sdtest.
//
// The tests need root to set this up; without it they skip with a reason,
// and with SELFDOCK_MUST_WORK=1 every skip is a failure instead.
package tests
