"""Faults: sigreload against a hostile filesystem, kernel limits and misbehaving targets.

Each test breaks one thing for real (a FIFO where a file was, a 2 GiB file, a watch limit of a
dozen, no fd left, a zombie, thousands of processes a second, a rule file flipped 1,000 times)
and asserts what a user relies on: sigreload keeps running, says what is wrong and where (a log
line with the path), never blocks, and the next real change still reaches the target.

Where sigreload has a bug, the test that proves it is marked xfail(strict=True, reason="bug:
...") and stays: it fails while the bug is there and passes (so the xfail must go) once fixed.
"""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, TIMEOUT, Reloader, Target, metric, sigreload
from hardening import (SANITIZED, Helper, address, cpu_seconds, escaped, expect_reload, fd_count,
                       get, healthz_latency, helper, kib, rule, rules, settle, sysctl,
                       wait_until)
from kubelet import AtomicVolume

SETPRIV = ["setpriv", "--reuid", "{uid}", "--regid", "{uid}", "--clear-groups", "--inh-caps=-all",
           "--bounding-set=-all"]
OUTCOMES = ("held", "changed", "unchanged")
#: what sigreload(8), SIGNALS, allows between SIGTERM and exit, and what a liveness probe may wait
RESPONSIVE = 1.0


def as_uid(uid):
    """setpriv argv prefix: run as uid/gid with no capability at all."""
    return [a.format(uid=uid) for a in SETPRIV]


def outcome(r, name, timeout=TIMEOUT):
    """The next evaluation of rule name: its 'held', 'changed' or 'unchanged' line."""
    return first_of(r, OUTCOMES, name, timeout)


def first_of(r, msgs, name, timeout=TIMEOUT):
    """The next unconsumed line of rule name whose msg is one of msgs."""
    return r.log.expect(tuple(msgs), timeout=timeout, rule=name)


def reader(pod, conf, comm="mydaemon"):
    """A target that reads its config without blocking (a FIFO there would hang target.c's
    open(2)): the churn helper at one fork a second, which reports signals as target does."""
    return Helper(pod, [helper("churn"), "--comm", comm, "--config", conf, "--rate", "1",
                        "--life-us", "0"])


def etc_file(workdir, content="v1\n"):
    etc = workdir / "etc"
    etc.mkdir()
    conf = etc / "app.conf"
    conf.write_text(content)
    return conf


def final_signals(r, target):
    """The target's signals once sigreload is idle: all it will get for what happened so far."""
    r.idle()
    return target.settled(r)


def pidfd_count(pid):
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            pass
    return fds.count("anon_inode:[pidfd]")


def abandon_if_stuck(pod, r):
    """For tests of bugs that wedge sigreload: if it does not answer /healthz, kill it (SIGKILL)
    and take it off the pod's list, so that the teardown's "exit 0 on SIGTERM" does not turn the
    expected failure into an error. A fixed sigreload is left for the teardown to check."""
    try:
        healthz_latency(r, timeout=2)
    except (OSError, AssertionError):
        r.proc.send(signal.SIGKILL)
        r.proc.p.wait()
        pod.reloaders.remove(r)


