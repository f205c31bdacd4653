"""The benchmark's machinery: a rig is a pod with a target (bench/stamp.c) and volumes written by
the replayer (bench/kubeswap.c), with one tool under test at a time; `measure` runs interleaved
updates on several rigs and summarizes latency, signals and CPU per update. bench/run.py's
phases are built from these parts; bench/README.md says why each is the way it is.
"""

import math
import os
import signal
import statistics
import subprocess
import sys
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


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool(name):
    return str(TOOLS / name)


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


# ---- pods ----------------------------------------------------------------------------------

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


def spawn_idle(pod, n):
    """n more unrelated idle processes in the pod (bench/idle.c: a parent and its children), a
    thousand at a time: a fork can take milliseconds on a busy VM, and each thousand has two
    minutes."""
    while n > 0:
        k = min(n, 1000)
        p = pod.spawn([tool("idle"), k - 1, "idle"], stdout=subprocess.PIPE)
        line = read_line(p.stdout.fileno(), timeout=120)
        if line != f"ready {k - 1}":
            raise RuntimeError(f"idle said {line!r}")
        n -= k


def fill_pod(pod, total, later=0):
    """Idle processes until the pod holds total processes, counting `later` that are still to
    come (the tool under test); returns how many it holds now."""
    spawn_idle(pod, total - later - pod_processes(pod))
    return pod_processes(pod)


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

    def __init__(self, base, name, pod=None, workers=2, volumes=1, keys=1, comm="app",
                 paths="dir"):
        """volumes: one rule each; keys: files per volume (or a list, volume by volume); paths:
        each rule's paths, "dir" (the volume) or "files" (each of its files, as users list
        them)."""
        self.base, self.name, self.comm = Path(base), name, comm
        self.vol_keys = list(keys) if isinstance(keys, (list, tuple)) else [keys] * volumes
        self.paths_mode = paths
        self.voldir = self.base / "vols" / name
        self.voldir.mkdir(parents=True, exist_ok=True)
        self.vols = [self.voldir / ("vol" if volumes == 1 else f"vol{i}") for i in range(volumes)]
        self.cycle = [0]  # the volumes change() takes turns at
        self.own_pod = pod is None
        self.pod = pod or Pod(PAUSE)
        self.tool = self.tool_name = self.driver = self.pid = None
        self.version = 0
        self.tags = ["v0"] * volumes
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
            for v, k in zip(self.vols, self.vol_keys):
                self.driver.cmd(f"write {v} {k} v0")
        except BaseException:
            self.close()
            raise

    def key_names(self, vol=0):
        """The files of volume vol, named as kubeswap names them."""
        k = self.vol_keys[vol]
        return ["app.conf"] if k == 1 else [f"k{i:03d}.conf" for i in range(k)]

    def rule_paths(self, vol):
        if self.paths_mode == "dir":
            return [self.vols[vol]]
        return [self.vols[vol] / k for k in self.key_names(vol)]

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

    def start_sigreload(self, debounce="0ms", metrics="", extra="", binary=None, wrap=()):
        """sigreload on the rig's volumes, one rule a volume; wrap: a command it runs under
        (strace), whose own time is not counted: self.pid is sigreload's."""
        conf = self.base / "conf" / self.name
        conf.mkdir(parents=True, exist_ok=True)
        cfg = conf / "sigreload.yaml"
        lines = []
        if debounce is not None:
            lines.append(f"debounce: {debounce}")
        lines.append(f'metrics_listen: "{metrics}"')
        lines.append("rules:")
        for i, v in enumerate(self.vols):
            # one line a rule: 256 rules × 64 paths must stay under the 1 MiB file limit
            paths = ", ".join(map(str, self.rule_paths(i)))
            lines += [f"  - name: app{i}", f"    paths: [{paths}]", "    match:",
                      f"      comm: {self.comm}"]
        cfg.write_text("\n".join(lines) + "\n" + extra)
        self.config = cfg
        self.logpath = self._logfile(f"sigreload-{debounce}-{metrics.replace(':', '_')}")
        with open(self.logpath, "w") as logf:
            self.tool = self.pod.spawn([*wrap, binary or BIN, "run", "-c", cfg], stderr=logf)
        self.tool_name = "sigreload"
        self._wait_log(self.logpath, 'msg="watching"', len(self.vols), timeout=120)
        self.pid = self.tool.pid
        if wrap:
            self.pid = next(p for p in descendants(self.tool.pid) if p != self.tool.pid)
        return self

    def start_poll(self, period):
        self.logpath = self._logfile(f"poll{period}")
        with open(self.logpath, "w") as logf:
            self.tool = self.pod.spawn(["/bin/sh", HERE / "peers" / "poll.sh", period,
                                        self.vols[0], self.comm], stderr=logf)
        self.tool_name = f"poll{period}"
        self._wait_log(self.logpath, "ready")
        self.pid = self.tool.pid
        return self

    def start_inotify(self):
        self.logpath = self._logfile("inotify")
        with open(self.logpath, "w") as logf:
            self.tool = self.pod.spawn(["/bin/sh", HERE / "peers" / "inotify.sh", self.vols[0],
                                        self.comm], stderr=logf)
        self.tool_name = "inotify"
        self._wait_log(self.logpath, "Watches established")
        self.pid = self.tool.pid
        return self

    def start_floor(self):
        self.logpath = self._logfile("floor")
        with open(self.logpath, "w") as logf:
            self.tool = self.pod.spawn([tool("floor"), self.vols[0], self.master], stderr=logf)
        self.tool_name = "floor"
        self._wait_log(self.logpath, "ready")
        self.pid = self.tool.pid
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
        os.kill(self.pid, signal.SIGTERM)  # the tool itself, not what it runs under
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
        return tree_sample(self.pid)

    # -- operations on the volume

    def change(self, vol=None, wait_ms=2000, settle_ms=50):
        """A kubelet update to new content of volume vol, by default the next of self.cycle."""
        if vol is None:
            vol = self.cycle[self.version % len(self.cycle)]
        self.version += 1
        self.tags[vol] = f"v{self.version}"
        return self.driver.op("change", f"update {self.vols[vol]} {self.vol_keys[vol]} "
                                        f"{self.tags[vol]} 1 {wait_ms} {settle_ms}")

    def identical(self, vol=0, window_ms=300):
        return self.driver.op("identical", f"update {self.vols[vol]} {self.vol_keys[vol]} "
                                           f"{self.tags[vol]} 0 {window_ms} 0")

    def touch(self, vol=0, window_ms=300):
        key = self.key_names(vol)[0]
        return self.driver.op("touch", f"touch {self.vols[vol] / key} {window_ms}")

    def drain(self, quiet_ms=200):
        return self.driver.op("drain", f"drain {quiet_ms}")

    def close(self):
        self.stop_tool()
        if self.driver:
            self.driver.close()
        if self.own_pod:
            self.pod.close()


