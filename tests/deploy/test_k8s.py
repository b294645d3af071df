"""The Kubernetes manifests (deploy/k8s), offline: each overlay renders with ``kubectl kustomize``, every core
resource is valid against Kubernetes' own schema (kubernetes-validate, strict: an unknown field is an
error), the ConfigMap's settings are valid settings of the service, and the parts fit together: the port,
probe paths, label selectors, grace period, volumes and Secrets, the autoscaler's metric. The checks are
functions that list what is wrong, so that a broken copy can show each of them failing."""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.metrics import Metrics
from service.settings import Settings

from .conftest import (
    PREFIX,
    ROOT,
    answers_get,
    image_uid,
    probe_problems,
    secret_value,
    service_link_settings,
    serving_images,
    settings_with_keys,
    unknown_settings,
)

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
# The oldest Kubernetes these manifests are meant for, and the newest that kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.32", "1.37")
CORE_KINDS = {
    "ConfigMap",
    "Deployment",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "Secret",
    "Service",
}
# Loading and warming up every model takes up to about two minutes on a GPU.
MODEL_LOADING_S = 120

Resource = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: the kustomizations cannot be rendered (kubectl kustomize)")
    return path


@functools.cache
def _rendered(directory: Path) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(directory: Path) -> list[Resource]:
    """The resources ``kubectl kustomize`` makes of a kustomization (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_rendered(directory)) if doc]


@dataclass
class Manifests:
    """A rendered overlay, with what the checks look up in it."""

    resources: list[Resource]

    def of_kind(self, kind: str) -> list[Resource]:
        return [resource for resource in self.resources if resource["kind"] == kind]

    def one(self, kind: str) -> Resource:
        (resource,) = self.of_kind(kind)
        return resource

    def named(self, kind: str, name: str) -> Resource | None:
        return next((r for r in self.of_kind(kind) if r["metadata"]["name"] == name), None)

    @property
    def pod(self) -> Resource:
        return self.one("Deployment")["spec"]["template"]

    @property
    def container(self) -> Resource:
        (container,) = self.pod["spec"]["containers"]
        return container

    @property
    def settings_env(self) -> dict[str, str]:
        """The container's MODELSERVE_* environment: its ConfigMaps, then its own variables."""
        env: dict[str, str] = {}
        for source in self.container.get("envFrom", []):
            config_map = self.named("ConfigMap", source.get("configMapRef", {}).get("name", ""))
            env.update(config_map["data"] if config_map else {})
        env.update({var["name"]: var["value"] for var in self.container.get("env", []) if "value" in var})
        return {name: value for name, value in env.items() if name.startswith(PREFIX)}

    def mount(self, path: str) -> tuple[Resource, Resource] | None:
        """The container's volume mount at ``path``, with its volume."""
        for mount in self.container.get("volumeMounts", []):
            if mount["mountPath"] == path:
                volumes = {volume["name"]: volume for volume in self.pod["spec"].get("volumes", [])}
                return mount, volumes[mount["name"]]
        return None


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a non-empty label selector (matchLabels, or a Service's plain map) selects ``labels``."""
    match = selector.get("matchLabels", selector) if "matchExpressions" not in selector else None
    return bool(match) and all(labels.get(key) == value for key, value in match.items())


def seconds_of_probe(probe: Resource) -> int:
    """How long a probe may fail before the kubelet acts."""
    return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))


# --- the checks: each lists what is wrong with a rendered overlay whose settings are ``settings``


def check_settings_are_the_services(m: Manifests, settings: Settings) -> list[str]:
    names = set(m.settings_env)
    for config_map in m.of_kind("ConfigMap"):
        names |= set(config_map.get("data", {}))
    problems = [f"{name} is not a setting of the service" for name in unknown_settings(names)]
    problems += [f"{name} does not start with {PREFIX}" for name in names if not name.startswith(PREFIX)]
    for source in m.container.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        if m.named("ConfigMap", name) is None:
            problems.append(f"envFrom names the ConfigMap {name}, which is not in the manifests")
    return problems


