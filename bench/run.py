#!/usr/bin/env python3
"""sigreload's benchmarks, side by side with what users run today (`make bench`).

Every figure comes from real processes in fresh PID namespaces ("pods", bench/pod.py), real files
written the way the kubelet writes a ConfigMap volume (bench/kubeswap.c, a C replay of
tests/system/kubelet.py that reads CLOCK_MONOTONIC right before and right after the `..data`
rename) and a target (bench/stamp.c) that reads CLOCK_MONOTONIC in its signal handler. The peers
are the loops users run today, from Debian packages (bench/peers/): md5sum polling every 1 s and
30 s with `kill -HUP $(pgrep -x app)`, and `inotifywait -m` with one `pkill -HUP -x app` per event.

    make bench [BENCH_ARGS="--quick"]

prints markdown tables and writes bench/results/<UTC time>.json and .md. The run takes five to
seven minutes on two cores (`--quick`: under two); see --help for the knobs, and bench/README.md
for the method. A benchmark reports; it never fails on a missed target (only on a broken
harness).
"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from pod import Pod, read_line  # noqa: E402

BIN = os.environ.get("SIGRELOAD_BIN", str(ROOT / "sigreload"))
HELPERS = Path(os.environ.get("SIGRELOAD_HELPERS", str(ROOT / "build" / "helpers")))
TOOLS = Path(os.environ.get("SIGRELOAD_BENCH_TOOLS", str(ROOT / "build" / "bench")))
PAUSE = str(HELPERS / "pause")
CLK_TCK = os.sysconf("SC_CLK_TCK")
C_TOOLS = ("stamp", "kubeswap", "idle", "timeit", "floor")

# Tools compared: key -> label. "sigreload" runs with debounce 0 unless said otherwise.
PEERS = {"inotify": "inotifywait + pkill", "poll1": "poll 1 s", "poll30": "poll 30 s"}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool(name):
    return str(TOOLS / name)


def build():
    """The C helpers, built with the project's compiler when their source is newer."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    for name in C_TOOLS:
        src, out = HERE / f"{name}.c", TOOLS / name
        if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        subprocess.run([cc, "-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Wshadow", "-o",
                        str(out), str(src)], check=True)


# ---- /proc of the host ---------------------------------------------------------------------

def ppid_map():
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                out[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def descendants(root, ppids=None):
    ppids = ppids if ppids is not None else ppid_map()
    kids = {}
    for pid, ppid in ppids.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def proc_sample(pid):
    """CPU and scheduling counters of one process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/schedstat") as f:
            run_ns = int(f.read().split()[0])
    except (OSError, ValueError):
        return None
    # fields[0] is state (field 3): utime is field 14, i.e. fields[11]
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))

    def kb(key):
        return int(status[key].split()[0]) if key in status else 0

    return {
        "ticks": utime + stime, "child_ticks": cutime + cstime, "run_ns": run_ns,
        "vcsw": int(status["voluntary_ctxt_switches"]),
        "nvcsw": int(status["nonvoluntary_ctxt_switches"]),
        "rss_kb": kb("VmRSS"), "hwm_kb": kb("VmHWM"),
    }


def smaps(pid):
    """Where the resident memory is: anonymous (heap, stacks) or file-backed (the binary and
    its libraries, shared with any other process mapping them), and the proportional share."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Pss", "Pss_Anon", "Pss_File", "Anonymous", "Private_Dirty"):
                    out[k.lower() + "_kb"] = int(v.split()[0])
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("RssAnon", "RssFile", "RssShmem", "VmData", "VmStk", "VmPTE"):
                    out[k.lower() + "_kb"] = int(v.split()[0])
    except OSError:
        pass
    return out


def tree_sample(root):
    """The counters of every live process of the tree at root, by pid."""
    per = {}
    for pid in descendants(root):
        s = proc_sample(pid)
        if s:
            per[pid] = s
    return {"per": per, "t": time.monotonic(), "procs": len(per),
            "rss_kb": sum(s["rss_kb"] for s in per.values())}


def delta(a, b):
    """Counter increments between two samples, over the processes alive at both: the long-lived
    ones. Short-lived children count through the cutime and cstime of the parent that reaped
    them; their context switches are not counted (the processes they took are, elsewhere)."""
    out = {"t": b["t"] - a["t"], "ticks": 0, "child_ticks": 0, "run_ns": 0, "vcsw": 0, "nvcsw": 0}
    for pid, sb in b["per"].items():
        sa = a["per"].get(pid)
        if sa:
            for k in ("ticks", "child_ticks", "run_ns", "vcsw", "nvcsw"):
                out[k] += sb[k] - sa[k]
    out["cpu_ms"] = (out["ticks"] + out["child_ticks"]) * 1000 / CLK_TCK
    return out


# ---- the replayer and the target -----------------------------------------------------------

