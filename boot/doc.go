// Package boot replaces the running system with an image in RAM: what
// `selfdock boot` does, for the machine's real root only.
//
// It happens in three steps, each in its own file:
//
//   - Prepare (prepare_linux.go) mounts a tmpfs at /run/selfdock/boot/root,
//     sized to the free RAM, unpacks the image into it with the image
//     package (owners, modes and device nodes kept: the caller is root) and
//     writes what PID 1 must do next to /run/selfdock/boot/boot.json.
//   - Inject (inject_linux_amd64.go) takes over the target, the init of a
//     PID namespace: PTRACE_SEIZE and PTRACE_INTERRUPT stop it wherever it
//     is, even blocked in waitid or epoll_wait; its registers and the memory
//     below its red zone are saved, and it is made to execve
//     "/proc/<selfdock>/exe boot-init". When that execve fails, registers and
//     memory are put back exactly and the old init goes on as before.
//   - Init (init_linux.go) runs as the new PID 1: tty, swapoff, SIGTERM then
//     SIGKILL to every other process, switch into the new root, exec CMD.
//
// Safety: the machine's real PID 1 (its PID namespace has the fixed inode
// 0xEFFFFFFC) is never a target unless the caller says so explicitly, and
// steps whose effect is global to the machine (switching the virtual
// console, swapoff) run only when the target is that real PID 1. The init
// of any other PID namespace first moves into a mount namespace of its own,
// so that a test's boot never changes the host's mounts.
package boot
