"""http: rules and verify:, driven through `sigreload run` as a user runs them: a kubelet-style
volume, a real HTTP server on loopback (httpsink.Sink), and Debian's real Prometheus.

Each test asserts what a user sees: the requests the server received (method, path, headers),
sigreload's log lines and metrics. The HTTP client itself (statuses, TLS, timeouts, body limits)
is test_fetch.py's; what Prometheus and Alertmanager answer is test_reload_endpoints.py's.
"""

import base64
import datetime
import json
import re
import time
import types

import pytest

from conftest import (BIN, FAST, TIMEOUT, Log, Reloader, Target, escaped, http_get, metric, rule,
                      rules, serving_address, settle, sigreload)
from hardening import SANITIZED, fd_count, kib, wait_until
from httpsink import Driver, Sink
from kubelet import AtomicVolume
from test_reload_endpoints import free_port, reload_success, scrape_interval

#: the same quick settings as the signal tests; an http rule has no handler to wait for
SETTINGS = FAST


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def volume(workdir, content="v1\n", name="vol"):
    vol = AtomicVolume(workdir / name)
    vol.write({"app.conf": content})
    return vol


def http_rule(name, paths, url, http="", keys=""):
    """A rule whose action is `http: {url: ...}` plus the http keys in http (YAML lines) and
    the rule keys in keys (e.g. a verify: mapping)."""
    lines = [f"  - name: {name}", "    paths:"]
    lines += [f"      - {p}" for p in paths]
    lines += ["    http:", f"      url: '{url}'"]
    lines += [f"      {line}" for line in http.splitlines() if line]
    lines += [f"    {line}" for line in keys.splitlines() if line]
    return "\n".join(lines) + "\n"


def outcome(r, name, timeout=TIMEOUT):
    """The next "reloaded" or "reload failed" line of rule name."""
    return r.log.expect(("reloaded", "reload failed"), timeout=timeout, rule=name)


def rule_digest(path):
    """What `sigreload hash` says a rule on path hashes to now."""
    out = sigreload("hash", path).stdout
    return re.search(r"^# rule-digest (\w+)", out, re.M).group(1)


def requests_to(sink, path):
    with sink.lock:
        return [q for q in sink.requests if q["path"] == path]


def everything_shown(r):
    """sigreload's log so far and a scrape of its /metrics: where a credential must not be."""
    _, exposition = http_get(serving_address(r), "/metrics")
    r.log.stream.drain()
    return "\n".join(r.log.stream.lines) + exposition


def test_a_change_is_requested_once_with_its_method_and_headers(pod, workdir, sink):
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(http_rule(
        "app", [vol.root], sink.url("/reload"),
        "method: PUT\nheaders: {X-Reload: '1', X-Team: web}"), settings=SETTINGS))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    changed = r.log.expect("changed", rule="app")
    done = outcome(r, "app")
    assert (done["msg"], done["status"], done["sha256"]) == ("reloaded", "200", changed["sha256"])
    [q] = requests_to(sink, "/reload")
    assert q["method"] == "PUT" and q["body"] == b""
    assert q["headers"]["X-Reload"] == "1" and q["headers"]["X-Team"] == "web"
    assert metric(r, 'sigreload_reloads_total{rule="app",result="requested"}') == 1
    assert metric(r, 'sigreload_http_requests_total{rule="app",code="200"}') == 1
    assert metric(r, 'sigreload_http_request_duration_seconds_count{rule="app"}') == 1
    assert metric(r, 'sigreload_last_reload_successful{rule="app"}') == 1

    vol.write({"app.conf": "v2\n"}, force=True)  # a swap to the same content: nothing to do
    r.log.expect("event", rule="app")
    r.idle()
    assert len(requests_to(sink, "/reload")) == 1


