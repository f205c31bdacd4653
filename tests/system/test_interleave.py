"""Events that interleave: one test per failure of issue #10 (the item number is in each name's
docstring), in the order the issue lists them.

One event at a time sigreload does what it says; these tests put a second thing in the middle
of the first: a rule-file reload while a delivery is in flight, a SIGHUP while a big file is
hashed, a fixed rule file while a broken one is parsed. Each asserts what a user would see: the
signals the target received and the content it read, sigreload's log lines, its metrics. They
wait on facts (a log line, a target's report, msg="idle"), never on the clock.
"""

import datetime
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import (BIN, FAST, TIMEOUT, Helper, Log, Reloader, Target, escaped, helper,
                      parse_log, rule, rules, settle)
from kubelet import AtomicVolume
from test_security import creds, file_capable

#: a verify_after long enough to reload the rule file while the delivery is being verified
VERIFYING = "debounce: 50ms\nmax_wait: 2s\nverify_after: 2s\nhandler_wait: 5s\n"
#: log timestamps are in ms, and since_event_ms is taken a moment before its line is written
SINCE_SLACK_MS = 100
#: the quick settings with start_grace at its default (FAST sets it to 0, so that the targets
#: tests have just started are signaled at once)
DEFAULT_GRACE = FAST.replace("start_grace: 0\n", "")


def volume(workdir, content="v1\n", name="vol", **kw):
    vol = AtomicVolume(workdir / name, **kw)
    vol.write({"app.conf": content})
    return vol


def plain_dir(workdir, name="extra"):
    d = workdir / name
    d.mkdir()
    (d / "x.conf").write_text("x\n")
    return d


def replace(path, text):
    """A new version of path by rename, as editors and `kubectl cp` leave it: never half-read."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def received(r, target):
    """[(signal, content)] the target reported: asked once sigreload is idle (r.idle()), it is
    everything, since the target has reported each signal sigreload logged sending it."""
    return [(sig, content) for _, _, sig, content in target.settled(r)]


def wall(ev):
    """A log line's ts as seconds since the epoch."""
    when = datetime.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def log_mark(r):
    """The number of log lines so far: events_from(r, mark) is what comes after."""
    r.log.stream.drain()
    return len(r.log.stream.lines)


def events_from(r, mark):
    """sigreload's log lines from line number mark on, parsed."""
    r.log.stream.drain()
    return [parse_log(line) for line in r.log.stream.lines[mark:] if line]


def first_of(r, msgs, timeout=TIMEOUT, **fields):
    """The next line whose msg is one of msgs (with the given fields): how something ended."""
    return r.log.expect(tuple(msgs), timeout=timeout, **fields)


def maybe(r, msgs, timeout, **fields):
    """first_of, or None when no such line comes within timeout: for what must not happen."""
    try:
        return first_of(r, msgs, timeout=timeout, **fields)
    except AssertionError:
        return None


def reload_rule_file(r, how):
    """A rule-file reload that changes no rule: an edit (a comment) or a SIGHUP to sigreload."""
    if how == "edit":
        replace(r.config, r.config.read_text() + "# edited\n")
        r.log.expect("rules reloaded", why="the rule file changed")
    else:
        r.proc.send(signal.SIGHUP)
        r.log.expect("rules reloaded", why="SIGHUP")


def assert_since_counts_from_the_event(r, mark, name):
    """Every signaled line of rule name after log line mark says since_event_ms at least the
    time between the burst's first event line and itself (#10, item 1)."""
    evs = events_from(r, mark)
    first = next(e for e in evs if e["msg"] == "event" and e.get("rule") == name)
    for e in evs:
        if e["msg"] == "signaled" and e.get("rule") == name:
            elapsed = (wall(e) - wall(first)) * 1000
            assert float(e["since_event_ms"]) >= elapsed - SINCE_SLACK_MS, (
                f"since_event_ms={e['since_event_ms']} but the burst's first event was logged "
                f"{elapsed:.0f} ms before the signal")


# ---- 1. a rule-file reload while a delivery is in flight --------------------------------------

