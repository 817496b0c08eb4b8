#!/usr/bin/env bash
# bench/run.sh (`sudo make bench`): times the installed-setuid selfdock against its baselines as an
# unprivileged user and writes bench/REPORT.md. About a minute past the build.
#
# Needs root: it installs setuid root copies of selfdock and of bench/execonly into a fresh 0755
# directory under /var/tmp (removed at exit) and creates the system user $SELFDOCK_BENCH_USER
# (default sdbench) if missing. Every timed command runs as that user, started by hyperfine (or a
# loop) that itself runs as the user, so setpriv's own start is not in the numbers.
#
# Slow numbers never fail the script; a tool that errors does. A command that fails its one
# trial run is reported as "failed" and left out of the timings.
#
# Environment:
#   SELFDOCK_C            path of a setuid-installed selfdock (C); timed too when set
#   SELFDOCK_BENCH_USER   unprivileged user to run as (default sdbench)
#   SELFDOCK_BENCH_TMP    where the scratch directory goes (default /var/tmp; must allow setuid)
#   BENCH_RUNS            timed runs per command in the start-up comparison (default 300)
#   BENCH_SECONDS         seconds of throughput measurement for each command (default 10)
#   BENCH_REPORT          where to write the report (default bench/REPORT.md)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

user=${SELFDOCK_BENCH_USER:-sdbench}
runs=${BENCH_RUNS:-300}
seconds=${BENCH_SECONDS:-10}
report=${BENCH_REPORT:-$root/bench/REPORT.md}
rounds=3     # the start-up comparison runs in rounds, so a drift of the machine hits every command
warmup=20
depth=16     # nesting depth

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (setuid copies, a system user): sudo make bench"

# --- tools -------------------------------------------------------------------------------------
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v python3 >/dev/null || missing+=(python3)
[ -x /usr/bin/time ] || missing+=(time)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v useradd >/dev/null || missing+=(passwd)
if [ "${#missing[@]}" -gt 0 ]; then
	say "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	apt-get install -y -qq "${missing[@]}" </dev/null
fi

# --- build and install the binaries ------------------------------------------------------------
say "build"
make -C "$root" --no-print-directory build
CGO_ENABLED=0 go build -C "$root" -trimpath -ldflags '-s -w' -o build/execonly ./bench/execonly
# The other start-up path (ptrace + procfs pidns), forced by a build tag, never by anything a user sets.
"$root/scripts/gobuild" "$root/build/selfdock-ptrace" sdptrace
# Phase timestamps (sandbox.Trace) for the report's cost breakdown.
"$root/scripts/gobuild" "$root/build/selfdock-trace" sdtrace

