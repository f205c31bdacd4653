"""`sigreload run`: a content change becomes exactly one signal to the right process.

Each test runs sigreload and its targets in a fresh PID namespace (the `pod` fixture), changes
files the way users and the kubelet do, and asserts what the targets received (count, pid, the
content they read when signaled) and what sigreload logged.
"""

import os
import signal
import subprocess
import time

import pytest

from conftest import (FAST, BIN, Log, Pod, Reloader, Target, escaped, rule, rules, settle,
                      start)
from kubelet import AtomicVolume

def volume(workdir, content="v1\n", **kw):
    vol = AtomicVolume(workdir / "vol", **kw)
    vol.write({"app.conf": content})
    return vol


def assert_only(r, target, expected):
    """The target received exactly `expected` [(role, signal, content)], nothing else: asked
    once sigreload is idle, and the target has reported every signal it logged."""
    r.idle()
    got = [(role, sig, content) for _, role, sig, content in target.settled(r)]
    assert got == expected


def change_and_expect(r, target, rule_name, do, content):
    do()
    pid, role, sig, seen = target.expect_signal()
    r.log.expect("reloaded", rule=rule_name)
    assert (pid, role, sig, seen) == (target.pid, "master", "SIGHUP", escaped(content))


# ---- the kubelet's update -------------------------------------------------------------------

@pytest.mark.parametrize("old_order", [False, True], ids=["kubelet", "old-kubelet"])
def test_configmap_update_signals_the_leader_once(pod, workdir, old_order):
    vol = volume(workdir, old_order=old_order)
    t = Target(pod, "--comm", "mydaemon", "--workers", "2", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v2\n"))
    ev = r.log.expect("reloaded", rule="app")
    assert ev["targets"] == "1"
    signaled = [e for e in r.log.events() if e["msg"] == "signaled"]
    assert [e["pid"] for e in signaled] == [str(t.pid)]  # never a worker
    assert_only(r, t, [("master", "SIGHUP", escaped("v2\n"))])


def test_same_content_touch_and_rewrite_fire_nothing(pod, workdir):
    vol = volume(workdir)
    plain = workdir / "plain"
    plain.mkdir()
    (plain / "x.conf").write_text("x\n")
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root, plain], "mydaemon")))
    settle(r, "app")

    vol.write({"app.conf": "v1\n"}, force=True)  # an atomic swap to identical content
    r.log.expect("unchanged", rule="app")
    os.utime(vol.root / "app.conf")  # touch
    r.log.expect("unchanged", rule="app")
    (plain / "x.conf").write_text("x\n")  # identical bytes rewritten in place
    r.log.expect("unchanged", rule="app")
    # a real change afterwards: the one and only signal
    change_and_expect(r, t, "app", lambda: vol.write({"app.conf": "v2\n"}), "v2\n")
    assert_only(r, t, [("master", "SIGHUP", escaped("v2\n"))])
    assert r.log.count("changed", rule="app") == 1


def test_burst_inside_debounce_gives_one_signal_with_the_last_content(pod, workdir):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon"),
                                     settings="debounce: 1s\nmax_wait: 20s\nverify_after: 0\n"
                                              "start_grace: 0\n"))
    settle(r, "app")
    for i in range(20):
        vol.write({"app.conf": f"v{i}\n"})
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v19\n"))
    r.log.expect("reloaded", rule="app")
    assert r.log.count("changed", rule="app") == 1


def test_changes_longer_than_max_wait_signal_by_max_wait_and_after_the_last(pod, workdir):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon"),
                                     settings="debounce: 400ms\nmax_wait: 1s\nverify_after: 0\n"
                                              "start_grace: 0\n"))
    settle(r, "app")
    end = time.monotonic() + 3
    i = 0
    while time.monotonic() < end:  # never quiet for 400ms: only max_wait can fire
        i += 1
        vol.write({"app.conf": f"v{i}\n"})
        time.sleep(0.1)  # the pace is the subject: changes that never stop
    during = len(t.proc.out.matching(Target.SIGNAL.pattern))
    assert during >= 2, "max_wait must fire while changes continue"
    last = escaped(f"v{i}\n")
    deadline = time.monotonic() + 5
    while t.signals()[-1][3] != last:  # the final evaluation after the burst
        assert time.monotonic() < deadline, f"no signal with the last content {last}"
        t.expect_signal()
    assert all(s[0] == t.pid for s in t.signals())