# ---- system calls --------------------------------------------------------------------------

class Strace:
    """strace attached to a running process and its threads (`strace -f -yy -p PID`): every
    system call, with the path behind each file descriptor, until stop(). A traced call stops
    the process at its entry and its exit, which costs tens of microseconds a call: nothing is
    timed while strace is attached, only counted."""

    def __init__(self, pid, out, calls=None):
        self.pid, self.out = pid, Path(out)
        argv = ["strace", "-f", "-yy", "-o", str(out), "-p", str(pid)]
        if calls:
            argv += ["-e", f"trace={calls}"]
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self.attached():  # every thread's TracerPid says so
            if time.monotonic() > deadline or self.p.poll() is not None:
                self.p.kill()
                raise RuntimeError(f"strace -p {pid}: {self.p.communicate()[1].decode()[-500:]}")
            time.sleep(0.01)

    def attached(self):
        try:
            for task in os.listdir(f"/proc/{self.pid}/task"):
                with open(f"/proc/{self.pid}/task/{task}/status") as f:
                    if any(line.startswith("TracerPid:\t0") for line in f):
                        return False
        except OSError:
            return False
        return True

    def stop(self):
        """Detaches; returns the calls, one (name, line) a call, in order."""
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stderr.close()
        calls = []
        for line in self.out.read_text(errors="replace").splitlines():
            # "PID name(args) = ret", or "PID name(args <unfinished ...>" when another thread
            # interleaves; "<... name resumed>", signals and exits are not calls.
            head = line.split(None, 1)[1] if line[:1].isdigit() and " " in line else line
            name = head.split("(", 1)[0]
            if name.isidentifier() and "(" in head:
                calls.append((name, head))
        return calls


def classify_calls(calls, updates):
    """System calls per update, by name, and how many of them act on /proc (a path or a
    descriptor under /proc, as strace -yy shows them)."""
    by_name, on_proc = {}, {}
    for name, line in calls:
        by_name[name] = by_name.get(name, 0) + 1
        if "</proc" in line or '"/proc' in line:
            on_proc[name] = on_proc.get(name, 0) + 1
    n = max(updates, 1)
    return {"updates": updates, "per_update": len(calls) / n,
            "proc_per_update": sum(on_proc.values()) / n,
            "by_call": {k: {"per_update": v / n, "proc_per_update": on_proc.get(k, 0) / n}
                        for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}}


# ---- analysis ------------------------------------------------------------------------------

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



def measure_budget(rigs, budget_s, lo, hi, waits, settles):
    """measure() with as many updates per rig as fit in budget_s seconds for all of them, at
    least lo and at most hi each. Two updates per rig first (a warm-up, not counted) say how
    long one takes."""
    cost = {}
    for n, rig in rigs.items():
        t = time.monotonic()
        for _ in range(2):
            rig.change(wait_ms=waits[n], settle_ms=settles[n])
        cost[n] = (time.monotonic() - t) / 2
    share = budget_s / len(rigs)
    counts = {n: int(min(hi, max(lo, share / cost[n]))) for n in rigs}
    return measure(rigs, counts, waits, settles)
