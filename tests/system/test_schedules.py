"""Randomized interleavings: a seeded scheduler against one sigreload, checked by invariants.

Each test is one pod with one sigreload and a few rules, each rule on a kubelet-written volume
of its own plus a plain directory, and runs a batch of schedules in it. A schedule is a few
steps picked by a seeded random generator, with short random pauses between them so that they
land before, during and after sigreload's debounces, hashes and deliveries:

- kubelet updates (keys written in random order, a mode per key as a projected volume mixes a
  ConfigMap's 0644 with a Secret's 0400 — unreadable when sigreload runs as uid 65532 —, nested
  keys, keys added and removed, swaps to identical content, a key's top-level link removed and
  re-created by the kubelet's sync without a ..data swap, a rotation of the Secret key alone, a
  big sparse key that takes a while to hash);
- edits of the plain directory, and a file in it whose reads fail with EIO (/proc/self/mem);
- rule-file edits, valid and invalid: a rule's match (to one that finds nothing and back), its
  paths and their order, its name, its signal (SIGHUP or SIGUSR1), debounce, min_interval;
- SIGHUPs to sigreload;
- targets that restart (a new pid, the same comm), start late (a handler after a while), ignore
  the signal, or whose main thread has exited;
- decoys that no rule ever matches, and workers that leaders_only keeps out.

After each schedule it writes the good version of every rule (with a marker rule: its
"watching" line says the file is loaded, an event in its directory that every earlier event has
been read), waits until sigreload is idle, and checks:

A. every live target holds the content its rule's files have now: it was signaled after the
   last change (or started after it), or else the sha256 of its last signal (never signaled:
   the digest its files had when it started) is what `sigreload hash` prints for the rule's
   paths, as when a change is undone within a debounce; when last signaled it read the file as
   it is now; and with 0400 keys, which sigreload as uid 65532 knows by their identity only,
   it was signaled after their last swap. Exempt: a target sigreload reported a failed signal
   to after the last change;
B. no process gets two signals in a row for one digest, unless the delivery failed in between
   or a rule-file version that changes the rule's name, paths, match or signal was written
   around then;
C. no decoy and no worker is ever signaled;
D. (the pod's teardown) every log line parses.

SIGRELOAD_SCHEDULES=N runs N schedules (default 200, 50 under ASan; in batches of 10 per pod);
SIGRELOAD_SCHEDULE_SEED=S replays batch S alone. A failure prints the seed and every step of
the batch so far. The seed fixes the steps and their pauses; how they interleave with
sigreload's timers is the kernel's, so a replay retries the same schedule, not the same race.
"""

import dataclasses
import math
import os
import random
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import BIN, TIMEOUT, Helper, Reloader, Target, escaped, helper, parse_log
from hardening import SANITIZED, host_pid_of, wait_until
from kubelet import AtomicVolume, Sparse
from test_interleave import replace, wall
from test_security import creds, file_capable

PER_POD = 10
RULES = 3
STEPS = (3, 8)
SETTINGS = "debounce: 20ms\nmax_wait: 1s\nverify_after: 50ms\nhandler_wait: 1s\n"
BIG = 24 << 20  # three digest ticks (8 MiB)
#: what a rule's evaluations and deliveries end with, quoted in a failure
OUTCOMES = ("changed", "unchanged", "no target", "held", "reloaded", "reload failed",
            "superseded", "signaled")
#: log timestamps are truncated to the millisecond
TS_SLACK = 0.002
#: how far before a signal a rule-file version may have been written and still be in force
LOAD_WINDOW = 1.0


def knows(key, value):
    """Whether this sigreload accepts a top-level key (keys that came with #10)."""
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "r.yaml"
        f.write_text(f"{key}: {value}\nrules:\n  - name: a\n    paths: [/a]\n"
                     "    match: {comm: a}\n")
        try:
            return subprocess.run([BIN, "check", "-c", f], capture_output=True).returncode == 0
        except OSError:
            return False  # no binary: the tests say so themselves


#: A target younger than start_grace is signaled once it is that old: short here, or every
#: restart would cost the default's seconds.
GRACE = "start_grace: 100ms\n" if knows("start_grace", "100ms") else ""
MIN_INTERVAL = knows("min_interval", "300ms")


