#!/usr/bin/env python3
"""Turns the raw results of bench/run.sh (one directory) into bench/REPORT.md on stdout.

Slow numbers are reported as a missed target, never as an error; a command that failed its trial
run shows as "failed" and its targets as "not measured".
"""

import glob
import json
import os
import statistics
import sys

BWRAP = "bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all --die-with-parent"
SHOWN = {
    "selfdock": "selfdock run true",
    "selfdock-ptrace": "selfdock run true (-tags sdptrace: ptrace + procfs pidns path)",
    "execonly": "execonly /bin/true",
    "bwrap": BWRAP + " /bin/true",
    "unshare": "unshare --user --map-current-user --mount --pid --fork --ipc --uts /bin/true",
    "selfdock-c": "$SELFDOCK_C run true",
}


def read_lines(path):
    try:
        with open(path) as f:
            return [line.rstrip("\n").split("\t", 1) for line in f if "\t" in line]
    except FileNotFoundError:
        return []


def hyperfine_times(paths):
    """Merges the per-run times (seconds) of each named command over several hyperfine exports."""
    times = {}
    for path in paths:
        with open(path) as f:
            for result in json.load(f)["results"]:
                times.setdefault(result["command"], []).extend(result["times"])
    return times


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def verdict(value, ok):
    if value is None:
        return "not measured"
    return "**met**" if ok(value) else "**missed**"


def parse_throughput(text):
    """"ok N END ok N END start S" (µs) -> (instances, seconds), or None when a loop failed."""
    words = text.split()
    if "failed" in words or "start" not in words:
        return None
    start = int(words[words.index("start") + 1])
    count, end = 0, start
    for i, w in enumerate(words):
        if w == "ok":
            count += int(words[i + 1])
            end = max(end, int(words[i + 2]))
    return (count, (end - start) / 1e6) if end > start else None


def read_parallel(path):
    """The ratio of two parallel CPU-bound jobs' wall time to one's, or None."""
    try:
        with open(path) as f:
            one, two = (int(w) for w in f.read().split())
    except (OSError, ValueError):
        return None
    return two / one if one > 0 else None


def throughput(lines):
    """Instances/s of each command over all its parts; None when any part failed."""
    parts = {}
    for name, text in lines:
        parts.setdefault(name, []).append(parse_throughput(text))
    rate = {}
    for name, ps in parts.items():
        if None in ps:
            rate[name] = None
        else:
            rate[name] = sum(c for c, _ in ps) / sum(s for _, s in ps)
    return rate