@pytest.mark.parametrize("how", ["edit", "sighup"])
def test_rule_file_reload_during_verification_signals_once(pod, workdir, how):
    """#10 item 1: a helm upgrade that changes the app's ConfigMap and the rule file together
    must send one SIGHUP, not two."""
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon"), settings=VERIFYING))
    settle(r, "app")
    mark = log_mark(r)

    vol.write({"app.conf": "v2\n"})
    r.log.expect("signaled", rule="app")
    reload_rule_file(r, how)  # while verify_after runs
    r.log.expect("reloaded", rule="app")
    r.idle()
    assert received(r, t) == [("SIGHUP", escaped("v2\n"))]
    assert r.log.count("signaled", rule="app") == 1
    assert_since_counts_from_the_event(r, mark, "app")


def test_rule_file_reload_during_the_handler_wait_keeps_the_burst_start(pod, workdir):
    """#10 item 1: the target gets its handler after the rule file was reloaded; the one signal
    it gets says how long after the change it came, not how long after the reload."""
    vol = volume(workdir)
    # the rule file's own debounce (the top-level one) puts its reload a second after the edit
    settings = "debounce: 1s\nmax_wait: 5s\nverify_after: 100ms\nhandler_wait: 20s\n"
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf",
               "--handler-after", "3000")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon", "debounce: 0"),
                                     settings=settings))
    settle(r, "app")
    mark = log_mark(r)

    vol.write({"app.conf": "v2\n"})
    r.log.expect("waiting for a signal handler", rule="app")
    reload_rule_file(r, "edit")
    t.proc.out.expect(r"^handler ", timeout=20)
    r.log.expect("reloaded", rule="app", timeout=20)
    r.idle()
    evs = events_from(r, mark)
    order = [e["msg"] for e in evs if e["msg"] in ("rules reloaded", "signaled")]
    assert order[0] == "rules reloaded", f"the handler came before the reload: {order}"
    assert received(r, t) == [("SIGHUP", escaped("v2\n"))]
    assert_since_counts_from_the_event(r, mark, "app")


def test_sighup_storm_during_verification_sends_one_signal_per_version(pod, workdir):
    """#10 item 1: 20 SIGHUPs to sigreload while it verifies; a storm sent about 1,100 signals
    per version."""
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon"), settings=VERIFYING))
    settle(r, "app")

    for version in ("v2\n", "v3\n"):
        vol.write({"app.conf": version})
        r.log.expect("signaled", rule="app")
        for _ in range(20):
            reload_rule_file(r, "sighup")
        r.log.expect("reloaded", rule="app")
        r.idle()
    assert received(r, t) == [("SIGHUP", escaped("v2\n")), ("SIGHUP", escaped("v3\n"))]


# ---- 2. a rule whose identity changes while it has something to deliver ----------------------

IDENTITY = {  # the rule as the reload leaves it: (name, paths)
    "paths": lambda vol, extra: ("app", [vol]),
    "order": lambda vol, extra: ("app", [extra, vol]),
    "name": lambda vol, extra: ("app2", [vol, extra]),
    "name-and-paths": lambda vol, extra: ("app2", [vol]),  # found by its match and signal
}


@pytest.mark.parametrize("state", ["pending", "handler-wait", "failed"])
@pytest.mark.parametrize("change", list(IDENTITY))
def test_rule_changed_in_flight_still_delivers(pod, workdir, change, state):
    """#10 item 2: the rule's paths (or their order, or its name, or both) change in a reload
    while its burst is pending, its delivery waits for a handler, or its delivery failed: the
    target still ends up signaled with the new content, once."""
    vol, extra = volume(workdir), plain_dir(workdir)
    handler_after = {"pending": "0", "handler-wait": "2500", "failed": "3000"}[state]
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf",
               "--handler-after", handler_after)
    settings = {"pending": "debounce: 50ms\nmax_wait: 30s\nverify_after: 100ms\n",
                "handler-wait": "debounce: 50ms\nverify_after: 100ms\nhandler_wait: 20s\n",
                "failed": "debounce: 50ms\nverify_after: 100ms\nhandler_wait: 300ms\n"}[state]
    extra_keys = "debounce: 3s" if state == "pending" else ""
    r = Reloader(pod, workdir, rules(rule("app", [vol.root, extra], "mydaemon", extra_keys),
                                     settings=settings))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    if state == "pending":
        r.log.expect("event", rule="app")
    elif state == "handler-wait":
        r.log.expect("waiting for a signal handler", rule="app")
    else:
        r.log.expect("reload failed", rule="app", reason="no_handler")
        t.proc.out.expect(r"^handler ")  # it could take a signal now
    name, paths = IDENTITY[change](vol.root, extra)
    r.config.write_text(rules(rule(name, paths, "mydaemon", extra_keys), settings=settings))
    r.log.expect("rules reloaded")
    if state == "handler-wait":
        t.proc.out.expect(r"^handler ", timeout=20)
    r.idle(timeout=20)
    assert received(r, t) == [("SIGHUP", escaped("v2\n"))]


