"""PID reuse: a process that takes the pid of a target sigreload has already chosen is never
signaled, and the original is reported as gone.

Inside the test pod (its own PID namespace), the pidreuse helper puts a newcomer on the exact pid
a target just had (clone3 with set_tid), between sigreload's scan and its delivery: while
sigreload waits for the target's signal handler (a target without one is pinned and looked at
again every 100 ms), or while it waits to verify that a signaled target survived. The newcomer
is the most convincing impostor there is: the same pid, the same comm, a SIGHUP handler (so it
passes the handler check), started from the same binary.

Each scenario runs twice: with pidfds (pidfd_open + pidfd_send_signal), and on a kernel without
them (the nopidfd helper's seccomp filter answers ENOSYS), where sigreload must fall back to
kill(2) after re-checking the process's start time.
"""

import os
import signal
import time

import pytest

from conftest import Reloader, Target
from hardening import Helper, escaped, helper, host_pid_of, proc_status, rule, rules, settle

def prefix(mode):
    return [helper("nopidfd")] if mode == "kill-fallback" else []


def newcomer_on(pod, pid, conf):
    """A target-helper process on pid (in the pod), with comm mydaemon and a SIGHUP handler."""
    n = Helper(pod, [helper("pidreuse"), str(pid), helper("target"), "--comm",
                     "mydaemon", "--config", conf])
    assert n.pid == pid, f"the newcomer got pid {n.pid}, not {pid}"
    n.proc.err.expect(rf"^reused {pid}$")
    return n


def change(conf, text):
    """A new version by rename: written in place, a loaded machine can see the truncation as a
    change of its own, whose delivery would then rightly reach the newcomer."""
    tmp = conf.with_name(conf.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, conf)


def assert_impostor(pod, pid):
    """The newcomer on pid catches SIGHUP (bit 0 of SigCgt) and has the target's comm."""
    st = proc_status(host_pid_of(pod, pid))
    assert st["Name"] == "mydaemon"
    assert int(st["SigCgt"], 16) & 1, "the newcomer has no SIGHUP handler: not a real impostor"


def assert_never_signaled(r, pod, newcomer, pid, since):
    """The delivery that failed (its "reload failed" line after event number since, when the
    newcomer appeared) sent the newcomer nothing, by sigreload's log and by the newcomer's own
    report. Once sigreload is idle, a SIGUSR2 of our own is the fence: a SIGHUP sent before it
    is handled first (pending standard signals are delivered lowest number first), so reported
    first. A later evaluation may rightly find the newcomer, a matching process of its own (the
    failure left the change untold, and any event retries it: a change of the mount table while
    containers start elsewhere on the machine is one): its signals are logged after a new
    "changed", and only those may reach it."""
    r.idle()
    os.kill(host_pid_of(pod, pid), signal.SIGUSR2)
    got = []
    while (report := newcomer.expect_signal())[2] != "SIGUSR2":
        got.append(report)
    events = r.log.events()[since:]
    said = "\n".join(r.log.stream.lines[since:])
    failed = next(i for i, e in enumerate(events) if e["msg"] == "reload failed")
    to_it = [i for i, e in enumerate(events) if e["msg"] == "signaled" and e["pid"] == str(pid)]
    assert all(i > failed for i in to_it), f"the failed delivery signaled the newcomer:\n{said}"
    retried = [i for i, e in enumerate(events) if e["msg"] == "changed" and i > failed]
    assert all(retried and retried[0] < i for i in to_it), f"signaled without a new evaluation:\n{said}"
    assert len(got) == len(to_it), f"the newcomer got {got}, sigreload says:\n{said}"
    assert newcomer.proc.p.poll() is None


