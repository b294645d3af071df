"""The KServe manifests (deploy/kserve), offline: the ServingRuntime and the InferenceService are valid
against KServe's CRDs (../shared/k8s-schemas, made strict: an unknown field is an error, as with
``kubectl apply``'s server-side field validation), and they fit the service and each other: the port
KServe expects, the probe paths, the model repository at /mnt/models, the settings."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from service.settings import Settings

from .conftest import (
    PREFIX,
    ROOT,
    probe_problems,
    service_link_settings,
    serving_images,
    settings_with_keys,
    unknown_settings,
)

KSERVE = ROOT / "deploy" / "kserve"
SCHEMAS = ROOT.parent / "shared" / "k8s-schemas"
CRDS = {
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
}
# KServe's conventions: the container it routes to, its HTTP port, where the model files are.
CONTAINER, HTTP_PORT, MODEL_DIR = "kserve-container", 8080, "/mnt/models"
DEFAULT_GRACE_S = 30  # Kubernetes' terminationGracePeriodSeconds when none is set

Resource = dict[str, Any]


def strict(schema: Any) -> Any:
    """A CRD's schema where an object with declared properties takes no other field (the API server
    refuses unknown fields; plain JSON Schema would let a misspelt field pass)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    return schema


@functools.cache
def _validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load((SCHEMAS / CRDS[kind]).read_text())
    group = crd["spec"]["group"]
    (version,) = [v for v in crd["spec"]["versions"] if f"{group}/{v['name']}" == api_version]
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def crd_errors(resource: Resource) -> list[str]:
    """What KServe's CRD finds wrong with a resource ("where: what")."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"KServe's CRDs are not at {SCHEMAS} (../shared/k8s-schemas beside the repository)")
    validator = _validator(resource["kind"], resource["apiVersion"])
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(resource)
    ]


def load(name: str) -> Resource:
    (resource,) = [doc for doc in yaml.safe_load_all((KSERVE / name).read_text()) if doc]
    return resource


def runtime() -> Resource:
    return load("servingruntime.yaml")


def inference_service() -> Resource:
    return load("inferenceservice.yaml")


def env_of(container: Resource) -> dict[str, str]:
    return {var["name"]: var["value"] for var in container.get("env", []) if "value" in var}


def kserve_container(serving_runtime: Resource) -> Resource:
    (container,) = [c for c in serving_runtime["spec"]["containers"] if c["name"] == CONTAINER]
    return container


def runtime_problems(serving_runtime: Resource) -> list[str]:
    """What is wrong with the ServingRuntime for KServe and for the service."""
    container = kserve_container(serving_runtime)
    env = env_of(container)
    problems = [f"{name} is not a setting of the service" for name in unknown_settings(set(env))]
    ports = [port["containerPort"] for port in container.get("ports", [])]
    port = env.get(f"{PREFIX}PORT")
    if ports != [HTTP_PORT] or port != str(HTTP_PORT):
        problems.append(
            f"MODELSERVE_PORT {port} and the container ports {ports} are not KServe's {HTTP_PORT}"
        )
    if env.get(f"{PREFIX}HOST") != "0.0.0.0":
        problems.append("the service does not listen on every interface (MODELSERVE_HOST)")
    if env.get(f"{PREFIX}MODELS_DIR") != MODEL_DIR:
        problems.append(f"MODELSERVE_MODELS_DIR is not {MODEL_DIR}, where KServe puts the storageUri's files")
    expected = {"startupProbe": "/v2/health/ready", "readinessProbe": "/v2/health/ready"}
    problems += probe_problems(container, {**expected, "livenessProbe": "/v2/health/live"})
    if "v2" not in serving_runtime["spec"].get("protocolVersions", []):
        problems.append("the runtime does not declare the v2 protocol")
    if container["image"] not in serving_images().values():
        problems.append(f"the runtime runs {container['image']}, not a serving image of docker-compose.yml")
    return problems


def runtime_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    env = env_of(kserve_container(runtime()))
    env.update(env_of(inference_service()["spec"]["predictor"]["model"]))
    return settings_with_keys(env, f"admin {'0' * 64}\n", monkeypatch, tmp_path)


# --- the tests


@pytest.mark.parametrize("name", ["servingruntime.yaml", "inferenceservice.yaml"])
def test_valid_against_kserves_crds(name: str) -> None:
    assert crd_errors(load(name)) == []


def test_the_crd_validation_rejects_an_unknown_field() -> None:
    broken = runtime()
    broken["spec"]["protocolVersion"] = broken["spec"].pop("protocolVersions")  # singular: no such field
    assert any("protocolVersion" in error for error in crd_errors(broken))


def test_the_runtime_serves_the_repository_kserve_mounts() -> None:
    assert runtime_problems(runtime()) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("MODELSERVE_PORT", "8000", "not KServe's 8080"),
        ("MODELSERVE_MODELS_DIR", "/models", "MODELSERVE_MODELS_DIR is not /mnt/models"),
        ("MODELSERVE_MODEL_DIR", "/mnt/models", "MODELSERVE_MODEL_DIR is not a setting"),
    ],
)
def test_the_runtime_checks_catch_a_broken_copy(field: str, value: str, expected: str) -> None:
    broken = copy.deepcopy(runtime())
    container = kserve_container(broken)
    container["env"] = [var for var in container["env"] if var["name"] != field]
    container["env"].append({"name": field, "value": value})
    found = runtime_problems(broken)
    assert any(expected in problem for problem in found), found


def test_a_wrong_probe_path_is_caught() -> None:
    broken = runtime()
    kserve_container(broken)["readinessProbe"]["httpGet"]["path"] = "/v2/ready"
    assert "container kserve-container: readinessProbe path /v2/ready is no GET route of the app" in (
        runtime_problems(broken)
    )


def test_its_settings_are_valid_and_the_drain_fits_the_grace_period(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = runtime_settings(monkeypatch, tmp_path)
    assert settings.require_gpu  # the example asks for a GPU: its pods stay unready on the CPU
    grace = inference_service()["spec"]["predictor"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
    assert settings.shutdown_delay_s > 0
    assert settings.shutdown_delay_s + settings.shutdown_timeout_s < grace


def test_the_inference_service_uses_the_runtime() -> None:
    serving_runtime, predictor = runtime(), inference_service()["spec"]["predictor"]
    model = predictor["model"]
    assert model["runtime"] == serving_runtime["metadata"]["name"]
    formats = {f["name"] for f in serving_runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats
    assert model["protocolVersion"] in serving_runtime["spec"]["protocolVersions"]
    assert unknown_settings({var["name"] for var in model.get("env", [])}) == []
    assert int(model["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert kserve_container(serving_runtime)["image"] == serving_images()["gpu"]


def test_it_reads_the_volume_and_the_keys_of_the_kubernetes_manifests() -> None:
    """The InferenceService's storageUri is the PVC of deploy/k8s, the runtime mounts its keys Secret."""
    base = ROOT / "deploy" / "k8s" / "base"
    (pvc,) = yaml.safe_load_all((base / "pvc.yaml").read_text())
    storage_uri = inference_service()["spec"]["predictor"]["model"]["storageUri"]
    assert storage_uri.startswith(f"pvc://{pvc['metadata']['name']}/")
    secrets = {doc["metadata"]["name"] for doc in yaml.safe_load_all((base / "secrets.yaml").read_text())}
    container = kserve_container(runtime())
    keys_file = Path(env_of(container)[f"{PREFIX}API_KEYS_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(keys_file.parent)]
    (volume,) = [v for v in runtime()["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] in secrets
    assert [item["path"] for item in volume["secret"]["items"]] == [keys_file.name]


def test_no_service_link_variable_is_a_setting() -> None:
    """KServe names the predictor's Service <name>-predictor; its service-link variables must not set a
    setting of the service (as a Service named modelserve would: MODELSERVE_PORT)."""
    isvc = inference_service()
    service = f"{isvc['metadata']['name']}-predictor"
    assert service_link_settings(service, [{"name": "http", "port": 80}]) == []
    assert isvc["spec"]["predictor"]["enableServiceLinks"] is False