def test_renamed_rule_delivers_the_change_its_old_name_had_pending(pod, workdir):
    """#10 item 2: the same paths under a new name; the old name's pending burst is not lost."""
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    settings = "debounce: 50ms\nmax_wait: 30s\nverify_after: 100ms\n"
    r = Reloader(pod, workdir, rules(rule("old", [vol.root], "mydaemon", "debounce: 3s"),
                                     settings=settings))
    settle(r, "old")
    vol.write({"app.conf": "v2\n"})
    r.log.expect("event", rule="old")
    r.config.write_text(rules(rule("new", [vol.root], "mydaemon", "debounce: 3s"),
                              settings=settings))
    r.log.expect("rules reloaded")
    r.idle(timeout=20)
    assert received(r, t) == [("SIGHUP", escaped("v2\n"))]
    assert r.log.count("reloaded", rule="new") == 1


# ---- 3. the rule file fixed while a broken version is parsed ---------------------------------

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_rule_file_fixed_while_the_broken_version_is_parsed_is_loaded(pod, workdir):
    """#10 item 3: what counts as tried is the bytes parsed, not the file as it is afterwards.
    A 1 MiB invalid version takes sigreload a while to parse; the fixed version replaces it
    while sigreload is stopped in the middle of that parse (it has used CPU since the write)."""
    vol = volume(workdir)
    settings = "debounce: 0\nverify_after: 100ms\n"
    good = rules(rule("app", [vol.root], "mydaemon"), settings=settings)
    r = Reloader(pod, workdir, good)
    settle(r, "app")

    for attempt in range(5):
        mark = log_mark(r)
        before = cpu_ticks(r.proc.pid)
        # long values, under the rule file's limit on their number: its parse takes a while
        broken = f"{good}# attempt {attempt}\nbogus: [{','.join(['x' * 28] * 32000)}]\n"
        assert len(broken) < 1 << 20
        replace(r.config, broken)
        deadline = time.monotonic() + TIMEOUT
        while cpu_ticks(r.proc.pid) < before + 3:  # 30 ms of CPU: it is parsing
            assert time.monotonic() < deadline, "sigreload never started on the broken version"
            time.sleep(0.001)
        r.proc.send(signal.SIGSTOP)
        try:
            fixed_at = time.time()
            replace(r.config, rules(rule("app", [vol.root], "mydaemon"),
                                    rule("two", [vol.root], "other"), settings=settings)
                    + f"# fixed {attempt}\n")
        finally:
            r.proc.send(signal.SIGCONT)
        ev = first_of(r, ("rule file not loaded", "rules reloaded"))
        if ev["msg"] == "rules reloaded" or wall(ev) < fixed_at - 0.001:
            continue  # it parsed the fixed version, or was done with the broken one: again
        r.log.expect("rules reloaded", rules=2)
        assert r.metrics()["sigreload_rules_last_reload_successful"] == 1
        assert len([e for e in events_from(r, mark) if e["msg"] == "rules reloaded"]) == 1
        return
    pytest.fail("the fixed version never landed during a parse of the broken one")


# ---- 4. "no target" because match was wrong, then match fixed ---------------------------------

