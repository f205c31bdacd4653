"""sigreload's HTTP client (src/fetch.c), on sigreload's loop and under its seccomp filter,
against real servers on loopback: statuses, methods and headers, timeouts and errors, a slow
endpoint that must not hold the loop, bearer tokens and passwords read again at every attempt,
HTTPS with a private CA (and refused without it), server_name, client certificates, body limits,
names without a resolver thread, and memory and fds flat over 1,000 requests."""

import base64
import glob
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from hardening import SANITIZED, fd_count, kib, proc_status
from httpsink import Driver, Pki, Sink


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def driver():
    d = Driver()
    yield d
    d.close()


@pytest.fixture
def pki(workdir):
    return Pki(workdir)


def switches(pid):
    """How often pid was scheduled out: a loop that spins counts thousands a second."""
    st = proc_status(pid)
    return int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once it is closed


def test_runs_under_the_seccomp_filter(driver, sink):
    if not SANITIZED:
        assert driver.seccomp == "on"
    assert driver.request(url=sink.url("/status/200"))["status"] == 200
    assert int(proc_status(driver.pid)["Threads"]) == 1  # no resolver thread either


@pytest.mark.parametrize("code", [200, 204, 302, 404, 500, 503])
def test_the_status_comes_back_as_it_is(driver, sink, code):
    r = driver.request(url=sink.url(f"/status/{code}"))
    assert (r["status"], r["err"], r["error"]) == (code, "0", "")


def test_a_redirect_is_not_followed(driver, sink):
    r = driver.request(url=sink.url("/redirect"))
    assert r["status"] == 302
    assert [q["path"] for q in sink.requests] == ["/redirect"]


def test_method_headers_and_an_empty_body_as_go_sends_them(driver, sink):
    fds = fd_count(driver.pid)
    driver.request(url=sink.url("/a"), header=["X-Reload: 1", "X-Two: a b"])
    driver.request(url=sink.url("/b"), method="PUT")
    driver.request(url=sink.url("/c"), method="GET")
    driver.request(url=sink.url("/d"), method="DELETE")
    post, put, get, delete = sink.requests
    assert post["method"] == "POST" and post["headers"]["Content-Length"] == "0"
    assert "Content-Type" not in post["headers"]
    assert post["headers"]["X-Reload"] == "1" and post["headers"]["X-Two"] == "a b"
    assert post["headers"]["User-Agent"].startswith("sigreload/")
    assert put["method"] == "PUT" and put["headers"]["Content-Length"] == "0"
    assert get["method"] == "GET" and "Content-Length" not in get["headers"]
    assert delete["method"] == "DELETE"
    assert fd_count(driver.pid) == fds  # no connection is kept between requests


def test_errors_say_why_no_answer_came(driver, sink):
    port = closed_port()
    r = driver.request(url=f"http://127.0.0.1:{port}/")
    assert (r["status"], r["err"]) == (0, "ECONNREFUSED")
    assert f"port {port}" in r["error"]
    r = driver.request(url=sink.url("/hang"), timeout_ms=300)
    assert (r["status"], r["err"]) == (0, "ETIMEDOUT")
    assert "timed out" in r["error"]
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1/", "x://y"):
        r = driver.request(url=url)
        assert (r["err"], r["error"]) == ("EINVAL", "not an http:// or https:// URL")
    r = driver.request(url=sink.url("/", host="user:secret@127.0.0.1"))
    assert (r["err"], r["error"]) == ("EINVAL", "credentials in the URL: use basic_auth")
    assert [q["path"] for q in sink.requests] == ["/hang"]  # nothing for the refused ones


def test_a_slow_endpoint_never_holds_the_loop(driver, sink):
    slow = driver.fetch(url=sink.url("/slow"), timeout_ms=20000)
    assert sink.slow_waiting.wait(10), "the slow request never reached the sink"
    driver.send("ping while-slow")
    driver.line(r"^pong while-slow$")
    fast = driver.request(url=sink.url("/status/204"))
    assert fast["status"] == 204
    # both answered while the sink still holds the slow request
    assert sink.slow_waiting.is_set()
    assert not [m for m in driver.done_lines() if m.group(1) == str(slow)]
    before = switches(driver.pid)
    r = driver.result(slow, timeout=20)  # the sink answers it after 6 s
    assert (r["status"], r["body"]) == (200, "slow")
    # and meanwhile it slept in epoll_wait: no timer spun, nothing polled
    assert switches(driver.pid) - before < 50


