"""The daemons people run, each reloaded by its shipped example (config/*.yaml, the paths moved
to the test's volume) after a kubelet-style update, and each seen taking its new configuration:
a served response, `SHOW` in PostgreSQL, Prometheus' config API, the certificate nginx serves.

Every daemon is Debian's own package, started in a pod (a PID namespace) on 127.0.0.1 with a
free port and a temporary directory, and ended with the pod. The rule must pick the daemon's
master (`sigreload match`), sigreload must send it the example's signal once, and the master
must keep its pid: reloaded, not restarted.
"""

import json
import os
import pwd
import socket
import ssl
import struct
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import BIN, ROOT, TIMEOUT, Reloader
from kubelet import AtomicVolume
from test_nearest import nearest
from test_nginx import free_port, processes

CONFIG = ROOT / "config"
SLOW = 30  # daemons that start a runtime or a database get longer to come up


def need(path):
    """The path of a daemon's binary (a glob picks the newest), or a failure that says how to
    get it."""
    found = sorted(Path("/").glob(path.lstrip("/")))
    if not found:
        pytest.fail(f"{path} is missing: run 'make deps' (Debian packages of DEBIAN_PACKAGES)")
    return str(found[-1])


def example(name, moves):
    """config/NAME.yaml as shipped, each of its paths moved to where the test keeps it."""
    text = (CONFIG / f"{name}.yaml").read_text()
    for shipped, here in moves.items():
        assert f"- {shipped}\n" in text, f"config/{name}.yaml no longer watches {shipped}"
        text = text.replace(f"- {shipped}\n", f"- {here}\n")
    return text


def wait_for(what, get, want, timeout=TIMEOUT):
    """Polls get() until it returns want: a daemon's answer, which no log line announces."""
    deadline = time.monotonic() + timeout
    while (got := get()) != want:
        assert time.monotonic() < deadline, f"{what}: {got!r}, not {want!r} after {timeout}s"
        time.sleep(0.05)


def http(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()
    except OSError:
        return None


def reload_once(pod, workdir, rules, name, master, signal, update):
    """Runs sigreload with rules, checks that it would signal the master alone, applies
    update() and waits for the one reload. Returns the Reloader."""
    r = Reloader(pod, workdir, rules)
    r.log.expect("watching", rule=name)
    leaders = processes(pod, r.config)
    assert [pid for pid, leader in leaders.items() if leader] == [master], leaders
    update()
    ev = r.log.expect("signaled", rule=name)
    assert (ev["signal"], ev["pid"]) == (signal, str(master))
    r.log.expect("reloaded", rule=name)
    return r


def settled(r, master_proc, master):
    """After the reload: one signal in all, and the master still the process started."""
    r.log.expect("idle")
    assert r.log.count("signaled") == 1
    assert master_proc.p.poll() is None and master_proc.nspid == master


# ---- nginx --------------------------------------------------------------------------------

def nginx_conf(workdir, include):
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"daemon off; master_process on; worker_processes 2;\n"
        f"pid {workdir}/nginx.pid; error_log stderr notice;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{ access_log off; client_body_temp_path {workdir}/tmp;\n"
        f"  include {include}/*.conf; }}\n")
    return conf


def test_nginx(pod, workdir):
    os.chmod(workdir, 0o755)
    port = free_port()
    site = 'server {{ listen 127.0.0.1:%d; location / {{ return 200 "{}\\n"; }} }}\n' % port
    vol = AtomicVolume(workdir / "conf.d")
    vol.write({"default.conf": site.format("v1")})
    nginx = pod.spawn([need("/usr/sbin/nginx"), "-c", nginx_conf(workdir, vol.root), "-p", workdir])
    wait_for("nginx", lambda: http(f"http://127.0.0.1:{port}/"), "v1\n")

    master = nginx.nspid
    r = reload_once(pod, workdir, example("nginx", {"/etc/nginx/conf.d": vol.root}), "nginx",
                    master, "SIGHUP", lambda: vol.write({"default.conf": site.format("v2")}))
    wait_for("nginx", lambda: http(f"http://127.0.0.1:{port}/"), "v2\n")
    settled(r, nginx, master)


# ---- nginx: TLS certificate rotation from a Secret ---------------------------------------

FS_GROUP = 2000
NONROOT = 65532


def certificate(workdir, name):
    """A fresh self-signed certificate and key (PEM), CN=name."""
    key, crt = workdir / f"{name}.key", workdir / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return crt.read_text(), key.read_text()


