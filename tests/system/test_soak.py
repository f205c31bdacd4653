"""Soak: 10,000 kubelet-style ConfigMap updates against a real target, at random intervals
(mostly back to back), with `debounce: 0`: the harshest setting, every event evaluated.

The updates mix real changes (new content, a key added or removed) with updates that change no
content (an atomic swap to identical data, a touch). At the end:
- the target's last reload read the last content written;
- no signal was sent for an unchanged digest (consecutive reloads never carry the same digest),
  and nothing failed;
- sigreload's RSS, open fds and threads did not grow between the 1,000th and the 10,000th update.

SOAK_UPDATES and SOAK_SEED (environment) change the run's length and its random sequence.
"""

import os
import random
import signal
import time

from conftest import Reloader, Target
from hardening import SANITIZED, escaped, fd_count, kib, proc_status, settle
from kubelet import AtomicVolume

UPDATES = int(os.environ.get("SOAK_UPDATES", "10000"))
SEED = int(os.environ.get("SOAK_SEED", str(random.SystemRandom().randrange(1 << 32))))
CHECKPOINT = UPDATES // 10  # the 1,000th update: where the figures start


def quiesce(r, t, n):
    """Waits until sigreload has acted on every update so far and the target has reported each
    signal it got, on facts. The rule file, rewritten with the same rules, is read from the same
    inotify queue after the updates' events: its reload says they were all seen, the idle line
    after it that all were acted on. Then a SIGUSR2 of our own is reported after every SIGHUP
    sent before it (pending signals are delivered lowest number first)."""
    r.proc.err.drain()
    r.proc.err.pos = len(r.proc.err.lines)  # the reload to wait for is the one to come
    tmp = r.config.with_name(r.config.name + ".tmp")
    tmp.write_text(r.config.read_text() + f"# quiesced {n}\n")
    os.replace(tmp, r.config)
    r.log.expect("rules reloaded", why="the rule file changed")
    r.idle()
    t.proc.send(signal.SIGUSR2)
    while t.expect_signal()[2] != "SIGUSR2":
        pass


def figures(r):
    pid = r.proc.pid
    return {"rss_kib": kib(pid, "VmRSS"), "fds": fd_count(pid),
            "threads": int(proc_status(pid)["Threads"])}


def test_soak_10000_kubelet_updates(pod, workdir):
    rng = random.Random(SEED)
    print(f"\nsoak: {UPDATES} updates, SOAK_SEED={SEED}")
    vol = AtomicVolume(workdir / "vol")
    payload = {"app.conf": "v0\n"}
    vol.write(payload)
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    r = Reloader(pod, workdir,
                 "debounce: 0\nmax_wait: 1s\nverify_after: 0\nhandler_wait: 5s\nstart_grace: 0\nrules:\n"
                 f"  - name: app\n    paths: [{vol.root}]\n    match: {{comm: mydaemon}}\n")
    settle(r, "app")

    kinds = {"change": 0, "key": 0, "same-swap": 0, "touch": 0}
    counter = 0
    start = time.monotonic()
    for i in range(1, UPDATES + 1):
        roll = rng.random()
        if roll < 0.70:
            counter += 1
            payload = {**payload, "app.conf": f"v{counter}\n"}
            vol.write(payload)
            kinds["change"] += 1
        elif roll < 0.75:
            payload = ({"app.conf": payload["app.conf"]} if "extra.conf" in payload
                       else {**payload, "extra.conf": f"e{i}\n"})
            vol.write(payload)
            kinds["key"] += 1
        elif roll < 0.875:
            vol.write(payload, force=True)  # an atomic swap to identical content
            kinds["same-swap"] += 1
        else:
            os.utime(vol.root / "app.conf")
            kinds["touch"] += 1
        pause = rng.random()  # the schedule under test: mostly back to back, a few pauses
        if pause >= 0.95:
            time.sleep(rng.uniform(0.005, 0.030))
        elif pause >= 0.85:
            time.sleep(rng.uniform(0, 0.002))
        if i % 10 == 0:  # keep both pipes empty: a full one would stall sigreload's writes
            r.proc.err.pump(0)
            t.proc.out.pump(0)
        if i == CHECKPOINT:
            quiesce(r, t, "early")
            early = figures(r)
    quiesce(r, t, "late")
    late = figures(r)
    took = time.monotonic() - start

    events = r.log.events()
    reloads = [e for e in events if e["msg"] == "reloaded"]
    unchanged = sum(1 for e in events if e["msg"] == "unchanged")
    signals = [s for s in t.signals() if s[2] == "SIGHUP"]  # not quiesce()'s SIGUSR2s
    print(f"soak: {took:.1f}s; updates {kinds}; {len(reloads)} reloads, {unchanged} unchanged, "
          f"{len(signals)} signals received")
    print(f"soak: at update {CHECKPOINT}: {early}")
    print(f"soak: at update {UPDATES}: {late}")

    # the target's last reload read the last content written
    assert signals and signals[-1][3] == escaped(payload["app.conf"])
    assert vol.current() == {k: v.encode() for k, v in payload.items()}
    # never a signal for an unchanged digest, never a failure
    digests = [e["sha256"] for e in reloads]
    assert all(a != b for a, b in zip(digests, digests[1:])), "two reloads in a row at one digest"
    changed = [e for e in events if e["msg"] == "changed"]
    assert all(e["sha256"] != e["previous"] for e in changed)
    # held only where the writer outran a read of the files (its next one is a second later; an
    # ASan build reads slowly enough for 600 updates a second to do that)
    assert not [e for e in events if e["msg"] in ("reload failed", "signal failed", "held",
                                                  "no target", "superseded")
                and e.get("err") != "the files changed while they were read"]
    sent = sum(1 for e in events if e["msg"] == "signaled")
    assert sent == len(reloads)
    assert 1 <= len(signals) <= sent  # a target may see two SIGHUPs in a row as one
    assert len(reloads) <= kinds["change"] + kinds["key"]  # at most one per real change
    assert unchanged > 0  # the identical swaps and touches were seen, and fired nothing
    # flat: no fd, thread or memory growth over 9,000 updates
    assert late["fds"] == early["fds"]
    assert late["threads"] == early["threads"] == 1
    if not SANITIZED:  # ASan's quarantine grows RSS by design
        assert late["rss_kib"] - early["rss_kib"] <= 256, "RSS grew over 9,000 updates"
    assert r.proc.p.poll() is None