class Driver:
    """bench/kubeswap.c as a co-process: kubelet-style updates and the signal records."""

    def __init__(self, records_fd):
        self.errors = 0
        self.p = subprocess.Popen([tool("kubeswap"), str(records_fd)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, pass_fds=(records_fd,), text=True,
                                  bufsize=1)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline().strip()
        if not reply or reply.startswith("error"):
            raise RuntimeError(f"kubeswap: {line!r} -> {reply!r}")
        return reply

    def op(self, kind, line):
        for attempt in range(3):
            try:
                f = self.cmd(line).split()
                break
            except RuntimeError as e:
                # a shared machine's disk can fill for a moment: say so, and try again
                if attempt == 2 or "error" not in str(e):
                    raise
                log(f"{e}; trying again in 1 s")
                self.errors += 1
                time.sleep(1)
        recs = []
        if f[6] != "-":
            for r in f[6].split(","):
                pid, role, sig, ns = r.split(":")
                recs.append((int(ns), int(pid), role, int(sig)))
        return {"kind": kind, "t_start": int(f[1]), "t0": int(f[2]), "t1": int(f[3]),
                "t_end": int(f[4]), "timed_out": f[5] == "1", "records": recs}

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stdout.close()


class Rig:
    """A pod holding a target (stamp: comm "app", a master and its workers), volumes written by
    the replayer, and one tool under test at a time. Rigs may share a pod (then give each its
    own comm)."""

    def __init__(self, base, name, pod=None, workers=2, volumes=1, keys=1, comm="app"):
        self.base, self.name, self.keys, self.comm = Path(base), name, keys, comm
        self.voldir = self.base / "vols" / name
        self.voldir.mkdir(parents=True, exist_ok=True)
        self.vols = [self.voldir / ("vol" if volumes == 1 else f"vol{i}") for i in range(volumes)]
        self.own_pod = pod is None
        self.pod = pod or Pod(PAUSE)
        self.tool = self.tool_name = self.driver = None
        self.version = 0
        try:
            r, w = os.pipe()
            try:
                self.target = self.pod.spawn([tool("stamp"), "--comm", comm, "--workers",
                                              workers], stdout=w)
            finally:
                os.close(w)
            try:
                fields = read_line(r).split()
                self.master, self.workers = int(fields[1]), [int(x) for x in fields[2:]]
                self.driver = Driver(r)
            finally:
                os.close(r)
            self.driver.cmd(f"master {self.master}")
            for v in self.vols:
                self.driver.cmd(f"write {v} {keys} v0")
        except BaseException:
            self.close()
            raise

    # -- tools

    def _logfile(self, what):
        d = self.base / "logs"
        d.mkdir(exist_ok=True)
        return d / f"{self.name}.{what}.log"

    def _wait_log(self, path, needle, count=1, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.read_text(errors="replace").count(needle) >= count:
                return
            if self.tool.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"{self.tool_name} in {self.name}: no {needle!r} in {path}:\n"
                           + path.read_text(errors="replace")[-2000:])

    def start_sigreload(self, debounce="0ms", metrics="", extra="", binary=None):
        conf = self.base / "conf" / self.name
        conf.mkdir(parents=True, exist_ok=True)
        cfg = conf / "sigreload.yaml"
        lines = []
        if debounce is not None:
            lines.append(f"debounce: {debounce}")
        lines.append(f'metrics_listen: "{metrics}"')
        lines.append("rules:")
        for i, v in enumerate(self.vols):
            lines += [f"  - name: app{i}", "    paths:", f"      - {v}", "    match:",
                      f"      comm: {self.comm}"]
        cfg.write_text("\n".join(lines) + "\n" + extra)
        self.config = cfg
        self.logpath = self._logfile(f"sigreload-{debounce}-{metrics.replace(':', '_')}")
        with open(self.logpath, "w") as logf:
            self.tool = self.pod.spawn([binary or BIN, "run", "-c", cfg], stderr=logf)
        self.tool_name = "sigreload"
        self._wait_log(self.logpath, 'msg="watching"', len(self.vols))
        return self

    def start_poll(self, period):
        self.logpath = self._logfile(f"poll{period}")
        with open(self.logpath, "w") as logf:
            self.tool = self.pod.spawn(["/bin/sh", HERE / "peers" / "poll.sh", period,
                                        self.vols[0], self.comm], stderr=logf)
        self.tool_name = f"poll{period}"
        self._wait_log(self.logpath, "ready")
        return self

    def start_inotify(self):
        self.logpath = self._logfile("inotify")
        with open(self.logpath, "w") as logf:
            self.tool = self.pod.spawn(["/bin/sh", HERE / "peers" / "inotify.sh", self.vols[0],
                                        self.comm], stderr=logf)
        self.tool_name = "inotify"
        self._wait_log(self.logpath, "Watches established")
        return self

    def start_floor(self):
        self.logpath = self._logfile("floor")
        with open(self.logpath, "w") as logf:
            self.tool = self.pod.spawn([tool("floor"), self.vols[0], self.master], stderr=logf)
        self.tool_name = "floor"
        self._wait_log(self.logpath, "ready")
        return self

    def start(self, name, **kw):
        if name == "sigreload":
            return self.start_sigreload(**kw)
        if name == "inotify":
            return self.start_inotify()
        if name == "floor":
            return self.start_floor()
        return self.start_poll(int(name[4:]))

    def internal_ms(self):
        """sigreload's own account, from its log: first event of the burst to the signal."""
        if self.tool_name != "sigreload":
            return None
        v = []
        for line in self.logpath.read_text(errors="replace").splitlines():
            if 'msg="signaled"' in line and "since_event_ms=" in line:
                v.append(float(line.split("since_event_ms=")[1].split()[0].strip('"')))
        return {"n": len(v), "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
                "max": max(v) if v else None} if v else None

    def stop_tool(self):
        if not self.tool:
            return
        pids = descendants(self.tool.pid)
        self.tool.send_signal(signal.SIGTERM)
        try:
            self.tool.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for pid in reversed(pids):  # the peers' pipelines and sleeps, by pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.tool.wait()
        self.tool = None

    def sample(self):
        return tree_sample(self.tool.pid)

    # -- operations on the volume

    def change(self, vol=0, wait_ms=2000, settle_ms=50):
        self.version += 1
        return self.driver.op("change", f"update {self.vols[vol]} {self.keys} v{self.version} 1 "
                                        f"{wait_ms} {settle_ms}")

    def identical(self, vol=0, window_ms=300):
        return self.driver.op("identical", f"update {self.vols[vol]} {self.keys} "
                                           f"v{self.version} 0 {window_ms} 0")

    def touch(self, vol=0, window_ms=300):
        key = "app.conf" if self.keys == 1 else "k000.conf"  # kubeswap's key names
        return self.driver.op("touch", f"touch {self.vols[vol] / key} {window_ms}")

    def drain(self, quiet_ms=200):
        return self.driver.op("drain", f"drain {quiet_ms}")

    def close(self):
        self.stop_tool()
        if self.driver:
            self.driver.close()
        if self.own_pod:
            self.pod.close()


# ---- analysis ------------------------------------------------------------------------------

def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def attribute(ops, master):
    """Gives each record to the operation during whose interval it arrived, and derives per
    operation: latency (rename to the master's first signal after it), signals, and so on."""
    records = sorted(r for o in ops for r in o["records"] + o.get("late", []))
    out = []
    for i, o in enumerate(ops):
        hi = ops[i + 1]["t_start"] if i + 1 < len(ops) else float("inf")
        recs = [r for r in records if o["t_start"] <= r[0] < hi]
        # The clock is read right before rename(2) (t0) and right after (t1). Latency counts
        # from t0: the watcher woken by the rename may preempt the replayer on its CPU before
        # it reads the clock again, so a signal can arrive "before" t1.
        after = [r for r in recs if r[0] >= o["t0"] and r[1] == master]
        out.append({
            "kind": o["kind"],
            "latency_ns": after[0][0] - o["t0"] if after else None,
            "before_t1": bool(after) and after[0][0] < o["t1"],
            "signals": len(recs),
            "leader": sum(1 for r in recs if r[1] == master),
            "workers": sum(1 for r in recs if r[2] == "w"),
            "before_swap": sum(1 for r in recs if r[0] < o["t0"]),
            "rename_ns": o["t1"] - o["t0"],
        })
    stray = [r for r in records if not ops or r[0] < ops[0]["t_start"]]
    return out, len(stray)


def summarize(ops, master, cpu=None):
    per, stray = attribute(ops, master)
    res = {"stray_signals": stray}
    for kind in ("change", "identical", "touch"):
        sel = [o for o in per if o["kind"] == kind]
        if not sel:
            continue
        n = len(sel)
        s = {"n": n,
             "signals_per_op": sum(o["signals"] for o in sel) / n,
             "leader_per_op": sum(o["leader"] for o in sel) / n,
             "workers_per_op": sum(o["workers"] for o in sel) / n,
             "before_swap_per_op": sum(o["before_swap"] for o in sel) / n}
        if kind == "change":
            lat = [o["latency_ns"] / 1e6 for o in sel if o["latency_ns"] is not None]
            s["missed"] = n - len(lat)
            s["latency_ms"] = {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                               "max": max(lat) if lat else None,
                               "mean": statistics.fmean(lat) if lat else None}
            s["latencies_ms"] = [round(x, 4) for x in lat]
            ren = [o["rename_ns"] / 1e3 for o in sel]
            s["rename_us"] = {"p50": pct(ren, 50), "p99": pct(ren, 99), "max": max(ren)}
            s["signal_before_clock_after_rename"] = sum(o["before_t1"] for o in sel)
        res[kind] = s
    if cpu:
        res["cpu"] = cpu
    return res


def cpu_per_update(before, after, n, single_process):
    d = delta(before, after)
    out = {"updates": n, "cpu_ms_total": d["cpu_ms"], "run_ms_total": d["run_ns"] / 1e6}
    # One process (sigreload): schedstat's nanoseconds are exact. A tree (the peers): only
    # utime+stime+cutime+cstime covers the children it started and reaped.
    out["ms_per_update"] = (d["run_ns"] / 1e6 if single_process else d["cpu_ms"]) / max(n, 1)
    out["source"] = "schedstat" if single_process else "stat ticks incl. reaped children"
    return out


# ---- sessions ------------------------------------------------------------------------------

def measure(rigs, counts, waits, settles, checks=0, windows=None):
    """Updates with new content, interleaved: round i gives each rig still short of its count
    one update, starting at a rotating rig, so that a noisy neighbour on the machine hits every
    tool alike. Then, rig by rig, `checks` swaps to identical content and as many touches.
    Returns {name: summary}, with CPU per update measured over the changes."""
    names = list(rigs)
    ops = {n: [] for n in names}
    before = {n: rigs[n].sample() for n in names}
    t0 = time.monotonic()
    for i in range(max(counts.values())):
        for j in range(len(names)):
            n = names[(i + j) % len(names)]
            if i < counts[n]:
                ops[n].append(rigs[n].change(wait_ms=waits[n], settle_ms=settles[n]))
    after = {n: rigs[n].sample() for n in names}
    seconds = time.monotonic() - t0
    out = {}
    for n in names:
        rig = rigs[n]
        cpu = cpu_per_update(before[n], after[n], len(ops[n]), rig.tool_name in ("sigreload",
                                                                                    "floor"))
        cpu["seconds"] = seconds
        for _ in range(checks):
            ops[n].append(rig.identical(window_ms=windows[n]))
        for _ in range(checks):
            ops[n].append(rig.touch(window_ms=windows[n]))
        d = rig.drain(max(settles[n], 100))
        ops[n][-1]["late"] = d["records"]
        res = summarize(ops[n], rig.master, cpu)
        res["rss_kb"] = after[n]["rss_kb"]
        res["internal_ms"] = rig.internal_ms()
        c = res["change"]
        log(f"{rig.name}: {c['n']} changes, p50 {fmt_ms(c['latency_ms']['p50'])} "
            f"p99 {fmt_ms(c['latency_ms']['p99'])}, {c['signals_per_op']:.2f} signals each, "
            f"{c['missed']} missed, {cpu['ms_per_update']:.3f} ms CPU each")
        out[n] = res
    return out


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


def phase_memory(base, opts, R):
    """VmRSS and VmHWM of sigreload at start, after 1,000 and after 10,000 reloads: 10 rules,
    10 keys each, one rule's volume updated at a time (debounce 0 so that each update is one
    reload and 10,000 of them fit in seconds)."""
    rig = Rig(base, "memory", workers=0, volumes=opts.mem_rules, keys=opts.mem_keys)
    try:
        rig.start_sigreload(debounce="0ms")
        pid = rig.tool.pid

        def mem():
            s = proc_sample(pid)
            return {"rss_kb": s["rss_kb"], "hwm_kb": s["hwm_kb"], **smaps(pid)}

        out = {"rules": opts.mem_rules, "files": opts.mem_rules * opts.mem_keys,
               "at": {"0": mem()}}
        before = rig.sample()
        t0 = time.monotonic()
        missed = signals = 0
        marks = {1000, opts.reloads}
        for i in range(1, opts.reloads + 1):
            o = rig.change(vol=(i - 1) % opts.mem_rules, wait_ms=5000, settle_ms=0)
            missed += o["timed_out"]
            signals += len(o["records"])
            if i in marks:
                out["at"][str(i)] = mem()
                log(f"memory after {i} reloads: {out['at'][str(i)]}")
        after = rig.sample()
        d = rig.drain(200)
        signals += len(d["records"])
        out["seconds"] = time.monotonic() - t0
        out["missed"] = missed
        out["signals"] = signals
        out["cpu"] = cpu_per_update(before, after, opts.reloads, True)
        text = rig.logpath.read_text()
        out["logged_signaled"] = text.count('msg="signaled"')
        R["memory"] = out
    finally:
        rig.close()


def pod_processes(pod):
    """Processes in the pod's PID namespace, counted from the host."""
    ns = os.readlink(f"/proc/{pod.init_pid}/ns/pid")
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                n += os.readlink(f"/proc/{entry}/ns/pid") == ns
            except OSError:
                pass
    return n


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
    size = opts.hash_mib << 20
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


def phase_latency(base, opts, R):
    """Latency with the process table of a small pod: sigreload (debounce 0), the floor and
    inotifywait + pkill, each in a pod of its own, updates interleaved; then sigreload with
    its default debounce."""
    rigs = {}
    try:
        for name in ("sigreload", "floor", "inotify"):
            rigs[name] = Rig(base, f"lat-{name}")
        rigs["sigreload"].start_sigreload(debounce="0ms")
        rigs["floor"].start_floor()
        rigs["inotify"].start_inotify()
        names = list(rigs)
        R["latency"]["0"] = measure(
            rigs, {n: opts.updates for n in names}, {n: 2000 for n in names},
            {"sigreload": 50, "floor": 50, "inotify": 100}, checks=opts.checks,
            windows={n: 300 for n in names})
    finally:
        for r in rigs.values():
            r.close()
    rig = Rig(base, "lat-debounce")
    try:
        rig.start_sigreload(debounce=None)
        R["latency"]["0"].update(measure(
            {"sigreload-debounce": rig}, {"sigreload-debounce": opts.debounce_updates},
            {"sigreload-debounce": 3000}, {"sigreload-debounce": 50}, checks=opts.checks,
            windows={"sigreload-debounce": 700}))
    finally:
        rig.close()


def spawn_idle(pod, n):
    """n more unrelated idle processes in the pod."""
    p = pod.spawn([tool("idle"), n, "idle"], stdout=subprocess.PIPE)
    line = read_line(p.stdout.fileno(), timeout=120)
    if line != f"ready {n}":
        raise RuntimeError(f"idle said {line!r}")


def phase_scale(base, opts, R):
    """One pod whose process table grows from its own few to 1,000 and 10,000 idle
    processes. At each size: the /proc scan timed with `sigreload match -c FILE` (one scan) and
    `pgrep -x app` on the same table, then sigreload and inotifywait + pkill, interleaved,
    each on its own volume and target (comm "app" and "peer")."""
    pod = Pod(PAUSE)
    sig = ino = None
    try:
        sig = Rig(base, "scale-sigreload", pod=pod, comm="app")
        ino = Rig(base, "scale-inotify", pod=pod, comm="peer")
        conf = base / "conf" / "scan"
        conf.mkdir(parents=True)
        cfg = conf / "sigreload.yaml"
        cfg.write_text(f'metrics_listen: ""\nrules:\n  - name: app\n    paths:\n      - '
                       f'{sig.vols[0]}\n    match:\n      comm: app\n')
        have = 0
        for n in [0] + opts.procs:
            if n > have:
                log(f"adding {n - have} idle processes")
                spawn_idle(pod, n - have)
                have = n
            scan = timeit(pod, 20 if n < 5000 else 6, {
                "match": [BIN, "match", "-c", cfg],  # start-up, rule file, one scan
                "check": [BIN, "check", "-c", cfg],  # start-up and rule file only
                "pgrep": ["pgrep", "-x", "app"]})
            scan["visible"] = pod_processes(pod)
            R["scan"][str(n)] = scan
            log(f"scan with {n} idle: match {scan['match']['median_ms']:.2f} ms, "
                f"pgrep {scan['pgrep']['median_ms']:.2f} ms")
            if n == 0:
                continue
            # as many updates as fit in opts.scale_budget seconds per tool, from the scan
            # times just measured (pkill scans once per event, 5 events an update)
            pkill_ms = scan["pgrep"]["median_ms"]
            est = scan["match"]["median_ms"] / 1000 + 0.06
            n_sig = int(min(opts.updates, max(30, opts.scale_budget / est)))
            settle = int(max(100, 1.5 * pkill_ms))
            est = (6 * pkill_ms + settle) / 1000
            n_ino = int(min(opts.scale_peer_updates, max(3, opts.scale_budget / est)))
            sig.start_sigreload(debounce="0ms")
            ino.start_inotify()
            R["latency"][str(n)] = measure(
                {"sigreload": sig, "inotify": ino}, {"sigreload": n_sig, "inotify": n_ino},
                {"sigreload": 10000, "inotify": int(10 * pkill_ms + 5000)},
                {"sigreload": 50, "inotify": settle})
            sig.stop_tool()
            ino.stop_tool()
    finally:
        for r in (sig, ino):
            if r:
                r.close()
        pod.close()


# ---- report --------------------------------------------------------------------------------

def fmt_ms(v, digits=3):
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.{digits}f} ms"