def test_a_cancelled_request_never_calls_back(driver, sink):
    hung = driver.fetch(url=sink.url("/hang"), timeout_ms=20000)
    driver.send(f"cancel {hung}")
    driver.line(rf"^cancelled {hung}$")
    after = driver.request(url=sink.url("/status/200"))  # the loop went on
    assert after["status"] == 200
    assert not [m for m in driver.done_lines() if m.group(1) == str(hung)]


def test_the_bearer_token_is_read_again_at_every_attempt(driver, sink, workdir):
    token = workdir / "token"
    seen = []

    def attempt():
        r = driver.request(url=sink.url("/t"), bearer_token_file=token)
        if r["err"] == "0":
            seen.append(sink.requests[-1]["headers"]["Authorization"])
        return r

    token.write_text("first-token\n")  # surrounding whitespace is not the token's
    attempt()
    token.write_text("second-token")
    attempt()
    assert seen == ["Bearer first-token", "Bearer second-token"]
    token.unlink()
    r = attempt()
    assert (r["status"], r["err"]) == (0, "ENOENT")
    assert r["error"] == f"bearer_token_file {token}: No such file or directory"
    token.write_text("bad\rtoken")
    r = attempt()
    assert (r["err"], r["error"]) == ("EBADMSG", f"bearer_token_file {token}: holds a "
                                                 "control character")
    token.write_text("  \n")
    assert attempt()["err"] == "EBADMSG"
    token.write_text("x" * 16385)
    assert attempt()["err"] == "EMSGSIZE"
    token.unlink()
    token.mkdir()
    assert attempt()["error"] == f"bearer_token_file {token}: not a regular file"
    assert len(sink.requests) == 2  # no attempt without its token
    token.rmdir()
    token.write_text("third")
    attempt()
    assert seen[-1] == "Bearer third"


def test_basic_auth_and_its_password_file(driver, sink, workdir):
    def basic():
        value = sink.requests[-1]["headers"]["Authorization"]
        assert value.startswith("Basic ")
        return base64.b64decode(value[6:]).decode()

    driver.request(url=sink.url("/"), username="admin", password="pa:ss word")
    assert basic() == "admin:pa:ss word"
    pw = workdir / "password"
    pw.write_text("from-file\n")
    driver.request(url=sink.url("/"), username="admin", password_file=pw)
    assert basic() == "admin:from-file"
    pw.write_text("rotated")
    driver.request(url=sink.url("/"), username="admin", password_file=pw)
    assert basic() == "admin:rotated"
    pw.unlink()
    r = driver.request(url=sink.url("/"), username="admin", password_file=pw)
    assert (r["err"], r["error"]) == ("ENOENT", f"password_file {pw}: No such file or directory")
    assert len(sink.requests) == 3


def test_credentials_never_reach_an_error(driver, workdir):
    token, pw = workdir / "token", workdir / "pw"
    token.write_text("tok-SECRET-1")
    pw.write_text("pw-SECRET-2")
    port = closed_port()
    for fields in ({"bearer_token_file": token},
                   {"username": "u", "password_file": pw},
                   {"username": "u", "password": "pw-SECRET-3"}):
        r = driver.request(url=f"http://127.0.0.1:{port}/", **fields)
        assert r["err"] == "ECONNREFUSED"
    out = "\n".join(driver.proc.out.drain() + driver.proc.err.drain())
    assert "SECRET" not in out


def test_https_with_a_private_ca_and_refused_without_it(driver, pki):
    sink = Sink(tls=pki)
    try:
        ok = driver.request(url=sink.url("/"), ca_file=pki.ca)
        assert (ok["status"], ok["body"]) == (200, "ok")
        # the system's CAs do not know it; a ca_file replaces them, so another CA fails too
        for fields in ({}, {"ca_file": pki.other_ca}):
            r = driver.request(url=sink.url("/"), **fields)
            assert (r["status"], r["err"]) == (0, "EPROTO")
            assert "certificate" in r["error"]
        assert driver.request(url=sink.url("/"), insecure="1")["status"] == 200
        missing = pki.d / "missing.pem"
        r = driver.request(url=sink.url("/"), ca_file=missing)
        assert (r["err"], r["error"]) == ("ENOENT", f"tls.ca_file {missing}: No such file or "
                                                    "directory")
        assert len(sink.requests) == 2
    finally:
        sink.close()