def test_failed_attempts_back_off_then_fail_and_the_next_change_requests_again(pod, workdir,
                                                                                sink):
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(http_rule(
        "app", [vol.root], sink.url("/status/503"), "retries: 2"), settings=SETTINGS))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    nexts = [r.log.expect("request failed", rule="app", attempt=n, status=503)["next"]
             for n in (1, 2, 3)]
    assert nexts == ["attempt 2 in 1s", "attempt 3 in 2s",
                     "none: the next change or resync tries again"]
    done = outcome(r, "app")
    assert (done["msg"], done["reason"]) == ("reload failed", "status")
    assert metric(r, 'sigreload_reloads_total{rule="app",result="failed"}') == 1
    assert metric(r, 'sigreload_http_requests_total{rule="app",code="503"}') == 3
    assert metric(r, 'sigreload_last_reload_successful{rule="app"}') == 0

    # the previous digest was kept: a later change requests again, with the newest content
    vol.write({"app.conf": "v3\n"})
    changed = r.log.expect("changed", rule="app")
    assert r.log.expect("request failed", rule="app", attempt=1)["status"] == "503"
    assert changed["previous"] != done["sha256"]  # measured against what was last reloaded
    assert len(requests_to(sink, "/status/503")) >= 4


def test_a_change_during_a_request_is_requested_once_more_with_the_newest_content(
        pod, workdir, sink):
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(http_rule(
        "app", [vol.root], sink.url("/slow"), "timeout: 20s"), settings=SETTINGS))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    assert sink.slow_waiting.wait(TIMEOUT), "the request never reached the server"
    for content in ("v3\n", "v4\n"):  # two more updates while the first request is held
        vol.write({"app.conf": content})
        r.log.expect("event", rule="app")
    newest = rule_digest(vol.root)
    sink.release.set()
    first, second = outcome(r, "app"), outcome(r, "app")
    assert first["msg"] == second["msg"] == "reloaded"
    assert second["sha256"] == newest != first["sha256"]
    r.idle()
    assert len(requests_to(sink, "/slow")) == 2


def test_a_slow_endpoint_never_delays_another_rule(pod, workdir, sink):
    slow, fast = volume(workdir, name="slow"), volume(workdir, name="fast")
    t = Target(pod, "--comm", "fastd", "--config", fast.root / "app.conf")
    r = Reloader(pod, workdir, rules(
        http_rule("slow", [slow.root], sink.url("/slow"), "timeout: 20s"),
        rule("fast", [fast.root], "fastd"), settings=SETTINGS))
    settle(r, "slow")

    slow.write({"app.conf": "v2\n"})
    assert sink.slow_waiting.wait(TIMEOUT)
    fast.write({"app.conf": "v2\n"})
    assert t.expect_signal()[2:] == ("SIGHUP", escaped("v2\n"))
    r.log.expect("reloaded", rule="fast")
    assert sink.slow_waiting.is_set(), "the slow request ended before the other rule's signal"
    sink.release.set()
    assert outcome(r, "slow")["msg"] == "reloaded"


def test_the_bearer_token_is_read_again_for_each_reload_and_never_shown(pod, workdir, sink):
    vol = volume(workdir)
    token = workdir / "token"
    token.write_text("first-s3cret-token\n")
    r = Reloader(pod, workdir, rules(http_rule(
        "app", [vol.root], sink.url("/reload"), f"bearer_token_file: {token}"),
        settings=SETTINGS))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    assert outcome(r, "app")["msg"] == "reloaded"
    token.write_text("second-s3cret-token\n")  # the projected token, rotated
    vol.write({"app.conf": "v3\n"})
    assert outcome(r, "app")["msg"] == "reloaded"
    auths = [q["headers"]["Authorization"] for q in requests_to(sink, "/reload")]
    assert auths == ["Bearer first-s3cret-token", "Bearer second-s3cret-token"]
    assert "s3cret" not in everything_shown(r)


def test_userinfo_becomes_basic_auth_and_stays_out_of_the_log_and_metrics(pod, workdir, sink):
    vol = volume(workdir)
    url = sink.url("/reload").replace("://", "://admin:pa55word@")
    r = Reloader(pod, workdir, rules(http_rule("app", [vol.root], url), settings=SETTINGS))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    done = outcome(r, "app")
    assert done["msg"] == "reloaded"
    [q] = requests_to(sink, "/reload")
    assert q["headers"]["Authorization"] == "Basic " + base64.b64encode(b"admin:pa55word").decode()
    assert "pa55word" not in everything_shown(r)


VERIFY_GENERATION = "verify: {{url: '{}', expect_body: '^generation [0-9]+$', timeout: 2s}}"