def ratio(peer, ours):
    if peer is None or ours is None:
        return ""
    if ours == 0:
        return " (∞×)" if peer > 0 else " (=)"
    return f" ({peer / ours:,.0f}×)" if peer / ours >= 10 else f" ({peer / ours:.1f}×)"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def report(R):
    md = []
    lat0 = R.get("latency", {}).get("0", {})
    sig = lat0.get("sigreload", {})
    peers = {"inotify": lat0.get("inotify"), "poll1": R.get("poll1"), "poll30": R.get("poll30")}

    def cell(res, path, ours=None, f=fmt_ms):
        v = res
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return "–" if v is None else f(v) + (ratio(v, ours) if ours is not None else "")

    def get(res, *path):
        v = res
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    # 1. latency
    floor = lat0.get("floor", {})
    hdr = ["`..data` rename → signal handler runs", "sigreload",
           "floor: bare inotify → kill(2)"] + [PEERS[p] for p in peers]
    rows = []
    for q in ("p50", "p90", "p99", "max"):
        ours = get(sig, "change", "latency_ms", q)
        rows.append([q, fmt_ms(ours), cell(floor, ["change", "latency_ms", q])]
                    + [cell(peers[p], ["change", "latency_ms", q], ours) for p in peers])
    rows.append(["updates (missed)",
                 *[f"{get(r, 'change', 'n')} ({get(r, 'change', 'missed')})" if r else "–"
                   for r in [sig, floor] + list(peers.values())]])
    internal = sig.get("internal_ms") or {}
    rows.append(["sigreload's own time, first event read → signal sent (its log): p50 / p99",
                 f"{fmt_ms(internal.get('p50'))} / {fmt_ms(internal.get('p99'))}", "", "", "",
                 ""])
    deb = lat0.get("sigreload-debounce", {})
    rows.append(["sigreload, default debounce 200 ms: p50 / p99 / max",
                 " / ".join(fmt_ms(get(deb, "change", "latency_ms", q)) for q in ("p50", "p99", "max"))
                 + f" ({get(deb, 'change', 'n')} updates)", "", "", "", ""])
    for n in sorted((int(k) for k in R.get("latency", {}) if k != "0")):
        L = R["latency"][str(n)]
        s, i = L.get("sigreload", {}), L.get("inotify", {})
        rows.append([f"with {n:,} idle processes: p50 / p99 / max",
                     " / ".join(fmt_ms(get(s, "change", "latency_ms", q)) for q in ("p50", "p99", "max"))
                     + f" ({get(s, 'change', 'n')} updates)", "",
                     " / ".join(fmt_ms(get(i, "change", "latency_ms", q)) for q in ("p50", "p99", "max"))
                     + ratio(get(i, "change", "latency_ms", "p50"), get(s, "change", "latency_ms", "p50"))
                     + f" ({get(i, 'change', 'n')} updates)", "", ""])
    md.append("### Latency: the kubelet's `..data` rename → the app's signal handler runs\n\n"
              "Debounce 0; the clock is read right before rename(2) and in the handler. "
              "sigreload, the floor and inotifywait + pkill run at the same time in pods of their "
              "own, their updates interleaved; ratio = peer / sigreload.\n\n" + table(hdr, rows))

    # 2. idle
    idle = R.get("idle", {})
    keys = [("sigreload", "sigreload"), ("sigreload-metrics", "sigreload, metrics on"),
            ("inotify", PEERS["inotify"]), ("poll1", PEERS["poll1"]), ("poll30", PEERS["poll30"])]
    keys = [(k, lab) for k, lab in keys if k in idle]
    rows = []
    for label, key, f in [("CPU time, utime+stime (incl. reaped children)", "cpu_ms", fmt_ms),
                          ("CPU time, schedstat (live processes)", "run_ms", fmt_ms),
                          ("wakeups (voluntary context switches)", "wakeups", str),
                          ("involuntary context switches", "involuntary", str),
                          ("processes started", "processes_started", str),
                          ("resident memory (VmRSS, long-lived processes)", "rss_kb",
                           lambda v: f"{v / 1024:.2f} MiB")]:
        base = idle.get("sigreload", {}).get(key)
        row = [label]
        for k, _ in keys:
            v = idle[k].get(key)
            row.append(f(v) + (ratio(v, base) if k not in ("sigreload", "sigreload-metrics")
                               and key != "rss_kb" else ""))
        rows.append(row)
    if keys:
        note = "" if idle.get("metrics_endpoint_answered") else (
            " The metrics endpoint did not answer in this build: the two sigreload columns run the"
            " same code.")
        note += (f" Entries created or removed by others in the directories above the volumes"
                 f" during the window (each wakes sigreload, which watches them): "
                 f"{idle.get('events_above_volumes', '?')}.")
        md.append(f"### Idle cost over {idle.get('seconds', 60):.0f} s, nothing happening\n\n"
                  + table(["", *[lab for _, lab in keys]], rows) + "\n\n" + note.strip())

    # 3. memory
    mem = R.get("memory")
    if mem:
        rows = [[f"after {int(k):,} reloads" if k != "0" else "at start",
                 f"{v['rss_kb'] / 1024:.2f} MiB", f"{v['hwm_kb'] / 1024:.2f} MiB"]
                for k, v in sorted(mem["at"].items(), key=lambda kv: int(kv[0]))]
        md.append(f"### Memory of sigreload: {mem['rules']} rules, {mem['files']} files, "
                  f"{mem['signals']:,} signals for {max(int(k) for k in mem['at']):,} updates "
                  f"({mem['missed']} missed) in {mem['seconds']:.1f} s\n\n"
                  + table(["", "VmRSS", "VmHWM"], rows))

    # 4. scan
    scan = R.get("scan", {})
    if scan:
        rows = []
        s0 = scan.get("0")
        for n in sorted(int(k) for k in scan):
            s = scan[str(n)]
            m, p = s["match"]["median_ms"], s["pgrep"]["median_ms"]
            row = [f"{n:,} (+{s['visible'] - n} others)" if n else f"pod only ({s['visible']})",
                   fmt_ms(m), fmt_ms(p) + ratio(p, m)]
            if n and s0:
                ms = m - s0["match"]["median_ms"]
                ps = p - s0["pgrep"]["median_ms"]
                row += [fmt_ms(ms), fmt_ms(ps) + ratio(ps, ms)]
                lat = R["latency"].get(str(n), {}).get("sigreload", {})
                l0 = get(R, "latency", "0", "sigreload", "change", "latency_ms", "p50")
                ln = get(lat, "change", "latency_ms", "p50")
                row.append(fmt_ms(ln - l0) if ln is not None and l0 is not None else "–")
            else:
                row += ["", "", ""]
            rows.append(row)
        md.append("### /proc scan: one rule's scan and match, next to `pgrep -x app` on the same "
                  "process table (median wall time inside the pod)\n\n"
                  + table(["idle processes", "`sigreload match`", "`pgrep -x app`",
                           "sigreload scan (minus pod-only)", "pgrep scan (minus pod-only)",
                           "sigreload in its loop (p50 latency − p50 at pod only)"], rows))

    # 5. hash
    h = R.get("hash")
    if h:
        o = h["tools"]["openssl dgst -sha256"]["mib_per_s"]
        rows = [[f"`{name}`", f"{t['best_s']:.3f} s", f"{t['mib_per_s']:,.0f} MiB/s",
                 f"{100 * t['mib_per_s'] / o:.0f} %"] for name, t in h["tools"].items()]
        md.append(f"### SHA-256 of a {h['mib']} MiB file, page cache warm, best of 3 "
                  f"(same digest: {'yes' if h['same_digest'] else 'NO'})\n\n"
                  + table(["", "time", "throughput", "of openssl"], rows))

    # 6. CPU per update
    rows = []
    ours = get(sig, "cpu", "ms_per_update")
    for label, res in [("sigreload, debounce 0", sig), ("sigreload, default debounce", deb),
                       ("floor: bare inotify → kill(2)", floor),
                       (PEERS["inotify"], peers["inotify"]), (PEERS["poll1"], peers["poll1"]),
                       (PEERS["poll30"], peers["poll30"])]:
        v = get(res, "cpu", "ms_per_update")
        rows.append([label, fmt_ms(v) + (ratio(v, ours) if res not in (sig, deb, floor) else ""),
                     str(get(res, "cpu", "updates")), get(res, "cpu", "source") or ""])
    for n in sorted((int(k) for k in R.get("latency", {}) if k != "0")):
        for key, label in (("sigreload", "sigreload"), ("inotify", PEERS["inotify"])):
            res = R["latency"][str(n)].get(key, {})
            v = get(res, "cpu", "ms_per_update")
            o = get(R, "latency", str(n), "sigreload", "cpu", "ms_per_update")
            rows.append([f"{label}, {n:,} idle processes",
                         fmt_ms(v) + (ratio(v, o) if key != "sigreload" else ""),
                         str(get(res, "cpu", "updates")), get(res, "cpu", "source") or ""])
    if mem:
        rows.append([f"sigreload, {mem['rules']} rules × {mem['files'] // mem['rules']} files "
                     "(memory run)", fmt_ms(mem["cpu"]["ms_per_update"]),
                     str(mem["cpu"]["updates"]), mem["cpu"]["source"]])
    md.append("### CPU time per update during a run of updates (polling's idle cost included)\n\n"
              + table(["", "CPU per update", "updates", "measured from"], rows))

    # 7. correctness
    hdr = ["signals per …", "sigreload", "sigreload (debounce 200 ms)"] + [PEERS[p] for p in peers]
    cols = [sig, deb] + [peers[p] for p in peers]

    def corr(kind, key):
        return [("–" if get(c, kind, key) is None else f"{get(c, kind, key):.2f}") for c in cols]

    rows = [["real change: all signals", *corr("change", "signals_per_op")],
            ["real change: to the leader", *corr("change", "leader_per_op")],
            ["real change: to workers", *corr("change", "workers_per_op")],
            ["real change: before the swap (app reloads stale files)",
             *corr("change", "before_swap_per_op")],
            ["real change: missed (no signal after the swap)",
             *[("–" if get(c, "change", "missed") is None else str(get(c, "change", "missed")))
               for c in cols]],
            ["swap to identical content", *corr("identical", "signals_per_op")],
            ["touch", *corr("touch", "signals_per_op")],
            ["(operations: changes / identical / touches)",
             *[f"{get(c, 'change', 'n')} / {get(c, 'identical', 'n')} / {get(c, 'touch', 'n')}"
               for c in cols]]]
    md.append("### Correctness per update (target: a master and 2 workers named `app`)\n\n"
              + table(hdr, rows))

    # targets
    md.append("### Targets\n\n" + table(["target", "measured", "met"], targets(R)))
    return "\n\n".join(md)