def test_server_name_is_the_tls_name_not_the_host(driver, pki):
    sink = Sink(tls=pki)
    try:
        # the certificate names sink.test: asked for by IP address, with server_name
        r = driver.request(url=sink.url("/", host="127.0.0.1"), ca_file=pki.ca,
                           server_name="sink.test")
        assert r["status"] == 200
        assert sink.sni[-1] == "sink.test"
        assert sink.requests[-1]["headers"]["Host"] == f"127.0.0.1:{sink.port}"
        r = driver.request(url=sink.url("/"), ca_file=pki.ca, server_name="other.test")
        assert (r["err"], len(sink.requests)) == ("EPROTO", 1)
        assert "other.test" in r["error"]
    finally:
        sink.close()


def test_client_certificate(driver, pki):
    sink = Sink(tls=pki, client_ca=pki.ca)
    try:
        r = driver.request(url=sink.url("/"), ca_file=pki.ca, cert_file=pki.client_cert,
                           key_file=pki.client_key)
        assert r["status"] == 200
        r = driver.request(url=sink.url("/"), ca_file=pki.ca)
        assert r["status"] == 0 and r["err"] in ("EPROTO", "ECONNRESET")
        assert len(sink.requests) == 1
    finally:
        sink.close()


def test_the_body_is_kept_up_to_max_body(driver, sink):
    r = driver.request(url=sink.url("/body/100"), max_body=1000)
    assert (r["status"], r["body_len"], r["truncated"]) == (200, 100, False)
    r = driver.request(url=sink.url("/body/100"), max_body=10)
    assert (r["status"], r["body"], r["truncated"]) == (200, "x" * 10, True)
    r = driver.request(url=sink.url("/body/1000000"), max_body=0)
    assert (r["status"], r["err"], r["body_len"], r["truncated"]) == (200, "0", 0, True)
    driver.send(f"fetch 999\turl={sink.url('/')}\tmax_body=1048577")
    driver.line(r"^failed 999 EINVAL$")  # more than FETCH_MAX_BODY is refused at once


def test_proxy_variables_are_ignored(sink):
    env = dict(os.environ, http_proxy=f"http://127.0.0.1:{closed_port()}",
               HTTPS_PROXY="http://127.0.0.1:1", ALL_PROXY="http://127.0.0.1:1")
    d = Driver(env=env)
    try:
        assert d.request(url=sink.url("/status/200"))["status"] == 200
    finally:
        d.close()


def test_names_without_a_resolver_thread(sink, workdir):
    """Debian's libcurl resolves names in a thread: this build takes IP addresses, localhost,
    and the names of /etc/hosts (here a private one, bind-mounted in a mount namespace)."""
    hosts = workdir / "hosts"
    hosts.write_text("# a pod's /etc/hosts\n127.0.0.1\tlocalhost\n127.0.0.1 sink.test sink\n")
    prefix = ["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
              hosts]
    d = Driver(prefix=prefix)
    try:
        for host in ("127.0.0.1", "localhost", "sink.test", "SINK"):
            assert d.request(url=sink.url("/", host=host))["status"] == 200, host
        if d.resolver == "hosts-file":
            r = d.request(url=sink.url("/", host="nowhere.test"))
            assert (r["status"], r["err"]) == (0, "EHOSTUNREACH")
            assert r["error"].startswith("cannot resolve nowhere.test: this build resolves "
                                         "names through /etc/hosts only")
        assert int(proc_status(d.pid)["Threads"]) == 1
        hosts.write_text("127.0.0.2 sink.test\n")  # read again at every attempt
        r = d.request(url=sink.url("/", host="sink.test"))
        assert r["err"] == "ECONNREFUSED"  # 127.0.0.2: the sink listens on 127.0.0.1
    finally:
        d.close()


