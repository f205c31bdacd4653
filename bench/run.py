#!/usr/bin/env python3
"""sigreload's benchmarks, side by side with what users run today and with the floor (`make bench`).

Every figure comes from real processes in fresh PID namespaces ("pods", bench/pod.py), real files
written the way the kubelet writes a ConfigMap volume (bench/kubeswap.c, a C replay of
tests/system/kubelet.py that reads CLOCK_MONOTONIC right before and right after the `..data`
rename) and a target (bench/stamp.c) that reads CLOCK_MONOTONIC in its signal handler. The peers
are the loops users run today, from Debian packages (bench/peers/): md5sum polling every 1 s and
30 s with `kill -HUP $(pgrep -x app)`, and `inotifywait -m` with one `pkill -HUP -x app` per event.
The floor (bench/floor.c) is the least any watcher can do: an inotify watch and kill(2).

    make bench [BENCH_ARGS="--quick" or "--only latency,scaling"]

prints markdown tables, ends with the goals of issue 11 (met or missed), and writes
bench/results/<UTC time>.json, .md and PNGs. The whole run takes 15 to 20 minutes on two cores
(`--quick`: about 5); see --help for the knobs, and bench/README.md for the method. A benchmark
reports; it never fails on a missed goal (only on a broken harness).
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rig import (BIN, PAUSE, ROOT, TOOLS, Pod, Rig, Strace, classify_calls,  # noqa: E402
                 cpu_per_update, delta, fill_pod, log, measure, measure_budget,
                 pct, pod_processes, proc_sample, smaps, summarize, tool)
import plot  # noqa: E402
import report  # noqa: E402

C_TOOLS = ("stamp", "kubeswap", "idle", "timeit", "floor", "churn", "scrape")

# The phases, in the order they run; --only picks some ("scaling" is rules, files, paths, procs).
SECTIONS = ("idle", "busy", "memory", "hash", "latency", "rules", "files", "paths", "procs",
            "scrapes")
GROUPS = {"scaling": ("rules", "files", "paths", "procs")}


def build():
    """The C helpers, built with the project's compiler when their source is newer."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    for name in C_TOOLS:
        src, out = HERE / f"{name}.c", TOOLS / name
        if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        subprocess.run([cc, "-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Wshadow", "-pthread",
                        "-o", str(out), str(src)], check=True)


def poll_session_main(params):
    """A poll peer's latency and correctness, run in the background in a process of its own
    (one period of 30 s per sample): `run.py --poll-session JSON`."""
    random.seed()
    rig = Rig(params["base"], params["name"])
    try:
        rig.start_poll(params["period"])
        period = params["period"]
        deadline = time.monotonic() + params["budget"]
        window = int(period * 1000 + 700)
        ops = []
        # correctness first: a window of one period and a margin sees at least one poll
        for _ in range(params["identical"]):
            ops.append(rig.identical(window_ms=window))
        for _ in range(params["touch"]):
            ops.append(rig.touch(window_ms=window))
        before = rig.sample()
        n = 0
        for _ in range(params["changes"]):
            if time.monotonic() + 2 * period > deadline and n >= 1:
                break
            time.sleep(random.uniform(0, period))  # a random phase of the polling loop
            ops.append(rig.change(wait_ms=int(period * 1000 + 5000), settle_ms=300))
            n += 1
        after = rig.sample()
        d = rig.drain(300)
        if ops:
            ops[-1]["late"] = d["records"]
        res = summarize(ops, rig.master, cpu_per_update(before, after, n, False))
        res["rss_kb"] = after["rss_kb"]
    finally:
        rig.close()
    Path(params["out"]).write_text(json.dumps(res))


def merge_polls(parts):
    """The poll-30 samples of several background rigs, as one."""
    parts = [p for p in parts if p]
    if not parts:
        return None
    out = {"stray_signals": sum(p["stray_signals"] for p in parts), "parts": len(parts)}
    for kind in ("change", "identical", "touch"):
        sel = [p[kind] for p in parts if kind in p]
        if not sel:
            continue
        n = sum(s["n"] for s in sel)
        m = {"n": n}
        for k in ("signals_per_op", "leader_per_op", "workers_per_op", "before_swap_per_op"):
            m[k] = sum(s[k] * s["n"] for s in sel) / n
        if kind == "change":
            lat = [x for s in sel for x in s["latencies_ms"]]
            m["missed"] = sum(s["missed"] for s in sel)
            m["latency_ms"] = {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                               "max": max(lat) if lat else None,
                               "mean": statistics.fmean(lat) if lat else None}
            m["latencies_ms"] = lat
        out[kind] = m
    cpus = [p["cpu"] for p in parts if p.get("cpu") and p["cpu"]["updates"]]
    if cpus:
        upd = sum(c["updates"] for c in cpus)
        out["cpu"] = {"updates": upd, "ms_per_update": sum(c["cpu_ms_total"] for c in cpus) / upd,
                      "source": cpus[0]["source"]}
    out["rss_kb"] = parts[0].get("rss_kb")
    return out