def test_update_that_found_no_target_reaches_the_app_once_match_is_fixed(pod, workdir):
    """#10 item 4: gunicorn kept serving the old config after its rule's match was fixed."""
    vol = volume(workdir)
    t = Target(pod, "--comm", "myapp", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "my-app")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    r.log.expect("no target", rule="app")

    r.config.write_text(rules(rule("app", [vol.root], "myapp")))
    r.log.expect("rules reloaded")
    r.idle()
    assert received(r, t) == [("SIGHUP", escaped("v2\n"))]


def test_no_target_does_not_claim_the_new_digest(pod, workdir):
    """#10 item 4: while nobody was told, config_hash_info must not say the app has it."""
    vol = volume(workdir)
    Target(pod, "--comm", "myapp")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "my-app")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    ev = r.log.expect("no target", rule="app")
    r.idle()
    claimed = [k for k in r.metrics() if k.startswith('sigreload_config_hash_info{rule="app"')]
    assert f'sigreload_config_hash_info{{rule="app",sha256="{ev["sha256"]}"}}' not in claimed


# ---- 5. a SIGHUP to sigreload in the middle of a long hash ------------------------------------

class Jail:
    """A root of sigreload's own: a tmpfs in the pod's mount namespace, /usr, /proc and the
    binary bound in, data/ for the test. sigreload watches every ancestor of its paths up to
    /, and any event there wakes its loop; on a shared machine / and /tmp always have something
    coming and going, here nothing does. self.data is data/ as the test reaches it."""

    def __init__(self, pod, workdir):
        inner = workdir / "root"
        inner.mkdir()
        code, _, err = pod.run(["sh", "-euc", f"""
            mount -t tmpfs -o mode=0755 jail {inner}; cd {inner}
            mkdir -p usr proc data .{os.path.dirname(BIN)}; touch .{BIN}
            ln -s usr/lib lib; ln -s usr/lib64 lib64; ln -s usr/bin bin
            mount --rbind /usr usr; mount -t proc proc proc; mount --bind {BIN} .{BIN}"""])
        assert code == 0, err
        self.root = inner
        self.data = Path(f"/proc/{pod.init_pid}/root{inner}/data")

    def reloader(self, pod, text):
        """`sigreload run` chrooted here, with text as data/sigreload.yaml: a Reloader."""
        (self.data / "sigreload.yaml").write_text(text)
        r = Reloader.__new__(Reloader)
        r.config = self.data / "sigreload.yaml"
        r.proc = pod.spawn(["chroot", self.root, BIN, "run", "-c", "/data/sigreload.yaml",
                            "--log-level", "debug", "--metrics-listen", "127.0.0.1:0"])
        r.log = Log(r.proc.err)
        pod.reloaders.append(r)
        r.log.expect("watches armed")
        return r