def check_port_and_probes(m: Manifests, settings: Settings) -> list[str]:
    ports = m.container.get("ports", [])
    problems = []
    if [(port.get("name"), port["containerPort"]) for port in ports] != [("http", settings.port)]:
        problems.append(f"the container's ports {ports} are not one port named http on {settings.port}")
    expected = {"startupProbe": "/health/ready", "readinessProbe": "/health/ready"}
    problems += probe_problems(m.container, {**expected, "livenessProbe": "/health/live"})
    if seconds_of_probe(m.container.get("startupProbe", {})) < MODEL_LOADING_S:
        problems.append(f"the startup probe gives up before the {MODEL_LOADING_S} s models may take to load")
    # once the server stops accepting, liveness fails: it must not kill the pod before the drain ends
    if seconds_of_probe(m.container.get("livenessProbe", {})) <= settings.shutdown_timeout_s:
        problems.append("the liveness probe's window is shorter than shutdown_timeout_s")
    return problems


def check_shutdown_fits_the_grace_period(m: Manifests, settings: Settings) -> list[str]:
    spec = m.pod["spec"]
    grace = int(spec.get("terminationGracePeriodSeconds", 30))
    pre_stop = m.container.get("lifecycle", {}).get("preStop", {})
    sleep = int(pre_stop.get("sleep", {}).get("seconds", 0))
    drain = sleep + settings.shutdown_delay_s + settings.shutdown_timeout_s
    if grace <= drain:
        return [f"terminationGracePeriodSeconds {grace} does not exceed preStop + delay + timeout = {drain}"]
    if settings.shutdown_delay_s == 0 and not pre_stop:
        return ["neither shutdown_delay_s nor a preStop hook keeps serving while the endpoints update"]
    return []


def check_selectors(m: Manifests, settings: Settings) -> list[str]:
    deployment, service = m.one("Deployment"), m.one("Service")
    labels = m.pod["metadata"]["labels"]
    port_names = {port.get("name") for port in m.container.get("ports", [])}
    port_numbers = {port["containerPort"] for port in m.container.get("ports", [])}
    problems = []
    if not selects(deployment["spec"]["selector"], labels):
        problems.append("the Deployment's selector does not select its own pods")
    if not selects(service["spec"]["selector"], labels):
        problems.append(f"the Service's selector {service['spec']['selector']} does not select the pods")
    for port in service["spec"]["ports"]:
        if port["targetPort"] not in port_names | port_numbers:
            problems.append(f"the Service's targetPort {port['targetPort']} is no port of the container")
    pdb = m.one("PodDisruptionBudget")
    if not selects(pdb["spec"]["selector"], labels):
        problems.append("the PodDisruptionBudget does not select the pods")
    policy = m.one("NetworkPolicy")
    if not selects(policy["spec"]["podSelector"], labels):
        problems.append("the NetworkPolicy does not select the pods")
    for rule in policy["spec"].get("ingress", []):
        for port in rule.get("ports", []):
            if port.get("port") not in port_names | port_numbers:
                problems.append(f"the NetworkPolicy admits port {port.get('port')}, no port of the container")
    for constraint in m.pod["spec"].get("topologySpreadConstraints", []):
        if not selects(constraint["labelSelector"], labels):
            problems.append("a topology spread constraint does not select the pods")
    return problems


