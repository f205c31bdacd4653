"""Real HTTP(S) servers for the HTTP client's tests, and the client itself on sigreload's loop.

`Sink` is a threaded HTTP server on loopback that answers by path and records every request;
`Sink(tls=...)` serves HTTPS with a certificate from `Pki` (a private CA made with the openssl
CLI). `Driver` runs tests/helpers/fetch_driver: sigreload's HTTP client (src/fetch.c) on
sigreload's own loop, timer and seccomp filter, one request per command.
"""

import http.server
import re
import ssl
import subprocess
import threading
import time
from pathlib import Path

from conftest import TIMEOUT, Proc, helper


class Handler(http.server.BaseHTTPRequestHandler):
    """/status/N answers N; /body/N, N bytes; /slow, after 6 s; /hang, when the sink is
    closed; /redirect, 302 to /status/200; /reload counts a generation that /generation
    tells ("generation N"), as an application's status page tells its config's; anything
    else 200 "ok"."""

    protocol_version = "HTTP/1.1"

    def answer(self):
        sink = self.server.sink
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        sink.record(self, body_in)
        status, body, extra = 200, b"ok", {}
        parts = self.path.split("/")
        if parts[1:2] == ["status"]:
            status = int(parts[2])
        elif parts[1:2] == ["body"]:
            body = b"x" * int(parts[2])
        elif self.path == "/slow":
            sink.slow_waiting.set()
            sink.release.wait(6)  # the 6 s endpoint
            sink.slow_waiting.clear()
            body = b"slow"
        elif self.path == "/hang":
            sink.release.wait(60)
        elif self.path == "/reload":
            with sink.lock:
                sink.generation += 1
        elif self.path == "/generation":
            with sink.lock:
                body = f"generation {sink.generation}".encode()
        elif self.path == "/redirect":
            status, extra = 302, {"Location": "/status/200"}
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = answer

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of connections must not meet SYN drops

    def handle_error(self, request, client_address):
        self.sink.handshake_errors += 1  # a refused TLS client, a reset: the test looks


class Sink:
    def __init__(self, tls=None, client_ca=None):
        self.requests = []
        self.generation = 0
        self.sni = []
        self.handshake_errors = 0
        self.release = threading.Event()
        self.slow_waiting = threading.Event()
        self.lock = threading.Lock()
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.sink = self
        self.scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls.server_cert, tls.server_key)
            ctx.sni_callback = lambda sock, name, _ctx: self.sni.append(name)
            if client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(client_ca)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/", host="127.0.0.1"):
        return f"{self.scheme}://{host}:{self.port}{path}"

    def record(self, handler, body):
        with self.lock:
            self.requests.append({"method": handler.command, "path": handler.path,
                                  "headers": dict(handler.headers.items()), "body": body})

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Pki:
    """A private CA (openssl CLI) with a server certificate for sink.test and 127.0.0.1, a
    client certificate, and a second CA that signed none of them."""

    def __init__(self, d):
        d = Path(d)
        self.d = d

        def run(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ("ca", "other-ca"):
            run("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=sigreload test {ca}")
        (d / "server.ext").write_text("subjectAltName=DNS:sink.test,IP:127.0.0.1\n")
        (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
        for who in ("server", "client"):
            run("req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}")
            run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{who}.pem", "-days", "2", "-extfile", f"{who}.ext")
        self.ca, self.other_ca = d / "ca.pem", d / "other-ca.pem"
        self.server_cert, self.server_key = d / "server.pem", d / "server.key"
        self.client_cert, self.client_key = d / "client.pem", d / "client.key"


def unescape(s):
    return re.sub(r"\\x([0-9a-f]{2})|\\n", lambda m: chr(int(m.group(1), 16)) if m.group(1)
                  else "\n", s)


class Driver:
    """fetch_driver under sigreload's seccomp filter (unless the build is sanitized)."""

    DONE = re.compile(r"^done (\d+) (.*)$")

    def __init__(self, prefix=(), env=None):
        argv = [*prefix, helper("fetch_driver"), "--seccomp"]
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.proc = Proc(p, argv)
        m = self.proc.out.expect(r"^ready (\d+) resolver=(\S+) seccomp=(\S+)$")
        self.pid, self.resolver, self.seccomp = int(m.group(1)), m.group(2), m.group(3)
        self.next_id = 0

    def send(self, line):
        self.proc.p.stdin.write((line + "\n").encode())
        self.proc.p.stdin.flush()

    def fetch(self, **fields):
        """Starts a request; returns its id. header= may be a list."""
        self.next_id += 1
        parts = [f"fetch {self.next_id}"]
        for k, v in fields.items():
            for one in (v if isinstance(v, list) else [v]):
                parts.append(f"{k}={one}")
        self.send("\t".join(parts))
        return self.next_id

    def line(self, pattern, timeout=TIMEOUT):
        """The first line (consumed or not, in any order) matching pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.proc.out.lines:
                m = rx.search(line)
                if m:
                    return m
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.out.eof:
                err = "\n".join(self.proc.err.drain()[-10:])
                raise AssertionError(f"no line {pattern!r} within {timeout}s; out:\n"
                                     + "\n".join(self.proc.out.lines[-20:]) + "\nerr:\n" + err)
            self.proc.out.pump(min(left, 0.5))

    def done_lines(self):
        self.proc.out.drain()
        return [m for m in map(self.DONE.match, self.proc.out.lines) if m]

    def result(self, fid, timeout=TIMEOUT):
        m = self.line(rf"^done {fid} (.*)$", timeout)
        fields = dict(kv.split("=", 1) for kv in m.group(1).split(" "))
        return {"status": int(fields["status"]), "err": fields["err"],
                "truncated": fields["truncated"] == "1", "body_len": int(fields["body_len"]),
                "body": unescape(fields["body"]), "error": unescape(fields["error"]),
                "seconds": float(fields["seconds"])}

    def request(self, timeout=TIMEOUT, **fields):
        return self.result(self.fetch(**fields), timeout)

    def metrics(self):
        """The exposition in which the driver counted every request (as rule "driver")."""
        self.proc.out.drain()
        start = len(self.proc.out.lines)
        self.send("metrics")
        self.line(r"^end metrics$")
        lines = self.proc.out.lines[start:]
        return "\n".join(lines[:lines.index("end metrics")]) + "\n"

    def close(self):
        if self.proc.p.poll() is None:
            self.proc.p.stdin.close()  # EOF: the driver frees everything and exits
            code = self.proc.p.wait(TIMEOUT)
            assert code == 0, "\n".join(self.proc.err.drain())
        self.proc.close()
