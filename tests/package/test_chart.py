"""The Helm chart (charts/sigreload), checked with real tools, offline.

helm (lint --strict, template) renders the chart with its defaults, with the values files in
tests/chart/ and through a parent chart (tests/chart/parent/) that uses only the named templates,
with sigreload as a native sidecar (the default) and as an ordinary container.
Every rendered document is checked against the Kubernetes API schemas twice over
(tests/tools/k8s-validate.js: kubernetes-models' validate() for types, enums, required fields and
quantities; `tsc --noEmit` for unknown fields), the rule file the chart renders goes through
`sigreload check`, and YAML goes through yamllint. The tools come from
tests/tools/install-k8s-tools.sh (run by `make deps`); without them every test here fails.
"""

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sigreload"
CASES = ROOT / "tests" / "chart"
PARENT = CASES / "parent"
TOOLS = ROOT / "tests" / "tools"
CACHE = TOOLS / ".cache"
HELM = CACHE / "bin" / "helm"
VALIDATOR = TOOLS / "k8s-validate.js"
YAMLLINT_CONFIG = CASES / "yamllint.yaml"
BIN = os.environ.get("SIGRELOAD_BIN", str(ROOT / "sigreload"))
RELEASE = "demo"
NAMESPACE = "web"

# Values files in tests/chart/ and what each one is for; every one must be listed here.
VALUES_CASES = {
    "defaults": None,
    "metrics-off": "metrics-off.yaml",
    "same-uid": "same-uid.yaml",
    "service-monitor": "service-monitor.yaml",
    "json-logs": "json-logs.yaml",
    "custom-rules": "custom-rules.yaml",
    "ordinary-container": "ordinary-container.yaml",
    "podman": "podman.yaml",
}

# The parent chart, as its values.yaml has it (a native sidecar) and with sidecar.native false.
PARENT_CASES = {
    "parent": [],
    "parent-ordinary": ["--set", "sigreload.sidecar.native=false"],
}

# The least privilege of each security mode (README.md "Security modes"); the chart must render
# exactly this.
KILL_CAPABILITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"], "add": ["KILL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
SAME_UID_101_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 101,
    "runAsGroup": 101,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


# ---------------------------------------------------------------------------------------------
# Tools and helpers
# ---------------------------------------------------------------------------------------------