def check_service_monitor(m: Manifests, settings: Settings) -> list[str]:
    monitor, service = m.one("ServiceMonitor"), m.one("Service")
    problems = []
    if monitor["apiVersion"] != "monitoring.coreos.com/v1":
        problems.append(f"the ServiceMonitor's apiVersion is {monitor['apiVersion']}")
    if not selects(monitor["spec"]["selector"], service["metadata"].get("labels", {})):
        problems.append("the ServiceMonitor does not select the Service")
    service_ports = {port.get("name") for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        unknown = set(endpoint) - {"port", "path", "interval", "scrapeTimeout", "authorization", "scheme"}
        if unknown:
            problems.append(f"the ServiceMonitor's endpoint has fields this check does not know: {unknown}")
        if endpoint.get("port") not in service_ports:
            problems.append(f"the ServiceMonitor scrapes port {endpoint.get('port')}, no port of the Service")
        if endpoint.get("path") != "/metrics" or not answers_get(endpoint["path"]):
            problems.append(f"the ServiceMonitor scrapes {endpoint.get('path')}, not the service's /metrics")
        credentials = endpoint.get("authorization", {}).get("credentials", {})
        secret = m.named("Secret", credentials.get("name", ""))
        if endpoint.get("authorization", {}).get("type") != "Bearer" or secret is None:
            problems.append("the ServiceMonitor sends no bearer token from a Secret of the manifests")
        elif secret_value(secret, credentials.get("key", "")) is None:
            problems.append(f"the Secret {credentials['name']} has no key {credentials.get('key')}")
    return problems


def check_autoscaler(m: Manifests, settings: Settings) -> list[str]:
    deployment, hpa = m.one("Deployment"), m.one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    problems = []
    if (target["apiVersion"], target["kind"], target["name"]) != (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    ):
        problems.append(f"the HPA scales {target}, not the Deployment")
    if "replicas" in deployment["spec"]:
        problems.append("the Deployment sets replicas, which the HPA owns (each apply would reset them)")
    kinds = {(metric["type"], metric_name(metric)) for metric in hpa["spec"]["metrics"]}
    if kinds != {("Resource", "cpu"), ("Pods", "modelserve_queue_depth")}:
        problems.append(f"the HPA scales on {sorted(kinds)}, not CPU and modelserve_queue_depth")
    for _, name in kinds - {("Resource", "cpu")}:
        if name not in service_metric_names():
            problems.append(f"the HPA's metric {name} is no metric of the service")
    if hpa["spec"].get("minReplicas", 1) < 2:
        problems.append("the HPA allows a single replica: a drain or a rollout then stops the service")
    return problems


def metric_name(metric: Resource) -> str:
    spec = metric[metric["type"][0].lower() + metric["type"][1:]]
    return spec["name"] if metric["type"] == "Resource" else spec["metric"]["name"]


@functools.cache
def service_metric_names() -> frozenset[str]:
    return frozenset(family.name for family in Metrics().registry.collect())


def check_volumes_and_secrets(m: Manifests, settings: Settings) -> list[str]:
    problems = []
    models = m.mount(str(settings.models_dir))
    claim = models[1].get("persistentVolumeClaim") if models else None
    if claim is None or m.named("PersistentVolumeClaim", claim["claimName"]) is None:
        problems.append(f"models_dir {settings.models_dir} is not a PersistentVolumeClaim of the manifests")
    elif not (models and models[0].get("readOnly") and claim.get("readOnly")):
        problems.append("the model repository is not mounted read-only")
    keys_file = Path(m.settings_env.get(f"{PREFIX}API_KEYS_FILE", "/nowhere"))
    keys = m.mount(str(keys_file.parent))
    source = keys[1].get("secret") if keys else None
    items = {item["path"]: item["key"] for item in (source or {}).get("items", [])}
    secret = m.named("Secret", source["secretName"]) if source else None
    if secret is None or keys_file.name not in items:
        problems.append(f"api_keys_file {keys_file} is not a file of a Secret of the manifests")
    elif secret_value(secret, items[keys_file.name]) is None:
        problems.append(f"the Secret {source['secretName']} has no key {items[keys_file.name]}")
    tmp = m.mount("/tmp")
    if tmp is None or "emptyDir" not in tmp[1]:
        problems.append("no emptyDir at /tmp, where Python writes on a read-only root filesystem")
    return problems


def check_security(m: Manifests, settings: Settings) -> list[str]:
    pod, container = m.pod["spec"], m.container
    pod_context, context = pod.get("securityContext", {}), container.get("securityContext", {})
    merged = {**pod_context, **context}
    expected = {
        "runAsNonRoot": True,
        "runAsUser": image_uid(),
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    problems = [f"{key} is not {value}" for key, value in expected.items() if merged.get(key) != value]
    if context.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append("the container does not drop every capability")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("the pod mounts a service account token it never uses")
    for service in m.of_kind("Service"):
        clashes = service_link_settings(service["metadata"]["name"], service["spec"]["ports"])
        if clashes and pod.get("enableServiceLinks") is not False:
            problems.append(
                f"the Service {service['metadata']['name']} would set {clashes} in the pods: "
                "enableServiceLinks must be false"
            )
    return problems


def check_resources(m: Manifests, settings: Settings) -> list[str]:
    resources = m.container.get("resources", {})
    problems = [
        f"no {kind} {resource} for the container"
        for kind in ("requests", "limits")
        for resource in ("cpu", "memory")
        if resource not in resources.get(kind, {})
    ]
    gpus = int(resources.get("limits", {}).get("nvidia.com/gpu", 0))
    if settings.require_gpu is not (gpus > 0):
        problems.append(f"require_gpu is {settings.require_gpu} with {gpus} GPU")
    cpu_limit = cpu_cores(resources.get("limits", {}).get("cpu", "0"))
    if not 0 < settings.intra_op_threads <= cpu_limit:
        problems.append(
            f"intra_op_threads {settings.intra_op_threads} is not set within the CPU limit ({cpu_limit}): "
            "onnxruntime's default is the node's core count"
        )
    return problems


def cpu_cores(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


CHECKS: tuple[Callable[[Manifests, Settings], list[str]], ...] = (
    check_settings_are_the_services,
    check_port_and_probes,
    check_shutdown_fits_the_grace_period,
    check_selectors,
    check_service_monitor,
    check_autoscaler,
    check_volumes_and_secrets,
    check_security,
    check_resources,
)


def problems(resources: list[Resource], settings: Settings) -> list[str]:
    manifests = Manifests(resources)
    return [problem for check in CHECKS for problem in check(manifests, settings)]


def overlay_settings(resources: list[Resource], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The service's settings in a rendered overlay's pods, its keys file being the Secret's."""
    m = Manifests(resources)
    keys_file = Path(m.settings_env[f"{PREFIX}API_KEYS_FILE"])
    _, volume = m.mount(str(keys_file.parent)) or pytest.fail("the keys file is not mounted")
    items = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    secret = m.named("Secret", volume["secret"]["secretName"]) or pytest.fail("no keys Secret")
    keys = secret_value(secret, items[keys_file.name]) or pytest.fail("the keys Secret has no keys file")
    return settings_with_keys(m.settings_env, keys, monkeypatch, tmp_path)


# --- the tests


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_renders_the_expected_resources(overlay: str) -> None:
    kinds = sorted(resource["kind"] for resource in render(K8S / "overlays" / overlay))
    assert kinds == sorted([*CORE_KINDS, "Secret", "ServiceMonitor"])  # two Secrets: keys, metrics token


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_resource_is_valid_for_kubernetes(overlay: str, version: str) -> None:
    for resource in render(K8S / "overlays" / overlay):
        if resource["kind"] in CORE_KINDS:
            kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_rejects_an_unknown_field() -> None:
    (deployment,) = [r for r in render(K8S / "overlays" / "cpu") if r["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readynessProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readynessProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_parts_fit_together(overlay: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    resources = render(K8S / "overlays" / overlay)
    assert problems(resources, overlay_settings(resources, monkeypatch, tmp_path)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_runs_its_image_on_its_hardware(
    overlay: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resources = render(K8S / "overlays" / overlay)
    m = Manifests(resources)
    assert m.container["image"] == serving_images()[overlay]  # the image docker-compose.yml builds
    settings = overlay_settings(resources, monkeypatch, tmp_path)
    assert settings.require_gpu is (overlay == "gpu")
    assert ("nvidia.com/gpu" in m.container["resources"]["limits"]) is (overlay == "gpu")
    assert (settings.host, settings.port, str(settings.models_dir)) == ("0.0.0.0", 8000, "/models")
    # a pod stays unready until the models it must serve have loaded from the volume
    assert settings.enabled_models
    assert all((ROOT / "models" / name).is_dir() for name in settings.enabled_models)


def _wrong_probe_path(resources: list[Resource]) -> None:
    Manifests(resources).container["readinessProbe"]["httpGet"]["path"] = "/healthz"


def _wrong_container_port(resources: list[Resource]) -> None:
    Manifests(resources).container["ports"][0]["containerPort"] = 8080


def _wrong_service_selector(resources: list[Resource]) -> None:
    Manifests(resources).one("Service")["spec"]["selector"] = {"app.kubernetes.io/name": "model-serve"}


def _wrong_target_port(resources: list[Resource]) -> None:
    Manifests(resources).one("Service")["spec"]["ports"][0]["targetPort"] = "web"


def _short_grace_period(resources: list[Resource]) -> None:
    Manifests(resources).pod["spec"]["terminationGracePeriodSeconds"] = 30


def _unknown_setting(resources: list[Resource]) -> None:
    Manifests(resources).one("ConfigMap")["data"]["MODELSERVE_MODEL_DIR"] = "/models"


def _service_links_on(resources: list[Resource]) -> None:
    del Manifests(resources).pod["spec"]["enableServiceLinks"]


def _hpa_on_another_deployment(resources: list[Resource]) -> None:
    Manifests(resources).one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] = "api"


def _monitor_on_a_wrong_port(resources: list[Resource]) -> None:
    Manifests(resources).one("ServiceMonitor")["spec"]["endpoints"][0]["port"] = "metrics"


@pytest.mark.parametrize(
    ("breaks", "expected"),
    [
        (_wrong_probe_path, "readinessProbe path /healthz is no GET route"),
        (_wrong_container_port, "not one port named http on 8000"),
        (_wrong_service_selector, "the Service's selector"),
        (_wrong_target_port, "targetPort web"),
        (_short_grace_period, "terminationGracePeriodSeconds 30"),
        (_unknown_setting, "MODELSERVE_MODEL_DIR is not a setting"),
        (_service_links_on, "enableServiceLinks must be false"),
        (_hpa_on_another_deployment, "not the Deployment"),
        (_monitor_on_a_wrong_port, "scrapes port metrics"),
    ],
)
def test_the_checks_catch_a_broken_copy(
    breaks: Callable[[list[Resource]], None], expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resources = render(K8S / "overlays" / "gpu")
    settings = overlay_settings(resources, monkeypatch, tmp_path)
    broken = copy.deepcopy(resources)
    breaks(broken)
    found = problems(broken, settings)
    assert any(expected in problem for problem in found), found


def test_the_placeholder_secrets_grant_nothing() -> None:
    m = Manifests(render(K8S / "overlays" / "gpu"))
    keys = secret_value(m.named("Secret", "modelserve-api-keys") or {}, "api-keys") or ""
    digests = {line.split()[1] for line in keys.splitlines() if line.strip() and not line.startswith("#")}
    assert digests == {"0" * 64}  # the hash of no key anyone holds: every request is refused
    token = secret_value(m.named("Secret", "modelserve-metrics-token") or {}, "token") or ""
    assert "PLACEHOLDER" in token


def test_an_overlay_of_your_own_replaces_the_placeholders(tmp_path: Path) -> None:
    """The README's way (Deploy on Kubernetes) to put real keys in: a secretGenerator with behavior:
    replace keeps the names that the Deployment and the ServiceMonitor use."""
    (tmp_path / "api-keys").write_text(f"admin {'a' * 64}\n")
    (tmp_path / "metrics-token").write_text("a-real-admin-key")
    base = os.path.relpath(K8S / "overlays" / "gpu", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [base],
                "secretGenerator": [
                    {"name": "modelserve-api-keys", "behavior": "replace", "files": ["api-keys"]},
                    {
                        "name": "modelserve-metrics-token",
                        "behavior": "replace",
                        "files": ["token=metrics-token"],
                    },
                ],
            }
        )
    )
    m = Manifests(render(tmp_path))
    assert secret_value(m.named("Secret", "modelserve-api-keys") or {}, "api-keys") == f"admin {'a' * 64}\n"
    assert secret_value(m.named("Secret", "modelserve-metrics-token") or {}, "token") == "a-real-admin-key"
    assert check_volumes_and_secrets(m, Settings(models_dir=Path("/models"))) == []
    assert check_service_monitor(m, Settings()) == []


def test_the_adapter_serves_the_metric_the_hpa_scales_on() -> None:
    values = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    hpa = Manifests(render(K8S / "overlays" / "gpu")).one("HorizontalPodAutoscaler")
    (pods_metric,) = [metric for metric in hpa["spec"]["metrics"] if metric["type"] == "Pods"]
    name = pods_metric["pods"]["metric"]["name"]
    assert rule["name"]["as"] == name and rule["seriesQuery"].startswith(f"{name}{{")
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}  # a Pods metric: one value per pod
    assert "sum(" in rule["metricsQuery"] and "by (<<.GroupBy>>)" in rule["metricsQuery"]
    assert name in service_metric_names()


def test_the_models_writer_fills_the_volume_the_api_reads() -> None:
    (writer,) = list(yaml.safe_load_all((K8S / "models-writer.yaml").read_text()))
    kubernetes_validate.validate(writer, KUBERNETES_VERSIONS[-1], strict=True)
    m = Manifests(render(K8S / "overlays" / "cpu"))
    (volume,) = writer["spec"]["volumes"]
    assert m.named("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) is not None
    assert not volume["persistentVolumeClaim"].get("readOnly")
    assert writer["spec"]["securityContext"]["runAsUser"] == image_uid()  # files the API's user owns
    # no Service, PodDisruptionBudget or HPA metric counts the writer as an API pod
    assert not selects(m.one("Service")["spec"]["selector"], writer["metadata"]["labels"])
    (container,) = writer["spec"]["containers"]
    assert container["image"] in serving_images().values()


def test_a_change_of_settings_rolls_the_pods() -> None:
    """The ConfigMap's name carries a hash of its settings, so that a change rolls the pods."""
    m = Manifests(render(K8S / "overlays" / "gpu"))
    name = m.one("ConfigMap")["metadata"]["name"]
    assert name.startswith("modelserve-settings-") and name != "modelserve-settings"
    assert json.dumps(m.container["envFrom"]) == json.dumps([{"configMapRef": {"name": name}}])