# ---- phases --------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def phase_idle(base, opts, R, background):
    """Idle cost: every tool watching its own volume, nothing happening, for opts.idle seconds,
    all at once. The poll peers' latency runs start in the background meanwhile, in volumes
    none of the idle tools watches (their directories are created before the window)."""
    port = free_port()
    rigs = {}
    specs = [("sigreload", dict(metrics="")),
             ("sigreload-metrics", dict(metrics=f"127.0.0.1:{port}")),
             ("inotify", {}), ("poll1", {}), ("poll30", {})]
    try:
        for name, kw in specs:
            rigs[name] = Rig(base, f"idle-{name}")
        bg_names = ["poll1"] + [f"poll30-{i}" for i in range(opts.poll30_rigs)]
        for name in bg_names:
            (base / "vols" / f"bg-{name}").mkdir(parents=True)
        for name, kw in specs:
            rigs[name].start(name.split("-")[0], **kw)
        R["idle"] = {"seconds": opts.idle,
                     "metrics_listen": f"127.0.0.1:{port}",
                     "metrics_endpoint_answered": port_open(port)}
        # the poll peers' latency and correctness, in processes of their own
        for name in bg_names:
            period = 1 if name == "poll1" else 30
            first = name in ("poll1", "poll30-0")
            params = {"base": str(base), "name": f"bg-{name}", "period": period,
                      "identical": (5 if period == 1 else 1) if first else 0,
                      "touch": (5 if period == 1 else 1) if first else 0,
                      "changes": opts.poll1_changes if period == 1 else opts.poll30_changes,
                      "budget": opts.idle - 5 if period == 1 else opts.poll30_budget,
                      "out": str(base / "logs" / f"bg-{name}.json")}
            errf = open(base / "logs" / f"bg-{name}.err", "w")
            background.append((name, params["out"], subprocess.Popen(
                [sys.executable, __file__, "--poll-session", json.dumps(params)],
                stdout=errf, stderr=errf, stdin=subprocess.DEVNULL)))
            errf.close()
        time.sleep(3)  # start-up done: from here on nothing happens to the idle tools' files
        # sigreload watches every directory above its paths (to survive their re-creation):
        # any entry created or removed there by someone else wakes it. Counted, to tell.
        above = {Path("/")} | set(base.parents) | {base, base / "vols", base / "conf"}
        for name in rigs:
            above |= {base / "vols" / f"idle-{name}", base / "conf" / f"idle-{name}"}
        monitor = subprocess.Popen(
            ["inotifywait", "-m", "-q", "-e", "create,delete,attrib,move,delete_self,move_self,"
             "modify,close_write", "--format", "%w%f %e",
             *sorted(str(d) for d in above if d.is_dir())],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)
        if monitor.poll() is not None:
            raise RuntimeError("inotifywait could not watch the directories above the volumes")
        log(f"idle: {len(rigs)} tools watching, measuring for {opts.idle} s")
        start = {k: (r.sample(), r.pod.last_pid()) for k, r in rigs.items()}
        t0 = time.monotonic()
        time.sleep(max(0.0, t0 + opts.idle - time.monotonic()))
        end = {k: (r.sample(), r.pod.last_pid()) for k, r in rigs.items()}
        monitor.terminate()
        events = [line for line in monitor.communicate()[0].splitlines() if line]
        R["idle"]["events_above_volumes"] = len(events)
        R["idle"]["events_above_volumes_sample"] = events[:20]
        for k in rigs:
            d = delta(start[k][0], end[k][0])
            R["idle"][k] = {
                "seconds": d["t"], "cpu_ms": d["cpu_ms"], "run_ms": d["run_ns"] / 1e6,
                "wakeups": d["vcsw"], "involuntary": d["nvcsw"],
                "processes_started": end[k][1] - start[k][1] - 1,  # minus the reader of ns_last_pid
                "rss_kb": end[k][0]["rss_kb"], "long_lived_processes": end[k][0]["procs"]}
            log(f"idle {k}: {R['idle'][k]}")
    finally:
        for r in rigs.values():
            r.close()