@pytest.mark.parametrize("mode", ["pidfd", "kill-fallback"])
@pytest.mark.parametrize("timing", ["stopped", "racing"])
def test_pid_reused_during_the_handler_wait_is_never_signaled(pod, workdir, mode, timing):
    """stopped: sigreload is SIGSTOPped while the target dies and the newcomer takes its pid, so
    that its next look is certain to find the newcomer. racing: it keeps polling (every 100 ms)
    while that happens, as in real life."""
    conf = workdir / "app.conf"
    conf.write_text("v1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf, "--handler-after", "60000")
    pid = t.pid
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon"),
                                     settings="debounce: 50ms\nhandler_wait: 20s\n"
                                              "start_grace: 0\n"),
                 prefix=prefix(mode))
    settle(r, "app")
    change(conf, "v2\n")
    r.log.expect("waiting for a signal handler", rule="app", targets=1)  # pinned, waiting
    # The delivery's scan is over: a process found from now on is not one of its targets. (Said
    # after "waiting": the pinned targets are looked at first, then the scan runs. Stopped in
    # between, sigreload's scan would rightly find the newcomer, a matching process started
    # before the delivery had its list, and tell it.)
    r.log.expect("scanned", rule="app", targets=1)

    if timing == "stopped":
        r.proc.send(signal.SIGSTOP)
    try:
        t.proc.stop(signal.SIGKILL)  # dead and reaped: its pid is free
        since = len(r.log.events())
        n = newcomer_on(pod, pid, conf)
        assert_impostor(pod, pid)
    finally:
        if timing == "stopped":
            r.proc.send(signal.SIGCONT)

    ev = r.log.expect("signal failed", rule="app", pid=pid)
    assert ev["reason"] == "esrch" and ev["err"] == "the process exited before the signal"
    r.log.expect("reload failed", rule="app", reason="esrch")
    assert_never_signaled(r, pod, n, pid, since)

    # The newcomer is a legitimate process of its own: the next change is for it.
    change(conf, "v3\n")
    assert n.expect_signal() == (pid, "master", "SIGHUP", escaped("v3\n"))
    r.log.expect("reloaded", rule="app")


@pytest.mark.parametrize("mode", ["pidfd", "kill-fallback"])
def test_pid_reused_before_the_verify_is_reported_as_exited(pod, workdir, mode):
    """The target dies on the signal; a newcomer takes its pid before verify_after: the check
    must see that the process it signaled is gone, not that something lives on that pid."""
    conf = workdir / "app.conf"
    conf.write_text("v1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf, "--exit-on-signal")
    pid = t.pid
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon"),
                                     settings="debounce: 50ms\nverify_after: 3s\nstart_grace: 0\n"),
                 prefix=prefix(mode))
    settle(r, "app")
    change(conf, "v2\n")
    r.log.expect("signaled", rule="app", pid=pid)
    assert t.expect_signal()[3] == escaped("v2\n")
    assert t.proc.wait() == 0  # exited and reaped
    start = time.monotonic()
    since = len(r.log.events())
    n = newcomer_on(pod, pid, conf)
    assert_impostor(pod, pid)
    assert time.monotonic() - start < 2, "too slow to beat verify_after"

    ev = r.log.expect("signal failed", rule="app", pid=pid)
    assert ev["reason"] == "target_exited"
    r.log.expect("reload failed", rule="app", reason="target_exited")
    assert_never_signaled(r, pod, n, pid, since)


def test_the_kill_fallback_is_really_taken(pod, workdir):
    """The fallback tests above are worth something only if sigreload runs without pidfds there:
    pinning then holds no fd at all."""
    conf = workdir / "app.conf"
    conf.write_text("v1\n")
    Target(pod, "--comm", "mydaemon", "--handler-after", "60000")
    fds = {}
    for mode in ("pidfd", "kill-fallback"):
        r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon"),
                                         settings="debounce: 50ms\nhandler_wait: 20s\n"
                                                  "start_grace: 0\n"),
                     prefix=prefix(mode))
        settle(r, "app")
        change(conf, f"{mode}\n")
        r.log.expect("waiting for a signal handler", rule="app")
        fds[mode] = [os.readlink(f"/proc/{r.proc.pid}/fd/{fd}")
                     for fd in os.listdir(f"/proc/{r.proc.pid}/fd")]
        assert r.stop() == 0
    assert "anon_inode:[pidfd]" in fds["pidfd"]
    assert "anon_inode:[pidfd]" not in fds["kill-fallback"]
