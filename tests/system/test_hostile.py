"""Hostile input to a running sigreload: rule files built to cost the YAML loader minutes or
hundreds of MiB, and slowloris clients of /metrics. Either way the loop stays responsive,
/healthz answers, the old rules keep working, and memory and fds come back."""

import os
import re
import socket
import threading
import time

import pytest

from conftest import TIMEOUT, Reloader, Target
from conftest import http_get as get
from kubelet import AtomicVolume

FAST = "debounce: 50ms\nverify_after: 100ms\n"
REQUEST_DEADLINE = 5  # HTTP_REQUEST_DEADLINE_S in src/http.h


def rule_file(vol, extra=""):
    return (FAST + 'metrics_listen: "127.0.0.1:0"\nrules:\n'
            f"  - name: app\n    paths: [{vol.root}]\n    match: {{comm: app}}\n" + extra)


def address(r):
    return r.log.expect("serving /metrics, /healthz, /readyz")["address"]


def samples(text):
    return {k: float(v) for k, v in (ln.rsplit(" ", 1) for ln in text.splitlines()
                                     if ln and not ln.startswith("#"))}


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def wait_for_fds(pid, addr, baseline):
    deadline = time.monotonic() + TIMEOUT + REQUEST_DEADLINE
    while fd_count(pid) > baseline:  # every connection released
        assert time.monotonic() < deadline, f"fds {fd_count(pid)} > baseline {baseline}"
        get(addr, "/healthz", source="127.0.0.9")
        time.sleep(0.1)


def hostile(kind):
    """Under 1 MiB each; before the event pre-pass, libyaml spent 24 s on the anchors and 20
    minutes on the nesting, and 87 MiB on the values."""
    if kind == "anchors":
        return "x: [" + "".join(f"&a{i} x,*a{i}," for i in range(55000)) + "]\n"
    if kind == "nesting":
        return "x: " + "[" * 400000 + "]" * 400000 + "\n"
    return "x: [" + "a," * 450000 + "]\n"


LIMITS = {
    "anchors": "more than 1024 anchors",
    "nesting": "nested more than 32 levels deep",
    "values": "more than 32768 values",
}


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_a_costly_rule_file_is_refused_while_the_loop_answers(pod, workdir, kind):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"a.conf": "1\n"})
    t = Target(pod, "--comm", "app", "--config", vol.root / "a.conf")
    r = Reloader(pod, workdir, rule_file(vol))
    addr = address(r)
    r.log.expect("watching", rule="app")

    text = rule_file(vol, hostile(kind))
    assert len(text) < 1 << 20
    tmp = workdir / "next.yaml"
    tmp.write_text(text)
    os.replace(tmp, r.config)
    ev = r.log.expect("rule file error")
    assert LIMITS[kind] in ev["err"], ev
    r.log.expect("rule file not loaded")
    assert get(addr, "/healthz") == (200, "ok\n")
    status, body = get(addr, "/metrics")
    assert status == 200
    assert samples(body)["sigreload_rules_last_reload_successful"] == 0
    # the previous rules still run
    vol.write({"a.conf": "2\n"})
    assert t.expect_signal()[3] == "2\\n"
    r.log.expect("reloaded", rule="app")


class Slowloris:
    """Connections from several loopback addresses that each send a request's first bytes, then
    one more byte every second, never ending the headers; remembers which sigreload closed."""

    def __init__(self, addr, n):
        host, port = addr.rsplit(":", 1)
        self.socks = []
        for i in range(n):
            s = socket.create_connection((host, int(port)), timeout=TIMEOUT,
                                         source_address=(f"127.0.0.{2 + i % 4}", 0))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            self.socks.append(s)
        self.closed = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.drip, daemon=True)
        self.thread.start()

    def drip(self):
        while not self.stop.is_set():
            for s in self.socks:
                if s in self.closed:
                    continue
                try:
                    if s.recv(1, socket.MSG_DONTWAIT) == b"":
                        self.closed.add(s)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed.add(s)
                    continue
                try:
                    s.send(b"a")
                except OSError:
                    self.closed.add(s)
            self.stop.wait(1.0)

    def wait_all_closed(self):
        deadline = time.monotonic() + TIMEOUT + REQUEST_DEADLINE
        while len(self.closed) < len(self.socks):
            assert time.monotonic() < deadline, (
                f"{len(self.socks) - len(self.closed)} slow connections still open")
            time.sleep(0.1)

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def test_slowloris_neither_holds_the_slots_nor_blocks_the_probe(pod, workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"a.conf": "1\n"})
    t = Target(pod, "--comm", "app", "--config", vol.root / "a.conf")
    r = Reloader(pod, workdir, rule_file(vol))
    addr = address(r)
    r.log.expect("watching", rule="app")
    pid = r.proc.pid
    assert get(addr, "/metrics")[0] == 200
    fds = fd_count(pid)

    for version in (2, 3):
        attack = Slowloris(addr, 40)  # more than the 32 slots
        try:
            for _ in range(3):  # the probe's way in stays open
                assert get(addr, "/healthz") == (200, "ok\n")
                assert get(addr, "/metrics")[0] == 200
            vol.write({"a.conf": f"{version}\n"})
            assert t.expect_signal()[3] == f"{version}\\n"
            r.log.expect("reloaded", rule="app")
            # each request has a total deadline, however often its client sends a byte
            attack.wait_all_closed()
        finally:
            attack.close()
        wait_for_fds(pid, addr, fds)
        if version == 2:
            rss = rss_kib(pid)  # after one round: allocator and pools warmed up
    margin = 16384 if os.environ.get("SIGRELOAD_SANITIZED") else 512
    assert rss_kib(pid) <= rss + margin, "memory grew from one round to the next"
    assert get(addr, "/healthz") == (200, "ok\n")