def phase_busy(base, opts, R):
    """Idle with a busy directory above the volumes: sigreload and the floor watch volumes
    under base/vols, where bench/churn.c creates and removes one file as fast as it can for
    opts.busy seconds; their wakeups and CPU over that window."""
    rigs = {}
    try:
        for name in ("sigreload", "floor"):
            rigs[name] = Rig(base, f"busy-{name}")
            rigs[name].start(name)
        busy = base / "vols"
        start = {k: r.sample() for k, r in rigs.items()}
        churn = subprocess.Popen([tool("churn"), busy, str(opts.busy)], stdout=subprocess.PIPE,
                                 text=True)
        try:
            if churn.stdout.readline().strip() != "ready":
                raise RuntimeError("churn did not start")
            fields = churn.stdout.readline().split()
            time.sleep(0.2)  # the last events read
            end = {k: r.sample() for k, r in rigs.items()}
        finally:
            churn.wait()
            churn.stdout.close()
        if churn.returncode != 0 or fields[:1] != ["churned"]:
            raise RuntimeError(f"churn failed: {fields}")
        out = {"seconds": opts.busy, "dir": str(busy), "creates": int(fields[1]),
               "removes": int(fields[2])}
        for k in rigs:
            d = delta(start[k], end[k])
            out[k] = {"seconds": d["t"], "wakeups": d["vcsw"], "involuntary": d["nvcsw"],
                      "run_ms": d["run_ns"] / 1e6, "cpu_ms": d["cpu_ms"]}
        overflow = rigs["sigreload"].logpath.read_text(errors="replace").count("queue overflow")
        out["sigreload"]["queue_overflows"] = overflow
        R["busy"] = out
        log(f"busy parent: {out}")
    finally:
        for r in rigs.values():
            r.close()


def phase_memory(base, opts, R):
    """VmRSS and VmHWM of sigreload at start and every 1,000 reloads up to opts.reloads:
    opts.mem_rules rules of opts.mem_keys files, one rule's volume updated at a time (debounce
    0, so that each update is one reload). A slow build stops early, after opts.mem_budget
    seconds, and says so."""
    rig = Rig(base, "memory", workers=0, volumes=opts.mem_rules, keys=opts.mem_keys)
    try:
        rig.start_sigreload(debounce="0ms")
        pid = rig.pid

        def mem():
            s = proc_sample(pid)
            return {"rss_kb": s["rss_kb"], "hwm_kb": s["hwm_kb"], **smaps(pid)}

        out = {"rules": opts.mem_rules, "files": opts.mem_rules * opts.mem_keys,
               "static": R["machine"]["static"], "reloads_asked": opts.reloads,
               "at": {"0": mem()}}
        rig.cycle = list(range(opts.mem_rules))
        before = rig.sample()
        t0 = time.monotonic()
        missed = signals = done = 0
        while done < opts.reloads:
            o = rig.change(wait_ms=5000, settle_ms=0)
            done += 1
            missed += o["timed_out"]
            signals += len(o["records"])
            if done % 1000 == 0 or done == opts.reloads:
                out["at"][str(done)] = mem()
                log(f"memory after {done} reloads: {out['at'][str(done)]}")
                spent = time.monotonic() - t0
                if spent + spent / done * 1000 > opts.mem_budget:  # the next 1,000 would not fit
                    break
        after = rig.sample()
        d = rig.drain(200)
        signals += len(d["records"])
        out["reloads"] = done
        out["seconds"] = time.monotonic() - t0
        out["missed"] = missed
        out["signals"] = signals
        out["cpu"] = cpu_per_update(before, after, done, True)
        text = rig.logpath.read_text()
        out["logged_signaled"] = text.count('msg="signaled"')
        R["memory"] = out
    finally:
        rig.close()


def timeit(pod, rounds, cmds):
    """Wall and CPU time (ms) of each command of cmds ({name: argv}) run inside the pod, the
    commands taking turns round after round so that a noisy neighbour hits them alike.
    bench/timeit.c reads the clocks around fork and wait, in the pod."""
    runs = {name: [] for name in cmds}
    for _ in range(rounds):
        for name, argv in cmds.items():
            out = pod.output([tool("timeit"), 1, *argv], timeout=600)
            f = next(line.split() for line in out.splitlines() if line.startswith("run "))
            runs[name].append((int(f[1]) / 1e6, (int(f[2]) + int(f[3])) / 1e3, int(f[4])))
    return {name: {"median_ms": statistics.median(r[0] for r in v),
                   "best_ms": min(r[0] for r in v),
                   "cpu_median_ms": statistics.median(r[1] for r in v),
                   "runs": len(v), "exit": sorted({r[2] for r in v})}
            for name, v in runs.items()}