def make_fault(path, kind):
    """Puts a `kind` where path was. Returns what must be closed afterwards, if anything."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.listen()
        return s
    elif kind == "zero-device":
        os.mknod(path, 0o666 | 0o020000, os.makedev(1, 5))  # what /dev/zero is: endless
    elif kind == "dangling":
        os.symlink("nowhere", path)
    elif kind == "loop":
        os.symlink(path.name, path)  # itself
    else:
        raise ValueError(kind)
    return None


# ---- the watched file replaced by something that is not a regular file ----------------------

WHY = {"fifo": "FIFO", "socket": "socket", "zero-device": "character device"}


@pytest.mark.parametrize("kind", ["fifo", "socket", "zero-device"])
def test_watched_file_replaced_by_a_special_file_never_blocks(pod, workdir, kind):
    conf = etc_file(workdir)
    t = reader(pod, conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    keep = make_fault(conf, kind)
    try:
        ev = r.log.expect("not hashed", rule="app", path=conf)
        assert ev["why"] == f"not a regular file ({WHY[kind]})"
        r.log.expect("held", rule="app", path=conf)  # the rule's own path: held, not emptied
        assert healthz_latency(r) < RESPONSIVE  # the loop was never blocked on it
        assert kib(r.proc.pid, "VmHWM") < (256 << 10 if SANITIZED else 32 << 10)  # /dev/zero unread
    finally:
        if keep:
            keep.close()
    conf.unlink()
    conf.write_text("v2\n")
    wait_until(lambda: any(s[3] == escaped("v2\n") for s in t.signals()), what="a signal with v2")


@pytest.mark.parametrize("kind", ["fifo", "socket", "zero-device"])
def test_special_file_in_a_watched_directory_is_skipped(pod, workdir, kind):
    conf = etc_file(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf.parent], "mydaemon")))
    settle(r, "app")

    special = conf.parent / "special"
    keep = make_fault(special, kind)
    try:
        ev = r.log.expect("not hashed", rule="app", path=special)
        assert WHY[kind] in ev["why"]
        # a new name that is not a file is not content: nothing changed
        assert outcome(r, "app")["msg"] == "unchanged"
        conf.write_text("v2\n")
        expect_reload(r, t, "app", "v2\n")
    finally:
        if keep:
            keep.close()
    assert len(final_signals(r, t)) == 1


@pytest.mark.parametrize("kind", ["fifo", "socket", "zero-device", "no-fd"])
def test_watched_file_that_cannot_be_read_holds_the_rule(pod, workdir, kind):
    """Nothing was read, so nothing changed: telling the app to reload a config that is now a
    FIFO (nginx would block on it), or that sigreload could not open for want of an fd, is a
    spurious reload (and the next successful read, another). A missing path, a dangling symlink
    and a symlink loop hold the rule; these must too. (A file sigreload may not read is another
    matter: it counts by its identity, see test_file_unreadable_to_sigreload_counts_by_identity.)"""
    conf = etc_file(workdir)
    t = Helper(pod, [helper("churn"), "--comm", "mydaemon", "--config", conf,
                     "--rate", "1", "--life-us", "0"])
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    keep = None
    if kind == "no-fd":  # the soft limit at what it holds: the next open(2) fails (EMFILE)
        held = fd_count(r.proc.pid)
        subprocess.run(["prlimit", "--pid", str(r.proc.pid), f"--nofile={held}:"], check=True)
        os.utime(conf)
    else:
        keep = make_fault(conf, kind)
    try:
        ev = outcome(r, "app")
        assert ev["msg"] == "held", f"the rule {ev['msg']} (sha256={ev.get('sha256')})"
        assert ev["path"] == str(conf)
        if kind == "no-fd":  # retried every second, so never idle: its retry holds it too
            assert outcome(r, "app")["msg"] == "held"
            assert t.settled(r) == []
        else:
            assert final_signals(r, t) == []
    finally:
        if keep:
            keep.close()
        if kind == "no-fd":  # back to normal, for the teardown
            subprocess.run(["prlimit", "--pid", str(r.proc.pid), "--nofile=1024:"], check=True)


def test_directory_in_place_of_the_watched_file_is_hashed_as_a_tree(pod, workdir):
    conf = etc_file(workdir)
    t = reader(pod, conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    conf.unlink()
    conf.mkdir()
    (conf / "inner.conf").write_text("inner\n")
    ev = outcome(r, "app")
    # sigreload.yaml(5): a directory stands for its files
    assert (ev["msg"], ev["files"]) == ("changed", "1")
    r.log.expect("reloaded", rule="app")
    (conf / "inner.conf").write_text("inner2\n")
    assert outcome(r, "app")["msg"] == "changed"  # watched as a tree from now on
    r.log.expect("reloaded", rule="app")

    (conf / "inner.conf").unlink()
    conf.rmdir()
    conf.write_text("v3\n")
    wait_until(lambda: any(s[3] == escaped("v3\n") for s in t.signals()), what="a signal with v3")


# ---- links that go nowhere -------------------------------------------------------------------

@pytest.mark.parametrize("kind,err", [("dangling", "No such file or directory"),
                                      ("loop", "Too many levels of symbolic links")])
def test_watched_file_replaced_by_a_broken_symlink_holds_the_rule(pod, workdir, kind, err):
    conf = etc_file(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    make_fault(conf, kind)
    ev = outcome(r, "app")
    assert (ev["msg"], ev["path"], ev["err"]) == ("held", str(conf), err)
    assert final_signals(r, t) == []

    conf.unlink()
    conf.write_text("v2\n")
    expect_reload(r, t, "app", "v2\n")


@pytest.mark.parametrize("kind,why", [("dangling", "dangling symlink, skipping"),
                                      ("loop", "symlink loop, skipping"),
                                      ("dirloop", "directory loop (a symlink to one of its parents), skipping")])
def test_broken_symlink_in_a_watched_directory_is_skipped(pod, workdir, kind, why):
    conf = etc_file(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf.parent], "mydaemon")))
    settle(r, "app")

    link = conf.parent / "link"
    if kind == "dirloop":
        os.symlink("..", link)  # etc/link is etc's parent, whose etc is where the walk began
        skipped = conf.parent / "link" / "etc"
    else:
        make_fault(link, kind)
        skipped = link
    ev = r.log.expect("not hashed", rule="app", path=skipped)
    assert ev["why"] == why
    if outcome(r, "app")["msg"] == "changed":  # dirloop: the parent's other files joined the rule
        assert kind == "dirloop"
        t.expect_signal()
        r.log.expect("reloaded", rule="app")
    conf.write_text("v2\n")
    expect_reload(r, t, "app", "v2\n")


# ---- a huge file -----------------------------------------------------------------------------

def test_2gib_sparse_file_is_hashed_in_bounded_memory(pod, workdir):
    conf = etc_file(workdir)
    t = Target(pod, "--comm", "mydaemon")
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon"),
                                     settings="debounce: 0\nstart_grace: 0\n"))
    settle(r, "app")
    before = kib(r.proc.pid, "VmHWM")

    start = time.monotonic()
    with open(conf, "r+b") as f:
        f.truncate(2 << 30)  # 2 GiB of zeros, no disk used
    r.log.expect("reloaded", rule="app", timeout=120)
    took = time.monotonic() - start
    after = kib(r.proc.pid, "VmHWM")
    print(f"\n2 GiB sparse file: hashed and signaled in {took:.1f}s; VmHWM {before} -> {after} KiB")
    assert after - before < (64 << 10 if SANITIZED else 8 << 10), "the file was not streamed"
    assert took < 60
    assert len(final_signals(r, t)) == 1

    conf.unlink()
    conf.write_text("v2\n")
    r.log.expect("reloaded", rule="app")


def grow_sparse(path, stop):
    """Extends path by 1 GiB every 50 ms without writing a byte: faster than any hash."""
    size = 1 << 30
    with open(path, "r+b") as f:
        while not stop.is_set():
            size += 1 << 30
            f.truncate(size)
            time.sleep(0.05)  # the pace is the point: a file that grows for as long as it is read


@pytest.mark.parametrize("kind", ["2gib", "growing"])
def test_huge_file_does_not_block_the_loop(pod, workdir, kind):
    """sigreload(8), SIGNALS: SIGTERM exits within one second; a liveness probe on /healthz must
    not time out because a watched file is big, or grows faster than it is hashed (a log file in
    a watched directory)."""
    conf = etc_file(workdir)
    r = Reloader(pod, workdir, rules(rule("app", [conf.parent], "mydaemon"),
                                     settings="debounce: 0\nstart_grace: 0\n"))
    settle(r, "app")
    stop = threading.Event()
    grower = None
    try:
        big = conf.parent / "big.log"
        with open(big, "wb") as f:
            f.truncate(2 << 30)
        if kind == "growing":
            grower = threading.Thread(target=grow_sparse, args=(big, stop), daemon=True)
            grower.start()
        r.log.expect("event", rule="app", name="big.log")  # seen: its hash starts at once
        assert healthz_latency(r, timeout=3) < RESPONSIVE
        start = time.monotonic()
        r.proc.send(signal.SIGTERM)
        try:
            code = r.proc.p.wait(15)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0 and time.monotonic() - start < RESPONSIVE, \
            f"exit {code} {time.monotonic() - start:.1f}s after SIGTERM"
    finally:
        stop.set()
        if grower:
            grower.join()
        if r.proc.p.poll() is None:
            r.proc.send(signal.SIGKILL)
            r.proc.p.wait()
        pod.reloaders.remove(r)


# ---- a file sigreload may not read -------------------------------------------------------------

def test_file_unreadable_to_sigreload_counts_by_identity(pod, workdir):
    """A file sigreload may not read (a Secret's 0400 key, another uid's) still counts, by its
    identity: made unreadable, replaced while unreadable (a rotation), and readable again, each
    is a change the app is told about; the rule says once which files and what to do."""
    os.chmod(workdir, 0o755)
    conf = etc_file(workdir)
    os.chmod(conf.parent, 0o755)
    t = Target(pod, "--comm", "mydaemon", "--config", conf, prefix=as_uid(65532))
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")), prefix=as_uid(65532))
    settle(r, "app")

    os.chmod(conf, 0o600)  # root's now
    ev = r.log.expect("files unreadable", rule="app")
    assert ev["files"] == str(conf) and ev["count"] == "1"
    assert "fsGroup" in ev["hint"] and "runAsUser" in ev["hint"]
    r.log.expect("reloaded", rule="app")
    assert metric(r, 'sigreload_unreadable_files{rule="app"}') == 1
    replace_file(conf, "v2\n")  # a rotation sigreload cannot read: a new inode
    os.chmod(conf, 0o600)
    r.log.expect("reloaded", rule="app")
    assert r.log.count("files unreadable") == 1  # said once for the same files
    os.chmod(conf, 0o644)
    wait_until(lambda: any(s[3] == escaped("v2\n") for s in t.signals()), what="a signal with v2")
    r.log.expect("files readable again", rule="app")
    assert metric(r, 'sigreload_unreadable_files{rule="app"}') == 0


# ---- kernel limits -----------------------------------------------------------------------------

def test_inotify_watch_limit_is_reported_and_the_rest_keeps_working(pod, workdir):
    """max_user_watches counts per uid: sigreload runs as a uid of its own (65533) so that no
    other process's watches count, with a limit that lets the small rule be armed and not the
    big tree."""
    uid = 65533
    os.chmod(workdir, 0o755)
    small = workdir / "small"
    small.mkdir()
    (small / "a.conf").write_text("a1\n")
    big = workdir / "big"
    for i in range(40):
        (big / f"d{i:02}").mkdir(parents=True)
        (big / f"d{i:02}" / "x.conf").write_text("x\n")
    t = Target(pod, "--comm", "small", "--config", small / "a.conf", prefix=as_uid(uid))
    body = rules(rule("small", [small], "small"), rule("big", [big], "big"))
    with sysctl("fs.inotify.max_user_watches", 12) as saved:
        print(f"\nmax_user_watches 12 (was {saved})")
        r = Reloader(pod, workdir, body, prefix=as_uid(uid))
        ev = r.log.expect("inotify watch limit reached", rule="big")
    assert ev["max_user_watches"] == "12" and ev["path"] == str(big)
    assert ev["dir"].startswith(str(big) + "/d")
    assert "raise fs.inotify.max_user_watches" in ev["next"]
    assert get(address(r), "/readyz")[0] == 503  # not every watch is armed, and it says so
    # the armed rule still works
    settle(r, "small")
    (small / "a.conf").write_text("a2\n")
    expect_reload(r, t, "small", "a2\n")
    assert r.proc.p.poll() is None


def test_fd_limit_never_drops_a_target_silently(pod, workdir):
    """Eight targets; once sigreload is up, its fd limit is lowered to what it holds plus four
    (prlimit on the running process): the scan and the hash still fit, but not eight pidfds.
    Every target must either get the signal or be reported, and the reload must not count as
    done while some never got it."""
    conf = etc_file(workdir)
    targets = [Target(pod, "--comm", "mydaemon", "--config", conf) for _ in range(8)]
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")
    # the targets it keeps track of between reloads (a pidfd each) are counted in what it holds:
    # its first scan can come after the baseline, later still on a slow (ASan) build
    wait_until(lambda: pidfd_count(r.proc.pid) == len(targets), what="the targets tracked")
    held = fd_count(r.proc.pid)
    subprocess.run(["prlimit", "--pid", str(r.proc.pid), f"--nofile={held + 4}:{held + 4}"],
                   check=True)
    conf.write_text("v2\n")
    ev = first_of(r, ("reloaded", "reload failed"), "app")
    r.idle()
    signaled = {t.pid for t in targets if t.settled(r)}
    reported = {int(e["pid"]) for e in r.log.events() if e["msg"] == "signal failed"}
    missed = {t.pid for t in targets} - signaled - reported
    assert not missed, f"never signaled and never reported: {sorted(missed)}; sigreload said {ev}"
    assert ev["msg"] == "reload failed"


@pytest.mark.parametrize("spare", [
    0,  # the directory cannot be opened
    1,  # its listing cannot be read (fdopendir's own fd)
    2,  # its file cannot be opened
])
def test_fd_shortage_while_hashing_names_the_path_and_the_real_error(pod, workdir, spare):
    """With `spare` fds left under the soft limit, hashing a directory fails at one step or
    another; whichever it is, the log line says which path and why (EMFILE), so that the user
    knows to raise the limit."""
    conf = etc_file(workdir)
    r = Reloader(pod, workdir, rules(rule("app", [conf.parent], "mydaemon")))
    settle(r, "app")
    held = fd_count(r.proc.pid)
    subprocess.run(["prlimit", "--pid", str(r.proc.pid), f"--nofile={held + spare}:"], check=True)
    try:
        conf.write_text("v2\n")
        outcome(r, "app")
        faults = [e for e in r.log.events() if e["msg"] in ("held", "not hashed")]
        assert faults, "no fault reported"
        for e in faults:
            assert e["path"] and e["path"].startswith(str(conf.parent)), e
            assert "Too many open files" in (e.get("err") or e.get("why")), e
    finally:
        subprocess.run(["prlimit", "--pid", str(r.proc.pid), "--nofile=1024:"], check=True)


def test_no_fd_left_for_http_clients_does_not_spin_or_stop_reloads(pod, workdir):
    conf = etc_file(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")
    addr = address(r)
    held = fd_count(r.proc.pid)
    subprocess.run(["prlimit", "--pid", str(r.proc.pid), f"--nofile={held + 6}:{held + 6}"],
                   check=True)
    host, port = addr.rsplit(":", 1)
    conns = [socket.create_connection((host, int(port))) for _ in range(12)]  # more than fit
    try:
        wait_until(lambda: fd_count(r.proc.pid) >= held + 6, what="sigreload out of fds")
        before = cpu_seconds(r.proc.pid)
        time.sleep(1.0)  # the CPU time of a second of wall time is what is measured
        spent = cpu_seconds(r.proc.pid) - before
        assert spent < 0.2, f"{spent:.2f}s of CPU in 1s: accept() failing in a loop"
    finally:
        for c in conns:
            c.close()
    conf.write_text("v2\n")
    expect_reload(r, t, "app", "v2\n")
    wait_until(lambda: get(addr, "/healthz")[0] == 200, what="/healthz again")


def test_inotify_overflow_during_a_real_change_still_reloads_it(pod, workdir):
    """The change is among the events the kernel dropped: only the rescan after IN_Q_OVERFLOW
    can find it."""
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "v1\n"})
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    with sysctl("fs.inotify.max_queued_events", 16):  # taken at inotify_init
        r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    r.proc.send(signal.SIGSTOP)
    try:
        for i in range(40):
            (vol.root / f"noise{i}").write_text("x")
        vol.write({"app.conf": "v2\n"})  # lost in the overflow
        for i in range(40):
            (vol.root / f"noise{i}").unlink()
    finally:
        r.proc.send(signal.SIGCONT)
    r.log.expect("inotify queue overflow")
    expect_reload(r, t, "app", "v2\n")
    assert len(final_signals(r, t)) == 1


def test_events_as_fast_as_they_are_handled_do_not_starve_the_loop(pod, workdir):
    """A directory that gets an event for every event sigreload handles: its own debug log,
    written into a directory it watches (an emptyDir of logs watched by mistake). Every read
    of the queue finds a new event, so a loop that reads until the queue is empty never gets
    back to epoll: the one second for SIGTERM (sigreload(8), SIGNALS) must hold anyway."""
    logs = workdir / "logs"
    logs.mkdir()
    (logs / "a.conf").write_text("a\n")
    config = workdir / "sigreload.yaml"
    config.write_text(rules(rule("app", [logs], "mydaemon")))
    log = logs / "sigreload.log"
    p = pod.spawn(["sh", "-c", f'exec "$0" run -c {config} --log-level debug '
                   f'--metrics-listen 127.0.0.1:0 2>>{log}', BIN])
    try:
        wait_until(lambda: log.exists() and "watches armed" in log.read_text(errors="replace")[:100000],
                   what="sigreload armed")
        # each line it logs about an event of its log is another event of its log: the storm
        wait_until(lambda: log.read_text(errors="replace").count("name=sigreload.log") >= 100,
                   what="sigreload handling the events of its own log")
        start = time.monotonic()
        p.send(signal.SIGTERM)
        try:
            code = p.p.wait(3)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0 and time.monotonic() - start < RESPONSIVE, \
            f"exit {code} {time.monotonic() - start:.1f}s after SIGTERM"
    finally:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()
        log.unlink(missing_ok=True)


# ---- misbehaving targets -----------------------------------------------------------------------

def test_targets_exiting_between_the_scan_and_the_signal(pod, workdir):
    """Five targets without a handler yet, pinned and waited for; two exit in the window. The
    three others get the signal; the two are reported by pid (esrch); the reload counts as
    failed, so the next change retries; sigreload carries on."""
    conf = etc_file(workdir)
    ts = [Target(pod, "--comm", "mydaemon", "--config", conf, "--handler-after", "3000")
          for _ in range(5)]
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")
    conf.write_text("v2\n")
    r.log.expect("waiting for a signal handler", rule="app", targets=5)
    for t in ts[:2]:
        t.proc.stop(signal.SIGKILL)
    for t in ts[2:]:
        assert t.expect_signal()[3] == escaped("v2\n")
    ev = r.log.expect("reload failed", rule="app")
    assert (ev["failed"], ev["signaled"], ev["reason"]) == ("2", "3", "esrch")
    failed = {int(e["pid"]) for e in r.log.events() if e["msg"] == "signal failed"}
    assert failed == {ts[0].pid, ts[1].pid}
    conf.write_text("v3\n")
    for t in ts[2:]:
        assert t.expect_signal()[3] == escaped("v3\n")
    r.log.expect("reloaded", rule="app")


def test_target_that_ignores_the_signal(pod, workdir):
    """SIG_IGN (a target started under nohup): a signal would do nothing, so none is sent and
    the reload fails with a reason of its own, never 'reloaded'."""
    conf = etc_file(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", conf, "--ignore")
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")
    replace_file(conf, "v2\n")
    ev = r.log.expect("signal failed", rule="app", pid=t.pid)
    assert ev["reason"] == "ignored" and "SIG_IGN" in ev["err"]
    assert r.log.expect("reload failed", rule="app")["reason"] == "ignored"
    r.log.expect("idle")
    assert r.log.count("signaled") == 0 and r.log.count("reloaded") == 0
    assert metric(r, 'sigreload_signal_errors_total{rule="app",reason="ignored"}') == 1
    assert t.proc.p.poll() is None and t.settled(r) == []


def test_zombies_are_never_targets(pod, workdir):
    conf = etc_file(workdir)
    z = Helper(pod, [helper("zombie"), "--comm", "mydaemon", "--count", "3", "--handler"])
    zombies = [int(m.group(1)) for m in z.proc.out.matching(r"^zombie (\d+)$")]
    assert len(zombies) == 3
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    conf.write_text("v2\n")  # only zombies match
    r.log.expect("no target", rule="app")
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    conf.write_text("v3\n")
    expect_reload(r, t, "app", "v3\n")
    ev = [e for e in r.log.events() if e["msg"] == "reloaded"][-1]
    assert ev["targets"] == "1"
    pids = {int(e["pid"]) for e in r.log.events() if e["msg"] in ("signaled", "signal failed")}
    assert pids == {t.pid}, "a zombie was signaled, or counted"
    for pid in zombies:  # still there, still zombies: they were skipped, not gone
        assert pod.run(["cat", f"/proc/{pid}/stat"])[1].rsplit(")", 1)[1].split()[0] == "Z"


def test_target_turning_zombie_while_waiting_for_its_handler(pod, workdir):
    """It dies while pinned; nobody reaps it (its parent, pytest, is not told): the pidfd says
    it exited, so it is reported at the next check, not signaled, not waited for until
    handler_wait."""
    conf = etc_file(workdir)
    t = Target(pod, "--comm", "mydaemon", "--handler-after", "60000")
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon"),
                                     settings="debounce: 50ms\nhandler_wait: 30s\n"
                                              "start_grace: 0\n"))
    settle(r, "app")
    conf.write_text("v2\n")
    r.log.expect("waiting for a signal handler", rule="app")
    os.kill(t.proc.pid, signal.SIGKILL)  # no wait(): it stays a zombie
    start = time.monotonic()
    ev = r.log.expect("signal failed", rule="app", pid=t.pid)
    assert ev["reason"] == "esrch" and time.monotonic() - start < 2
    assert open(f"/proc/{t.proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    r.log.expect("reload failed", rule="app")


def test_thousands_of_short_lived_processes_during_scans(pod, workdir):
    """A master that forks workers without pause (same comm: leaders_only must drop them, the
    scan must step over those that vanish mid-read) and a second churner that matches nothing.
    Every change reaches the master once, with its content; nothing else is signaled; nothing
    fails."""
    conf = etc_file(workdir)
    master = Helper(pod, [helper("churn"), "--comm", "mydaemon", "--config", conf,
                          "--rate", "2000", "--life-us", "3000"])
    other = Helper(pod, [helper("churn"), "--comm", "bystander", "--rate", "2000",
                         "--life-us", "500"])
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    def forks():
        return sum(int(m.group(1)) for p in (master, other)
                   for m in p.proc.out.matching(r"^forks (\d+)$")[-1:])

    contents = []
    deadline = time.monotonic() + 20 * TIMEOUT  # forks are slow under ASan on a busy machine
    while len(contents) < 20 or (forks() < 3000 and time.monotonic() < deadline):
        c = f"v{len(contents) + 2}\n"
        contents.append(c)
        replace_file(conf, c)
        pid, role, sig, seen = master.expect_signal()
        assert (pid, sig, seen) == (master.pid, "SIGHUP", escaped(c))
        r.log.expect("reloaded", rule="app")
    print(f"\n{forks()} processes forked and gone during {len(contents)} changes")
    assert forks() >= 3000
    events = r.log.events()
    assert {e["pid"] for e in events if e["msg"] == "signaled"} == {str(master.pid)}
    assert not [e for e in events if e["msg"] in ("signal failed", "reload failed", "no target")]
    assert [s[3] for s in final_signals(r, master)] == [escaped(c) for c in contents]


# ---- the rule file -----------------------------------------------------------------------------

def test_rule_file_flipped_between_valid_and_invalid_1000_times(pod, workdir):
    """1,000 atomic replacements alternating valid and invalid versions (the invalid ones hold
    a rule that, applied, would signal the 'evil' target at once: never half-applied), at the
    pace of a busy editor or a bad CI loop; then a last valid version with its own signal and a
    new rule. No signal may reach anyone during the flips (no content changed); at the end the
    last valid rules are the ones in force."""
    conf = etc_file(workdir)
    other = workdir / "other.conf"
    other.write_text("o1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    evil = Target(pod, "--comm", "evil")
    t2 = Target(pod, "--comm", "second", "--config", other)
    settings = "debounce: 0\nmax_wait: 1s\nverify_after: 0\n"
    app = rule("app", [conf], "mydaemon")
    valid = [rules(app, settings=settings),
             rules(app.replace("comm: mydaemon", "comm: mydae*"), settings=settings),
             rules(rule("app", [conf], "mydaemon", "signal: SIGHUP\nhandler_wait: 3s"),
                   settings=settings)]
    evil_rule = rule("evil", [conf], "evil", "signal_on_start: true")
    invalid = [rules(app, evil_rule, "  - name: broken\n    paths: [relative]\n", settings=settings),
               rules(evil_rule, app, settings=settings) + "debounce: 5s\n",  # duplicate key
               rules(app, evil_rule, settings=settings).replace("comm: evil", "comm: [evil"),
               rules(evil_rule, app.replace("mydaemon", "mydaemon\n      bogus: 1"),
                     settings=settings),
               "\x00" + rules(evil_rule, settings=settings)]
    r = Reloader(pod, workdir, valid[0])
    settle(r, "app")
    tmp = workdir / "sigreload.yaml.tmp"
    for i in range(1000):
        body = valid[(i // 2) % len(valid)] if i % 2 == 0 else invalid[(i // 2) % len(invalid)]
        tmp.write_text(body)
        os.replace(tmp, r.config)
        if i % 100 == 99:
            time.sleep(0.05)  # let some flips be seen one by one, and others coalesce
            r.log.stream.drain()
    final = rules(rule("app", [conf], "mydaemon", "signal: SIGUSR1"),
                  rule("two", [other], "second"), settings=settings)
    tmp.write_text(final)
    os.replace(tmp, r.config)
    r.log.expect("rules reloaded", rules=2, timeout=30)
    settle(r, "two")
    r.idle()

    events = r.log.events()
    loaded = sum(1 for e in events if e["msg"] == "rules reloaded")
    refused = sum(1 for e in events if e["msg"] == "rule file not loaded")
    print(f"\nflips: {loaded} versions loaded, {refused} refused (the rest coalesced)")
    assert loaded >= 10 and refused >= 10, "the flips were not seen"
    assert not [e for e in events if e["msg"] in ("signaled", "changed", "watching")
                and e.get("rule") in ("evil", "broken")], "an invalid version was half-applied"
    assert evil.settled(r) == [] and t.settled(r) == [] and t2.settled(r) == []
    assert r.proc.p.poll() is None
    # the last valid rules are in force: app now sends SIGUSR1, and rule two exists (files
    # replaced by rename: with debounce 0, an in-place write's truncation is a change too)
    replace_file(conf, "v2\n")
    assert t.expect_signal() == (t.pid, "master", "SIGUSR1", escaped("v2\n"))
    replace_file(other, "o2\n")
    assert t2.expect_signal() == (t2.pid, "master", "SIGHUP", escaped("o2\n"))


def replace_file(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


BOMB = "^a+*+*+*+*+*+*+*"  # 16 bytes: glibc's regcomp runs for minutes


def test_check_refuses_a_pathological_regex_quickly(workdir):
    f = workdir / "bomb.yaml"
    f.write_text(rules(rule("app", ["/etc/app"], "app").replace(
        "      comm: app", f"      cmdline: '{BOMB}'")))
    try:
        res = sigreload("check", "-c", f, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("sigreload check did not finish within 5s")
    assert res.returncode == 2 and "cmdline" in res.stderr


def test_running_sidecar_survives_a_pathological_regex_in_a_new_rule_file(pod, workdir):
    conf = etc_file(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    body = rules(rule("app", [conf], "mydaemon"))
    r = Reloader(pod, workdir, body)
    settle(r, "app")
    try:
        r.config.write_text(body + rule("bomb", [conf], "x").replace(
            "      comm: x", f"      cmdline: '{BOMB}'"))
        r.log.expect("rule file not loaded", next="keeping the previous rules", timeout=5)
        assert healthz_latency(r) < RESPONSIVE
        conf.write_text("v2\n")
        expect_reload(r, t, "app", "v2\n")
    finally:
        abandon_if_stuck(pod, r)
