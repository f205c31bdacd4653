"""The targets between reloads: the leaders a rule matches stay pinned by pidfd, so that their
exits are events on the loop (no polling), a restarted leader is found, and a delivery starts
from them before any scan — without ever missing a target that appeared since the last scan,
nor signaling one that no longer matches.
"""

import os
import signal
import sys

from conftest import BIN, Reloader, Target, escaped, helper, metric, rule, rules, settle
from hardening import SANITIZED, host_pid_of, kib, wait_until
from test_faults import as_uid

# A process that takes a comm, says "ready <pid>", and on each SIGUSR1 takes 32 MiB more memory,
# 20 more fds and one more thread, then says "grown <n>".
GROWER = r"""
import ctypes, os, signal, sys, threading
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
held, grown = [], [0]
def grow(*_):
    held.append(bytearray(b"x" * (32 << 20)))
    held.extend(os.open("/dev/null", os.O_RDONLY) for _ in range(20))
    threading.Thread(target=threading.Event().wait, daemon=True).start()
    grown[0] += 1
    print("grown", grown[0], flush=True)
signal.signal(signal.SIGUSR1, grow)
signal.signal(signal.SIGHUP, lambda *_: None)
print("ready", os.getpid(), flush=True)
while True:
    signal.pause()
"""

# A process that takes a comm, says "ready <pid>", and on SIGUSR1 execs another program under the
# same pid: a pinned target that stops matching without exiting.
EXECER = r"""
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
signal.signal(signal.SIGUSR1, lambda *_: os.execv("/bin/sleep", ["sleep", "1000"]))
print("ready", os.getpid(), flush=True)
while True:
    signal.pause()
"""


def conf_file(workdir, text="v1\n"):
    conf = workdir / "etc" / "app.conf"
    conf.parent.mkdir(exist_ok=True)
    replace(conf, text)
    return conf


def replace(path, text):
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_a_leader_killed_is_an_exit_and_its_restart_is_found(pod, workdir):
    conf = conf_file(workdir)
    t = Target(pod, "--comm", "mydaemon", "--workers", "2", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")
    r.log.expect("idle")

    os.kill(host_pid_of(pod, t.workers[0]), signal.SIGKILL)  # not the rule's target
    t.proc.send(signal.SIGKILL)
    ev = r.log.expect("target exited", rule="app", pid=t.pid)
    assert float(ev["ran_s"]) > 0
    assert metric(r, 'sigreload_target_exits_total{rule="app"}') == 1
    assert r.log.count("target exited") == 1  # never a worker

    again = Target(pod, "--comm", "mydaemon", "--config", conf)
    r.log.expect("target started", rule="app", pid=again.pid)  # found without a change
    replace(conf, "v2\n")
    assert again.expect_signal() == (again.pid, "master", "SIGHUP", escaped("v2\n"))
    r.log.expect("reloaded", rule="app")
    assert metric(r, 'sigreload_targets{rule="app"}') == 1


def test_a_target_started_since_the_last_scan_is_signaled_too(pod, workdir):
    """The pinned leader is signaled before any scan; the scan after it finds the newcomer, which
    gets the same signal, once."""
    conf = conf_file(workdir)
    first = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")
    second = Target(pod, "--comm", "mydaemon", "--config", conf)  # no scan has seen it yet
    replace(conf, "v2\n")
    for t in (first, second):
        assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v2\n"))
    assert r.log.expect("reloaded", rule="app")["targets"] == "2"
    r.log.expect("idle")
    assert len(first.signals()) == 1 and len(second.signals()) == 1


def test_a_pinned_target_that_became_another_program_is_not_signaled(pod, workdir):
    conf = conf_file(workdir)
    execer = pod.spawn([sys.executable, "-c", EXECER, "mydaemon"])
    pid = int(execer.out.expect(r"^ready (\d+)$").group(1))
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")
    r.log.expect("idle")
    assert metric(r, 'sigreload_targets{rule="app"}') == 1  # pinned

    execer.send(signal.SIGUSR1)
    wait_until(lambda: open(f"/proc/{execer.pid}/comm").read() == "sleep\n", what="the exec")
    replace(conf, "v2\n")
    r.log.expect("no target", rule="app")
    assert r.log.count("signaled") == 0
    assert execer.p.poll() is None  # a SIGHUP would have ended sleep


def test_a_thousand_restarts_leave_memory_and_fds_flat(pod, workdir):
    """A supervisor (a shell loop) restarts the target whenever it exits, and the target exits on
    every signal: each change finds a new leader, pins it, signals it, and reads its exit from
    its pidfd. A thousand of them later, sigreload holds no more fds and no more memory."""
    conf = conf_file(workdir)
    sup = pod.spawn(["sh", "-c", 'while :; do "$0" "$@"; done', helper("target"),
                     "--comm", "mydaemon", "--exit-on-signal", "--config", conf])
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon"),
                                     settings="debounce: 0\nverify_after: 0\nstart_grace: 0\n"),
                 args=["--log-level", "info"])
    settle(r, "app")

    def restarts(first, n):
        for i in range(first, first + n):
            pid = sup.out.expect(r"^ready (\d+)$").group(1)
            replace(conf, f"v{i}\n")
            sup.out.expect(rf"^signal {pid} master SIGHUP v{i}\\n$")
            r.log.expect("target exited", pid=pid)

    def fds():
        """(pidfds, other fds): a pin is a pidfd, and at most one target is alive at a time."""
        links = [os.readlink(f"/proc/{r.proc.pid}/fd/{fd}")
                 for fd in os.listdir(f"/proc/{r.proc.pid}/fd")]
        pidfds = sum(link == "anon_inode:[pidfd]" for link in links)
        return pidfds, len(links) - pidfds

    restarts(2, 100)
    base_kib, (_, base_fds) = kib(r.proc.pid, "VmRSS"), fds()
    restarts(102, 900)
    pidfds, others = fds()  # (before any scrape: its connection is an fd)
    assert others == base_fds and pidfds <= 1
    if not SANITIZED:  # ASan's quarantine grows RSS by design
        assert kib(r.proc.pid, "VmRSS") <= base_kib + 256
    assert metric(r, 'sigreload_target_exits_total{rule="app"}') == 1000