def phase_hash(base, opts, R):
    """SHA-256 throughput on one file, page cache warm, best of 3, the three tools
    interleaved so that any drift hits all of them alike."""
    d = base / "hash"
    d.mkdir()
    blob = d / "blob"
    with open(blob, "wb") as f:
        for _ in range(opts.hash_mib // 8):
            f.write(os.urandom(8 << 20))
    with open(blob, "rb") as f:  # warm the page cache
        while f.read(8 << 20):
            pass
    cmds = {"sigreload hash": [BIN, "hash", blob],
            "openssl dgst -sha256": ["openssl", "dgst", "-sha256", blob],
            "sha256sum": ["sha256sum", blob]}
    digests = {}
    for name, argv in cmds.items():
        out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=True)
        first = out.stdout.split()
        digests[name] = first[-1] if name.startswith("openssl") else first[0]
    best = {name: float("inf") for name in cmds}
    for _ in range(3):
        for name, argv in cmds.items():
            t0 = time.perf_counter_ns()
            subprocess.run([str(a) for a in argv], stdout=subprocess.DEVNULL, check=True)
            best[name] = min(best[name], (time.perf_counter_ns() - t0) / 1e9)
    R["hash"] = {"mib": opts.hash_mib, "same_digest": len(set(digests.values())) == 1,
                 "tools": {name: {"best_s": best[name], "mib_per_s": opts.hash_mib / best[name]}
                           for name in cmds}}
    blob.unlink()
    log(f"hash: {R['hash']}")


def trace_updates(rig, n, out):
    """System calls of the rig's tool over n updates, strace attached (see rig.Strace); the
    latency under strace says what tracing costs."""
    st = Strace(rig.pid, out)
    ops = []
    try:
        for _ in range(n):
            ops.append(rig.change(wait_ms=5000, settle_ms=100))
    finally:
        calls = st.stop()
    d = rig.drain(100)
    ops[-1]["late"] = d["records"]
    res = classify_calls(calls, n)
    res["method"] = "strace -f -yy -p PID"
    res["latency_under_strace_ms"] = summarize(ops, rig.master)["change"]["latency_ms"]
    return res


def phase_latency(base, opts, R):
    """Latency and CPU per update in pods of opts.pod_procs processes: sigreload (debounce 0),
    the floor and inotifywait + pkill, each in a pod of its own, updates interleaved; then the
    system calls of sigreload and of the floor per update, strace attached; then sigreload with
    its default debounce."""
    rigs = {}
    try:
        for name in ("sigreload", "floor", "inotify"):
            rigs[name] = Rig(base, f"lat-{name}")
            rigs[name].start(name)
            fill_pod(rigs[name].pod, opts.pod_procs)
        names = list(rigs)
        R["latency"] = measure(
            rigs, {n: opts.updates for n in names}, {n: 2000 for n in names},
            {"sigreload": 50, "floor": 50, "inotify": 100}, checks=opts.checks,
            windows={n: 300 for n in names})
        R["latency"]["pod_processes"] = pod_processes(rigs["sigreload"].pod)
        R["syscalls"] = {}
        for name in ("sigreload", "floor"):
            R["syscalls"][name] = trace_updates(rigs[name], opts.strace_updates,
                                                base / "logs" / f"strace-{name}.txt")
            log(f"system calls per update, {name}: {R['syscalls'][name]['per_update']:.1f} "
                f"({R['syscalls'][name]['proc_per_update']:.1f} on /proc)")
    finally:
        for r in rigs.values():
            r.close()
    rig = Rig(base, "lat-debounce")
    try:
        rig.start_sigreload(debounce=None)
        fill_pod(rig.pod, opts.pod_procs)
        R["latency"].update(measure(
            {"sigreload-debounce": rig}, {"sigreload-debounce": opts.debounce_updates},
            {"sigreload-debounce": 3000}, {"sigreload-debounce": 50}, checks=opts.checks,
            windows={"sigreload-debounce": 700}))
    finally:
        rig.close()


# Waits and settles of the scaling runs: an update of 10,000 files or 256 × 64 paths may take
# seconds with a slow build, and the harness must not call that a miss.
SCALE_WAIT_MS, SCALE_SETTLE_MS = 30000, 50


def start_scale_rigs(base, prefix, specs, opts):
    """Rigs in pods of their own, each filled to opts.pod_procs processes, sigreload running
    with debounce 0: specs maps a step's key to Rig's keyword arguments. A rig with several
    rules takes them in a shuffled order, so that no rule's place in the file favours it."""
    rigs = {}
    try:
        for key, kw in specs.items():
            rig = rigs[key] = Rig(base, f"{prefix}-{key}", **kw)
            n = len(rig.vols)
            rig.cycle = random.Random(n).sample(range(n), n)
            rig.start_sigreload()
            fill_pod(rig.pod, opts.pod_procs)
    except BaseException:
        for r in rigs.values():
            r.close()
        raise
    return rigs