def served_certificate(port):
    """The DER certificate nginx presents on 127.0.0.1:port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            with ctx.wrap_socket(s) as tls:
                return tls.getpeercert(binary_form=True)
    except OSError:
        return None


@pytest.mark.parametrize("default_mode", [0o440, 0o400], ids=["defaultMode-0440",
                                                               "defaultMode-0400"])
def test_nginx_tls_certificate_rotation_from_a_secret(pod, workdir, default_mode):
    """The Secret's files as the kubelet writes them with an fsGroup (root's, group FS_GROUP,
    0440 whatever defaultMode said), sigreload as uid 65532 with FS_GROUP as a supplementary
    group and CAP_KILL alone (the credentials containerd gives it, docs/SECURITY-MODES.md)."""
    from test_security import CREDS, file_capable  # the image's cap_kill+p binary

    os.chmod(workdir, 0o755)
    port = free_port()
    v1, v2 = certificate(workdir, "v1"), certificate(workdir, "v2")
    tls = AtomicVolume(workdir / "tls", mode=default_mode, fs_group=FS_GROUP)
    tls.write({"tls.crt": v1[0], "tls.key": v1[1]})
    assert oct(os.stat(tls.root / "tls.key").st_mode & 0o777) == "0o440"
    conf = AtomicVolume(workdir / "conf.d")
    conf.write({"default.conf": (
        f"server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {tls.root}/tls.crt;\n"
        f"  ssl_certificate_key {tls.root}/tls.key; location / {{ return 200 ok; }} }}\n")})
    nginx = pod.spawn([need("/usr/sbin/nginx"), "-c", nginx_conf(workdir, conf.root), "-p",
                       workdir])
    wait_for("the served certificate", lambda: served_certificate(port),
             ssl.PEM_cert_to_DER_cert(v1[0]))

    master = nginx.nspid
    rules = example("nginx-tls", {"/etc/nginx/conf.d": conf.root, "/etc/nginx/tls": tls.root})
    r = Reloader(pod, workdir, rules, binary=file_capable(workdir, "cap_kill+p"),
                 prefix=[CREDS, "--uid", str(NONROOT), "--gid", str(NONROOT), "--groups",
                         str(FS_GROUP), "--caps", "kill", "--no-new-privs", "--"])
    r.log.expect("CAP_KILL: can signal processes of any uid", uid=NONROOT)
    r.log.expect("watching", rule="nginx", files=3)
    status = dict(line.split(":\t", 1) for line in
                  Path(f"/proc/{r.proc.pid}/status").read_text().splitlines() if ":\t" in line)
    assert status["Uid"].split()[0] == str(NONROOT)
    assert status["Groups"].split() == [str(FS_GROUP)]
    assert int(status["CapEff"], 16) == 1 << 5  # CAP_KILL, nothing else

    tls.write({"tls.crt": v2[0], "tls.key": v2[1]})  # cert-manager renewed the certificate
    ev = r.log.expect("signaled", rule="nginx")
    assert (ev["signal"], ev["pid"]) == ("SIGHUP", str(master))
    wait_for("the served certificate (CN=v1 before, CN=v2 after)",
             lambda: served_certificate(port), ssl.PEM_cert_to_DER_cert(v2[0]))
    r.log.expect("reloaded", rule="nginx")
    assert not [e for e in r.log.events() if e["msg"] in ("not hashed", "held")]
    settled(r, nginx, master)


# ---- HAProxy ------------------------------------------------------------------------------

def haproxy_cfg(port, body, master_worker):
    return (("global\n    master-worker\n" if master_worker else "") +
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
            "    timeout server 5s\n"
            f"frontend fe\n    bind 127.0.0.1:{port}\n"
            f'    http-request return status 200 content-type text/plain string "{body}"\n')


@pytest.mark.parametrize("style", ["-W", "-Ws", "master-worker in haproxy.cfg"])
def test_haproxy(pod, workdir, style):
    port = free_port()
    in_cfg = style == "master-worker in haproxy.cfg"
    vol = AtomicVolume(workdir / "haproxy")
    vol.write({"haproxy.cfg": haproxy_cfg(port, "v1", in_cfg)})
    cfg = vol.root / "haproxy.cfg"
    argv = {"-W": ["-W", "-db", "-f", cfg],  # the official image's
            "-Ws": ["-Ws", "-f", cfg, "-p", workdir / "haproxy.pid", "-S",
                    workdir / "master.sock"],  # Debian's systemd unit's
            "master-worker in haproxy.cfg": ["-f", cfg]}[style]
    haproxy = pod.spawn([need("/usr/sbin/haproxy"), *argv])
    wait_for("haproxy", lambda: http(f"http://127.0.0.1:{port}/"), "v1")

    master = haproxy.nspid
    rules = example("haproxy-master-worker" if in_cfg else "haproxy",
                    {"/usr/local/etc/haproxy": vol.root})
    r = reload_once(pod, workdir, rules, "haproxy", master, "SIGUSR2",
                    lambda: vol.write({"haproxy.cfg": haproxy_cfg(port, "v2", in_cfg)}))
    wait_for("haproxy", lambda: http(f"http://127.0.0.1:{port}/"), "v2")
    haproxy.err.expect(r"Reloading HAProxy")
    settled(r, haproxy, master)


def test_haproxy_standalone_is_not_taken_for_a_master(pod, workdir):
    """A standalone haproxy ignores SIGUSR2: the -W rule does not match it, and the comm-only
    rule (master-worker set in haproxy.cfg) reports the reload failed rather than done."""
    port = free_port()
    vol = AtomicVolume(workdir / "haproxy")
    vol.write({"haproxy.cfg": haproxy_cfg(port, "v1", False)})
    haproxy = pod.spawn([need("/usr/sbin/haproxy"), "-db", "-f", vol.root / "haproxy.cfg"])
    wait_for("haproxy", lambda: http(f"http://127.0.0.1:{port}/"), "v1")
    w = workdir / "w.yaml"
    w.write_text(example("haproxy", {"/usr/local/etc/haproxy": vol.root}))
    code, out, err = pod.run([BIN, "match", "-c", w])
    assert code == 0 and out.splitlines()[1:] == []
    assert [(row[0], row[3]) for row in nearest(err)[0]["haproxy"]] == [(haproxy.nspid, "cmdline")]

    r = Reloader(pod, workdir,
                 example("haproxy-master-worker", {"/usr/local/etc/haproxy": vol.root}))
    r.log.expect("watching", rule="haproxy")
    vol.write({"haproxy.cfg": haproxy_cfg(port, "v2", False)})
    ev = r.log.expect("reload failed", rule="haproxy")
    assert ev["reason"] == "ignored"
    assert http(f"http://127.0.0.1:{port}/") == "v1"  # never reloaded, and said so


# ---- PostgreSQL ---------------------------------------------------------------------------

def test_postgres(pod, workdir):
    bindir = Path(need("/usr/lib/postgresql/*/bin/postgres")).parent
    pg = pwd.getpwnam("postgres")
    as_postgres = ["setpriv", "--reuid", str(pg.pw_uid), "--regid", str(pg.pw_gid),
                   "--clear-groups"]
    os.chmod(workdir, 0o755)
    data, sockets = workdir / "data", workdir / "run"
    for d in (data, sockets):
        d.mkdir()
        os.chown(d, pg.pw_uid, pg.pw_gid)
    subprocess.run([*as_postgres, bindir / "initdb", "-D", data, "-U", "postgres",
                    "--auth=trust", "--no-sync", "--no-instructions"], check=True,
                   capture_output=True, timeout=SLOW)
    conf = "listen_addresses = ''\nunix_socket_directories = '%s'\nwork_mem = '%s'\n"
    vol = AtomicVolume(workdir / "postgresql")
    vol.write({"postgresql.conf": conf % (sockets, "4MB")})
    server = pod.spawn([*as_postgres, bindir / "postgres", "-D", data, "-c",
                        f"config_file={vol.root}/postgresql.conf"])
    server.err.expect(r"database system is ready to accept connections", timeout=SLOW)

    def show_work_mem():
        r = subprocess.run([bindir / "psql", "-h", sockets, "-U", "postgres", "-Atc",
                            "SHOW work_mem"], capture_output=True, text=True, timeout=TIMEOUT)
        return r.stdout.strip()

    assert show_work_mem() == "4MB"
    master = server.nspid
    r = reload_once(pod, workdir, example("postgres", {"/etc/postgresql": vol.root}), "postgres",
                    master, "SIGHUP",
                    lambda: vol.write({"postgresql.conf": conf % (sockets, "8MB")}))
    server.err.expect(r'parameter "work_mem" changed to "8MB"')
    assert show_work_mem() == "8MB"  # a new session sees the new value
    settled(r, server, master)


# ---- PHP-FPM ------------------------------------------------------------------------------

def fastcgi_get(port, path):
    """The body of a FastCGI GET of path, as a web server in front of PHP-FPM would ask it."""
    def record(kind, content):
        return struct.pack(">BBHHBx", 1, kind, 1, len(content), 0) + content

    def pair(name, value):
        return bytes([len(name), len(value)]) + name.encode() + value.encode()

    params = b"".join(pair(k, v) for k, v in {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": path, "SCRIPT_FILENAME": path,
        "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1"}.items())
    request = (record(1, struct.pack(">HB5x", 1, 0)) + record(4, params) + record(4, b"") +
               record(5, b""))  # BEGIN_REQUEST (responder), PARAMS, end of PARAMS, STDIN
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    out = b""
    while len(data) >= 8:
        _, kind, _, length, padding = struct.unpack(">BBHHBx", data[:8])
        if kind == 6:  # STDOUT
            out += data[8:8 + length]
        data = data[8 + length + padding:]
    return out.partition(b"\r\n\r\n")[2].decode()


def test_php_fpm(pod, workdir):
    os.chmod(workdir, 0o755)
    port = free_port()
    pool = ("[www]\nuser = www-data\ngroup = www-data\nlisten = 127.0.0.1:%d\npm = static\n"
            "pm.max_children = 2\nping.path = /ping\nping.response = %s\n")
    vol = AtomicVolume(workdir / "php-fpm.d")
    vol.write({"www.conf": pool % (port, "v1")})
    (workdir / "php-fpm.conf").write_text(
        f"[global]\npid = {workdir}/php-fpm.pid\nerror_log = /proc/self/fd/2\n"
        f"daemonize = no\ninclude = {vol.root}/*.conf\n")
    fpm = pod.spawn([need("/usr/sbin/php-fpm*"), "--nodaemonize", "--fpm-config",
                     workdir / "php-fpm.conf"])
    fpm.err.expect(r"ready to handle connections")
    assert fastcgi_get(port, "/ping") == "v1"

    master = fpm.nspid
    r = reload_once(pod, workdir, example("php-fpm", {"/usr/local/etc/php-fpm.d": vol.root}),
                    "php-fpm", master, "SIGUSR2",
                    lambda: vol.write({"www.conf": pool % (port, "v2")}))
    fpm.err.expect(r"Reloading in progress")
    wait_for("php-fpm's ping", lambda: fastcgi_get(port, "/ping"), "v2")
    settled(r, fpm, master)


# ---- Apache HTTP Server -------------------------------------------------------------------

def test_apache2(pod, workdir):
    os.chmod(workdir, 0o755)
    port = free_port()
    modules = Path(need("/usr/lib/apache2/modules/mod_mpm_event.so")).parent
    (workdir / "run").mkdir()
    vol = AtomicVolume(workdir / "sites-enabled")
    vol.write({"site.conf": 'ErrorDocument 404 "v1"\n'})
    (workdir / "apache2.conf").write_text(
        f"ServerRoot {workdir}\nDefaultRuntimeDir {workdir}/run\nPidFile {workdir}/run/pid\n"
        f"LoadModule mpm_event_module {modules}/mod_mpm_event.so\n"
        f"LoadModule authz_core_module {modules}/mod_authz_core.so\n"
        f"User www-data\nGroup www-data\nServerName localhost\nErrorLog /dev/stderr\n"
        f"Listen 127.0.0.1:{port}\nIncludeOptional {vol.root}/*.conf\n")
    apache = pod.spawn([need("/usr/sbin/apache2"), "-f", workdir / "apache2.conf", "-DFOREGROUND"])
    apache.err.expect(r"resuming normal operations")
    wait_for("apache2", lambda: http(f"http://127.0.0.1:{port}/missing"), "v1")

    master = apache.nspid
    r = reload_once(pod, workdir, example("apache2", {"/etc/apache2/sites-enabled": vol.root}),
                    "apache2", master, "SIGUSR1",
                    lambda: vol.write({"site.conf": 'ErrorDocument 404 "v2"\n'}))
    apache.err.expect(r"SIGUSR1 received.  Doing graceful restart")
    wait_for("apache2", lambda: http(f"http://127.0.0.1:{port}/missing"), "v2")
    settled(r, apache, master)


# ---- gunicorn -----------------------------------------------------------------------------

APP = """\
import os


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.environ.get("GREETING", "-").encode()]
"""


@pytest.mark.parametrize("setproctitle", [True, False], ids=["setproctitle", "no-setproctitle"])
@pytest.mark.parametrize("launcher", ["gunicorn", "python3 -m gunicorn"])
def test_gunicorn(pod, workdir, launcher, setproctitle):
    os.chmod(workdir, 0o755)
    port = free_port()
    app = workdir / "app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    conf = 'bind = "127.0.0.1:%d"\nworkers = 2\nraw_env = ["GREETING=%s"]\n'
    vol = AtomicVolume(workdir / "gunicorn")
    vol.write({"gunicorn.conf.py": conf % (port, "v1")})
    env = dict(os.environ)
    if setproctitle:
        __import__("setproctitle")  # python3-setproctitle: `make deps` installs it
    else:  # as where python3-setproctitle is not installed: gunicorn's import of it fails
        (workdir / "hide").mkdir()
        (workdir / "hide" / "setproctitle.py").write_text("raise ImportError('hidden')\n")
        env["PYTHONPATH"] = str(workdir / "hide")
    cmd = {"gunicorn": [need("/usr/bin/gunicorn")],
           "python3 -m gunicorn": ["/usr/bin/python3", "-m", "gunicorn"]}[launcher]
    arbiter = pod.spawn([*cmd, "-c", vol.root / "gunicorn.conf.py", "--chdir", app, "app:app"],
                        env=env)
    arbiter.err.expect(r"Booting worker", timeout=SLOW)
    wait_for("gunicorn", lambda: http(f"http://127.0.0.1:{port}/"), "v1")
    comm = Path(f"/proc/{arbiter.pid}/comm").read_text().strip()
    assert comm == ("gunicorn: maste" if setproctitle else
                    "gunicorn" if launcher == "gunicorn" else "python3")

    master = arbiter.nspid
    r = reload_once(pod, workdir, example("gunicorn", {"/etc/gunicorn": vol.root}), "gunicorn",
                    master, "SIGHUP", lambda: vol.write({"gunicorn.conf.py": conf % (port, "v2")}))
    arbiter.err.expect(r"Handling signal: hup")
    wait_for("gunicorn", lambda: http(f"http://127.0.0.1:{port}/"), "v2", timeout=SLOW)
    settled(r, arbiter, master)


# ---- Prometheus ---------------------------------------------------------------------------

def test_prometheus(pod, workdir):
    port = free_port()
    config = "global:\n  external_labels: {config: %s}\nscrape_configs: []\n"
    vol = AtomicVolume(workdir / "prometheus")
    vol.write({"prometheus.yml": config % "v1"})
    prom = pod.spawn([need("/usr/bin/prometheus"), f"--config.file={vol.root}/prometheus.yml",
                      f"--storage.tsdb.path={workdir}/data",
                      f"--web.listen-address=127.0.0.1:{port}"])

    def labels():
        try:
            yaml = json.loads(http(f"http://127.0.0.1:{port}/api/v1/status/config"))["data"]["yaml"]
        except (TypeError, ValueError, KeyError):
            return None  # not up yet
        return [line.strip() for line in yaml.splitlines() if line.strip().startswith("config:")]

    wait_for("Prometheus' external_labels", labels, ["config: v1"], timeout=SLOW)
    master = prom.nspid
    r = reload_once(pod, workdir, example("prometheus", {"/etc/prometheus": vol.root}),
                    "prometheus", master, "SIGHUP",
                    lambda: vol.write({"prometheus.yml": config % "v2"}))
    wait_for("Prometheus' external_labels", labels, ["config: v2"])
    settled(r, prom, master)


# ---- every example is proven here --------------------------------------------------------

PROVEN = {"nginx", "nginx-tls", "haproxy", "haproxy-master-worker", "postgres", "php-fpm",
          "apache2", "gunicorn", "prometheus"}


def test_every_daemon_example_has_a_test_here():
    shipped = {p.stem for p in CONFIG.glob("*.yaml")} - {"generic"}  # every setting, two apps
    assert shipped == PROVEN, (
        f"examples without a test in test_daemons.py: {sorted(shipped - PROVEN)}; "
        f"tests of examples no longer shipped: {sorted(PROVEN - shipped)}")


def test_make_deps_installs_every_daemon():
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "--eval",
                        "print-packages: ; @echo $(DEBIAN_PACKAGES)", "print-packages"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    listed = r.stdout.split()
    for pkg in ("nginx", "haproxy", "postgresql", "php-fpm", "apache2", "gunicorn",
                "python3-setproctitle", "prometheus", "openssl"):
        assert pkg in listed, f"{pkg} is not in the Makefile's DEBIAN_PACKAGES: {r.stderr}"
