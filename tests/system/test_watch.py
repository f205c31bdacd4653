"""What wakes sigreload: a directory above a watched volume, busy with names of its own, must
not; the volume's own update must. The inotify events read are counted in /metrics
(sigreload_watch_events_total), and each one that concerns a rule is logged at debug level
("event"): a second rule's file, written after the busy work, is the barrier that proves every
event queued before it was read."""

import os

from conftest import Reloader, Target, rule, rules, settle
from hardening import address, expect_reload, get
from kubelet import AtomicVolume


def watch_events(r):
    status, body = get(address(r), "/metrics")
    assert status == 200
    line = next(line for line in body.splitlines()
                if line.startswith("sigreload_watch_events_total "))
    return int(line.split()[1])


def busy(d, n=100):
    """Another program's work in d: files and directories created, written, touched, renamed,
    removed."""
    for i in range(n):
        f, sub = d / f"f{i}", d / f"d{i}"
        f.write_text("x")
        os.utime(f)
        f.rename(d / f"g{i}")
        (d / f"g{i}").unlink()
        sub.mkdir()
        os.utime(sub)
        sub.rmdir()


def test_busy_directories_above_a_volume_wake_nothing(pod, workdir):
    busy_dir, parent = workdir / "busy", workdir / "busy" / "app"
    vol = AtomicVolume(parent / "vol")
    vol.write({"app.conf": "1\n"})
    probe = workdir / "probe.conf"
    probe.write_text("0\n")
    t = Target(pod, "--comm", "app", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "app"),
                                     rule("probe", [probe], "nothing")))
    settle(r, "app")
    settle(r, "probe")
    before = watch_events(r)
    seen = len(r.log.events())

    busy(busy_dir)
    busy(parent)
    probe.write_text("1\n")
    r.log.expect("event", rule="probe", event="CLOSE_WRITE")
    lines = [ev for ev in r.log.events()[seen:] if ev["msg"] == "event"]
    # only the probe's own events were read: none of the busy directories'
    assert all(ev["rule"] == "probe" for ev in lines), lines
    assert watch_events(r) - before == len(lines)

    vol.write({"app.conf": "2\n"})  # the volume itself still counts
    expect_reload(r, t, "app", "2\n")