def has_open(pid, name):
    """Whether process pid has a file called name open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(f"/{name}"):
                return True
        except OSError:
            pass
    return False


def test_sighup_during_a_long_hash_is_acted_on(pod, workdir):
    """#10 item 5: the SIGHUP is read at a digest tick (every 8 MiB); nothing else may be needed
    to wake the loop for it afterwards. (In a root of its own: anything happening in / would.)"""
    jail = Jail(pod, workdir)
    (jail.data / "etc").mkdir()
    (jail.data / "etc" / "app.conf").write_text("v1\n")
    # the hash starts on the debounce's timer, alone: no other event is there to wake the loop
    r = jail.reloader(pod, rules(rule("app", ["/data/etc"], "mydaemon"),
                                 settings="debounce: 50ms\n"))
    settle(r, "app")
    mark = log_mark(r)

    with open(jail.data / "big.bin", "wb") as f:
        f.truncate(1 << 30)  # 1 GiB of zeros: seconds of hashing, no disk used
    os.rename(jail.data / "big.bin", jail.data / "etc" / "big.bin")  # one event, none after it
    deadline = time.monotonic() + TIMEOUT
    while not has_open(r.proc.pid, "big.bin"):
        assert time.monotonic() < deadline, "sigreload never opened the big file"
        time.sleep(0.001)
    r.proc.send(signal.SIGHUP)
    r.log.expect("SIGHUP received: reloading the rule file", timeout=120)
    r.log.expect("changed", rule="app", timeout=120)  # the hash is done
    order = [e["msg"] for e in events_from(r, mark)
             if e["msg"] in ("SIGHUP received: reloading the rule file", "changed")]
    assert order[0].startswith("SIGHUP"), f"the SIGHUP came after the hash: {order}"
    r.log.stream.pos = mark  # acted on before or after the hash's outcome, not never
    r.log.expect("rules reloaded", why="SIGHUP")


# ---- 6. a rule-file reload must not cut a pending burst short ---------------------------------

def test_rule_file_reload_keeps_a_pending_debounce(pod, workdir):
    """#10 item 6: a writer updates its file in two steps within the debounce; the rule file is
    reloaded in between. One signal, and it sees the complete content."""
    etc = workdir / "etc"
    etc.mkdir()
    conf = etc / "app.conf"
    conf.write_text("v1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [etc], "mydaemon", "debounce: 5s"),
                                     settings="debounce: 50ms\nmax_wait: 30s\nverify_after: 0\n"))
    settle(r, "app")

    with open(conf, "w") as f:  # step one: half of the new version
        f.write("v2 part one\n")
    r.log.expect("event", rule="app")
    reload_rule_file(r, "edit")
    # the time an evaluation the reload made due at once would take (none must come)
    early = maybe(r, ("changed", "unchanged"), timeout=1, rule="app")
    with open(conf, "a") as f:  # step two, well within the 5 s debounce
        f.write("v2 part two\n")
    r.idle(timeout=20)
    assert received(r, t) == [("SIGHUP", escaped("v2 part one\nv2 part two\n"))]
    assert early is None, f"evaluated at the reload, {early['ts']}"


# ---- 7. files sigreload may not read ----------------------------------------------------------

@pytest.fixture
def tls(workdir):
    """A TLS Secret volume with defaultMode 0400 (root's files), a root target that reads it,
    and the credentials of the chart's default mode: uid 65532 with CAP_KILL only."""
    os.chmod(workdir, 0o755)
    vol = AtomicVolume(workdir / "tls", mode=0o400)
    vol.write({"tls.crt": "cert 1\n", "tls.key": "key 1\n"})
    return vol, file_capable(workdir, "cap_kill+p")


def test_rotation_of_an_unreadable_secret_reloads_the_app(pod, workdir, tls):
    """#10 item 7: both files are unreadable to sigreload; it still sees the kubelet rotate
    them (their ..data target, inode, ctime, size change), and so does the app."""
    vol, binary = tls
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "tls.crt")
    r = Reloader(pod, workdir, rules(rule("tls", [vol.root], "mydaemon")), prefix=creds("kill"),
                 binary=binary)
    settle(r, "tls")

    # "changed", not the first outcome: a change of the mount table (a container started on the
    # machine) makes every rule evaluate again, "unchanged", at any time
    for tls_key in ("key 2\n", "key 3\n"):  # a rotation, then the key alone
        vol.write({"tls.crt": "cert 2\n", "tls.key": tls_key})
        r.log.expect("changed", rule="tls")
        assert first_of(r, ("reloaded", "reload failed"), rule="tls")["msg"] == "reloaded"
    r.idle()
    assert received(r, t) == [("SIGHUP", escaped("cert 2\n"))] * 2


def test_unreadable_files_are_warned_about_once_and_counted(pod, workdir, tls):
    """#10 item 7: the warning names the files and the fix; a gauge shows how many."""
    vol, binary = tls
    Target(pod, "--comm", "mydaemon")
    r = Reloader(pod, workdir, rules(rule("tls", [vol.root], "mydaemon")), prefix=creds("kill"),
                 binary=binary)
    settle(r, "tls")
    r.log.stream.pos = 0  # said before or after its first digest
    ev = r.log.expect("files unreadable", rule="tls")
    assert "tls.crt" in ev["files"] and "tls.key" in ev["files"]
    for fix in ("fsGroup", "defaultMode", "runAsUser"):
        assert fix in ev["hint"]
    vol.write({"tls.crt": "cert 2\n", "tls.key": "key 2\n"})
    r.log.expect("reloaded", rule="tls")
    r.idle()
    assert r.log.count("files unreadable") == 1
    assert r.metrics()['sigreload_unreadable_files{rule="tls"}'] == 2


# ---- 8. a file whose read fails with EIO -----------------------------------------------------