@pytest.mark.parametrize("change", ["add", "remove", "subdir"])
def test_keys_added_removed_and_in_subdirectories(pod, workdir, change):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "v1\n", "b.conf": "b\n", "sub/x.conf": "x1\n"})
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    payload = {
        "add": {"app.conf": "v1\n", "b.conf": "b\n", "sub/x.conf": "x1\n", "c.conf": "c\n"},
        "remove": {"app.conf": "v1\n", "sub/x.conf": "x1\n"},
        "subdir": {"app.conf": "v1\n", "b.conf": "b\n", "sub/x.conf": "x2\n"},
    }[change]
    change_and_expect(r, t, "app", lambda: vol.write(payload), "v1\n")
    assert r.log.count("changed", rule="app") == 1


# ---- plain directories and files ------------------------------------------------------------

def test_in_place_write_and_editor_rename(pod, workdir):
    conf = workdir / "etc" / "app.conf"
    conf.parent.mkdir()
    conf.write_text("v1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    change_and_expect(r, t, "app", lambda: conf.write_text("v2\n"), "v2\n")

    def editor():
        tmp = conf.parent / ".app.conf.swp"
        tmp.write_text("v3\n")
        os.rename(tmp, conf)
    change_and_expect(r, t, "app", editor, "v3\n")


def test_file_deleted_then_recreated(pod, workdir):
    conf = workdir / "etc" / "app.conf"
    conf.parent.mkdir()
    conf.write_text("v1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    conf.unlink()
    r.log.expect("held", rule="app", path=conf)
    conf.write_text("v1\n")  # back with the same content: nothing to reload
    r.log.expect("unchanged", rule="app")
    conf.unlink()
    r.log.expect("held", rule="app")
    change_and_expect(r, t, "app", lambda: conf.write_text("v2\n"), "v2\n")
    assert_only(r, t, [("master", "SIGHUP", escaped("v2\n"))])


def test_parent_directories_deleted_and_recreated(pod, workdir):
    conf = workdir / "a" / "b" / "conf"
    conf.mkdir(parents=True)
    (conf / "app.conf").write_text("v1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")

    subprocess.run(["rm", "-rf", workdir / "a"], check=True)
    r.log.expect("held", rule="app")

    def recreate():
        conf.mkdir(parents=True)
        (conf / "app.conf").write_text("v2\n")
    change_and_expect(r, t, "app", recreate, "v2\n")


def test_path_missing_at_start_is_waited_for(pod, workdir):
    conf = workdir / "later" / "deeper" / "app.conf"
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    r.log.expect("held", rule="app")

    def create():
        conf.parent.mkdir(parents=True)
        conf.write_text("v1\n")
    change_and_expect(r, t, "app", create, "v1\n")


def test_directory_replaced_by_a_bind_mount(pod, workdir):
    conf = workdir / "conf"
    other = workdir / "other"
    for d, v in ((conf, "v1\n"), (other, "v2\n")):
        d.mkdir()
        (d / "app.conf").write_text(v)
    t = Target(pod, "--comm", "mydaemon", "--config", conf / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    settle(r, "app")
    # in the pod's mount namespace, which ends with the pod
    change_and_expect(r, t, "app",
                      lambda: pod.run(["mount", "--bind", other, conf]), "v2\n")
    assert r.log.count("mount table changed: re-arming watches") >= 1


# ---- rules and targets ----------------------------------------------------------------------

def test_two_rules_on_one_directory_with_their_own_signals(pod, workdir):
    vol = volume(workdir)
    t1 = Target(pod, "--comm", "one", "--config", vol.root / "app.conf")
    t2 = Target(pod, "--comm", "two", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("one", [vol.root], "one"),
                                     rule("two", [vol.root], "two", "signal: SIGUSR1")))
    settle(r, "one")
    settle(r, "two")
    vol.write({"app.conf": "v2\n"})
    assert t1.expect_signal() == (t1.pid, "master", "SIGHUP", escaped("v2\n"))
    assert t2.expect_signal() == (t2.pid, "master", "SIGUSR1", escaped("v2\n"))


def test_target_that_starts_after_the_change(pod, workdir):
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    r.log.expect("no target", rule="app")
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")  # reads v2 itself
    change_and_expect(r, t, "app", lambda: vol.write({"app.conf": "v3\n"}), "v3\n")
    assert_only(r, t, [("master", "SIGHUP", escaped("v3\n"))])


def test_target_without_a_handler_yet_is_not_killed(pod, workdir):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf",
               "--handler-after", "2000")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    r.log.expect("waiting for a signal handler", rule="app")
    t.proc.out.expect(r"^handler ")
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v2\n"))
    r.log.expect("reloaded", rule="app")
    assert t.proc.p.poll() is None


def test_target_that_never_installs_a_handler(pod, workdir):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--handler-after", "60000")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon"),
                                     settings=FAST.replace("handler_wait: 5s", "handler_wait: 300ms")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    ev = r.log.expect("signal failed", rule="app", reason="no_handler")
    assert "no handler for SIGHUP" in ev["err"]
    r.log.expect("reload failed", rule="app", reason="no_handler")
    assert t.proc.p.poll() is None  # alive: never sent a signal that would have killed it