def measure_scale(rigs, opts):
    """The steps side by side, their updates interleaved, as many as fit opts.scale_budget."""
    return measure_budget(rigs, opts.scale_budget, opts.scale_min, opts.updates,
                          {k: SCALE_WAIT_MS for k in rigs}, {k: SCALE_SETTLE_MS for k in rigs})


def phase_rules(base, opts, R):
    """Cost against the number of rules: 1 to 256 rules, each on a 4-file volume of its own;
    an update changes one rule's volume."""
    rigs = start_scale_rigs(base, "rules", {str(n): dict(volumes=n, keys=4) for n in opts.rules},
                            opts)
    try:
        R["scale"]["rules"] = measure_scale(rigs, opts)
    finally:
        for r in rigs.values():
            r.close()


def phase_files(base, opts, R):
    """Cost against the files of a rule: two rules, one on a volume of N files, one on a volume
    of 4; updates to the big rule's volume (the cost of the files an event concerns), then to
    the small one's (the cost of the files it does not)."""
    rigs = start_scale_rigs(base, "files", {str(n): dict(volumes=2, keys=[n, 4])
                                            for n in opts.files}, opts)
    try:
        for rig in rigs.values():
            rig.cycle = [0]
        updated = measure_scale(rigs, opts)
        for rig in rigs.values():
            rig.cycle = [1]
        other = measure_scale(rigs, opts)
        R["scale"]["files"] = {k: {"updated": updated[k], "other": other[k]} for k in rigs}
    finally:
        for r in rigs.values():
            r.close()


def phase_paths(base, opts, R):
    """Cost against rules × paths: R rules, each listing the P files of a volume of its own as
    its paths (as users list files); an update changes one rule's volume."""
    specs = {f"{r}x{p}": dict(volumes=r, keys=p, paths="files")
             for r in opts.paths_rules for p in opts.paths_per_rule}
    rigs = start_scale_rigs(base, "paths", specs, opts)
    try:
        R["scale"]["paths"] = measure_scale(rigs, opts)
    finally:
        for r in rigs.values():
            r.close()


def phase_procs(base, opts, R):
    """Cost against the processes in the pod: one pod whose process table grows. At each size,
    the /proc scan timed with `sigreload match -c FILE` (start-up and one scan), `sigreload
    check -c FILE` (start-up only) and `pgrep -x app` on the same table; then sigreload and
    inotifywait + pkill, updates interleaved, each on its own volume and target (comm "app" and
    "peer"). Sizes count every process in the pod, the tools under test included."""
    pod = Pod(PAUSE)
    sig = ino = None
    out = R["scale"]["procs"] = {}
    try:
        sig = Rig(base, "procs-sigreload", pod=pod, comm="app")
        ino = Rig(base, "procs-inotify", pod=pod, comm="peer")
        conf = base / "conf" / "scan"
        conf.mkdir(parents=True)
        cfg = conf / "sigreload.yaml"
        cfg.write_text(f'metrics_listen: ""\nrules:\n  - name: app\n    paths:\n      - '
                       f'{sig.vols[0]}\n    match:\n      comm: app\n')
        for total in [0] + opts.procs:
            fill_pod(pod, total, later=4)  # sigreload, and the peer's sh, inotifywait and sh
            scan = timeit(pod, 20 if total < 5000 else 6, {
                "match": [BIN, "match", "-c", cfg],
                "check": [BIN, "check", "-c", cfg],
                "pgrep": ["pgrep", "-x", "app"]})
            scan["visible"] = pod_processes(pod)
            log(f"scan of {scan['visible']} processes: match {scan['match']['median_ms']:.2f} ms, "
                f"pgrep {scan['pgrep']['median_ms']:.2f} ms")
            # as many updates as fit in opts.scale_budget seconds per tool, from the scan
            # times just measured (pkill scans once per event, 5 events an update)
            pkill_ms = scan["pgrep"]["median_ms"]
            est = scan["match"]["median_ms"] / 1000 + 0.06
            n_sig = int(min(opts.updates, max(opts.scale_min, opts.scale_budget / est)))
            settle = int(max(100, 1.5 * pkill_ms))
            est = (6 * pkill_ms + settle) / 1000
            n_ino = int(min(opts.scale_peer_updates, max(3, opts.scale_budget / est)))
            sig.start_sigreload()
            ino.start_inotify()
            res = measure({"sigreload": sig, "inotify": ino},
                          {"sigreload": n_sig, "inotify": n_ino},
                          {"sigreload": SCALE_WAIT_MS, "inotify": int(10 * pkill_ms + 5000)},
                          {"sigreload": SCALE_SETTLE_MS, "inotify": settle})
            res["scan"] = scan
            res["processes"] = pod_processes(pod)
            out[str(res["processes"])] = res
            sig.stop_tool()
            ino.stop_tool()
    finally:
        for r in (sig, ino):
            if r:
                r.close()
        pod.close()