def targets(R):
    def get(*path):
        v = R
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    rows = []

    def row(name, measured, ok):
        rows.append([name, measured, "–" if ok is None else ("yes" if ok else "**no**")])

    p50 = get("latency", "0", "sigreload", "change", "latency_ms", "p50")
    p99 = get("latency", "0", "sigreload", "change", "latency_ms", "p99")
    row("latency p50 ≤ 0.2 ms (debounce 0)", fmt_ms(p50), None if p50 is None else p50 <= 0.2)
    row("latency p99 ≤ 1 ms (debounce 0)", fmt_ms(p99), None if p99 is None else p99 <= 1.0)
    idle = get("idle") or {}
    for k in ("sigreload", "sigreload-metrics"):
        if k in idle:
            i = idle[k]
            row(f"zero wakeups and zero CPU while idle ({'metrics on' if 'metrics' in k else 'metrics off'})",
                f"{i['wakeups']} wakeups, {i['run_ms']:.3f} ms CPU in {i['seconds']:.0f} s",
                i["wakeups"] == 0 and i["run_ms"] == 0 and i["cpu_ms"] == 0)
    mem = get("memory", "at") or {}
    if "1000" in mem:
        h1 = mem["1000"]["hwm_kb"]
        row("VmHWM ≤ 1.5 MiB after 1,000 reloads", f"{h1 / 1024:.2f} MiB", h1 <= 1536)
        last = max(mem, key=int)
        if last != "1000":
            hl = mem[last]["hwm_kb"]
            row(f"no growth from 1,000 to {int(last):,} reloads",
                f"VmHWM {h1} → {hl} KiB, VmRSS {mem['1000']['rss_kb']} → {mem[last]['rss_kb']} KiB",
                hl <= h1 and mem[last]["rss_kb"] <= mem["1000"]["rss_kb"])
    scan = get("scan") or {}
    big = max((int(k) for k in scan), default=0)
    if big and "0" in scan:
        ms = scan[str(big)]["match"]["median_ms"] - scan["0"]["match"]["median_ms"]
        ps = scan[str(big)]["pgrep"]["median_ms"] - scan["0"]["pgrep"]["median_ms"]
        row(f"scan ≥ 5× faster than `pgrep -x` on {big:,} processes",
            f"{ps / ms:.1f}× ({fmt_ms(ms)} vs {fmt_ms(ps)})", ps / ms >= 5)
    h = get("hash", "tools")
    if h:
        r = h["sigreload hash"]["mib_per_s"] / h["openssl dgst -sha256"]["mib_per_s"]
        row("SHA-256 ≥ 95 % of `openssl dgst -sha256`", f"{100 * r:.0f} %", r >= 0.95)
    return rows