dir=$(mktemp -d "${SELFDOCK_BENCH_TMP:-/var/tmp}/selfdock-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
chmod 0755 "$dir"
install -o root -g root -m 4755 "$root/build/selfdock" "$dir/selfdock"
install -o root -g root -m 4755 "$root/build/execonly" "$dir/execonly"
install -o root -g root -m 4755 "$root/build/selfdock-ptrace" "$dir/selfdock-ptrace"
install -o root -g root -m 4755 "$root/build/selfdock-trace" "$dir/selfdock-trace"
if findmnt -n -o OPTIONS -T "$dir" | tr , '\n' | grep -qx nosuid; then
	die "$dir is on a nosuid mount: set SELFDOCK_BENCH_TMP to a directory that allows setuid"
fi

if ! id -u "$user" >/dev/null 2>&1; then
	say "useradd $user"
	useradd --system -M -s /usr/sbin/nologin "$user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
out=$dir/out
install -d -o "$uid" -g "$gid" -m 0700 "$out"

# as_user CMD...: CMD as the bench user, in $out, with a small clean environment.
as_user() {
	(cd "$out" && setpriv --reuid="$uid" --regid="$gid" --init-groups -- \
		env -i HOME="$out" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$@")
}

# --- the commands ------------------------------------------------------------------------------
sd=$dir/selfdock
bw="bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all --die-with-parent"
names=(selfdock selfdock-ptrace execonly bwrap unshare)
cmds=("$sd run true" "$dir/selfdock-ptrace run true" "$dir/execonly /bin/true" "$bw /bin/true"
	"unshare --user --map-current-user --mount --pid --fork --ipc --uts /bin/true")
if [ -n "${SELFDOCK_C:-}" ]; then
	names+=(selfdock-c)
	cmds+=("$SELFDOCK_C run true")
fi
sd_nest=true bw_nest=/bin/true
for _ in $(seq "$depth"); do
	sd_nest="$sd run $sd_nest"
	bw_nest="$bw $bw_nest"
done
nest_names=(selfdock-1 "selfdock-$depth" bwrap-1 "bwrap-$depth")
nest_cmds=("$sd run true" "$sd_nest" "$bw /bin/true" "$bw_nest")

# Every command once, before any timing: one that errors is reported, not timed.
declare -A ok=()
: >"$out/checks.txt"
trial() { # trial NAME CMD-STRING
	local err rc=0
	# shellcheck disable=SC2086 # the command string is split on purpose, as hyperfine -N does
	err=$(as_user timeout 60 $2 2>&1 >/dev/null) || rc=$?
	if [ "$rc" = 0 ]; then
		ok[$1]=1
		printf '%s\tok\n' "$1" >>"$out/checks.txt"
	else
		err=$(printf '%s' "$err" | head -n 1 | tr '\t' ' ')
		printf '%s\tfailed (exit %s%s)\n' "$1" "$rc" "${err:+: $err}" >>"$out/checks.txt"
		printf 'bench: %s failed its trial run (exit %s) %s\n' "$1" "$rc" "$err" >&2
	fi
}
say "trial runs"
for i in "${!names[@]}"; do trial "${names[$i]}" "${cmds[$i]}"; done
for i in 1 3; do trial "${nest_names[$i]}" "${nest_cmds[$i]}"; done
ok[selfdock-1]=${ok[selfdock]:-}
ok[bwrap-1]=${ok[bwrap]:-}
cat "$out/checks.txt" >&2

# hyperfine_as_user JSON WARMUP RUNS NAME CMD [NAME CMD]...: the commands that passed their trial.
hyperfine_as_user() {
	local json=$1 w=$2 r=$3 args=()
	shift 3
	while [ "$#" -gt 0 ]; do
		[ -n "${ok[$1]:-}" ] && args+=(-n "$1" "$2")
		shift 2
	done
	[ "${#args[@]}" -gt 0 ] || return 0
	as_user hyperfine -N --style basic --warmup "$w" --runs "$r" --export-json "$json" "${args[@]}"
}

# --- start-up time -----------------------------------------------------------------------------
pairs=()
for i in "${!names[@]}"; do pairs+=("${names[$i]}" "${cmds[$i]}"); done
for r in $(seq "$rounds"); do
	say "start-up time, round $r of $rounds"
	hyperfine_as_user "$out/startup-$r.json" "$warmup" $(((runs + rounds - 1) / rounds)) "${pairs[@]}"
done

# --- nesting -----------------------------------------------------------------------------------
say "nesting $depth deep"
pairs=()
for i in "${!nest_names[@]}"; do pairs+=("${nest_names[$i]}" "${nest_cmds[$i]}"); done
hyperfine_as_user "$out/nesting.json" 3 30 "${pairs[@]}"

# --- parallel capacity: one CPU-bound job alone, then two at once ------------------------------
# On a virtual machine two CPUs need not be two cores' worth: the throughput below reads against it.
say "parallel capacity of the CPUs"
busy='n = 0
for i in range(15000000): n += i'
t0=${EPOCHREALTIME/./}
python3 -c "$busy"
t1=${EPOCHREALTIME/./}
python3 -c "$busy" & python3 -c "$busy" & wait
t2=${EPOCHREALTIME/./}
echo "$((t1 - t0)) $((t2 - t1))" >"$out/parallel.txt"

# --- throughput: 2 parallel loops, $seconds s for each command ---------------------------------
# Each loop runs the command back to back until its deadline and prints its count and its end
# time (µs). The seconds are split in two halves taken in turn (selfdock, bwrap, selfdock, bwrap):
# the kernel tears network namespaces down in the background, so whichever runs right after the
# other inherits its backlog, and other load on the machine drifts. A failed run ends the loop.
: >"$out/throughput.txt"
# shellcheck disable=SC2016 # expanded by the user's bash, not here
loop='
end=$(( ${EPOCHREALTIME/./} + $1 * 1000000 )); shift; n=0
while (( ${EPOCHREALTIME/./} < end )); do
	"$@" >/dev/null 2>&1 || { echo "failed $n ${EPOCHREALTIME/./}"; exit 1; }
	n=$((n + 1))
done
echo "ok $n ${EPOCHREALTIME/./}"'
half=$(((seconds + 1) / 2))
for part in 1 2; do
	for name in selfdock bwrap; do
		[ -n "${ok[$name]:-}" ] || continue
		for i in "${!names[@]}"; do [ "${names[$i]}" = "$name" ] && cmd=${cmds[$i]}; done
		say "throughput of $name, part $part of 2: 2 loops for ${half}s"
		# shellcheck disable=SC2086,SC2016 # split the command string; $0 and $@ are the user bash's
		as_user bash -c 'start=${EPOCHREALTIME/./}; bash -c "$0" loop "$@" & bash -c "$0" loop "$@" & wait; echo "start $start"' \
			"$loop" "$half" $cmd >"$out/throughput.raw" || true
		printf '%s\t%s\n' "$name" "$(tr '\n' ' ' <"$out/throughput.raw")" >>"$out/throughput.txt"
	done
done

# --- peak RSS ----------------------------------------------------------------------------------
# GNU time's %M is the child's ru_maxrss: the largest resident set of selfdock or of anything it
# waited for, in KiB. Ten runs each; the report takes the largest.
: >"$out/rss.txt"
for name in selfdock bwrap; do
	[ -n "${ok[$name]:-}" ] || continue
	for i in "${!names[@]}"; do [ "${names[$i]}" = "$name" ] && cmd=${cmds[$i]}; done
	for _ in $(seq 10); do
		# shellcheck disable=SC2086
		if as_user /usr/bin/time -o "$out/rss.one" -f %M $cmd >/dev/null 2>&1; then
			printf '%s\t%s\n' "$name" "$(cat "$out/rss.one")" >>"$out/rss.txt"
		fi
	done
done

# --- import ------------------------------------------------------------------------------------
# A docker-save archive of three layers (about 100 MB of /usr/lib/python3, /usr/share/man and part
# of /usr/include), imported by selfdock against plain `tar -x` of the same three layers.
say "import of a multi-layer image against tar -x"
img=$dir/img
mkdir -p "$img"
tar -cf "$img/l1.tar" -C / usr/lib/python3 2>/dev/null || true
tar -cf "$img/l2.tar" -C / usr/share/man 2>/dev/null || true
tar -cf "$img/l3.tar" -C / usr/include/linux usr/include/x86_64-linux-gnu 2>/dev/null || true
ids=""
for l in l1 l2 l3; do ids="$ids\"sha256:$(sha256sum "$img/$l.tar" | cut -d' ' -f1)\","; done
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' "${ids%,}" >"$img/config.json"
printf '[{"Config":"config.json","RepoTags":["bench:latest"],"Layers":["l1.tar","l2.tar","l3.tar"]}]' >"$img/manifest.json"
tar -cf "$dir/image.tar" -C "$img" manifest.json config.json l1.tar l2.tar l3.tar
chmod -R a+rX "$dir/image.tar" "$img"
du -sb "$dir/image.tar" | cut -f1 >"$out/import-bytes.txt"
if as_user "$sd" import --quiet "$dir/image.tar" "$out/imp-trial"; then
	as_user hyperfine -N --style basic --warmup 1 --runs 5 --export-json "$out/import.json" \
		--prepare "rm -rf $out/imp $out/tarx" \
		-n "selfdock import" "$sd import --quiet $dir/image.tar $out/imp" \
		-n "tar -x" "sh -c 'mkdir $out/tarx && for l in l1 l2 l3; do tar -xf $img/\$l.tar -C $out/tarx; done'" || true
else
	echo "bench: selfdock import failed its trial run" >&2
fi
as_user rm -rf "$out/imp-trial" "$out/imp" "$out/tarx"

# --- self-contained file --------------------------------------------------------------------------
# OUT (pack --self-contained) of a busybox root: as the user (unpacked into a tmpfs, or squashfuse
# where FUSE is usable) and as root (loop-mounted).
if [ -x /bin/busybox ]; then
	say "self-contained file"
	sc=$dir/sc
	mkdir -p "$sc/root/bin" "$sc/root/proc" "$sc/root/dev" "$sc/root/tmp"
	cp /bin/busybox "$sc/root/bin/"
	chmod -R a+rX "$sc"
	"$sd" pack --self-contained "$sc/root" "$sc/OUT" && chmod 755 "$sc/OUT" || true
	if [ -x "$sc/OUT" ]; then
		as_user hyperfine -N --style basic --warmup 3 --runs 30 --export-json "$out/sc-user.json" \
			-n "OUT as a user" "$sc/OUT /bin/busybox true" || true
		hyperfine -N --style basic --warmup 3 --runs 30 --export-json "$out/sc-root.json" \
			-n "OUT as root" "$sc/OUT /bin/busybox true" || true
	fi
fi

# --- Slurm -------------------------------------------------------------------------------------
# One `srun --container` step of true against a plain `srun true`, on the single-node cluster of
# tests/slurm_test.go (it installs Slurm when missing and stops its daemons when done).
say "Slurm: srun --container true against srun true"
(cd "$root" && go test -count=1 -run 'TestSlurm$' -v ./tests/ 2>&1) | grep -o 'srun true: .*' >"$out/slurm.txt" || true

# --- phases ------------------------------------------------------------------------------------
# 30 runs of the tracing build; each prints "trace PHASE Nµs" (since its package init) on stderr.
: >"$out/phases.txt"
for _ in $(seq 30); do
	as_user "$dir/selfdock-trace" run true 2>>"$out/phases.txt" >/dev/null || true
done

# --- package initialisation ---------------------------------------------------------------------
# 30 starts with the runtime's init trace (run as root: a setuid start would ignore GODEBUG); each
# run's lines end with "--".
: >"$out/inittrace.txt"
for _ in $(seq 30); do
	GODEBUG=inittrace=1 "$dir/selfdock" --version 2>>"$out/inittrace.txt" >/dev/null || true
	echo -- >>"$out/inittrace.txt"
done

# --- report ------------------------------------------------------------------------------------
say "report"
cpu=$(sed -n '/^model name/{s/^model name[[:space:]]*: //;p;q}' /proc/cpuinfo)
commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
BENCH_MACHINE="$(nproc) CPUs ($cpu), kernel $(uname -r), $(go version | sed 's/^go version //')" \
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') \
BENCH_TOOLS="$(hyperfine --version), $(bwrap --version), $(unshare --version | sed 's/ from / /')" \
BENCH_COMMIT=$commit BENCH_USER=$user BENCH_DEPTH=$depth BENCH_SECONDS=$seconds \
	python3 "$root/bench/report.py" "$out" >"$report.new"
mv "$report.new" "$report"
cat "$report"
printf '\nbench: wrote %s\n' "$report" >&2