def strace_scans(path, windows):
    """From the log of `strace -f -ttt -yy -e trace=getdents64,accept4`: per window of wall time
    (name -> (t0, t1)), the /proc scans (a listing of /proc read to its end: getdents64 on /proc
    returning 0, however the files under it are then opened) and the connections accepted."""
    out = {k: {"scans": 0, "accepted": 0, "seconds": t1 - t0} for k, (t0, t1) in windows.items()}
    for line in path.read_text(errors="replace").splitlines():
        f = line.split(None, 2)  # pid, time, call
        try:
            t = float(f[1])
        except (IndexError, ValueError):
            continue
        call = f[2].rstrip()
        scan = call.startswith("getdents64(") and "</proc>" in call and call.endswith("= 0")
        accept = call.startswith("accept") and "= -1" not in call
        for k, (t0, t1) in windows.items():
            if t0 <= t < t1:
                out[k]["scans"] += scan
                out[k]["accepted"] += accept
    for v in out.values():
        v["scans_per_s"] = v["scans"] / v["seconds"]
        v["scrapes_per_s"] = v["accepted"] / v["seconds"]
    return out


def phase_scrapes(base, opts, R):
    """/metrics under load: sigreload with the endpoint on, in a pod of opts.scrape_procs
    processes, run under `strace --seccomp-bpf` tracing only getdents64 and accept4 (the other
    calls do not stop it). Updates without scrapers; then opts.scrapers scrapers fetching
    /metrics back to back (bench/scrape.c), for opts.scrape_window seconds with no update and
    then with the updates again. strace's log, cut by wall time, counts the /proc scans and the
    scrapes of each part."""
    port = free_port()
    rig = Rig(base, "scrapes")
    scraper = None
    trace = base / "logs" / "strace-scrapes.txt"
    windows = {}
    try:
        rig.start_sigreload(metrics=f"127.0.0.1:{port}", wrap=[
            "strace", "-f", "--seccomp-bpf", "-ttt", "-yy", "-e", "trace=getdents64,accept4",
            "-o", trace])
        fill_pod(rig.pod, opts.scrape_procs)
        out = {"processes": pod_processes(rig.pod), "scrapers": opts.scrapers,
               "method": "strace -f --seccomp-bpf -ttt -yy -e trace=getdents64,accept4"}
        waits, settles = {"sigreload": SCALE_WAIT_MS}, {"sigreload": SCALE_SETTLE_MS}
        budget = opts.scale_budget / 2

        def updates(name):
            t0 = time.time()
            out[name] = measure_budget({"sigreload": rig}, budget, opts.scale_min, opts.updates,
                                       waits, settles)["sigreload"]
            windows[name] = (t0, time.time())

        updates("without")
        # bounded in time and count; ends early when its stdin closes
        scraper = subprocess.Popen([tool("scrape"), str(port), str(opts.scrapers), "900",
                                    "1000000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True)
        if scraper.stdout.readline().strip() != "ready":
            raise RuntimeError("scrape did not start")
        t0 = time.monotonic()
        time.sleep(0.5)  # the scrapers connected
        windows["window"] = (time.time(), time.time() + opts.scrape_window)
        time.sleep(opts.scrape_window)
        updates("with")
        scraper.stdin.close()
        fields = scraper.stdout.readline().split()
        seconds = time.monotonic() - t0
        if fields[:1] != ["scraped"]:
            raise RuntimeError(f"scrape said {fields}")
        out["scrapes"] = {"ok": int(fields[1]), "failed": int(fields[2]), "seconds": seconds,
                          "per_s": int(fields[1]) / seconds}
        rig.stop_tool()  # strace's log complete
        counts = strace_scans(trace, windows)
        out["scans"] = counts.pop("window")
        for k, v in counts.items():
            out[k]["scans"] = v
        log(f"scrapes: {out['scans']}")
        R["scrapes"] = out
    finally:
        if scraper:
            if not scraper.stdin.closed:
                scraper.stdin.close()
            try:
                scraper.wait(30)
            except subprocess.TimeoutExpired:
                scraper.kill()
                scraper.wait()
            scraper.stdout.close()
        rig.close()


# ---- the machine -----------------------------------------------------------------------------

def is_static(path):
    """Whether an ELF executable names no program interpreter (the image's static build)."""
    with open(path, "rb") as f:
        elf = f.read(1 << 16)
    if elf[:4] != b"\x7fELF" or elf[4] != 2:  # 64-bit only, as every build here
        return None
    phoff, phentsize, phnum = (int.from_bytes(elf[0x20:0x28], "little"),
                               int.from_bytes(elf[0x36:0x38], "little"),
                               int.from_bytes(elf[0x38:0x3a], "little"))
    types = [int.from_bytes(elf[phoff + i * phentsize:phoff + i * phentsize + 4], "little")
             for i in range(phnum)]
    return 3 not in types  # PT_INTERP


def machine():
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return None

    model = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "date": datetime.date.today().isoformat(), "static": is_static(BIN),
            "memory_gib": round(mem_kb / 2**20, 1), "loadavg_start": os.getloadavg(),
            "sigreload": first([BIN, "--version"]),
            "commit": first(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
            "openssl": first(["openssl", "version"]), "sha256sum": first(["sha256sum", "--version"]),
            "pgrep": first(["pgrep", "--version"]), "inotifywait": first(["inotifywait", "--help"]),
            "python": platform.python_version()}


# ---- main ----------------------------------------------------------------------------------

def ints(text):
    return [int(x) for x in text.split(",") if x]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: small counts and fewer steps, about 5 minutes")
    ap.add_argument("--only", default="",
                    help="comma-separated sections to run, of: " + ", ".join(SECTIONS)
                         + "; 'scaling' is rules, files, paths and procs (default: all)")
    ap.add_argument("--idle", type=float, default=60, help="idle window in seconds (60)")
    ap.add_argument("--busy", type=float, default=10,
                    help="seconds of churn in the directory above the volumes (10)")
    ap.add_argument("--pod-procs", type=int, default=50,
                    help="processes in each pod of the latency and scaling runs (50)")
    ap.add_argument("--updates", type=int, default=200,
                    help="updates per latency run, and at most per scaling step (200)")
    ap.add_argument("--debounce-updates", type=int, default=50)
    ap.add_argument("--strace-updates", type=int, default=20,
                    help="updates with strace attached, for the system calls (20)")
    ap.add_argument("--checks", type=int, default=10, help="identical swaps and touches (10 each)")
    ap.add_argument("--rules", default="1,4,16,64,256", help="rule counts (1,4,16,64,256)")
    ap.add_argument("--files", default="1,10,100,1000,10000",
                    help="files per rule (1,10,100,1000,10000)")
    ap.add_argument("--paths-rules", default="1,16,256", help="rules of the rules × paths grid")
    ap.add_argument("--paths-per-rule", default="1,8,64", help="paths of the rules × paths grid")
    ap.add_argument("--procs", default="100,1000,10000",
                    help="processes in the pod, besides its own few (100,1000,10000)")
    ap.add_argument("--scale-budget", type=float, default=40,
                    help="seconds of updates per scaling table (40)")
    ap.add_argument("--scale-min", type=int, default=10, help="least updates per step (10)")
    ap.add_argument("--scale-peer-updates", type=int, default=50)
    ap.add_argument("--scrapers", type=int, default=30)
    ap.add_argument("--scrape-procs", type=int, default=3000)
    ap.add_argument("--scrape-window", type=float, default=5,
                    help="seconds of scrapes with strace counting /proc scans (5)")
    ap.add_argument("--reloads", type=int, default=10000)
    ap.add_argument("--mem-rules", type=int, default=256)
    ap.add_argument("--mem-keys", type=int, default=16)
    ap.add_argument("--mem-budget", type=float, default=240,
                    help="seconds the reloads may take: they stop at the last 1,000 that fits "
                         "(240)")
    ap.add_argument("--hash-mib", type=int, default=512)
    ap.add_argument("--poll1-changes", type=int, default=40)
    ap.add_argument("--poll30-changes", type=int, default=6)
    ap.add_argument("--poll30-rigs", type=int, default=3)
    ap.add_argument("--poll30-budget", type=float, default=200,
                    help="seconds the background poll-30 runs may take (200)")
    ap.add_argument("--tmpdir", default=os.environ.get("BENCH_TMPDIR", "/"),
                    help="where the run's directory goes: somewhere nothing else creates or "
                         "removes entries (default /: /tmp and /var/tmp are busy on shared "
                         "machines, and every entry made there wakes a watcher of a path below)")
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--poll-session", help=argparse.SUPPRESS)
    o = ap.parse_args(argv)
    if o.quick:
        o.idle, o.busy, o.updates, o.debounce_updates, o.scale_peer_updates = 15, 5, 40, 10, 10
        o.checks, o.procs, o.reloads, o.hash_mib, o.strace_updates = 3, "1000", 1000, 64, 10
        o.rules, o.files, o.paths_rules, o.paths_per_rule = "1,16,256", "1,100,10000", "1,256", \
            "1,64"
        o.scale_budget, o.scale_min, o.scrape_window = 10, 3, 3
        o.poll1_changes, o.poll30_changes, o.poll30_rigs, o.poll30_budget = 8, 1, 1, 70
    for k in ("rules", "files", "paths_rules", "paths_per_rule", "procs"):
        setattr(o, k, ints(getattr(o, k)))
    only = set()
    for name in (x.strip() for x in o.only.split(",") if x.strip()):
        if name not in SECTIONS and name not in GROUPS:
            ap.error(f"--only: no section {name!r}; sections: {', '.join(SECTIONS)}, scaling")
        only |= set(GROUPS.get(name, (name,)))
    o.sections = [s for s in SECTIONS if not only or s in only]
    return o


def preflight(opts):
    missing = [t for t in ("unshare", "inotifywait", "openssl", "sha256sum", "md5sum", "pgrep",
                           "pkill", "strace") if not shutil.which(t)]
    if not importlib.util.find_spec("matplotlib"):
        missing.append("matplotlib (python3-matplotlib)")
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)}: run `make deps`")
    if os.geteuid() != 0:
        sys.exit("bench: needs root (PID namespaces, strace)")
    for f in (BIN, PAUSE):
        if not os.access(f, os.X_OK):
            sys.exit(f"bench: {f} is not built: run `make bench`")