def test_verify_succeeds_when_the_status_page_moves_on(pod, workdir, sink):
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(http_rule(
        "app", [vol.root], sink.url("/reload"),
        keys=VERIFY_GENERATION.format(sink.url("/generation"))), settings=SETTINGS))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    assert outcome(r, "app")["msg"] == "reloaded"
    gets = requests_to(sink, "/generation")
    assert len(gets) >= 2 and all(q["method"] == "GET" for q in gets)  # before, then after


def test_verify_fails_with_reason_verify_when_the_status_page_does_not_move(pod, workdir, sink):
    vol = volume(workdir)
    # the request is answered 200 but counts no generation: the app did not take the config
    r = Reloader(pod, workdir, rules(http_rule(
        "app", [vol.root], sink.url("/status/200"),
        keys=VERIFY_GENERATION.format(sink.url("/generation"))), settings=SETTINGS))
    settle(r, "app")

    vol.write({"app.conf": "v2\n"})
    r.log.expect("not verified", rule="app")
    done = outcome(r, "app")
    assert (done["msg"], done["reason"]) == ("reload failed", "verify")
    assert metric(r, 'sigreload_reloads_total{rule="app",result="failed"}') == 1
    assert metric(r, 'sigreload_last_reload_successful{rule="app"}') == 0


# ---- Debian's real Prometheus, reloaded by SIGHUP and by /-/reload, verified ---------------

PROM_YML = "global:\n  scrape_interval: {}\nscrape_configs: []\n"
RUNTIMEINFO_VERIFY = ("verify: {{url: 'http://127.0.0.1:{}/api/v1/status/runtimeinfo', "
                      "expect_body: '\"reloadConfigSuccess\":[[:space:]]*true', timeout: 10s}}")


def last_config_time(driver, prom):
    """Prometheus's lastConfigTime, in seconds since the epoch."""
    body = driver.request(url=prom.base + "/api/v1/status/runtimeinfo", method="GET")["body"]
    stamp = json.loads(body)["data"]["lastConfigTime"]  # RFC 3339, whole seconds
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("how", ["sighup", "http"])
def test_prometheus_valid_change_succeeds_and_invalid_one_fails(workdir, pod, how):
    """A valid change is reloaded and verified; an invalid one, which Prometheus refuses and
    keeps its old config for, is reported failed (by SIGHUP: verify; by /-/reload: its 500)."""
    vol = AtomicVolume(workdir / "prometheus")
    vol.write({"prometheus.yml": PROM_YML.format("5s")})
    port = free_port()
    argv = ["prometheus", f"--config.file={vol.root}/prometheus.yml",
            f"--storage.tsdb.path={workdir}/data", f"--web.listen-address=127.0.0.1:{port}"]
    if how == "http":
        argv.append("--web.enable-lifecycle")
    p = pod.spawn(argv)
    p.err.expect("Server is ready to receive web requests", timeout=60)
    verify = RUNTIMEINFO_VERIFY.format(port)
    if how == "http":
        the_rule = http_rule("prom", [vol.root], f"http://127.0.0.1:{port}/-/reload",
                             keys=verify)
    else:
        the_rule = rule("prom", [vol.root], "prometheus", verify)
    r = Reloader(pod, workdir, rules(the_rule, settings=SETTINGS))
    settle(r, "prom")
    driver = Driver()
    prom = types.SimpleNamespace(base=f"http://127.0.0.1:{port}")
    try:
        # lastConfigTime counts whole seconds: a reload in the second of the start-up's load
        # would give verify the same answer as before (see the man page's caveat)
        wait_until(lambda: int(time.time()) > last_config_time(driver, prom),
                   what="a second after Prometheus loaded its config")
        vol.write({"prometheus.yml": PROM_YML.format("7s")})
        assert outcome(r, "prom", timeout=30)["msg"] == "reloaded"
        assert scrape_interval(driver, prom) == "7s"

        vol.write({"prometheus.yml": PROM_YML.format("bogus")})
        done = outcome(r, "prom", timeout=30)
        assert (done["msg"], done["reason"]) == (
            "reload failed", "verify" if how == "sighup" else "status")
        assert not reload_success(driver, prom) and scrape_interval(driver, prom) == "7s"
        assert metric(r, 'sigreload_last_reload_successful{rule="prom"}') == 0

        vol.write({"prometheus.yml": PROM_YML.format("9s")})  # fixed: reloaded again
        assert outcome(r, "prom", timeout=30)["msg"] == "reloaded"
        assert reload_success(driver, prom) and scrape_interval(driver, prom) == "9s"
    finally:
        driver.close()