def test_target_that_exits_before_the_signal(pod, workdir):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--handler-after", "60000")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    r.log.expect("waiting for a signal handler", rule="app")
    t.proc.stop(signal.SIGKILL)
    r.log.expect("signal failed", rule="app", reason="esrch")
    r.log.expect("reload failed", rule="app")
    # still working: a new target gets the next change (and the failed one is retried with it)
    t2 = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    change_and_expect(r, t2, "app", lambda: vol.write({"app.conf": "v3\n"}), "v3\n")


def test_target_that_dies_on_the_signal(pod, workdir):
    vol = volume(workdir)
    Target(pod, "--comm", "mydaemon", "--exit-on-signal")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    r.log.expect("signal failed", rule="app", reason="target_exited")
    r.log.expect("reload failed", rule="app", reason="target_exited")


def test_eperm_against_another_uid_says_what_to_do(pod, workdir):
    os.chmod(workdir, 0o755)
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon")  # root
    setpriv = ["setpriv", "--reuid", "65532", "--regid", "65532", "--clear-groups",
               "--inh-caps=-all", "--bounding-set=-all"]
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")), prefix=setpriv)
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    ev = r.log.expect("signal failed", rule="app", reason="eperm", pid=t.pid)
    assert ev["err"] == ("target uid 0 differs from ours (65532): run as uid 0, "
                         "or add capability KILL")
    r.idle()
    assert t.settled(r) == []


def test_dry_run_logs_and_sends_nothing(pod, workdir):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")), args=["--dry-run"])
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    r.log.expect("would signal (dry run)", rule="app", pid=t.pid, signal="SIGHUP")
    r.log.expect("would reload (dry run)", rule="app")
    vol.write({"app.conf": "v2\n"}, force=True)
    r.log.expect("unchanged", rule="app")
    r.idle()
    assert t.settled(r) == [] and r.log.count("reloaded") == 0


def test_signal_on_start(pod, workdir):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon", "signal_on_start: true")))
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v1\n"))
    r.log.expect("reloaded", rule="app")


def test_resync_sees_changes_inotify_cannot(pod, workdir):
    import mmap
    conf = workdir / "app.conf"
    conf.write_text("v1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon"),
                                     settings=FAST + "resync: 1s\n"))
    settle(r, "app")
    with open(conf, "r+b") as f:  # writes through a shared mapping make no inotify event
        with mmap.mmap(f.fileno(), 0) as m:
            m[1:2] = b"2"
            m.flush()
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v2\n"))


# ---- the rule file itself -------------------------------------------------------------------

def test_rule_file_invalid_then_valid_with_a_new_rule(pod, workdir):
    vol = volume(workdir)
    vol2 = AtomicVolume(workdir / "vol2")
    vol2.write({"b.conf": "b1\n"})
    t1 = Target(pod, "--comm", "one", "--config", vol.root / "app.conf")
    t2 = Target(pod, "--comm", "two", "--config", vol2.root / "b.conf")
    r = Reloader(pod, workdir, rules(rule("one", [vol.root], "one")))
    settle(r, "one")

    r.config.write_text(rules(rule("one", [vol.root], "one")) + "  - name: [broken\n")
    ev = r.log.expect("rule file error")
    assert ev["err"].startswith(f"{r.config}:")
    r.log.expect("rule file not loaded", next="keeping the previous rules")
    change_and_expect(r, t1, "one", lambda: vol.write({"app.conf": "v2\n"}), "v2\n")

    r.config.write_text(rules(rule("one", [vol.root], "one"), rule("two", [vol2.root], "two")))
    r.log.expect("rules reloaded", kept=1, rules=2)
    settle(r, "two")
    vol2.write({"b.conf": "b2\n"})
    assert t2.expect_signal() == (t2.pid, "master", "SIGHUP", escaped("b2\n"))
    r.log.expect("reloaded", rule="two")
    r.idle()
    assert len(t1.settled(r)) == 1  # the kept rule sent nothing spurious