def state_of(pid):
    """The state letter of /proc/PID/stat; "X" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _seeds():
    given = os.environ.get("SIGRELOAD_SCHEDULE_SEED")
    if given:
        return [int(given)]
    n = int(os.environ.get("SIGRELOAD_SCHEDULES", "50" if SANITIZED else "200"))
    base = random.SystemRandom().randrange(1 << 31)
    return [base + k for k in range(math.ceil(n / PER_POD))]


# ---- the world: rules, their volumes, their targets ------------------------------------------

@dataclass
class Version:
    """One rule as a rule-file version writes it."""
    name: str
    paths: tuple
    comm: str
    signal: str = "SIGHUP"
    debounce: str = "20ms"
    min_interval: str = ""

    def action(self):
        """A change of any of these leaves the targets' state unknown (#10's design)."""
        return (self.name, self.paths, self.comm, self.signal)

    def yaml(self):
        lines = [f"  - name: {self.name}", "    paths:", *(f"      - {p}" for p in self.paths),
                 "    match:", f"      comm: {self.comm}", f"    signal: {self.signal}",
                 f"    debounce: {self.debounce}"]
        if self.min_interval:
            lines.append(f"    min_interval: {self.min_interval}")
        return "\n".join(lines) + "\n"


@dataclass
class Proc:
    """A process in the pod the invariants know about."""
    kind: str  # plain, late, ignore, mainexit, decoy
    helper: Helper
    started: float
    holds: str = None  # the rule's digest when it started: what it read then
    workers: list = field(default_factory=list)  # (pod pid, host pid)

    @property
    def pid(self):
        return self.helper.pid

    def alive(self):
        return self.helper.proc.p.poll() is None


@dataclass
class RuleWorld:
    """Rule i: its volume (the kubelet's), its plain directory, what they hold, its target."""
    i: int
    vol: AtomicVolume
    extra: Path
    payload: dict
    changes: list = field(default_factory=list)  # (before, after) of each content change
    # (before, after) of each swap with an unreadable key before or after it: as sigreload
    # running as uid 65532 knows these files only by their identity, each is a change to it
    opaque: list = field(default_factory=list)
    target: Proc = None
    generation: int = 0

    @property
    def comm(self):
        return f"app{self.i}"

    def good(self):
        return Version(self.comm, (str(self.vol.root), str(self.extra)), self.comm)


class World:
    """One pod's sigreload, its rules and processes, the steps done to them, and what the
    invariants need to know about each: when content changed, which rule-file versions were
    written when, who started when holding what."""

    def __init__(self, pod, workdir, rng, unprivileged):
        self.pod, self.workdir, self.rng = pod, workdir, rng
        self.unprivileged = unprivileged
        self.steps = []  # (schedule, text)
        self.schedule = 0
        self.versions = []  # (time, {i: Version}) of every valid rule file written
        self.decoys, self.retired = [], []
        os.chmod(workdir, 0o755)
        (workdir / "marker").mkdir()
        self.rules = []
        for i in range(RULES):
            extra = workdir / f"extra{i}"
            extra.mkdir()
            (extra / "x.conf").write_text(f"x{i} 0\n")
            w = RuleWorld(i, AtomicVolume(workdir / f"vol{i}"), extra,
                          {"app.conf": f"app{i} 0\n", "b.conf": "b 0\n"})
            w.vol.write(w.payload)
            self.rules.append(w)
        self.current = {w.i: w.good() for w in self.rules}
        text = self.rule_file(self.current, "mark0")
        prefix, binary = (), BIN
        if unprivileged:
            prefix, binary = creds("kill"), file_capable(workdir, "cap_kill+p")
        self.r = Reloader(pod, workdir, text, prefix=prefix, binary=binary)
        self.versions.append((time.time(), dict(self.current)))
        self.names = {v.name: i for i, v in self.current.items()}
        for w in self.rules:
            w.target = self.spawn(w, "plain")
        self.decoys = [self.spawn_decoy("decoy"), self.spawn_decoy("app")]
        self.wait_marker("mark0")

    # -- processes --

    def spawn(self, w, kind):
        conf = w.vol.root / "app.conf"
        started = time.time()
        holds = self.expected_digest(w)
        if kind == "mainexit":
            h = Helper(self.pod, [helper("mainexit"), "--comm", w.comm, "--config", conf])
            return Proc(kind, h, started, holds)
        args = ["--comm", w.comm, "--config", conf]
        if kind == "plain":
            args += ["--workers", "1"]
        elif kind == "late":
            args += ["--handler-after", str(self.rng.choice([150, 400, 1500]))]
        elif kind == "ignore":
            args += ["--ignore"]
        t = Target(self.pod, *args)
        return Proc(kind, t, started, holds,
                    [(p, host_pid_of(self.pod, p)) for p in t.workers])

    def spawn_decoy(self, comm):
        t = Target(self.pod, "--comm", comm, "--config", self.rules[0].vol.root / "app.conf")
        return Proc("decoy", t, time.time())

    def kill(self, p):
        # workers first, and dead before their master: one outliving it for a moment is a
        # leader of its own, which a rule may rightly signal
        for _, host in p.workers:
            try:
                os.kill(host, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _, host in p.workers:
            wait_until(lambda: state_of(host) in "ZX", what=f"the end of worker {host}")
        p.helper.proc.stop(signal.SIGKILL)
        self.retired.append(p)

    # -- the rule file --

    def rule_file(self, versions, marker):
        """The rules of versions, and a marker rule whose "watching" line says this version is
        loaded: a name, a path and a target of its own, so that no other rule (an earlier
        marker) passes for it renamed."""
        path = self.workdir / "marker" / marker
        path.mkdir()
        body = "".join(versions[i].yaml() for i in sorted(versions))
        body += f"  - name: {marker}\n    paths: [{path}]\n    match: {{comm: {marker}}}\n"
        return SETTINGS + GRACE + "rules:\n" + body

    def write_rule_file(self, text, versions):
        """versions: the rules the text holds, None when it is invalid. By rename, as the
        kubelet's swap does: a half-written rule file could be a valid one with rules missing."""
        t = time.time()
        replace(self.r.config, text)
        if versions:
            self.versions.append((t, versions))
            self.current = versions
            self.names.update({v.name: i for i, v in versions.items()})

    # -- steps --

    def step(self, text):
        self.steps.append((self.schedule, text))

    def kubelet_write(self, w, payload, force=False, what="update"):
        changed = payload.keys() != w.payload.keys() or any(
            payload[k] != w.payload[k] for k in payload)
        modes = {k: 0o400 for k in payload if k == "tls.key"}
        before = time.time()
        w.vol.write(payload, force=force, modes=modes, rng=self.rng)
        if changed:
            w.changes.append((before, time.time()))
        if self.unprivileged and "tls.key" in {*payload, *w.payload}:
            w.opaque.append((before, time.time()))
        w.payload = payload
        self.step(f"kubelet {what} vol{w.i}: {sorted(payload)}"
                  + (" (same content)" if not changed else ""))

    def do_update(self, w):
        w.generation += 1
        new = dict(w.payload, **{"app.conf": f"app{w.i} {w.generation}\n"})
        if self.rng.random() < 0.3:
            new["b.conf"] = f"b {w.generation}\n"
        for key, p in (("sub/x.conf", 0.2), ("tls.key", 0.2)):
            if self.rng.random() < p:
                if key in new:
                    del new[key]
                else:
                    new[key] = f"{key} {w.generation}\n"
        self.kubelet_write(w, new)

    def do_identical(self, w):
        self.kubelet_write(w, dict(w.payload), force=True, what="swap")

    def do_rotate_key(self, w):
        w.generation += 1
        self.kubelet_write(w, dict(w.payload, **{"tls.key": f"key {w.generation}\n"}),
                           what="rotation of tls.key")

    def do_big(self, w):
        if "big.bin" not in w.payload:  # taken out again when the schedule ends
            self.kubelet_write(w, dict(w.payload, **{"big.bin": Sparse(BIG)}), what="big key")

    def do_unlink(self, w):
        # never app.conf: the target reads it when signaled
        names = sorted({k.split("/")[0] for k in w.payload} - {"app.conf"})
        link = w.vol.root / self.rng.choice(names) if names else None
        if link and link.is_symlink():
            link.unlink()
            self.step(f"unlink {link}")

    def do_relink(self, w):
        self.step(f"kubelet sync vol{w.i}: relinked {w.vol.relink()}")

    def do_extra(self, w):
        w.generation += 1
        before = time.time()
        replace(w.extra / "x.conf", f"x{w.i} {w.generation}\n")
        w.changes.append((before, time.time()))
        self.step(f"edit {w.extra}/x.conf")

    def do_eio(self, w):
        mem = w.extra / "mem"
        if not mem.is_symlink():  # taken out again when the schedule ends
            before = time.time()
            os.symlink("/proc/self/mem", mem)
            w.changes.append((before, time.time()))
            self.step(f"add {mem} -> /proc/self/mem (EIO)")

    def tidy(self):
        """Takes out what the last schedule left that slows every evaluation of its rule: a big
        key, a file that fails with EIO."""
        for w in self.rules:
            if "big.bin" in w.payload:
                self.kubelet_write(w, {k: v for k, v in w.payload.items() if k != "big.bin"},
                                   what="big key removed")
            mem = w.extra / "mem"
            if mem.is_symlink():
                before = time.time()
                mem.unlink()
                w.changes.append((before, time.time()))
                self.step(f"remove {mem}")

    def do_rule_file(self, w):
        rng, v, good = self.rng, self.current[w.i], w.good()
        what = rng.choice(["match", "paths", "name", "signal", "debounce", "min_interval",
                           "good", "invalid"])
        change = {
            "match": lambda: {"comm": f"ghost{w.i}" if v.comm == good.comm else good.comm},
            "paths": lambda: {"paths": rng.choice([good.paths, good.paths[::-1], good.paths[:1],
                                                   (str(w.vol.root / "app.conf"),
                                                    good.paths[1])])},
            "name": lambda: {"name": f"{good.name}-renamed" if v.name == good.name
                             else good.name},
            "signal": lambda: {"signal": "SIGUSR1" if v.signal == "SIGHUP" else "SIGHUP"},
            "debounce": lambda: {"debounce": rng.choice(["0", "10ms", "30ms"])},
            "min_interval": lambda: {"min_interval": "" if v.min_interval else "300ms"},
            "good": lambda: dataclasses.asdict(good),
            "invalid": dict,
        }[what]()
        versions = {**self.current, w.i: dataclasses.replace(v, **change)}
        text = self.rule_file(versions, f"mark{self.schedule}-{len(self.steps)}")
        if what == "invalid" or (versions[w.i].min_interval and not MIN_INTERVAL):
            defect = "min_interval, unknown to this sigreload"
            if what == "invalid":
                defect = rng.choice(["  - name: [broken\n", "bogus: 1\n", "max_wait: 10ms\n",
                                     f"  - name: {v.name}\n    paths: [/x]\n"
                                     "    match: {comm: x}\n"])
                text += defect
            self.write_rule_file(text, None)
            self.step(f"rule file: invalid ({defect.strip()!r})")
            return
        self.write_rule_file(text, versions)
        self.step(f"rule file: rule {w.i} {what}: {versions[w.i]}")

    def do_sighup(self, w):
        self.r.proc.send(signal.SIGHUP)
        self.step("SIGHUP to sigreload")

    def do_restart(self, w):
        kind = self.rng.choices(["plain", "late", "ignore", "mainexit"], [12, 5, 1, 2])[0]
        self.kill(w.target)
        w.target = self.spawn(w, kind)
        self.step(f"restart target of rule {w.i}: {kind}, pid {w.target.pid}")

    STEPS = {"update": 30, "identical": 6, "rotate_key": 8, "unlink": 4, "relink": 4,
             "extra": 6, "rule_file": 20, "sighup": 8, "restart": 10, "big": 2, "eio": 0.5}

    def run(self, n):
        """Schedule n: its steps, then the good rule file, then idle."""
        self.schedule = n
        self.tidy()
        names = list(self.STEPS)
        for _ in range(self.rng.randint(*STEPS)):
            name = self.rng.choices(names, [self.STEPS[k] for k in names])[0]
            getattr(self, f"do_{name}")(self.rng.choice(self.rules))
            pause = self.rng.choice([0, 0, 0.005, 0.02, 0.05])  # part of the schedule
            if pause:
                time.sleep(pause)
        for w in self.rules:  # the kubelet's sync comes round eventually
            if w.vol.relink():
                self.step(f"kubelet sync vol{w.i}")
        good = {w.i: w.good() for w in self.rules}
        marker = f"mark{n}"
        self.write_rule_file(self.rule_file(good, marker), good)
        self.step("rule file: the good version of every rule")
        self.wait_marker(marker)

    def wait_marker(self, marker):
        """The rule file with this marker rule is loaded, every event before it has been read,
        and sigreload has then gone idle. (A SIGHUP may have loaded the file before the events
        of earlier steps were read: an event in the marker's own directory, read after them
        from the same inotify queue, says they have been.)"""
        log = self.r.log
        log.expect("watching", rule=marker, timeout=20)
        (self.workdir / "marker" / marker / "sync").write_text("")
        log.expect("event", rule=marker, timeout=20)
        try:
            log.expect("idle", timeout=20)
        except AssertionError:
            raise AssertionError("sigreload loaded the good rule file but never went idle "
                                 "(20 s): something was still due or retried") from None

    # -- invariants --

    def expected_digest(self, w):
        """What `sigreload hash` says the good rule's digest is, as sigreload's own uid reads
        the files; None when a path cannot be hashed at all."""
        prefix = creds("none") if self.unprivileged else []
        out = subprocess.run([*prefix, BIN, "hash", *w.good().paths], capture_output=True,
                             text=True, timeout=TIMEOUT).stdout.splitlines()
        last = out[-1].split() if out else []
        return last[2] if last[:2] == ["#", "rule-digest-all"] else None

    def rule_of(self, name):
        """The index of the rule that some version called name."""
        return self.names.get(name)

    def check(self):
        evs = [parse_log(line) for line in self.r.log.stream.lines if line]
        problems = []
        for w in self.rules:
            problems += self.check_last_content(w, evs)
        return problems + self.check_no_repeat(evs) + self.check_outsiders(evs)

    def check_last_content(self, w, evs):
        """Invariant A for rule w's live target."""
        t = w.target
        if not t.alive():
            return []
        mine = [e for e in evs if e.get("pid") == str(t.pid)]
        signaled = [e for e in mine if e["msg"] == "signaled"]
        last = wall(signaled[-1]) if signaled else None

        def after(change):  # told since change, or started after it
            return (not change or t.started > change[1]
                    or (last is not None and last >= change[0] - TS_SLACK))

        # A signal after the last change: the target read everything since. Without one, it
        # may still hold the current content (a change undone within a debounce): the digests
        # say. /proc/self/mem is another file to each process that opens it: no digest there.
        want = None if (w.extra / "mem").is_symlink() else self.expected_digest(w)
        holds = signaled[-1]["sha256"] if signaled else t.holds
        current = after(w.changes[-1] if w.changes else None) or (want and holds == want)
        # 0400 keys that sigreload as uid 65532 knows by identity: every swap is a change
        opaque_told = after(w.opaque[-1] if w.opaque else None)
        said = f"rule {w.i}, target pid {t.pid} ({t.kind})"
        seen = f"signaled {signaled[-1]['ts']}" if signaled else "never signaled"
        got, content = t.helper.signals(), escaped(w.payload["app.conf"])
        if not current:
            problem = (f"A: {said}: {seen}, not since the last change; it holds sha256={holds}, "
                       f"the rule's files hash to {want}")
        elif not opaque_told:
            problem = f"A: {said}: {seen}, not since the last swap of its 0400 keys"
        elif signaled and (not got or got[-1][3] != content):
            problem = (f"A: {said}: {seen}, but its last report is "
                       f"{got[-1][2:] if got else 'nothing'}, the file holds {content!r}")
        else:
            return []
        last_change = max((c[0] for c in w.changes[-1:] + w.opaque[-1:]), default=0)
        if any(e["msg"] == "signal failed" and wall(e) >= last_change - TS_SLACK for e in mine):
            return []  # reported: the user knows this target may hold old content
        told = [f"{e['msg']}{' ' + e['reason'] if 'reason' in e else ''}" for e in evs
                if (e["msg"] == "rules reloaded"
                    or (e["msg"] in OUTCOMES and self.rule_of(e.get("rule")) == w.i))
                and wall(e) >= last_change - TS_SLACK]
        return [f"{problem}; rule {w.i} said since its last change: {', '.join(told) or '-'}"]

    def check_no_repeat(self, evs):
        """Invariant B."""
        problems, last, failed = [], {}, []  # failed: (index, rule) of failed deliveries
        for n, e in enumerate(evs):
            if e["msg"] in ("reload failed", "signal failed"):
                failed.append((n, self.rule_of(e.get("rule"))))
            if e["msg"] != "signaled":
                continue
            prev = last.get(e["pid"])
            last[e["pid"]] = (n, e)
            if not prev or (prev[1]["sha256"], prev[1]["signal"]) != (e["sha256"], e["signal"]):
                continue
            i = self.rule_of(e["rule"])
            if any(prev[0] < k < n and j == i for k, j in failed):
                continue
            if self.action_changed(i, wall(prev[1]) - LOAD_WINDOW, wall(e)):
                continue
            problems.append(f"B: pid {e['pid']} signaled twice in a row for sha256 "
                            f"{e['sha256'][:12]} ({prev[1]['ts']} and {e['ts']}, rule "
                            f"{e['rule']})")
        return problems

    def action_changed(self, i, start, end):
        """Whether a valid rule-file version written between start and end, or the one in
        force at start, gives rule i another name, paths, match or signal than the others."""
        before = [v for t, v in self.versions if t < start][-1:]
        during = [v for t, v in self.versions if start <= t <= end]
        return len({v[i].action() for v in before + during}) > 1

    def check_outsiders(self, evs):
        """Invariant C."""
        everyone = [w.target for w in self.rules] + self.retired
        outsiders = {p.pid: f"decoy {p.helper.proc.argv[2]}" for p in self.decoys}
        outsiders.update({pid: f"worker of {p.pid}" for p in everyone for pid, _ in p.workers})
        problems = [f"C: {outsiders[int(e['pid'])]} (pid {e['pid']}) signaled by rule "
                    f"{e['rule']} at {e['ts']}" for e in evs
                    if e["msg"] == "signaled" and int(e["pid"]) in outsiders]
        problems += [f"C: decoy pid {p.pid} received {got[2]}" for p in self.decoys
                     for got in p.helper.signals()]
        problems += [f"C: worker pid {got[0]} received {got[2]}" for p in everyone
                     for got in p.helper.signals() if got[1] == "worker"]
        return problems

    def report(self, seed, problems):
        steps = "\n".join(f"  [{n}] {text}" for n, text in self.steps)
        tail = "\n".join(self.r.log.stream.lines[-40:])
        mode = "uid 65532 with CAP_KILL" if self.unprivileged else "root"
        return (f"seed {seed} (replay: SIGRELOAD_SCHEDULE_SEED={seed}), schedule "
                f"{self.schedule}, sigreload as {mode}:\n" + "\n".join(problems)
                + f"\nsteps so far:\n{steps}\nsigreload's last lines:\n{tail}")


@pytest.mark.parametrize("seed", _seeds(), ids=lambda s: f"seed{s}")
def test_schedules_keep_the_invariants(pod, workdir, seed):
    rng = random.Random(seed)
    world = World(pod, workdir, rng, unprivileged=rng.random() < 0.3)
    for n in range(1, PER_POD + 1):
        try:
            world.run(n)
        except AssertionError as e:
            pytest.fail(world.report(seed, [f"the schedule did not end: {e}".splitlines()[0]]),
                        pytrace=False)
        problems = world.check()
        if problems:
            pytest.fail(world.report(seed, problems), pytrace=False)