# ---- main ----------------------------------------------------------------------------------

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
            "memory_gib": round(mem_kb / 2**20, 1), "loadavg_start": os.getloadavg(),
            "sigreload": first([BIN, "--version"]),
            "commit": first(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
            "openssl": first(["openssl", "version"]), "sha256sum": first(["sha256sum", "--version"]),
            "pgrep": first(["pgrep", "--version"]), "inotifywait": first(["inotifywait", "--help"]),
            "python": platform.python_version()}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: small counts, ~2 minutes")
    ap.add_argument("--idle", type=float, default=60, help="idle window in seconds (60)")
    ap.add_argument("--updates", type=int, default=200, help="updates per latency run (200)")
    ap.add_argument("--debounce-updates", type=int, default=50)
    ap.add_argument("--scale-peer-updates", type=int, default=50)
    ap.add_argument("--checks", type=int, default=10, help="identical swaps and touches (10 each)")
    ap.add_argument("--procs", default="1000,10000", help="idle process counts (1000,10000)")
    ap.add_argument("--scale-budget", type=float, default=40,
                    help="seconds per tool for the updates with idle processes (40)")
    ap.add_argument("--reloads", type=int, default=10000)
    ap.add_argument("--mem-rules", type=int, default=10)
    ap.add_argument("--mem-keys", type=int, default=10)
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
        o.idle, o.updates, o.debounce_updates, o.scale_peer_updates = 15, 40, 10, 10
        o.checks, o.procs, o.reloads, o.hash_mib = 3, "1000", 1000, 64
        o.scale_budget = 10
        o.poll1_changes, o.poll30_changes, o.poll30_rigs, o.poll30_budget = 8, 1, 1, 70
    o.procs = [int(x) for x in o.procs.split(",") if x]
    return o


