"""The Helm chart (``helm/bandit-router``), rendered and linted by Helm's own library.

No cluster runs here. The chart is rendered once with its default values and once with
``tests/helm/custom-values.yaml`` (helm-python-sdk embeds Helm's Go library: no ``helm``
binary), linted, and every manifest is validated against the Kubernetes API schemas
(kubernetes-validate, offline). The rest checks what a cluster would only show at run
time: kinds, probes, security context, ports, the config the CLI reads, where secrets go.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "bandit-router"
CUSTOM_VALUES = Path(__file__).with_name("helm") / "custom-values.yaml"
SCRIPT = Path(sys.executable).with_name("bandit-router")
RELEASE, NAMESPACE = "br", "ml"
# The chart's kubeVersion floor and the newest schemas the package ships.
KUBE_VERSIONS = ("1.25", kubernetes_validate.latest_version())
WEBHOOK_SECRET = "whsec-9f2c41d7e0b3"  # noqa: S105  (test values, looked for in the output)
ADMIN_TOKEN = "admin-5b8e0a6c13f4"  # noqa: S105
DEFAULT_VALUES: dict[str, Any] = {
    "secrets": {"webhookSecret": WEBHOOK_SECRET, "adminToken": ADMIN_TOKEN}}

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """One render of the chart: the values given and the manifests out (NOTES.txt aside)."""

    values: dict[str, Any]
    manifests: tuple[Manifest, ...]

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str, component: str | None = None) -> Manifest:
        found = [m for m in self.of_kind(kind)
                 if component is None or component_of(m) == component]
        assert len(found) == 1, f"{len(found)} {kind} for {component}"
        return found[0]

    def config(self) -> dict[str, Any]:
        """The config file the CLI reads, parsed."""
        parsed: dict[str, Any] = yaml.safe_load(self.one("ConfigMap")["data"]["config.yaml"])
        return parsed

    def container(self, component: str) -> dict[str, Any]:
        containers: list[dict[str, Any]] = pod_spec(self.one("Deployment", component))[
            "containers"]
        assert len(containers) == 1
        return containers[0]


def component_of(manifest: Manifest) -> str | None:
    labels: dict[str, str] = manifest["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/component")


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def render(values: dict[str, Any]) -> Rendered:
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    manifests = [doc for path, text in sorted(files.items()) if not path.endswith("NOTES.txt")
                 for doc in yaml.safe_load_all(text) if doc]
    return Rendered(values, tuple(manifests))


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    return str(caught.value)


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Values layered as ``-f a -f b`` would (maps merge, everything else is replaced)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render(DEFAULT_VALUES)


@pytest.fixture(scope="module")
def custom() -> Rendered:
    return render(yaml.safe_load(CUSTOM_VALUES.read_text()))


@pytest.fixture(params=["default", "custom"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    chart: Rendered = request.getfixturevalue(request.param)
    return chart


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def workloads(chart: Rendered) -> Iterator[Manifest]:
    yield from chart.of_kind("Deployment")
    yield from chart.of_kind("StatefulSet")


# -- Helm's and Kubernetes' own checks ---------------------------------------------------

def test_lint_is_clean(rendered: Rendered) -> None:
    report = helm.lint(CHART, rendered.values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    # Severity 1 is information (Helm recommends an icon, a URL outside the repository).
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_validates(rendered: Rendered, kube_version: str) -> None:
    checked = 0
    for manifest in rendered.manifests:
        if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema ships for it (its shape is checked below)
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:  # name the manifest and field
            where = ".".join(map(str, exc.path))
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {where}: "
                        f"{exc.message}")
        checked += 1
    assert checked >= 8


def test_default_kinds(default: Rendered) -> None:
    kinds = Counter(m["kind"] for m in default.manifests)
    assert kinds == {"ConfigMap": 1, "Secret": 1, "ServiceAccount": 2, "Deployment": 2,
                     "Service": 4, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 1,
                     "StatefulSet": 1, "NetworkPolicy": 3}
    assert "replicas" not in default.one("Deployment", "router")["spec"]  # the HPA's
    assert default.one("Deployment", "ingester")["spec"]["replicas"] == 1


def test_custom_kinds(custom: Rendered) -> None:
    kinds = Counter(m["kind"] for m in custom.manifests)
    assert kinds == {"ConfigMap": 1, "ServiceAccount": 2, "Deployment": 2, "Service": 2,
                     "PodDisruptionBudget": 1, "ServiceMonitor": 1}
    assert custom.one("Deployment", "router")["spec"]["replicas"] == 3


def test_image_defaults_to_the_app_version(default: Rendered, custom: Rendered) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == project
    for component in ("router", "ingester"):
        assert default.container(component)["image"] == f"bandit-router:{project}"
        assert custom.container(component)["image"].endswith("/bandit-router:0.1.0-rc1")


# -- probes, ports, security ------------------------------------------------------------

def test_probes(rendered: Rendered) -> None:
    expected = {"router": {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                           "readinessProbe": "/readyz"},
                "ingester": {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                             "readinessProbe": "/healthz"}}  # the ingester has no /readyz
    for component, probes in expected.items():
        container = rendered.container(component)
        for probe, path in probes.items():
            assert container[probe]["httpGet"]["path"] == path, (component, probe)


def _arg(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


@pytest.mark.parametrize(("component", "command", "option"),
                         [("router", "serve", "--port"), ("ingester", "ingest", "--webhook-port")])
def test_ports_match(rendered: Rendered, component: str, command: str, option: str) -> None:
    container = rendered.container(component)
    args = container["args"]
    assert args[0] == command
    assert _arg(args, "--config") == "/etc/bandit-router/config.yaml"
    assert _arg(args, "--host") == "0.0.0.0"  # noqa: S104  (a pod listens on its own IP)
    port = int(_arg(args, option))
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named == {"http": port}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert named[container[probe]["httpGet"]["port"]] == port
    service = rendered.one("Service", component)
    assert service["spec"]["selector"] == rendered.one("Deployment", component)["spec"][
        "selector"]["matchLabels"]
    (service_port,) = service["spec"]["ports"]
    assert named[service_port["targetPort"]] == port
    assert service_port["port"] == port
    for policy in rendered.of_kind("NetworkPolicy"):
        if component_of(policy) == component:
            assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [
                port]


def test_config_mount_is_the_configmap(rendered: Rendered) -> None:
    name = rendered.one("ConfigMap")["metadata"]["name"]
    for component in ("router", "ingester"):
        spec = pod_spec(rendered.one("Deployment", component))
        mounts = {m["mountPath"]: m["name"] for m in rendered.container(component)["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes[mounts["/etc/bandit-router"]]["configMap"]["name"] == name


def test_security_context(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            own = container["securityContext"]
            assert pod.get("runAsNonRoot") or own.get("runAsNonRoot")
            assert (own.get("runAsUser") or pod["runAsUser"]) > 0
            assert own["readOnlyRootFilesystem"] is True
            assert own["allowPrivilegeEscalation"] is False
            assert own["capabilities"] == {"drop": ["ALL"]}
            assert own.get("privileged") is not True
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, bound


def test_spool_is_on_an_empty_dir(rendered: Rendered) -> None:
    spool = Path(rendered.config()["decision_log"]["spool_path"])
    spec = pod_spec(rendered.one("Deployment", "router"))
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = [m for m in rendered.container("router")["volumeMounts"]
              if spool.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1
    assert set(volumes[mounts[0]["name"]]) == {"name", "emptyDir"}
    assert not mounts[0].get("readOnly")


# -- the config file --------------------------------------------------------------------

def test_config_passes_check_config(rendered: Rendered, tmp_path: Path) -> None:
    config = rendered.config()
    # The spool's directory exists in the pod (its emptyDir), not on this machine, where
    # check-config would test whether it could be created: it is checked on a tmp path.
    config["decision_log"]["spool_path"] = str(tmp_path / "spool" / "decisions.jsonl")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([str(SCRIPT), "check-config", str(path)],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    count = len(config["experiments"])
    assert done.stdout.strip() == f"OK: {count} experiment{'s' if count != 1 else ''}"


def test_check_config_catches_a_bad_config(tmp_path: Path) -> None:
    # The check above can fail: a policy key out of range passes Helm but not the CLI.
    values = merged(DEFAULT_VALUES, {"config": {"experiments": [{
        "name": "e", "endpoint": "ep", "variants": [{"name": "A"}],
        "policy": {"type": "epsilon_greedy", "epsilon": 2.0}}]}})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(render(values).config()))
    done = subprocess.run([str(SCRIPT), "check-config", str(path)],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "experiments[0].policy.epsilon" in done.stderr


def test_store_follows_the_redis_choice(default: Rendered, custom: Rendered) -> None:
    store = default.config()["store"]
    names = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"]
             for s in default.of_kind("Service")}
    assert store == f"redis://{RELEASE}-bandit-router-redis:{names[f'{RELEASE}-bandit-router-redis']}/0"
    assert custom.config()["store"] == custom.values["redis"]["external"]["url"]


# -- secrets and identities -------------------------------------------------------------

def test_secrets_are_never_inlined(rendered: Rendered) -> None:
    secrets = rendered.values["secrets"]
    given = {WEBHOOK_SECRET, ADMIN_TOKEN} if secrets.get("create", True) else set()
    for manifest in rendered.manifests:
        if manifest["kind"] == "Secret":
            continue
        text = yaml.safe_dump(manifest)
        assert not [s for s in given if s in text], manifest["kind"]
    config = rendered.one("ConfigMap")["data"]["config.yaml"].lower()
    for word in ("secret", "token", "password"):
        assert word not in config
    for workload in workloads(rendered):
        for container in pod_spec(workload)["containers"]:
            for item in container.get("env", []):
                if any(w in item["name"] for w in ("SECRET", "TOKEN", "PASSWORD")):
                    assert "value" not in item and "secretKeyRef" in item["valueFrom"]


def test_each_component_gets_only_its_secret(rendered: Rendered) -> None:
    secrets = rendered.values["secrets"]
    name = (f"{RELEASE}-bandit-router" if secrets.get("create", True)
            else secrets["existingSecret"])
    keys = {"webhookSecret": "webhook-secret", "adminToken": "admin-token",
            **secrets.get("keys", {})}
    router = env_of(rendered.container("router"))
    ingester = env_of(rendered.container("ingester"))
    assert "BANDIT_ROUTER_WEBHOOK_SECRET" not in router
    assert "BANDIT_ROUTER_ADMIN_TOKEN" not in ingester
    admin = router["BANDIT_ROUTER_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    webhook = ingester["BANDIT_ROUTER_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]
    assert (admin["name"], admin["key"], admin["optional"]) == (name, keys["adminToken"], True)
    assert (webhook["name"], webhook["key"]) == (name, keys["webhookSecret"])
    assert not webhook.get("optional")


def test_created_secret_holds_the_values(default: Rendered) -> None:
    data = {k: base64.b64decode(v).decode() for k, v in default.one("Secret")["data"].items()}
    assert data == {"webhook-secret": WEBHOOK_SECRET, "admin-token": ADMIN_TOKEN}


def test_no_admin_token_leaves_the_key_out() -> None:
    chart = render({"secrets": {"webhookSecret": WEBHOOK_SECRET}})
    assert set(chart.one("Secret")["data"]) == {"webhook-secret"}


def test_irsa_service_accounts(custom: Rendered) -> None:
    accounts = {a["metadata"]["name"]: a for a in custom.of_kind("ServiceAccount")}
    router_account = pod_spec(custom.one("Deployment", "router"))["serviceAccountName"]
    ingester_account = pod_spec(custom.one("Deployment", "ingester"))["serviceAccountName"]
    assert (router_account, ingester_account) == (f"{RELEASE}-bandit-router-router",
                                                  "bandit-ingester")
    role = "eks.amazonaws.com/role-arn"
    assert accounts[router_account]["metadata"]["annotations"][role].endswith(
        ":role/bandit-router")
    assert accounts[ingester_account]["metadata"]["annotations"][role].endswith(
        ":role/bandit-router-ingester")
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    for component in ("router", "ingester"):
        assert env_of(custom.container(component))["AWS_REGION"]["value"] == "eu-west-1"


# -- network policy and monitoring ------------------------------------------------------

def _policies(chart: Rendered) -> dict[str | None, Manifest]:
    return {component_of(p): p for p in chart.of_kind("NetworkPolicy")}


def test_default_network_policy(default: Rendered) -> None:
    policies = _policies(default)
    assert set(policies) == {"router", "ingester", "redis"}
    for component, policy in policies.items():
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
        assert spec["policyTypes"] == ["Ingress"]
        for rule in spec["ingress"]:
            assert rule["from"], "an empty from admits every source"
    assert policies["router"]["spec"]["ingress"][0]["from"] == [{"podSelector": {}}]
    (redis_rule,) = policies["redis"]["spec"]["ingress"]
    (peer,) = redis_rule["from"]
    expressions = {e["key"]: e["values"] for e in peer["podSelector"]["matchExpressions"]}
    assert expressions["app.kubernetes.io/component"] == ["router", "ingester"]
    assert expressions["app.kubernetes.io/instance"] == [RELEASE]
    assert "namespaceSelector" not in peer  # this namespace only


def test_network_policy_sources_and_operators() -> None:
    chart = render(merged(DEFAULT_VALUES, {"networkPolicy": {
        "router": {"from": [{"namespaceSelector": {"matchLabels": {"team": "checkout"}}}]},
        "ingester": {"from": []},
        "operatorNamespaces": ["monitoring"]}}))
    policies = _policies(chart)
    monitoring = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}
    assert policies["router"]["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"team": "checkout"}}}, monitoring]
    assert policies["ingester"]["spec"]["ingress"][0]["from"] == [monitoring]
    no_one = render(merged(DEFAULT_VALUES, {"networkPolicy": {"ingester": {"from": []}}}))
    assert _policies(no_one)["ingester"]["spec"]["ingress"] == []  # denies, not admits all


def test_service_monitor_scrapes_both_services(custom: Rendered) -> None:
    monitor = custom.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    expressions = {e["key"]: set(e["values"])
                   for e in monitor["spec"]["selector"]["matchExpressions"]}
    scraped = [s for s in custom.of_kind("Service")
               if all(s["metadata"]["labels"].get(k) in v for k, v in expressions.items())]
    assert sorted(component_of(s) or "" for s in scraped) == ["ingester", "router"]
    for service in scraped:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


# -- values the chart refuses, and one it allows -----------------------------------------

@pytest.mark.parametrize(("override", "message"), [
    ({"secrets": {"webhookSecret": ""}}, "secrets.webhookSecret: without it the webhook"),
    ({"secrets": {"create": False}}, "secrets.existingSecret: name the Secret"),
    ({"config": {"store": "redis://elsewhere:6379/0"}}, "config.store: leave it out"),
    ({"redis": {"external": {"url": "redis://r:6379/0"}}},
     "set redis.bundled.enabled to false"),
    ({"redis": {"bundled": {"enabled": False}}}, "enable redis.bundled or set"),
    ({"redis": {"bundled": {"enabled": False}, "external": {"url": "redis://:pw@r:6379/0"}}},
     "redis.external.url: must carry no user or password"),
    ({"redis": {"bundled": {"enabled": False}, "external": {"url": "http://r:6379"}}},
     "redis.external.url: must be redis://"),
    ({"config": {"archive": {"path": "/var/archive"}}}, "config.archive.path: use s3://"),
    ({"config": {"decision_log": {"spool_path": "/var/spool/decisions.jsonl"}}},
     "config.decision_log.spool_path: must lie under router.spool.mountPath"),
    ({"ingester": {"replicas": 2}, "config": {"archive": {"path": "s3://b/p"}}},
     "ingester.replicas: must be 1 with archive"),
    # values.schema.json: types, ranges and misspelled keys
    ({"ingester": {"replicas": 3}}, "at '/ingester/replicas': maximum: got 3, want 2"),
    ({"router": {"port": "http"}}, "at '/router/port': got string, want integer"),
    ({"redis": {"bundeld": {"enabled": False}}}, "additional properties 'bundeld' not allowed"),
    ({"aws": {"region": ""}}, "aws.region: name the SageMaker endpoints' region"),
])
def test_refused_values(override: dict[str, Any], message: str) -> None:
    assert message in render_error(merged(DEFAULT_VALUES, override))


def test_a_standby_ingester_is_allowed() -> None:
    chart = render(merged(DEFAULT_VALUES, {"ingester": {"replicas": 2}}))
    assert chart.one("Deployment", "ingester")["spec"]["replicas"] == 2


def test_two_ingesters_refused_with_a_weights_push(custom: Rendered) -> None:
    values = merged(custom.values, {"ingester": {"replicas": 2}})
    values["config"] = {k: v for k, v in values["config"].items() if k != "archive"}
    assert "weights_push of churn" in render_error(values)