def raise_limits(opts, restore):
    """pid_max and threads-max large enough for the idle processes; restored at exit."""
    need = max(opts.procs + [opts.scrape_procs], default=0) + 5000
    for path in ("/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"):
        cur = int(Path(path).read_text())
        if cur < need:
            restore.append((path, cur))
            Path(path).write_text(str(need))
            log(f"{path}: {cur} -> {need} for this run")


def collect_polls(opts, R, background):
    """The poll peers' background runs, once they are done."""
    polls = {}
    for name, out, p in background:
        try:
            p.wait(max(5, opts.poll30_budget + 60))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        try:
            polls[name] = json.loads(Path(out).read_text())
        except (OSError, ValueError):
            log(f"{name}: no result; see {out[:-5]}.err:\n"
                + Path(out[:-5] + ".err").read_text()[-2000:])
    R["poll1"] = polls.get("poll1")
    R["poll30"] = merge_polls([v for k, v in polls.items() if k.startswith("poll30")])


def run_phases(base, opts, R):
    restore, background = [], []
    phases = {"busy": phase_busy, "memory": phase_memory, "hash": phase_hash,
              "latency": phase_latency, "rules": phase_rules, "files": phase_files,
              "paths": phase_paths, "procs": phase_procs, "scrapes": phase_scrapes}
    R["scale"] = {}
    try:
        raise_limits(opts, restore)
        for name in opts.sections:
            log(f"== {name}")
            if name == "idle":
                phase_idle(base, opts, R, background)
            else:
                phases[name](base, opts, R)
        if background:
            collect_polls(opts, R, background)
    finally:
        for _, _, p in background:
            if p.poll() is None:
                p.kill()
                p.wait()
        for path, value in restore:
            Path(path).write_text(str(value))


def main(argv):
    opts = parse_args(argv)
    if opts.poll_session:
        poll_session_main(json.loads(opts.poll_session))
        return 0
    preflight(opts)
    build()
    R = {"machine": machine(), "options": {k: v for k, v in vars(opts).items()
                                           if k != "poll_session"}}
    # a short name: 256 rules × 64 paths under it must fit sigreload's 1 MiB rule file
    base = Path(tempfile.mkdtemp(prefix="sigbench-", dir=opts.tmpdir))
    for d in ("vols", "conf", "logs"):
        (base / d).mkdir()
    t_start = time.monotonic()
    try:
        run_phases(base, opts, R)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    R["machine"]["loadavg_end"] = os.getloadavg()
    R["seconds"] = time.monotonic() - t_start
    res = Path(opts.results)
    res.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    R["images"] = plot.plot_all(R, res, stamp)
    md = report.report(R)
    print(md)
    (res / f"{stamp}.json").write_text(json.dumps(R, indent=1))
    (res / f"{stamp}.md").write_text(md + "\n")
    log(f"wrote {res / stamp}.json, .md and {len(R['images'])} PNGs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