def main():
    out = sys.argv[1]
    env = os.environ.get
    depth = env("BENCH_DEPTH", "16")
    checks = dict(read_lines(os.path.join(out, "checks.txt")))
    failed = {name: status for name, status in checks.items() if status != "ok"}

    startup_files = sorted(glob.glob(os.path.join(out, "startup-*.json")))
    startup = hyperfine_times(startup_files)
    median = {name: statistics.median(t) for name, t in startup.items() if t}
    nest_files = glob.glob(os.path.join(out, "nesting.json"))
    nest = {n: statistics.median(t) for n, t in hyperfine_times(nest_files).items() if t}

    p = print
    p("# selfdock benchmark report\n")
    p("Written by `bench/run.sh` (`sudo make bench`); rerun it rather than editing this file.\n")
    p(f"- Date: {env('BENCH_DATE', '?')}, commit {env('BENCH_COMMIT', '?')}")
    p(f"- Machine: {env('BENCH_MACHINE', '?')}")
    p(f"- Tools: {env('BENCH_TOOLS', '?')}")
    p(f"- Every command ran as the unprivileged user `{env('BENCH_USER', '?')}`, started by "
      "hyperfine `-N` (no shell) running as that user; selfdock and `execonly` were installed "
      "root:root 4755. Start-up times merge "
      f"{len(startup_files)} rounds of hyperfine over all commands, so drift hits all alike.\n")

    p("## Start-up: one sandboxed `true`\n")
    p("| command | median | mean ± σ | × bwrap | × execonly | runs |")
    p("|---|---|---|---|---|---|")
    for name, shown in SHOWN.items():
        if name not in checks:
            continue
        if name in failed:
            p(f"| `{shown}` | {failed[name]} | | | | |")
            continue
        t = startup.get(name, [])
        if not t:
            continue
        sd = statistics.stdev(t) if len(t) > 1 else 0.0
        p(f"| `{shown}` | {ms(median[name])} | {ms(statistics.mean(t))} ± {ms(sd)} | "
          f"{fmt_ratio(ratio(median[name], median.get('bwrap')))} | "
          f"{fmt_ratio(ratio(median[name], median.get('execonly')))} | {len(t)} |")
    p("\n`execonly` (bench/execonly) is a setuid Go program that only drops root and execs: the "
      "floor for any setuid Go binary.\n")

    tput = throughput(read_lines(os.path.join(out, "throughput.txt")))
    seconds = env("BENCH_SECONDS", "10")
    p(f"## Throughput: 2 parallel loops, {seconds} s for each command in two alternating halves\n")
    p("| command | instances/s |")
    p("|---|---|")
    for name in ("selfdock", "bwrap"):
        if name in failed or name in tput:
            v = tput.get(name)
            p(f"| {name} | {'failed' if v is None else f'{v:.0f}'} |")
    par = read_parallel(os.path.join(out, "parallel.txt"))
    if par:
        p(f"\nThe machine's parallel capacity: two CPU-bound jobs at once took {par:.2f}× as long as "
          f"one alone (1.00× on two real cores, 2.00× on one), so its {os.cpu_count()} CPUs did "
          f"{2 / par:.2f} CPUs' worth of parallel work (it varies from hour to hour on this "
          "virtual machine). Throughput is CPU time per instance; work done on a second thread "
          "(the network namespace) shortens a single run only as far as the second CPU is free.")

    rss = {}
    for name, kib in read_lines(os.path.join(out, "rss.txt")):
        rss.setdefault(name, []).append(int(kib))
    p("\n## Peak resident memory (GNU time %M, largest of 10 runs)\n")
    p("| command | peak RSS |")
    p("|---|---|")
    for name in ("selfdock", "bwrap"):
        if name in rss:
            p(f"| {name} | {max(rss[name]) / 1024:.1f} MiB |")
        elif name in failed:
            p(f"| {name} | failed |")

    p(f"\n## Nesting {depth} deep\n")
    p(f"`selfdock run selfdock run … true` ({depth} levels) against one level, and bwrap's own "
      f"{depth}-deep nesting in the same hyperfine run.\n")
    p("| command | median | × its one level |")
    p("|---|---|---|")
    for tool in ("selfdock", "bwrap"):
        for level in ("1", depth):
            name = f"{tool}-{level}"
            status = failed.get(name) or (failed.get(tool) if level == "1" else None)
            if status:
                p(f"| {name} | {status} | |")
            elif name in nest:
                p(f"| {name} | {ms(nest[name])} | "
                  f"{fmt_ratio(ratio(nest[name], nest.get(f'{tool}-1')))} |")

    sd_bw = ratio(median.get("selfdock"), median.get("bwrap"))
    sd_eo = ratio(median.get("selfdock"), median.get("execonly"))
    tp = ratio(tput.get("selfdock"), tput.get("bwrap"))
    peak = max(rss["selfdock"]) / 1024 if "selfdock" in rss else None
    n_one = ratio(nest.get(f"selfdock-{depth}"), nest.get("selfdock-1"))
    n_bw = ratio(nest.get(f"selfdock-{depth}"), nest.get(f"bwrap-{depth}"))
    nest_ok = None if n_one is None else (n_one < 10 or (n_bw is not None and n_bw <= 0.6))

    imp = {}
    imp_path = os.path.join(out, "import.json")
    if os.path.exists(imp_path):
        imp = {n: statistics.median(t) for n, t in hyperfine_times([imp_path]).items() if t}
    imp_ratio = ratio(imp.get("selfdock import"), imp.get("tar -x"))
    if imp:
        size = ""
        try:
            with open(os.path.join(out, "import-bytes.txt")) as f:
                size = f" ({int(f.read()) / 1e6:.0f} MB)"
        except (FileNotFoundError, ValueError):
            pass
        p(f"\n## Import of a 3-layer docker-save archive{size}\n")
        p("| command | median | × tar -x |")
        p("|---|---|---|")
        for name, t in imp.items():
            p(f"| {name} | {ms(t)} | {fmt_ratio(ratio(t, imp.get('tar -x')))} |")

    sc_files = [f for f in (os.path.join(out, "sc-user.json"), os.path.join(out, "sc-root.json"))
                if os.path.exists(f)]
    if sc_files:
        sc = {n: statistics.median(t) for n, t in hyperfine_times(sc_files).items() if t}
        p("\n## Self-contained file (`pack --self-contained` of a busybox root)\n")
        p("| run | median |")
        p("|---|---|")
        for name, t in sc.items():
            p(f"| {name} | {ms(t)} |")
        p("\nAs a user the image is unpacked into a tmpfs at every start (no FUSE here); as root it "
          "is loop-mounted.\n")

    try:
        with open(os.path.join(out, "slurm.txt")) as f:
            slurm = f.read().strip()
    except FileNotFoundError:
        slurm = ""
    if slurm:
        p("\n## Slurm\n")
        p(f"One step on the single-node cluster of tests/slurm_test.go: {slurm} "
          "(one run each, wall time as the user sees it).\n")

    phases = {}
    try:
        with open(os.path.join(out, "phases.txt")) as f:
            for line in f:
                w = line.split()
                if len(w) == 3 and w[0] == "trace" and w[2].endswith("µs"):
                    phases.setdefault(w[1], []).append(float(w[2][:-2]))
    except FileNotFoundError:
        pass
    if phases:
        p("\n## Where the time goes\n")
        p("Medians over 30 runs of a build with `-tags sdtrace`, which prints when each phase ends, "
          "counted from the start of its Go package initialisation (the runtime's own start before "
          "that, about 0.5-1 ms here, and the command's exec and exit are not in it).\n")
        p("| phase ends | at | phase cost |")
        p("|---|---|---|")
        prev = 0.0
        for name, t in sorted(phases.items(), key=lambda kv: statistics.median(kv[1])):
            m = statistics.median(t)
            p(f"| {name} | {m:.0f} µs | {m - prev:.0f} µs |")
            prev = m
        p("\nPhases: `main` (package init done), `parsed` (command line), `plan` (policy file and "
          "plan), `unshare` (mount, PID, IPC and UTS namespaces), `prepare` (open_tree clones of "
          "the root and sources, /dev nodes), `attach` (the mount tree), `netns` (pivot_root, then "
          "setns into the network namespace that a thread started by the C constructor has made "
          "meanwhile, waiting for it if need be), `setup` (command lookup), `bounding` (capability "
          "bounding set), `spawned` (the C child: clone, /proc, ids, seccomp filter, execve), "
          "`released` (the command runs), `exited` (it has exited, with `true`).\n")

    inits = read_inits(os.path.join(out, "inittrace.txt"))
    if inits:
        totals, per = inits
        p("\n## Before main: package initialisation\n")
        p(f"Medians over {len(totals)} starts with `GODEBUG=inittrace=1`: every package's init runs "
          f"at each start, whether the run path uses the package or not. In all: "
          f"{statistics.median(totals):.2f} ms. The largest:\n")
        p("| package | init |")
        p("|---|---|")
        top = sorted(per.items(), key=lambda kv: -statistics.median(kv[1]))[:8]
        for name, t in top:
            p(f"| {name} | {statistics.median(t) * 1000:.0f} µs |")
        p("\nThe rest of the gap to `execonly` before main is the cgo runtime (static musl start, "
          "threads made through pthreads) and the page faults of a larger binary.\n")

    p("\n## Targets\n")
    p("| target | measured | verdict |")
    p("|---|---|---|")
    p(f"| start-up ≤ 0.75× bwrap | {fmt_ratio(sd_bw)} | {verdict(sd_bw, lambda v: v <= 0.75)} |")
    p(f"| start-up ≤ 1.25× execonly | {fmt_ratio(sd_eo)} | "
      f"{verdict(sd_eo, lambda v: v <= 1.25)} |")
    pt_bw = ratio(median.get("selfdock-ptrace"), median.get("bwrap"))
    p(f"| the other start-up path ≤ 0.75× bwrap too | {fmt_ratio(pt_bw)} | "
      f"{verdict(pt_bw, lambda v: v <= 0.75)} |")
    p(f"| throughput ≥ 1.5× bwrap | {fmt_ratio(tp)} | {verdict(tp, lambda v: v >= 1.5)} |")
    p(f"| peak RSS ≤ 8 MiB | {'–' if peak is None else f'{peak:.1f} MiB'} | "
      f"{verdict(peak, lambda v: v <= 8)} |")
    p(f"| {depth}-deep nesting < 10× one run, or ≤ 0.6× bwrap's {depth}-deep | "
      f"{fmt_ratio(n_one)} one run, {fmt_ratio(n_bw)} bwrap | "
      f"{verdict(nest_ok, lambda v: v)} |")
    p(f"| import within 1.5× tar -x of the same layers | {fmt_ratio(imp_ratio)} | "
      f"{verdict(imp_ratio, lambda v: v <= 1.5)} |")

    sd_m, bw, eo = median.get("selfdock"), median.get("bwrap"), median.get("execonly")
    if sd_m and bw and eo:
        init_ms = statistics.median(inits[0]) if inits else None
        p(f"\nThe budget: 0.75× bwrap is {ms(0.75 * bw)}, {ms(sd_m - 0.75 * bw)} below selfdock "
          f"now, and 1.25× execonly is {ms(1.25 * eo)}. execonly alone (exec, the Go runtime's "
          f"start, dropping root, exec of `true`) takes {ms(eo)}; on top of it selfdock runs "
          + (f"its package initialisers ({init_ms:.2f} ms, every package of the one binary) "
             if init_ms else "its package initialisers ")
          + "and the kernel work of the namespaces, the mount tree, /proc, the seccomp filter "
          "and their teardown that bwrap does too (the network namespace is made before the "
          "runtime starts, on another thread).")

    if failed:
        p("\n## Commands that failed their trial run\n")
        for name, status in failed.items():
            p(f"- {name}: {status}")


def read_inits(path):
    """Per-run totals and per-package clock times (ms) of GODEBUG=inittrace=1 output."""
    totals, per, run = [], {}, {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        w = line.split()
        if w == ["--"]:
            if run:
                totals.append(sum(run.values()))
                for k, v in run.items():
                    per.setdefault(k, []).append(v)
            run = {}
        elif len(w) >= 7 and w[0] == "init" and w[6] == "clock,":
            run[w[1]] = run.get(w[1], 0.0) + float(w[4])
    return (totals, per) if totals else None


if __name__ == "__main__":
    main()