def test_eio_file_is_named_and_does_not_hold_the_rule_forever(pod, workdir):
    """#10 item 8: /proc/self/mem reads fail with EIO. The held line names that file; after
    three retries it counts as unreadable, and the rest of the rule reloads."""
    etc = workdir / "etc"
    etc.mkdir()
    conf = etc / "app.conf"
    conf.write_text("v1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", conf)
    r = Reloader(pod, workdir, rules(rule("app", [etc], "mydaemon")))
    settle(r, "app")

    os.symlink("/proc/self/mem", etc / "mem")
    replace(conf, "v2\n")
    ev = r.log.expect("held", rule="app")
    assert ev["path"] == str(etc / "mem")
    assert first_of(r, ("reloaded", "reload failed"), timeout=20, rule="app")["msg"] == "reloaded"
    r.idle()
    assert received(r, t) == [("SIGHUP", escaped("v2\n"))]
    assert r.log.count("held", rule="app") <= 4  # the first try and three retries


# ---- 9. Go programs, which die of SIGHUP until they call signal.Notify -----------------------

def go_target(pod, conf, notify_after_ms):
    return Helper(pod, [helper("gotarget"), "--comm", "goapp", "--config", conf,
                        "--notify-after", str(notify_after_ms)])


@pytest.fixture
def go():
    """The Go helper, which make builds only where go is installed."""
    assert os.access(helper("gotarget"), os.X_OK), \
        f"{helper('gotarget')} is missing: install golang-go (make deps), then make helpers"


def test_go_program_started_just_before_a_change_survives_and_reloads(pod, workdir, go):
    """#10 item 9: a Go program that calls signal.Notify 300 ms after it starts (Prometheus took
    up to 500 ms here) shows SIGHUP caught from its first instruction; the default start_grace
    must let it get there."""
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "goapp"), settings=DEFAULT_GRACE))
    settle(r, "app")
    t = go_target(pod, vol.root / "app.conf", 300)
    vol.write({"app.conf": "v2\n"})
    ev = first_of(r, ("reloaded", "reload failed"), rule="app")
    assert ev["msg"] == "reloaded", f"reload failed: reason={ev.get('reason')}"
    t.proc.out.expect(r"^handler ")
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v2\n"))
    assert t.proc.p.poll() is None


@pytest.mark.parametrize("where", ["rule", "top-level"])
def test_start_grace_holds_a_young_target_until_it_is_that_old(pod, workdir, go, where):
    """#10 item 9: start_grace set to 4s, a Go program that calls signal.Notify after 2 s."""
    vol = volume(workdir)
    settings = "debounce: 50ms\nverify_after: 100ms\n"
    body = rule("app", [vol.root], "goapp", "start_grace: 4s" if where == "rule" else "")
    r = Reloader(pod, workdir, rules(body, settings=settings + (
        "start_grace: 4s\n" if where == "top-level" else "")))
    settle(r, "app")
    t = go_target(pod, vol.root / "app.conf", 2000)
    vol.write({"app.conf": "v2\n"})
    ev = first_of(r, ("reloaded", "reload failed"), timeout=20, rule="app")
    assert ev["msg"] == "reloaded", f"reload failed: reason={ev.get('reason')}"
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v2\n"))
    assert t.proc.p.poll() is None


PROMETHEUS_YML = "global:\n  scrape_interval: {}\nscrape_configs: []\n"


def test_prometheus_started_just_before_a_change_survives_and_reloads(workdir, pod):
    """#10 item 9: Debian's prometheus, freshly started, and a config change at once: a SIGHUP
    before its signal.Notify killed it in 2 of 12 trials. (workdir before pod: prometheus
    writes there until the pod ends.)"""
    vol = AtomicVolume(workdir / "prometheus")
    vol.write({"prometheus.yml": PROMETHEUS_YML.format("1m")})
    r = Reloader(pod, workdir, rules(rule("prom", [vol.root], "prometheus"),
                                     settings=DEFAULT_GRACE))
    settle(r, "prom")
    p = pod.spawn(["prometheus", f"--config.file={vol.root}/prometheus.yml",
                   f"--storage.tsdb.path={workdir}/data", "--web.listen-address=127.0.0.1:0"])
    vol.write({"prometheus.yml": PROMETHEUS_YML.format("2m")})
    ev = first_of(r, ("reloaded", "reload failed"), timeout=20, rule="prom")
    assert ev["msg"] == "reloaded", f"reload failed: reason={ev.get('reason')}"
    p.err.expect("Completed loading of configuration file", timeout=20)  # its start
    p.err.expect("Completed loading of configuration file", timeout=20)  # the reload
    assert p.p.poll() is None