def test_metrics_of_http_requests_pass_promtool(driver, sink):
    for path in ("/status/200", "/status/200", "/status/503"):
        driver.request(url=sink.url(path))
    driver.request(url=f"http://127.0.0.1:{closed_port()}/")
    text = driver.metrics()
    for line in ('sigreload_http_requests_total{rule="driver",code="200"} 2',
                 'sigreload_http_requests_total{rule="driver",code="503"} 1',
                 'sigreload_http_requests_total{rule="driver",code="error"} 1',
                 'sigreload_http_request_duration_seconds_count{rule="driver"} 4',
                 'sigreload_http_request_duration_seconds_bucket{rule="driver",le="+Inf"} 4',
                 'sigreload_reloads_total{rule="driver",result="requested"} 2',
                 'sigreload_reloads_total{rule="driver",result="failed"} 2',
                 'sigreload_last_reload_successful{rule="driver"} 0'):
        assert line in text.splitlines(), line
    assert "sigreload_signals_sent_total{" not in text  # an http rule sends no signal
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_memory_and_fds_flat_over_1000_requests(driver, pki, workdir):
    """10 at a time, HTTP and HTTPS with a token: from the 200th to the 1,000th, flat."""
    sink = Sink()
    tls = Sink(tls=pki)
    token = workdir / "token"
    token.write_text("t")

    def batch(n):
        ids = []
        for i in range(n):
            if i % 2:
                ids.append(driver.fetch(url=tls.url(f"/{i}"), ca_file=pki.ca,
                                        bearer_token_file=token))
            else:
                ids.append(driver.fetch(url=sink.url(f"/status/{200 + i % 3}")))
        for fid in ids:
            assert driver.result(fid)["err"] == "0"
        driver.proc.out.lines.clear()  # keep the test's own memory flat too

    def figures():
        return kib(driver.pid, "VmRSS"), fd_count(driver.pid)

    try:
        for _ in range(20):
            batch(10)
        early = figures()
        for _ in range(80):
            batch(10)
        late = figures()
        assert late[1] == early[1], "fds grew"
        if not SANITIZED:
            assert late[0] - early[0] <= 256, f"RSS grew from {early[0]} to {late[0]} KiB"
        assert len(sink.requests) + len(tls.requests) == 1000
    finally:
        sink.close()
        tls.close()


@pytest.mark.skipif(SANITIZED, reason="an ASan build does not run under valgrind")
def test_no_error_no_leak_no_fd_left_under_valgrind(pki, workdir):
    """Every path once, under memcheck and the seccomp filter: TLS with everything, a body cut
    short, a refused connection, a missing token, a name refused, a cancelled request, and one
    still in flight at exit (fetcher_free)."""
    supp = Path(__file__).with_name("valgrind.supp")
    vg = [shutil.which("valgrind"), "--leak-check=full", "--errors-for-leak-kinds=definite",
          "--error-exitcode=99", "--track-fds=yes", f"--suppressions={supp}",
          f"--log-file={workdir}/valgrind.%p.log"]
    sink, tls = Sink(), Sink(tls=pki)
    token = workdir / "token"
    token.write_text("t")
    d = Driver(prefix=vg)
    try:
        slow = {"timeout_ms": 60000}
        ids = [d.fetch(url=tls.url("/"), ca_file=pki.ca, bearer_token_file=token,
                       server_name="sink.test", username="u", password="p",
                       header="X-A: b", **slow),
               d.fetch(url=sink.url("/body/5000"), max_body=10, **slow),
               d.fetch(url=f"http://127.0.0.1:{closed_port()}/", **slow),
               d.fetch(url=sink.url("/"), bearer_token_file=workdir / "none", **slow),
               d.fetch(url="http://nowhere.test/", **slow)]
        results = [d.result(i, timeout=120) for i in ids]
        assert [r["status"] for r in results] == [200, 200, 0, 0, 0]
        hung = d.fetch(url=sink.url("/hang"), **slow)
        d.send(f"cancel {hung}")
        d.line(rf"^cancelled {hung}$", timeout=60)
        d.fetch(url=sink.url("/hang"), **slow)  # in flight at exit
        d.proc.p.stdin.close()
        code = d.proc.p.wait(120)
    finally:
        d.close()
        sink.close()
        tls.close()
    logs = glob.glob(f"{workdir}/valgrind.*.log")
    report = Path(logs[0]).read_text()
    assert code == 0, report[-4000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
    assert "definitely lost: 0 bytes" in report or "All heap blocks were freed" in report
    left = [m.group(2) for m in re.finditer(r"Open (file descriptor|AF_\w+ socket) (\d+): ?(.*)",
                                            report) if m.group(3) != logs[0]]
    assert left == [], report[report.find("FILE DESCRIPTORS"):][:2000]
