"""Observability: the /metrics exposition (checked by promtool and scraped by a real
Prometheus), /healthz and /readyz, hostile HTTP clients, and log lines that stay parseable."""

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

from conftest import BIN, TIMEOUT, Log, Reloader, Target, sigreload, start
from conftest import http_get as get
from kubelet import AtomicVolume

FAST = "debounce: 50ms\nverify_after: 100ms\n"


def listen_rules(workdir, body, settings=FAST):
    return settings + 'metrics_listen: "127.0.0.1:0"\nrules:\n' + body


def rule(name, path, comm, extra=""):
    return (f"  - name: {name}\n    paths: [{path}]\n    match: {{comm: {comm}}}\n"
            + "".join(f"    {line}\n" for line in extra.splitlines() if line))


def address(r):
    return r.log.expect("serving /metrics, /healthz, /readyz")["address"]


def scrape(addr):
    status, body = get(addr, "/metrics")
    assert status == 200
    return body


def samples(text):
    """{'name{labels}': value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def promtool(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout + p.stderr


def test_counters_follow_what_happened_and_pass_promtool(pod, workdir):
    ok, none, bad = (AtomicVolume(workdir / n) for n in ("ok", "none", "bad"))
    for v in (ok, none, bad):
        v.write({"a.conf": "1\n"})
    Target(pod, "--comm", "good")
    Target(pod, "--comm", "nohandler", "--handler-after", "60000")
    # a debounce long enough that one kubelet swap is one evaluation even on a loaded machine:
    # the counts below are exact
    r = Reloader(pod, workdir, listen_rules(workdir,
                 rule("ok", ok.root, "good") + rule("none", none.root, "nobody")
                 + rule("bad", bad.root, "nohandler", "handler_wait: 100ms"),
                 settings="debounce: 500ms\nverify_after: 100ms\nstart_grace: 0\n"))
    addr = address(r)
    for name in ("ok", "none", "bad"):
        r.log.expect("watching", rule=name)
    before = samples(scrape(addr))
    assert before['sigreload_targets{rule="ok"}'] == 1
    assert before['sigreload_targets{rule="none"}'] == 0

    ok.write({"a.conf": "2\n"})
    r.log.expect("reloaded", rule="ok")
    ok.write({"a.conf": "2\n"}, force=True)
    r.log.expect("unchanged", rule="ok")
    none.write({"a.conf": "2\n"})
    r.log.expect("no target", rule="none")
    bad.write({"a.conf": "2\n"})
    r.log.expect("reload failed", rule="bad", reason="no_handler")

    text = scrape(addr)
    promtool(text)
    m = samples(text)
    assert m['sigreload_reloads_total{rule="ok",result="signaled"}'] == 1
    assert m['sigreload_reloads_total{rule="ok",result="unchanged"}'] == 1
    assert m['sigreload_reloads_total{rule="none",result="no_target"}'] == 1
    assert m['sigreload_reloads_total{rule="bad",result="failed"}'] == 1
    assert m['sigreload_signals_sent_total{rule="ok",signal="SIGHUP"}'] == 1
    assert m['sigreload_signals_sent_total{rule="bad",signal="SIGHUP"}'] == 0
    assert m['sigreload_signal_errors_total{rule="bad",reason="no_handler"}'] == 1
    assert m['sigreload_last_reload_successful{rule="ok"}'] == 1
    assert m['sigreload_last_reload_successful{rule="none"}'] == 1  # nobody to tell is no failure
    assert m['sigreload_last_reload_successful{rule="bad"}'] == 0
    assert (m['sigreload_last_reload_success_timestamp_seconds{rule="ok"}']
            > before['sigreload_last_reload_success_timestamp_seconds{rule="ok"}'])
    assert m["sigreload_rules_last_reload_successful"] == 1
    assert m["sigreload_watches"] >= 3
    assert m["sigreload_watch_events_total"] >= 4
    assert m['sigreload_build_info{version="0.1.0"}'] == 1
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_max_fds",
                 "process_virtual_memory_bytes"):
        assert m[name] > 0
    assert 0 <= m["process_cpu_seconds_total"] < 60  # an idle sidecar may not reach 10 ms
    assert abs(m["process_start_time_seconds"] - time.time()) < 60

    # exactly one hash series per rule: the old one goes when the content changes
    hashes = [k for k in m if k.startswith('sigreload_config_hash_info{rule="ok"')]
    digest = sigreload("hash", ok.root).stdout.splitlines()[-1].split()[2]
    assert hashes == [f'sigreload_config_hash_info{{rule="ok",sha256="{digest}"}}']


def test_invalid_rule_file_shows_in_the_metrics(pod, workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"a.conf": "1\n"})
    r = Reloader(pod, workdir, listen_rules(workdir, rule("app", vol.root, "x")))
    addr = address(r)
    r.config.write_text(r.config.read_text() + "bogus: 1\n")
    r.log.expect("rule file not loaded")
    m = samples(scrape(addr))
    assert m["sigreload_rules_last_reload_successful"] == 0
    r.config.write_text(listen_rules(workdir, rule("app", vol.root, "x")))
    r.log.expect("rules reloaded")
    assert samples(scrape(addr))["sigreload_rules_last_reload_successful"] == 1


def test_health_and_readiness(pod, workdir):
    missing = workdir / "not" / "yet"
    r = Reloader(pod, workdir, listen_rules(workdir, rule("app", missing, "x")))
    addr = address(r)
    r.log.expect("held", rule="app")
    assert get(addr, "/healthz") == (200, "ok\n")
    # a missing path is being waited for: its nearest ancestor is watched, so we are ready
    assert get(addr, "/readyz") == (200, "ready\n")


def test_readiness_fails_when_the_watch_limit_is_reached(pod, workdir):
    os.chmod(workdir, 0o755)
    deep = workdir / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    sysctl = "/proc/sys/fs/inotify/max_user_watches"
    saved = open(sysctl).read()
    setpriv = ["setpriv", "--reuid", "65532", "--regid", "65532", "--clear-groups"]
    try:
        with open(sysctl, "w") as f:  # uid 65532 has no other watch on this machine
            f.write("3\n")
        r = Reloader(pod, workdir, listen_rules(workdir, rule("app", deep, "x")), prefix=setpriv)
        addr = address(r)
        ev = r.log.expect("inotify watch limit reached", rule="app")
        assert ev["max_user_watches"] == "3"
        status, body = get(addr, "/readyz")
        assert status == 503 and body.startswith("not ready: ")
        m = samples(scrape(addr))
        assert m['sigreload_watch_errors_total{reason="limit"}'] >= 1
    finally:
        with open(sysctl, "w") as f:
            f.write(saved)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def hostile_round(addr):
    """HEAD, POST, an unknown path, a 1 MiB request line, garbage, and 1,000 connections at
    once, a few of which send a request and never read. Returns the sockets still open."""
    host, port = addr.rsplit(":", 1)
    assert get(addr, "/metrics", "HEAD")[0] == 200
    assert get(addr, "/metrics", "POST")[0] == 405
    assert get(addr, "/nope")[0] == 404
    for payload in (b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\n\r\n",
                    os.urandom(4096) + b"\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as c:
            try:
                c.sendall(payload)
            except OSError:
                pass  # refused half-way: as good as an error status
            reply = c.recv(4096)
            assert reply == b"" or int(reply.split()[1]) >= 400
    idle = []
    for _ in range(1000):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, int(port)))
        idle.append(s)
    for s in idle[:5]:
        try:
            s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
    return idle


def wait_for_fds(pid, addr, baseline):
    deadline = time.monotonic() + TIMEOUT
    while fd_count(pid) > baseline:  # every connection released
        assert time.monotonic() < deadline, f"fds {fd_count(pid)} > baseline {baseline}"
        get(addr, "/healthz", source="127.0.0.3")
        time.sleep(0.05)


def test_hostile_clients_never_disturb_the_loop(pod, workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"a.conf": "1\n"})
    t = Target(pod, "--comm", "app", "--config", vol.root / "a.conf")
    r = Reloader(pod, workdir, listen_rules(workdir, rule("app", vol.root, "app")))
    addr = address(r)
    r.log.expect("watching", rule="app")
    pid = r.proc.pid
    scrape(addr)
    fds = fd_count(pid)

    for version in (2, 3):
        idle = hostile_round(addr)
        # meanwhile, from another address: health answers, and a change is still reloaded
        assert get(addr, "/healthz", source="127.0.0.2") == (200, "ok\n")
        vol.write({"a.conf": f"{version}\n"})
        assert t.expect_signal()[3] == f"{version}\\n"
        r.log.expect("reloaded", rule="app")
        for s in idle:
            s.close()
        wait_for_fds(pid, addr, fds)
        if version == 2:
            rss = rss_kib(pid)  # after one round: allocator and pools warmed up
    # a second round leaves memory where the first did (sanitizers keep freed memory aside)
    margin = 16384 if os.environ.get("SIGRELOAD_SANITIZED") else 512
    assert rss_kib(pid) <= rss + margin, "memory grew from one round to the next"
    assert get(addr, "/healthz") == (200, "ok\n")


def test_address_in_use_is_a_clear_start_up_error(workdir):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        (workdir / "r.yaml").write_text(
            f'metrics_listen: "127.0.0.1:{port}"\nrules:\n' + rule("app", workdir, "x"))
        p = start([BIN, "run", "-c", workdir / "r.yaml"])
        assert p.wait() == 1
        ev = Log(p.err).expect("cannot serve metrics")
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" == ev["err"]
        p.close()
        bad = sigreload("run", "-c", workdir / "r.yaml", "--metrics-listen", "nonsense")
        assert bad.returncode == 2 and "--metrics-listen 'nonsense'" in bad.stderr
    finally:
        busy.close()


def test_a_real_prometheus_scrapes_sigreload(pod, workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"a.conf": "1\n"})
    t = Target(pod, "--comm", "app")
    r = Reloader(pod, workdir, listen_rules(workdir, rule("app", vol.root, "app")))
    addr = address(r)
    r.log.expect("watching", rule="app")
    vol.write({"a.conf": "2\n"})
    r.log.expect("reloaded", rule="app")
    r.idle()
    assert len(t.settled(r)) == 1

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web = f"127.0.0.1:{s.getsockname()[1]}"
    (workdir / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: sigreload\n    static_configs: [{{targets: ['{addr}']}}]\n")
    prom = start(["prometheus", f"--config.file={workdir}/prometheus.yml",
                  f"--storage.tsdb.path={workdir}/data", f"--web.listen-address={web}"])
    try:
        def query(q):
            url = f"http://{web}/api/v1/query?query={urllib.request.quote(q)}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.load(resp)["data"]["result"]

        deadline = time.monotonic() + 30
        while True:
            try:
                up = query('up{job="sigreload"}')
                signaled = query('sigreload_reloads_total{rule="app",result="signaled"}')
                if up and signaled:
                    break
            except (urllib.error.URLError, ConnectionError, KeyError):
                pass
            assert time.monotonic() < deadline, "Prometheus never scraped sigreload"
            time.sleep(0.2)
        assert up[0]["value"][1] == "1"
        assert signaled[0]["value"][1] == "1"
    finally:
        prom.stop()
        prom.close()


def test_json_logs_and_hostile_values_stay_one_event_a_line(pod, workdir):
    tricky = workdir / 'we"ird\nname\\x=1 level=error.conf'
    d = workdir / "d"
    d.mkdir()
    (d / tricky.name).write_text("1\n")
    t = Target(pod, "--comm", "app")
    r = Reloader(pod, workdir, FAST + "rules:\n" + rule("app", d, "app"),
                 args=["--log-format", "json"])
    r.log.expect("watching", rule="app")
    os.mkfifo(d / "fifo\nlevel=error")  # reported by name, never opened
    r.log.expect("not hashed", rule="app", path=str(d / "fifo\nlevel=error"))
    (d / ".next").write_text("2\n")  # by rename: an in-place write is two changes to a
    os.replace(d / ".next", d / tricky.name)  # debounce that a loaded machine can split
    r.log.expect("reloaded", rule="app")
    r.idle()
    assert len(t.settled(r)) == 1
    lines = [line for line in r.proc.err.lines if line]
    assert all(line.startswith("{") for line in lines)
    events = [json.loads(line) for line in lines]  # every line one valid JSON object
    assert {e["level"] for e in events} <= {"debug", "info", "warn", "error"}
    assert not any(e["level"] == "error" for e in events)
    assert any(e.get("name") == tricky.name for e in events)