# ---- 10.-12. targets: a dead main thread, an ignored signal; a dry run ----------------------

def test_process_whose_main_thread_exited_is_signaled(pod, workdir):
    """#10 item 10: state Z in /proc/PID/stat, yet alive: its other thread reloads."""
    vol = volume(workdir)
    t = Helper(pod, [helper("mainexit"), "--comm", "mydaemon", "--config",
                     vol.root / "app.conf"])
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    ev = first_of(r, ("reloaded", "reload failed", "no target"), rule="app")
    assert ev["msg"] == "reloaded", f"{ev['msg']} (reason={ev.get('reason')})"
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", escaped("v2\n"))


def test_target_that_ignores_the_signal_fails_the_reload(pod, workdir):
    """#10 item 11: SIG_IGN (as under nohup) is no reload."""
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--ignore")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")))
    settle(r, "app")
    vol.write({"app.conf": "v2\n"})
    ev = first_of(r, ("reloaded", "reload failed"), rule="app")
    assert ev["msg"] == "reload failed" and ev["reason"] == "ignored", ev
    assert r.log.count("signal failed", rule="app", pid=t.pid, reason="ignored") == 1
    assert r.metrics()['sigreload_signal_errors_total{rule="app",reason="ignored"}'] == 1
    assert r.log.count("reloaded") == 0


def test_dry_run_says_would_and_counts_nothing_as_delivered(pod, workdir):
    """#10 item 12: a dry run logs what it would do and leaves the delivery metrics alone."""
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "mydaemon")), args=["--dry-run"])
    settle(r, "app")
    before = r.metrics()
    vol.write({"app.conf": "v2\n"})
    r.log.expect("would signal (dry run)", rule="app", pid=t.pid)
    r.log.expect("would reload (dry run)", rule="app")
    r.idle()
    after = r.metrics()
    assert r.log.count("reloaded") == 0
    assert after.get('sigreload_signals_sent_total{rule="app",signal="SIGHUP"}', 0) == 0
    assert after.get('sigreload_reloads_total{rule="app",result="signaled"}', 0) == 0
    for family in ("sigreload_config_hash_info", "sigreload_last_reload_success_timestamp"):
        assert ({k: v for k, v in after.items() if k.startswith(family)}
                == {k: v for k, v in before.items() if k.startswith(family)}), family
    assert t.settled(r) == []


# ---- 15. min_interval -----------------------------------------------------------------------

@pytest.mark.parametrize("where", ["rule", "top-level"])
def test_min_interval_delays_the_next_delivery_and_keeps_the_last_content(pod, workdir, where):
    """#10 item 15: at most one delivery per min_interval; what changed meanwhile is delivered
    when it ends, as its last version only."""
    vol = volume(workdir)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    settings = "debounce: 50ms\nmax_wait: 2s\nverify_after: 0\n"
    body = rule("app", [vol.root], "mydaemon", "min_interval: 4s" if where == "rule" else "")
    r = Reloader(pod, workdir, rules(body, settings=settings + (
        "min_interval: 4s\n" if where == "top-level" else "")))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    assert t.expect_signal()[3] == escaped("v2\n")
    r.log.expect("reloaded", rule="app")
    vol.write({"app.conf": "v3\n"})
    r.log.expect("event", rule="app")
    time.sleep(0.5)  # v3's debounce has ended: without min_interval it would be delivered now
    vol.write({"app.conf": "v4\n"})
    assert t.expect_signal(timeout=20)[3] == escaped("v4\n")
    r.idle()
    assert received(r, t) == [("SIGHUP", escaped("v2\n")), ("SIGHUP", escaped("v4\n"))]