def test_alertmanager_valid_change_is_verified_and_invalid_one_fails(workdir, pod):
    """Alertmanager has no runtimeinfo; its /metrics says whether the last reload took, and
    always differs from one read to the next (its counters), so verify is its expect_body."""
    vol = AtomicVolume(workdir / "alertmanager")
    vol.write({"alertmanager.yml": "route: {receiver: a}\nreceivers: [{name: a}]\n"})
    port = free_port()
    p = pod.spawn(["prometheus-alertmanager", f"--config.file={vol.root}/alertmanager.yml",
                   f"--storage.path={workdir}/am", f"--web.listen-address=127.0.0.1:{port}",
                   "--cluster.listen-address="])
    p.err.expect(r'msg="Listening on"', timeout=60)
    base = f"http://127.0.0.1:{port}"
    verify = (f"verify: {{url: '{base}/metrics', "
              "expect_body: 'alertmanager_config_last_reload_successful 1', timeout: 10s}")
    r = Reloader(pod, workdir, rules(http_rule("am", [vol.root], f"{base}/-/reload",
                                               "retries: 0", keys=verify), settings=SETTINGS))
    settle(r, "am")

    vol.write({"alertmanager.yml": "route: {receiver: b}\nreceivers: [{name: b}]\n"})
    assert outcome(r, "am", timeout=30)["msg"] == "reloaded"
    vol.write({"alertmanager.yml": "route: {receiver: nobody}\nreceivers: [{name: b}]\n"})
    done = outcome(r, "am", timeout=30)
    assert (done["msg"], done["reason"]) == ("reload failed", "status")  # its 500
    assert r.log.count("request failed", rule="am", status=500) == 1
    vol.write({"alertmanager.yml": "route: {receiver: c}\nreceivers: [{name: c}]\n"})
    assert outcome(r, "am", timeout=30)["msg"] == "reloaded"
    assert metric(r, 'sigreload_reloads_total{rule="am",result="requested"}') == 2


# ---- configmap-reload's flags, run ---------------------------------------------------------

def test_configmap_reload_flags_run_as_configmap_reload_did(pod, workdir, sink):
    vol = volume(workdir)
    port = free_port()
    proc = pod.spawn([BIN, f"-volume-dir={vol.root}",
                      f"-webhook-url={sink.url('/reload')}", "-webhook-method=POST",
                      f"-web.listen-address=127.0.0.1:{port}"])
    log = Log(proc.err)
    log.expect("watching", rule="webhook")
    vol.write({"app.conf": "v2\n"})
    assert log.expect("reloaded", rule="webhook")["status"] == "200"
    [q] = requests_to(sink, "/reload")
    assert q["method"] == "POST"
    status, body = http_get(f"127.0.0.1:{port}", "/metrics")
    assert status == 200
    assert 'sigreload_reloads_total{rule="webhook",result="requested"} 1' in body
    proc.stop()
    proc.close()


# ---- bounded: memory and fds flat over 1,000 reloads by HTTP -------------------------------

def test_memory_and_fds_flat_over_1000_http_reloads(pod, workdir, sink):
    vol = volume(workdir)
    r = Reloader(pod, workdir, rules(http_rule("app", [vol.root], sink.url("/reload")),
                                     settings=SETTINGS.replace("debounce: 50ms", "debounce: 0")))
    settle(r, "app")

    def reloads(first, n):
        for i in range(first, first + n):
            vol.write({"app.conf": f"v{i}\n"})
            assert outcome(r, "app")["msg"] == "reloaded"

    reloads(0, 100)  # the allocator's and libcurl's caches warm up
    base_kib, base_fds = kib(r.proc.pid, "VmRSS"), fd_count(r.proc.pid)
    reloads(100, 1000)
    if not SANITIZED:  # ASan's quarantine grows RSS by design
        assert kib(r.proc.pid, "VmRSS") <= base_kib + 256
    assert fd_count(r.proc.pid) == base_fds
    assert metric(r, 'sigreload_reloads_total{rule="app",result="requested"}') == 1100
