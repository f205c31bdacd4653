"""What Debian's real Prometheus and Alertmanager answer sigreload's HTTP client (through
tests/helpers/fetch_driver), so that http actions and verify can rely on it:

- Prometheus (`prometheus --config.file=F --storage.tsdb.path=DIR
  --web.listen-address=127.0.0.1:PORT --web.enable-lifecycle`, ready once it logs "Server is
  ready to receive web requests."): POST /-/reload answers 200 with an empty body when the new
  config loads, 500 "failed to reload config: ..." when it does not, and then keeps the old one;
  403 without --web.enable-lifecycle. GET /api/v1/status/runtimeinfo says
  "reloadConfigSuccess":true or false after either way of reloading, /-/reload or SIGHUP. Its
  lastConfigTime has a resolution of one second: two successful reloads within the same second
  give the same runtimeinfo.
- Alertmanager (`prometheus-alertmanager --config.file=F --storage.path=DIR
  --web.listen-address=127.0.0.1:PORT --cluster.listen-address=`, the empty cluster address
  keeping it off 0.0.0.0:9094; ready once it logs "Listening on"): POST /-/reload needs no flag
  and answers as Prometheus does; it has no runtimeinfo, but its /metrics (24 KiB) says
  alertmanager_config_last_reload_successful 1 or 0, near the top.
"""

import json
import re
import signal
import socket

import pytest

from conftest import start
from hardening import wait_until
from httpsink import Driver

SUCCESS = re.compile(r'"reloadConfigSuccess":\s*(true|false)')


@pytest.fixture
def driver():
    d = Driver()
    yield d
    d.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, argv, ready, port):
        self.proc = start(argv)
        self.base = f"http://127.0.0.1:{port}"
        self.proc.err.expect(ready, timeout=60)

    def close(self):
        self.proc.stop()
        self.proc.close()


@pytest.fixture
def prometheus(workdir):
    started = []

    def make(*extra):
        port = free_port()
        d = Daemon(["prometheus", f"--config.file={workdir}/prometheus.yml",
                    f"--storage.tsdb.path={workdir}/data-{port}",
                    f"--web.listen-address=127.0.0.1:{port}", *extra],
                   r"Server is ready to receive web requests", port)
        started.append(d)
        return d

    (workdir / "prometheus.yml").write_text("global: {scrape_interval: 5s}\n")
    yield make
    for d in started:
        d.close()


def get(driver, url, max_body=65536):
    r = driver.request(url=url, method="GET", max_body=max_body)
    assert r["err"] == "0", r
    return r


def reload_success(driver, prom):
    r = get(driver, prom.base + "/api/v1/status/runtimeinfo")
    return SUCCESS.search(r["body"]).group(1) == "true"


def scrape_interval(driver, prom):
    body = get(driver, prom.base + "/api/v1/status/config")["body"]
    return re.search(r"scrape_interval: (\w+)", json.loads(body)["data"]["yaml"]).group(1)


def test_prometheus_reload_by_http(driver, prometheus, workdir):
    prom = prometheus("--web.enable-lifecycle")
    config = workdir / "prometheus.yml"
    assert reload_success(driver, prom)

    config.write_text("global: {scrape_interval: 7s}\n")
    r = driver.request(url=prom.base + "/-/reload")  # POST, the client's default
    assert (r["status"], r["body"]) == (200, "")
    assert reload_success(driver, prom) and scrape_interval(driver, prom) == "7s"

    config.write_text("global: {scrape_interval: bogus}\n")
    r = driver.request(url=prom.base + "/-/reload")
    assert r["status"] == 500
    assert r["body"].startswith("failed to reload config: ")
    assert not reload_success(driver, prom)
    assert scrape_interval(driver, prom) == "7s"  # the old config kept

    config.write_text("global: {scrape_interval: 9s}\n")
    assert driver.request(url=prom.base + "/-/reload")["status"] == 200
    assert reload_success(driver, prom) and scrape_interval(driver, prom) == "9s"


def test_prometheus_reload_by_sighup_says_the_same(driver, prometheus, workdir):
    prom = prometheus()
    config = workdir / "prometheus.yml"
    assert reload_success(driver, prom)
    config.write_text("global: {scrape_interval: bogus}\n")
    prom.proc.send(signal.SIGHUP)
    wait_until(lambda: not reload_success(driver, prom), what="reloadConfigSuccess false")
    assert scrape_interval(driver, prom) == "5s"
    config.write_text("global: {scrape_interval: 6s}\n")
    prom.proc.send(signal.SIGHUP)
    wait_until(lambda: reload_success(driver, prom), what="reloadConfigSuccess true")
    assert scrape_interval(driver, prom) == "6s"


def test_prometheus_refuses_reload_without_lifecycle(driver, prometheus):
    prom = prometheus()
    r = driver.request(url=prom.base + "/-/reload")
    assert r["status"] == 403
    assert "Lifecycle API is not enabled" in r["body"]


def test_alertmanager_reload_by_http_and_its_metrics(driver, workdir):
    config = workdir / "alertmanager.yml"
    config.write_text("route: {receiver: a}\nreceivers: [{name: a}]\n")
    port = free_port()
    am = Daemon(["prometheus-alertmanager", f"--config.file={config}",
                 f"--storage.path={workdir}/am", f"--web.listen-address=127.0.0.1:{port}",
                 "--cluster.listen-address="], r'msg="Listening on"', port)
    try:
        def last_reload_successful():
            body = get(driver, am.base + "/metrics")["body"]
            return re.search(r"^alertmanager_config_last_reload_successful (\d)$", body,
                             re.M).group(1)

        def receiver():
            status = json.loads(get(driver, am.base + "/api/v2/status")["body"])
            return re.search(r"receiver: (\w+)", status["config"]["original"]).group(1)

        assert last_reload_successful() == "1"
        config.write_text("route: {receiver: b}\nreceivers: [{name: b}]\n")
        r = driver.request(url=am.base + "/-/reload")
        assert (r["status"], r["body"]) == (200, "")
        assert (last_reload_successful(), receiver()) == ("1", "b")
        config.write_text("route: {receiver: nobody}\nreceivers: [{name: b}]\n")
        r = driver.request(url=am.base + "/-/reload")
        assert r["status"] == 500
        assert r["body"].startswith("failed to reload config: ")
        assert (last_reload_successful(), receiver()) == ("0", "b")  # the old config kept
    finally:
        am.close()