def test_sighup_reloads_the_rule_file(pod, workdir):
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    r.proc.send(signal.SIGHUP)
    r.log.expect("SIGHUP received: reloading the rule file")
    r.log.expect("rules reloaded", why="SIGHUP", kept=1)
    assert r.proc.p.poll() is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_exit_zero(pod, workdir, sig):
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    assert r.stop(sig) == 0
    r.log.expect("stopping")


# ---- kernel limits and start-up diagnostics -------------------------------------------------

def test_inotify_overflow_rearms_and_reevaluates(pod, workdir):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    sysctl = "/proc/sys/fs/inotify/max_queued_events"
    saved = open(sysctl).read()
    try:
        with open(sysctl, "w") as f:  # the queue size is taken at inotify_init
            f.write("16\n")
        r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    finally:
        with open(sysctl, "w") as f:
            f.write(saved)
    settle(r, "app")
    r.proc.send(signal.SIGSTOP)
    try:
        for i in range(40):
            (vol.root / f"noise{i}").write_text("x")
    finally:
        r.proc.send(signal.SIGCONT)
    r.log.expect("event", event="Q_OVERFLOW")
    # re-evaluated; unchanged, since a ConfigMap volume's content is what ..data holds
    r.log.expect("unchanged", rule="app")
    change_and_expect(r, t, "app", lambda: vol.write({"app.conf": "v2\n"}), "v2\n")


def test_subpath_mount_is_warned_about(pod, workdir):
    src = workdir / "src.conf"
    src.write_text("v1\n")
    conf = workdir / "app.conf"
    conf.write_text("v0\n")
    pod.run(["mount", "--bind", src, conf])
    r = Reloader(pod, workdir, rules(rule("app", [conf], "mydaemon")))
    ev = r.log.expect("path is a subPath mount", rule="app")
    assert ev["path"] == str(conf)


def test_alone_in_its_pid_namespace_hints_at_share_process_namespace(workdir):
    vol = volume(workdir)
    (workdir / "r.yaml").write_text(rules(rule("app", [vol.root], "mydaemon")))
    p = start(["unshare", "--pid", "--fork", "--mount-proc", BIN, "run", "-c", workdir / "r.yaml",
               "--metrics-listen", ""])
    try:
        log = Log(p.err)
        ev = log.expect("no other process is visible")
        assert "shareProcessNamespace" in ev["hint"]
        log.expect("watches armed")
        os.kill(Pod._child_of(p.pid), signal.SIGTERM)  # sigreload, PID 1 of its namespace
        assert p.wait() == 0
    finally:
        p.close()


# ---- least privilege ------------------------------------------------------------------------

def status_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.mark.parametrize("flag", [[], ["--no-seccomp"]], ids=["filter", "no-seccomp"])
def test_seccomp_filter_after_start_up(pod, workdir, flag):
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")), args=flag)
    sanitized = bool(os.environ.get("SIGRELOAD_SANITIZED"))
    if flag:
        r.log.expect("seccomp filter off", why="--no-seccomp")
    elif sanitized:
        r.log.expect("seccomp filter off", why="sanitizer build")
    else:
        r.log.expect("seccomp filter on")
    on = not flag and not sanitized
    st = status_of(r.proc.pid)
    assert (st["Seccomp"], st["NoNewPrivs"]) == (("2", "1") if on else ("0", "0"))
    # everything sigreload does after start-up works under the filter (the whole suite runs so)
    r.config.write_text(r.config.read_text())  # same bytes: nothing to reload
    change_and_expect(r, t, "app", lambda: vol.write({"app.conf": "v2\n"}), "v2\n")