def preflight(opts):
    missing = [t for t in ("unshare", "inotifywait", "openssl", "sha256sum", "md5sum", "pgrep",
                           "pkill") if not shutil.which(t)]
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)}: run `make deps`")
    if os.geteuid() != 0:
        sys.exit("bench: needs root (PID namespaces)")
    for f in (BIN, PAUSE):
        if not os.access(f, os.X_OK):
            sys.exit(f"bench: {f} is not built: run `make bench`")


def raise_limits(opts, restore):
    """pid_max and threads-max large enough for the idle processes; restored at exit."""
    need = max(opts.procs, default=0) + 5000
    for path in ("/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"):
        cur = int(Path(path).read_text())
        if cur < need:
            restore.append((path, cur))
            Path(path).write_text(str(need))
            log(f"{path}: {cur} -> {need} for this run")


def main(argv):
    opts = parse_args(argv)
    if opts.poll_session:
        poll_session_main(json.loads(opts.poll_session))
        return 0
    preflight(opts)
    build()
    R = {"machine": machine(), "options": {k: v for k, v in vars(opts).items()
                                           if k != "poll_session"}}
    restore, background = [], []
    base = Path(tempfile.mkdtemp(prefix="sigreload-bench-", dir=opts.tmpdir))
    for d in ("vols", "conf", "logs"):
        (base / d).mkdir()
    t_start = time.monotonic()
    try:
        raise_limits(opts, restore)
        phase_idle(base, opts, R, background)
        phase_memory(base, opts, R)
        phase_hash(base, opts, R)
        R["latency"], R["scan"] = {}, {}
        phase_latency(base, opts, R)
        phase_scale(base, opts, R)
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
    finally:
        for _, _, p in background:
            if p.poll() is None:
                p.kill()
                p.wait()
        for path, value in restore:
            Path(path).write_text(str(value))
        shutil.rmtree(base, ignore_errors=True)
    R["machine"]["loadavg_end"] = os.getloadavg()
    R["seconds"] = time.monotonic() - t_start
    md = report(R)
    m = R["machine"]
    head = (f"sigreload {m['sigreload']} ({m['commit']}) on {m['cpus']} × {m['cpu']}, "
            f"Linux {m['kernel']}, {m['memory_gib']} GiB; load average "
            f"{m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end; "
            f"`make bench` took {R['seconds'] / 60:.1f} min")
    md = head + "\n\n" + md
    print(md)
    res = Path(opts.results)
    res.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (res / f"{stamp}.json").write_text(json.dumps(R, indent=1))
    (res / f"{stamp}.md").write_text(md + "\n")
    log(f"wrote {res / stamp}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