def figures(r, rule_name):
    """The rule's target figures, read afresh: a rule-file reload makes the next scrape scan."""
    r.proc.send(signal.SIGHUP)
    r.log.expect("rules reloaded", why="SIGHUP")
    m = r.metrics()
    return {k: m.get(f'sigreload_target_{k}{{rule="{rule_name}"}}')
            for k in ("resident_memory_bytes", "cpu_seconds_total", "threads", "open_fds",
                      "start_time_seconds")}


def test_the_targets_figures_follow_them(pod, workdir):
    """A target's memory, fds and threads grow, and /metrics follows; its start time is its own,
    and a process that is not the rule's target (here: a bystander) never counts."""
    conf = conf_file(workdir)
    grower = pod.spawn([sys.executable, "-c", GROWER, "grower"])
    grower.out.expect(r"^ready \d+$")
    pod.spawn([sys.executable, "-c", GROWER, "bystander"]).out.expect(r"^ready \d+$")
    r = Reloader(pod, workdir, rules(rule("app", [conf], "grower")))
    settle(r, "app")

    before = figures(r, "app")
    grower.send(signal.SIGUSR1)
    grower.out.expect(r"^grown 1$")
    after = figures(r, "app")
    assert after["resident_memory_bytes"] >= before["resident_memory_bytes"] + (30 << 20)
    assert after["open_fds"] == before["open_fds"] + 20
    assert after["threads"] == before["threads"] + 1
    assert after["cpu_seconds_total"] >= before["cpu_seconds_total"] > 0
    with open(f"/proc/{grower.pid}/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    assert abs(after["start_time_seconds"] - (btime + start_ticks / os.sysconf("SC_CLK_TCK"))) < 0.02


def test_another_uids_fds_are_not_counted(pod, workdir):
    """Without CAP_SYS_PTRACE, another uid's fd table is hidden: the fds series is absent rather
    than wrong, and the rest is there."""
    os.chmod(workdir, 0o755)
    conf = conf_file(workdir)
    os.chmod(conf.parent, 0o755)
    grower = pod.spawn([sys.executable, "-c", GROWER, "grower"])  # root's
    grower.out.expect(r"^ready \d+$")
    r = Reloader(pod, workdir, rules(rule("app", [conf], "grower")), prefix=as_uid(65532))
    settle(r, "app")
    got = figures(r, "app")
    assert got["open_fds"] is None
    assert got["resident_memory_bytes"] > 0 and got["threads"] == 1


def test_match_shows_each_targets_figures(pod, workdir):
    conf = conf_file(workdir)
    grower = pod.spawn([sys.executable, "-c", GROWER, "grower"])
    pid = int(grower.out.expect(r"^ready (\d+)$").group(1))
    grower.send(signal.SIGUSR1)
    grower.out.expect(r"^grown 1$")
    (workdir / "rules.yaml").write_text(rules(rule("app", [conf], "grower")))
    code, out, err = pod.run([BIN, "match", "-c", workdir / "rules.yaml"])
    assert code == 0, err
    header, row = out.splitlines()[0].split(), out.splitlines()[1].split()
    got = dict(zip(header, row))
    assert int(got["PID"]) == pid
    assert got["RSS"].endswith("M") and float(got["RSS"][:-1]) >= 32
    assert int(got["THR"]) == 2 and int(got["FDS"]) >= 23
    assert float(got["CPU"]) >= 0 and got["AGE"][-1] in "smhd"
