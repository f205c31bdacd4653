"""Real nginx (Debian's package) reloaded by sigreload after a kubelet-style ConfigMap update."""

import os
import socket
import time
import urllib.request

from conftest import BIN, Reloader
from kubelet import AtomicVolume

NGINX = "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site(port, body):
    return f'server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{body}\\n"; }} }}\n'


def get(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def wait_for_body(port, body, timeout=10):
    deadline = time.monotonic() + timeout
    while (got := get(port)) != body + "\n":
        assert time.monotonic() < deadline, f"nginx serves {got!r}, not {body!r}"
        time.sleep(0.05)


def processes(pod, config):
    """{pid: signal?} of the nginx processes, as `sigreload match` sees them in the pod."""
    code, out, _ = pod.run([BIN, "match", "-c", config])
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    return {int(r[1]): r[4] == "yes" for r in rows}


def test_nginx_serves_the_new_config_after_a_configmap_update(pod, workdir):
    os.chmod(workdir, 0o755)
    port = free_port()
    vol = AtomicVolume(workdir / "conf.d")
    vol.write({"default.conf": site(port, "v1")})
    (workdir / "nginx.conf").write_text(
        f"daemon off; master_process on; worker_processes 2;\n"
        f"pid {workdir}/nginx.pid; error_log stderr notice;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{ access_log off; client_body_temp_path {workdir}/tmp;\n"
        f"  include {vol.root}/*.conf; }}\n")
    nginx = pod.spawn([NGINX, "-c", workdir / "nginx.conf", "-p", workdir])
    wait_for_body(port, "v1")

    r = Reloader(pod, workdir, "debounce: 50ms\nverify_after: 200ms\nrules:\n"
                 f"  - name: nginx\n    paths: [{vol.root}]\n    match: {{comm: nginx}}\n")
    r.log.expect("watching", rule="nginx")
    before = processes(pod, r.config)
    master = int((workdir / "nginx.pid").read_text())
    assert [pid for pid, leader in before.items() if leader] == [master]
    assert len(before) == 3  # the master and its two workers

    vol.write({"default.conf": site(port, "v2")})
    r.log.expect("reloaded", rule="nginx")
    wait_for_body(port, "v2")

    assert int((workdir / "nginx.pid").read_text()) == master  # reloaded, not restarted
    signaled = [int(e["pid"]) for e in r.log.events() if e["msg"] == "signaled"]
    assert signaled == [master]  # never a worker
    nginx.err.expect(r"signal 1 \(SIGHUP\) received from \d+, reconfiguring")
    deadline = time.monotonic() + 10
    while set(processes(pod, r.config)) & (set(before) - {master}):
        assert time.monotonic() < deadline, "the old workers did not retire"
        time.sleep(0.05)
    after = processes(pod, r.config)
    assert master in after and len(after) == 3  # nginx replaced its own workers