def need_tools():
    """Fails the calling test (never skips) when a tool the chart tests use is missing."""
    missing = []
    for path in (HELM, CACHE / "node_modules" / "typescript" / "bin" / "tsc",
                 CACHE / "node_modules" / "kubernetes-models" / "package.json",
                 CACHE / "node_modules" / "@kubernetes-models" / "prometheus-operator" / "package.json"):
        if not path.exists():
            missing.append(str(path.relative_to(ROOT)))
    for tool in ("node", "yamllint"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not Path(BIN).exists():
        missing.append(f"{BIN} (run `make`)")
    if missing:
        pytest.fail(
            "chart test tools missing: " + ", ".join(missing)
            + ". Run `make deps` (it runs tests/tools/install-k8s-tools.sh), then `make`.",
            pytrace=False,
        )


def run(argv, check=True, **kw):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@functools.lru_cache(maxsize=None)
def scratch():
    """A directory for this run, removed at exit: helm's own config/cache/data dirs (so the
    user's repositories and plugins play no part) and the parent chart's copy."""
    d = Path(tempfile.mkdtemp(prefix="sigreload-chart-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


def helm(*args, check=True):
    home = scratch() / "helm"
    env = dict(os.environ, HELM_CONFIG_HOME=str(home / "config"), HELM_CACHE_HOME=str(home / "cache"),
               HELM_DATA_HOME=str(home / "data"), KUBECONFIG=os.devnull)
    return run([HELM, *args], check=check, env=env)


def values_args(case):
    f = VALUES_CASES[case]
    return [] if f is None else ["-f", CASES / f]


def parse(manifest):
    return [d for d in yaml.safe_load_all(manifest) if d is not None]


@functools.lru_cache(maxsize=None)
def render(case):
    """The manifest `helm template` renders for a values case (text)."""
    return helm("template", RELEASE, CHART, "-n", NAMESPACE, *values_args(case)).stdout


@functools.lru_cache(maxsize=None)
def parent_dir():
    """A copy of the parent chart with sigreload packaged into its charts/ by `helm dependency
    build`, as its users would do; the repository tree is never written to."""
    tmp = scratch() / "parent"
    # Same relative layout as the repository, so the file:// dependency resolves unchanged.
    shutil.copytree(PARENT, tmp / "tests" / "chart" / "parent")
    shutil.copytree(CHART, tmp / "charts" / "sigreload")
    parent = tmp / "tests" / "chart" / "parent"
    helm("dependency", "build", parent)
    return parent


@functools.lru_cache(maxsize=None)
def render_parent(case="parent"):
    return helm("template", "app", parent_dir(), "-n", NAMESPACE, *PARENT_CASES[case]).stdout


def manifest(case):
    return render_parent(case) if case in PARENT_CASES else render(case)


def docs(case):
    return parse(manifest(case))


def find(documents, kind, name=None):
    found = [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def containers(deployment):
    """Every container of the pod, init containers first, by name."""
    pod = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod.get("initContainers", []) + pod["containers"]}


def names(deployment, key):
    """The names in the pod's `containers` or `initContainers`, in order."""
    return [c["name"] for c in deployment["spec"]["template"]["spec"].get(key, [])]


def rule_file(documents, name):
    return find(documents, "ConfigMap", name)["data"]["sigreload.yaml"]


def check_rule_file(text, tmp_path):
    """Runs the real `sigreload check` on a rendered rule file; returns its resolved plan."""
    f = tmp_path / "sigreload.yaml"
    f.write_text(text)
    p = run([BIN, "check", "-c", f], check=False)
    assert p.returncode == 0, f"sigreload check rejected the chart's rule file:\n{text}\n{p.stderr}"
    return yaml.safe_load(p.stdout)


def validate(cases):
    """Runs tests/tools/k8s-validate.js on {case: [documents]}; returns {case: [{doc, errors}]}."""
    with tempfile.TemporaryDirectory(prefix="sigreload-k8s-") as work:
        inp = Path(work) / "input.json"
        inp.write_text(json.dumps(cases))
        p = run(["node", VALIDATOR, CACHE, inp, work], check=False)
        assert p.returncode == 0, f"k8s-validate.js could not run:\n{p.stderr}"
        return json.loads(p.stdout)


def broken_cases():
    """Manifests with one known mistake each, to prove each half of the checker catches it."""
    base = docs("defaults")
    deployment = find(base, "Deployment")
    spn = json.loads(json.dumps(deployment))
    pod = spn["spec"]["template"]["spec"]
    pod["sharedProcessNamespace"] = pod.pop("shareProcessNamespace")  # a typo the API ignores
    quantity = json.loads(json.dumps(deployment))
    containers(quantity)["sigreload"]["resources"]["requests"]["cpu"] = "5 millicores"
    enum = json.loads(json.dumps(deployment))
    containers(enum)["sigreload"]["imagePullPolicy"] = "Sometimes"
    service = json.loads(json.dumps(find(base, "Service", f"{RELEASE}-sigreload-metrics")))
    del service["spec"]["ports"][0]["port"]  # required
    return {
        "broken:sharedProcessNamespace": [spn],
        "broken:quantity": [quantity],
        "broken:enum": [enum],
        "broken:required": [service],
        "broken:unknown-kind": [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}],
    }


@functools.lru_cache(maxsize=None)
def validation():
    """Every case and the broken manifests in one run of the checker (one tsc run: fast)."""
    cases = {case: docs(case) for case in [*VALUES_CASES, *PARENT_CASES]}
    cases.update(broken_cases())
    return validate(cases)


# ---------------------------------------------------------------------------------------------
# Lint and render
# ---------------------------------------------------------------------------------------------


def test_every_values_file_in_tests_chart_is_a_case():
    listed = {f for f in VALUES_CASES.values() if f}
    present = {p.name for p in CASES.glob("*.yaml")} - {YAMLLINT_CONFIG.name}
    assert present == listed


@pytest.mark.parametrize("case", VALUES_CASES)
def test_helm_lint_strict(case):
    need_tools()
    p = helm("lint", "--strict", CHART, *values_args(case))
    assert "1 chart(s) linted, 0 chart(s) failed" in p.stdout


def test_helm_lint_strict_parent():
    need_tools()
    p = helm("lint", "--strict", parent_dir())
    assert "1 chart(s) linted, 0 chart(s) failed" in p.stdout


@pytest.mark.parametrize("case", [*VALUES_CASES, *PARENT_CASES])
def test_rendered_manifests_match_kubernetes_schemas(case):
    need_tools()
    documents = docs(case)
    assert documents, "nothing rendered"
    result = validation()[case]
    assert [r["doc"] for r in result] == [f"{d['kind']}/{d['metadata']['name']}" for d in documents]
    bad = {r["doc"]: r["errors"] for r in result if r["errors"]}
    assert not bad, "rendered manifests fail the Kubernetes schemas:\n" + json.dumps(bad, indent=2)


def test_checker_catches_unknown_field_that_validate_accepts():
    """`sharedProcessNamespace: true` (a typo) is silently dropped by the API server and leaves
    the pod without a shared /proc: only the TypeScript pass sees it."""
    need_tools()
    [errors] = [r["errors"] for r in validation()["broken:sharedProcessNamespace"]]
    assert errors, "the checker accepted sharedProcessNamespace"
    assert all(e.startswith("type: ") for e in errors), errors  # validate() alone misses it
    assert any("'\"sharedProcessNamespace\"' does not exist in type 'IPodSpec'" in e for e in errors), errors


def test_checker_catches_bad_quantity_that_typescript_accepts():
    need_tools()
    [errors] = [r["errors"] for r in validation()["broken:quantity"]]
    assert errors and all(e.startswith("schema: ") for e in errors), errors
    assert any("resources/requests/cpu must match format \"quantity\"" in e for e in errors), errors


def test_checker_catches_bad_enum_and_missing_required_field():
    need_tools()
    [enum] = [r["errors"] for r in validation()["broken:enum"]]
    assert any("imagePullPolicy must be equal to one of the allowed values" in e for e in enum), enum
    [required] = [r["errors"] for r in validation()["broken:required"]]
    assert any("must have required property port" in e for e in required), required


def test_checker_refuses_kinds_it_has_no_schema_for():
    need_tools()
    [errors] = [r["errors"] for r in validation()["broken:unknown-kind"]]
    assert errors == ["no schema for apiVersion example.com/v1 kind Widget "
                      "(kubernetes-models/example.com/v1/Widget)"]


def test_yamllint_chart_files():
    need_tools()
    files = [CHART / "Chart.yaml", CHART / "values.yaml", *sorted(CASES.glob("*.yaml")),
             PARENT / "Chart.yaml", PARENT / "values.yaml"]
    p = run(["yamllint", "-s", "-c", YAMLLINT_CONFIG, *files], check=False)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("case", [*VALUES_CASES, *PARENT_CASES])
def test_yamllint_rendered_manifests_and_rule_file(case, tmp_path):
    """Rendered YAML is clean (no duplicate keys, which PyYAML and some clients silently merge),
    and so is the rule file inside its ConfigMap."""
    need_tools()
    rules = rule_file(docs(case), "app-sigreload" if case in PARENT_CASES else "demo-sigreload-rules")
    (tmp_path / "manifest.yaml").write_text(manifest(case))
    (tmp_path / "sigreload.yaml").write_text(rules)
    p = run(["yamllint", "-s", "-c", YAMLLINT_CONFIG, tmp_path / "manifest.yaml", tmp_path / "sigreload.yaml"],
            check=False)
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------------------------------------
# What the chart renders
# ---------------------------------------------------------------------------------------------


def test_defaults_nginx_with_sigreload_in_one_pod(tmp_path):
    need_tools()
    documents = docs("defaults")
    assert sorted((d["kind"], d["metadata"]["name"]) for d in documents) == [
        ("ConfigMap", "demo-sigreload-app-config"),
        ("ConfigMap", "demo-sigreload-rules"),
        ("Deployment", "demo-sigreload"),
        ("Service", "demo-sigreload"),
        ("Service", "demo-sigreload-metrics"),
    ]
    deployment = find(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True
    assert pod["automountServiceAccountToken"] is False
    # A native sidecar: an init container that keeps running, before the app.
    assert names(deployment, "initContainers") == ["sigreload"]
    assert names(deployment, "containers") == ["nginx"]
    c = containers(deployment)
    assert c["nginx"]["image"] == "nginx:1.27"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "nginx"

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    s = c["sigreload"]
    assert s["image"] == f"ghcr.io/sigreload/sigreload:{chart['appVersion']}" == "ghcr.io/sigreload/sigreload:0.1.0"
    assert s["args"] == ["run", "-c", "/etc/sigreload/sigreload.yaml", "--log-format", "logfmt",
                         "--log-level", "info"]
    assert s["ports"] == [{"name": "sigreload", "containerPort": 9533, "protocol": "TCP"}]
    assert s["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "sigreload"}
    assert s["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "sigreload"}
    assert s["restartPolicy"] == "Always"
    # The kubelet starts the app once this passes: once every watch is armed.
    assert s["startupProbe"] == {"httpGet": {"path": "/readyz", "port": "sigreload"}, "initialDelaySeconds": 0,
                                 "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 60}
    assert "restartPolicy" not in c["nginx"]
    # Default: killCapability, because nginx's master runs as root.
    assert s["securityContext"] == KILL_CAPABILITY_CONTEXT
    assert s["resources"] == {"requests": {"cpu": "5m", "memory": "4Mi"}, "limits": {"memory": "32Mi"}}

    # The app's ConfigMap: one volume, mounted at the same path in both containers, no subPath.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["app-config"]["configMap"]["name"] == "demo-sigreload-app-config"
    assert volumes["sigreload-config"]["configMap"]["name"] == "demo-sigreload-rules"
    app_mounts = c["nginx"]["volumeMounts"]
    assert app_mounts == [{"name": "app-config", "mountPath": "/etc/nginx/conf.d", "readOnly": True}]
    assert s["volumeMounts"] == [
        {"name": "sigreload-config", "mountPath": "/etc/sigreload", "readOnly": True},
        {"name": "app-config", "mountPath": "/etc/nginx/conf.d", "readOnly": True},
    ]
    for container in c.values():
        assert all("subPath" not in m and "subPathExpr" not in m for m in container["volumeMounts"])
    # A checksum annotation would restart the pod on a config change instead of reloading it.
    assert not any(k.startswith("checksum/") for k in deployment["spec"]["template"]["metadata"]["annotations"])

    page = find(documents, "ConfigMap", "demo-sigreload-app-config")["data"]["default.conf"]
    assert "listen 80;" in page and "configuration version 1" in page

    # The rule file is the example config/nginx.yaml's rule, plus the chart's settings.
    plan = check_rule_file(rule_file(documents, "demo-sigreload-rules"), tmp_path)
    reference = yaml.safe_load((ROOT / "config" / "nginx.yaml").read_text())["rules"]
    assert [{k: r[k] for k in ("name", "paths", "match", "signal")} for r in plan["rules"]] == reference
    assert plan["rules"][0]["leaders_only"] is True
    assert plan["metrics_listen"] == ":9533"
    assert (plan["debounce"], plan["max_wait"], plan["resync"]) == ("200ms", "5s", "0s")

    # The metrics Service reaches the sigreload port; the app Service the app's.
    metrics = find(documents, "Service", "demo-sigreload-metrics")
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 9533, "targetPort": "sigreload", "protocol": "TCP"}]
    assert metrics["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in metrics["spec"]["selector"].items())
    app_svc = find(documents, "Service", "demo-sigreload")
    assert app_svc["spec"]["ports"][0]["targetPort"] == "http"


def test_chart_is_apache_2_0_licensed():
    """The chart's metadata and its package say the licence: the LICENSE file (helm packages it)
    is the project's, and the annotation chart indexes read names it."""
    need_tools()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    assert (CHART / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    assert "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()
    out = scratch() / "package"
    helm("package", CHART, "-d", out)
    with tarfile.open(out / "sigreload-0.1.0.tgz") as tgz:
        assert tgz.extractfile("sigreload/LICENSE").read() == (ROOT / "LICENSE").read_bytes()


def test_ordinary_container_mode_puts_sigreload_beside_the_app():
    """sidecar.native false, for clusters without native sidecars: the same container, among
    the app's containers, without restartPolicy (which the API refuses there)."""
    need_tools()
    deployment = find(docs("ordinary-container"), "Deployment")
    assert "initContainers" not in deployment["spec"]["template"]["spec"]
    assert names(deployment, "containers") == ["nginx", "sigreload"]
    s = containers(deployment)["sigreload"]
    assert "restartPolicy" not in s
    native = containers(find(docs("defaults"), "Deployment"))["sigreload"]
    assert {k: v for k, v in native.items() if k != "restartPolicy"} == s


def test_native_sidecar_is_refused_before_kubernetes_1_29():
    """An API server without native sidecars drops restartPolicy from the init container, which
    then never completes: the app would never start. The chart says so instead."""
    need_tools()
    p = helm("template", RELEASE, CHART, "--kube-version", "1.28.9", check=False)
    assert p.returncode != 0
    assert ("sidecar.native needs Kubernetes 1.29 or later (native sidecars; v1.28.9 would drop the init "
            "container's restartPolicy and never start the app): set sidecar.native=false") in p.stderr, p.stderr
    p = helm("template", RELEASE, CHART, "--kube-version", "1.28.9", "--set", "sidecar.native=false")
    assert names(find(parse(p.stdout), "Deployment"), "containers") == ["nginx", "sigreload"]
    p = helm("template", RELEASE, CHART, "--kube-version", "1.29.0")
    assert names(find(parse(p.stdout), "Deployment"), "initContainers") == ["sigreload"]


def test_app_version_constant_matches_chart_yaml():
    """The named templates default the image tag to a constant (in a parent chart .Chart is the
    parent's); it must stay the chart's appVersion."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    m = re.search(r'define "sigreload.appVersion" -}}\n(.*)\n', helpers)
    assert m and m.group(1) == chart["appVersion"] == "0.1.0"
    assert chart["apiVersion"] == "v2" and chart["type"] == "application"


def test_metrics_off_drops_endpoint_probes_and_service(tmp_path):
    need_tools()
    documents = docs("metrics-off")
    s = containers(find(documents, "Deployment"))["sigreload"]
    for key in ("ports", "livenessProbe", "readinessProbe"):
        assert key not in s
    assert not [d for d in documents if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics")]
    plan = check_rule_file(rule_file(documents, "demo-sigreload-rules"), tmp_path)
    assert plan["metrics_listen"] == ""


def test_same_uid_mode_runs_as_the_apps_uid_without_capabilities(tmp_path):
    need_tools()
    documents = docs("same-uid")
    c = containers(find(documents, "Deployment"))
    assert c["sigreload"]["securityContext"] == SAME_UID_101_CONTEXT
    assert c["nginx"]["securityContext"]["runAsUser"] == 101
    plan = check_rule_file(rule_file(documents, "demo-sigreload-rules"), tmp_path)
    assert plan["rules"][0]["match"] == {"comm": "nginx", "uid": 101}


def test_service_monitor_scrapes_the_metrics_service():
    need_tools()
    documents = docs("service-monitor")
    sm = find(documents, "ServiceMonitor")
    svc = find(documents, "Service", "demo-sigreload-metrics")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    app_svc = find(documents, "Service", "demo-sigreload")
    assert not all(app_svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}]
    assert svc["spec"]["ports"][0]["port"] == 9100 and svc["spec"]["ports"][0]["name"] == "metrics"
    assert svc["metadata"]["annotations"] == {"example.com/scrape": "false"}
    assert not [d for d in docs("defaults") if d["kind"] == "ServiceMonitor"]  # off by default


def test_json_logs_debug_and_dry_run_flags():
    need_tools()
    s = containers(find(docs("json-logs"), "Deployment"))["sigreload"]
    assert s["args"] == ["run", "-c", "/etc/sigreload/sigreload.yaml", "--log-format", "json",
                         "--log-level", "debug", "--dry-run"]


def test_custom_rules_reach_sigreload_unchanged(tmp_path):
    need_tools()
    values = yaml.safe_load((CASES / "custom-rules.yaml").read_text())
    documents = docs("custom-rules")
    text = rule_file(documents, "demo-sigreload-rules")
    assert yaml.safe_load(text)["rules"] == values["rules"]
    plan = check_rule_file(text, tmp_path)
    assert [r["name"] for r in plan["rules"]] == ["web.master", "log_rotate", "workers-rt", "numbered"]
    assert [r["signal"] for r in plan["rules"]] == ["SIGHUP", "SIGUSR1", "SIGRTMIN+2", "SIGUSR1"]
    assert (plan["debounce"], plan["max_wait"], plan["handler_wait"]) == ("500ms", "1m", "30s")
    assert (plan["resync"], plan["verify_after"]) == ("0s", "0s")
    app_config = find(documents, "ConfigMap", "demo-sigreload-app-config")["data"]
    assert sorted(app_config) == ["extra.conf", "logrotate.conf", "nginx.conf"]
    mounts = containers(find(documents, "Deployment"))["sigreload"]["volumeMounts"]
    assert {"name": "app-config", "mountPath": "/etc/app", "readOnly": True} in mounts


@pytest.mark.parametrize("case", PARENT_CASES)
def test_parent_chart_adds_the_sidecar_with_the_named_templates_only(case, tmp_path):
    need_tools()
    documents = docs(case)
    # Only the parent's own objects: standalone: false renders none of sigreload's.
    assert sorted((d["kind"], d["metadata"]["name"]) for d in documents) == [
        ("ConfigMap", "app-config"), ("ConfigMap", "app-sigreload"), ("Deployment", "app")]
    deployment = find(documents, "Deployment")
    assert deployment["spec"]["template"]["spec"]["shareProcessNamespace"] is True
    c = containers(deployment)
    s = c["sigreload"]
    if case == "parent":  # a native sidecar
        assert names(deployment, "initContainers") == ["sigreload"]
        assert names(deployment, "containers") == ["myapp"]
        assert s["restartPolicy"] == "Always"
    else:
        assert "initContainers" not in deployment["spec"]["template"]["spec"]
        assert names(deployment, "containers") == ["myapp", "sigreload"]
        assert "restartPolicy" not in s
    assert s["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "sigreload"}
    # The image tag is sigreload's appVersion, not the parent's (2.3.4).
    assert s["image"] == "ghcr.io/sigreload/sigreload:0.1.0"
    assert s["args"][-4:] == ["--log-format", "json", "--log-level", "info"]
    assert s["securityContext"]["runAsUser"] == 1000
    assert "add" not in s["securityContext"]["capabilities"]
    # The container port is named "sigreload": the parent's own "metrics" port keeps its name.
    assert [p["name"] for p in c["myapp"]["ports"] + s["ports"]] == ["metrics", "sigreload"]
    assert {"name": "config", "mountPath": "/etc/myapp", "readOnly": True} in s["volumeMounts"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["sigreload-config"] == {"name": "sigreload-config", "configMap": {"name": "app-sigreload"}}
    plan = check_rule_file(rule_file(documents, "app-sigreload"), tmp_path)
    assert plan["rules"][0]["name"] == "myapp" and plan["rules"][0]["signal"] == "SIGUSR1"
    assert plan["rules"][0]["handler_wait"] == "30s"


def test_notes_tell_how_to_see_a_reload(tmp_path):
    """NOTES.txt rendered in the chart's real context (`helm install --dry-run` needs a cluster,
    so a copy of the chart renders it inside a ConfigMap)."""
    need_tools()
    chart = tmp_path / "sigreload"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes_under_test.tpl").write_text('{{- define "test.notes" -}}' + notes + "{{- end }}")
    (chart / "templates" / "notes-under-test.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "test.notes" . | quote }}\n')
    out = helm("template", RELEASE, chart, "-n", NAMESPACE, "-s", "templates/notes-under-test.yaml").stdout
    text = parse(out)[0]["data"]["notes"]
    assert "kubectl -n web logs deployment/demo-sigreload -c sigreload -f" in text
    assert "kubectl -n web edit configmap demo-sigreload-app-config" in text
    assert "1 to 2 minutes" in text
    assert 'msg="signaled"' in text
    assert "sigreload match -c /etc/sigreload/sigreload.yaml" in text


# ---------------------------------------------------------------------------------------------
# Bad values are refused, with a message that says what is wrong
# ---------------------------------------------------------------------------------------------

SCHEMA_ERRORS = [
    ({"securityMode": "root"}, 'securityMode: securityMode must be one of the following: "killCapability", "sameUid"'),
    ({"logFormat": "text"}, 'logFormat: logFormat must be one of the following: "logfmt", "json"'),
    ({"runAsUser": "65532"}, "runAsUser: Invalid type. Expected: integer, given: string"),
    ({"runAsUser": 0}, "runAsUser: Must be greater than or equal to 1"),
    ({"metrics": {"servicemonitor": {"enabled": True}}}, "metrics: Additional property servicemonitor is not allowed"),
    ({"sidekick": {}}, "(root): Additional property sidekick is not allowed"),
    ({"sidecar": {"native": "yes"}}, "sidecar.native: Invalid type. Expected: boolean, given: string"),
    ({"sidecar": {"native": True, "initContainer": True}}, "sidecar: Additional property initContainer is not allowed"),
    ({"probes": {"startup": {"enabled": True, "periodSeconds": 0}}},
     "probes.startup.periodSeconds: Must be greater than or equal to 1"),
    ({"metrics": {"port": 70000}}, "metrics.port: Must be less than or equal to 65535"),
    ({"settings": {"debounce": "5 seconds"}}, "settings.debounce: Does not match pattern '^(0|[0-9]+(ms|s|m|h))$'"),
    ({"settings": {"resync": 30}}, "settings.resync: settings.resync must be one of the following: 0"),
    ({"app": {"image": {"tag": 1.20}}}, "app.image.tag: Invalid type. Expected: string, given: number"),
    ({"rules": []}, "rules: Array must have at least 1 items"),
    ({"rules": [{"name": "x", "paths": ["etc/nginx"], "match": {"comm": "nginx"}}]},
     "rules.0.paths.0: Does not match pattern '^/'"),
    ({"rules": [{"name": "x", "paths": ["/etc/nginx"], "match": {}}]},
     "rules.0.match: Must have at least 1 properties"),
    ({"rules": [{"name": "x", "paths": ["/etc/nginx"], "match": {"pid": 1}}]},
     "rules.0.match: Additional property pid is not allowed"),
    ({"rules": [{"name": "has space", "paths": ["/etc/nginx"], "match": {"comm": "nginx"}}]},
     "rules.0.name: Does not match pattern"),
    ({"app": {"image": {"pullPolicy": "Sometimes"}}},
     'app.image.pullPolicy: app.image.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never"'),
]

TEMPLATE_ERRORS = [
    ({"rules": [{"name": "a", "paths": ["/etc/nginx/conf.d"], "match": {"comm": "nginx"}},
                {"name": "a", "paths": ["/etc/nginx/conf.d"], "match": {"comm": "x"}}]},
     'the rule name "a" is used twice'),
    ({"rules": [{"name": "a", "paths": ["/etc/other"], "match": {"comm": "nginx"}}]},
     'rule "a" watches /etc/other, which no volume mounted in the sigreload container contains'),
    ({"rules": [{"name": "a", "paths": ["/etc/nginx/conf.d.old"], "match": {"comm": "nginx"}}]},
     'rule "a" watches /etc/nginx/conf.d.old, which no volume mounted'),
    ({"securityMode": "sameUid"}, "securityMode sameUid: set app.securityContext.runAsUser"),
    ({"securityMode": "sameUid", "runAsUser": 101, "app": {"securityContext": {"runAsUser": 102}}},
     "securityMode sameUid: runAsUser (101) differs from app.securityContext.runAsUser (102)"),
    ({"app": {"name": "sigreload"}}, 'app.name must not be "sigreload"'),
    ({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}},
     "metrics.serviceMonitor.enabled needs metrics.enabled and metrics.service.enabled"),
]


@pytest.mark.parametrize("values,message", SCHEMA_ERRORS, ids=[m[:40] for _, m in SCHEMA_ERRORS])
def test_values_schema_refuses_bad_values_with_a_clear_message(values, message, tmp_path):
    need_tools()
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(values))
    for cmd in (["template", RELEASE, CHART, "-f", f], ["lint", "--strict", CHART, "-f", f]):
        p = helm(*cmd, check=False)
        assert p.returncode != 0, f"helm {cmd[0]} accepted {values}"
        out = p.stdout + p.stderr  # lint reports on stdout, template on stderr
        assert "values don't meet the specifications of the schema(s)" in out, out
        assert message in out, out


@pytest.mark.parametrize("values,message", TEMPLATE_ERRORS, ids=[m[:40] for _, m in TEMPLATE_ERRORS])
def test_chart_refuses_inconsistent_values_with_a_clear_message(values, message, tmp_path):
    """What a schema cannot express, the templates check with `fail`. (helm lint only reports
    a template's `fail` as [INFO], so helm template / install are where it shows.)"""
    need_tools()
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(values))
    p = helm("template", RELEASE, CHART, "-f", f, check=False)
    assert p.returncode != 0, f"helm template accepted {values}"
    assert message in p.stderr, p.stderr


def test_values_schema_closes_every_object():
    """Every object the schema describes property by property refuses unknown keys, and every
    key of values.yaml is described."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node, where):
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{where} allows unknown keys"
            for k, v in node["properties"].items():
                walk(v, f"{where}.{k}")
        if "items" in node:
            walk(node["items"], f"{where}[]")

    walk(schema, "(root)")

    def described(value, node, where):
        if isinstance(value, dict) and "properties" in node:
            for k, v in value.items():
                assert k in node["properties"], f"{where}.{k} is not in values.schema.json"
                described(v, node["properties"][k], f"{where}.{k}")

    described(values, schema, "(root)")


def test_a_rule_file_sigreload_rejects_fails_the_check(tmp_path):
    """The schema cannot see everything (here a bad regex): `sigreload check` does, so running it
    on the rendered rule file is not a formality."""
    need_tools()
    f = tmp_path / "regex.yaml"
    f.write_text(yaml.safe_dump({"rules": [{"name": "a", "paths": ["/etc/nginx/conf.d"],
                                            "match": {"cmdline": "nginx: (master"}}]}))
    text = rule_file(parse(helm("template", RELEASE, CHART, "-f", f).stdout), "demo-sigreload-rules")
    rf = tmp_path / "sigreload.yaml"
    rf.write_text(text)
    p = run([BIN, "check", "-c", rf], check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert re.search(r'sigreload\.yaml:\d+:\d+: cmdline "nginx: \(master" is not a valid POSIX extended regular '
                     r"expression", p.stderr), p.stderr


# Values documented as one row (their keys are Kubernetes fields or file names).
OPAQUE = ("resources", "probes.liveness", "probes.readiness", "probes.startup", "app.config.files",
          "app.readinessProbe")


def test_readme_documents_every_value():
    """charts/sigreload/README.md has a row for every leaf of values.yaml."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))

    def leaves(v, prefix=""):
        if isinstance(v, dict) and v and prefix not in OPAQUE:
            for k, sub in v.items():
                yield from leaves(sub, f"{prefix}.{k}" if prefix else k)
        else:
            yield prefix

    missing = [k for k in leaves(values) if k not in documented]
    assert "app.config.files" in documented
    assert not missing, f"values missing from the README table: {missing}"
