"""docker-compose.yml, offline: valid against the compose specification's schema, every service setting it
uses is a field of the service's Settings (with valid values), and its parts fit together (GPU
reservations, profiles, stop grace period, the load balancer's upstream)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import Settings

from .conftest import (
    PREFIX,
    ROOT,
    interpolated_names,
    run_tool,
    settings_from,
    unknown_settings,
    with_defaults,
)

COMPOSE = ROOT / "docker-compose.yml"
API_SERVICES = ("api", "api-cpu", "api-replica")


def services() -> dict[str, dict[str, Any]]:
    """The services, anchors and merge keys resolved, ``${VAR:-default}`` replaced by the defaults."""
    return with_defaults(yaml.safe_load(COMPOSE.read_text())["services"])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def check_schema(path: Path) -> tuple[int, str]:
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(path))
    return result.returncode, result.stdout + result.stderr


def test_valid_against_the_compose_spec_schema() -> None:
    status, output = check_schema(COMPOSE)
    assert status == 0, output


def test_the_schema_check_rejects_a_wrong_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("restart: unless-stopped", "restart_when: unless-stopped"))
    status, output = check_schema(broken)
    assert status != 0 and "restart_when" in output


def test_every_service_setting_is_a_field_of_settings() -> None:
    used = interpolated_names(COMPOSE.read_text())
    for service in services().values():
        used |= set(environment(service))
    assert {name for name in used if name.startswith(PREFIX)}, "the compose file sets no service setting"
    assert unknown_settings(used) == []


@pytest.mark.parametrize("name", API_SERVICES)
def test_the_api_settings_are_valid(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service = services()[name]
    env = environment(service)
    # API keys are on, from the api-keys secret, which compose mounts at /run/secrets/<name>
    assert service["secrets"] == ["api-keys"]
    assert env["MODELSERVE_API_KEYS_FILE"] == "/run/secrets/api-keys"
    assert yaml.safe_load(COMPOSE.read_text())["secrets"]["api-keys"] == {
        "file": "${API_KEYS_FILE:-./api-keys}"
    }
    keys = tmp_path / "api-keys"
    keys.write_text(f"admin {'0' * 64}\n")
    settings = settings_from({**env, "MODELSERVE_API_KEYS_FILE": str(keys)}, monkeypatch)
    assert settings.require_gpu is bool(gpu_devices(service))  # a GPU service refuses to run on CPU
    # docker stops a container with SIGKILL after stop_grace_period: let the drain finish first
    assert seconds(service["stop_grace_period"]) > settings.shutdown_delay_s + settings.shutdown_timeout_s
    assert service["volumes"] == ["./models:/models:ro"]
    assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "service.healthcheck"]
    assert service["restart"] == "unless-stopped"


def test_gpu_reservations_profiles_and_ports() -> None:
    all_services = services()
    for name in ("api", "api-replica", "train"):
        assert gpu_devices(all_services[name]) == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for name in ("api-cpu", "train-cpu", "lb"):
        assert gpu_devices(all_services[name]) == []
    assert "profiles" not in all_services["api"]  # `docker compose up` starts the GPU API
    assert all_services["api"]["ports"] == ["8000:8000"]
    assert all_services["api-cpu"]["build"]["args"] == {"VARIANT": "cpu"}
    assert all_services["api-replica"]["deploy"]["replicas"] == "3"
    assert "ports" not in all_services["api-replica"]  # reached through the load balancer only
    assert {tuple(all_services[name]["profiles"]) for name in ("api-replica", "lb")} == {("scale",)}


def test_training_writes_versions_into_the_repository_the_api_reads() -> None:
    all_services = services()
    for name in ("train", "train-cpu"):
        train = all_services[name]
        assert train["build"]["target"] == "train"
        assert train["entrypoint"] == ["train-and-export"]
        assert "./models:/models" in train["volumes"]  # read-write, the same directory as the API's
        assert train["command"][0] in {"digits", "sentiment", "pretrain", "finetune", "caption"}


def test_the_load_balancer_reaches_the_replicas() -> None:
    lb = services()["lb"]
    source, target, _ = lb["volumes"][0].split(":")
    assert target == "/etc/nginx/nginx.conf" and (ROOT / source).is_file()
    conf = (ROOT / source).read_text()
    (upstream,) = re.findall(r"^\s*server\s+(\S+)\s+resolve", conf, flags=re.MULTILINE)
    assert upstream == f"api-replica:{Settings.model_fields['port'].default}"
    (listen,) = re.findall(r"^\s*listen\s+(\d+);", conf, flags=re.MULTILINE)
    assert lb["ports"] == [f"8080:{listen}"]
    assert lb["depends_on"] == {"api-replica": {"condition": "service_healthy"}}
    assert re.match(r"nginx:\d+\.\d+\.\d+", lb["image"])  # `resolve` in upstream needs nginx >= 1.27.3
    (body_limit,) = re.findall(r"^\s*client_max_body_size\s+(\d+)m;", conf, flags=re.MULTILINE)
    # bounded (0 would buffer any body to disk), and above what the service itself refuses with its error
    assert Settings.model_fields["max_upload_bytes"].default < int(body_limit) * 2**20 <= 2**25


def test_the_batch_jobs_read_inputs_and_models_and_write_predictions() -> None:
    all_services = services()
    for name, gpu in (("batch", True), ("batch-cpu", False)):
        job = all_services[name]
        assert job["entrypoint"] == ["python", "-m", "service.batch"]
        assert job["build"]["target"] == "api"  # the serving image: the same runtimes, no torch
        assert job["profiles"] == [name]
        assert job["volumes"] == ["./models:/models:ro", "./data:/input:ro", "./predictions:/output"]
        assert environment(job)["MODELSERVE_MODELS_DIR"] == "/models"
        assert bool(gpu_devices(job)) is gpu
        assert job["healthcheck"] == {"disable": True}


def test_every_setting_is_reachable_from_dotenv() -> None:
    """.env.example names every setting, and the services that run the service read .env."""
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^# (MODELSERVE_[A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert named == {PREFIX + name.upper() for name in Settings.model_fields}
    assert unknown_settings(named) == []
    for name, service in services().items():
        if not name.startswith(("lb", "train")):
            assert service["env_file"] == [{"path": ".env", "required": False}], name


def test_the_multi_gpu_override_pins_one_gpu_per_replica() -> None:
    """docker/compose.multi-gpu.yml: a service per GPU, each pinned to its own device, all reachable under
    the alias the load balancer resolves, and the load balancer waiting for each."""

    class ComposeLoader(yaml.SafeLoader):
        pass

    ComposeLoader.add_constructor("!override", lambda loader, node: loader.construct_mapping(node, deep=True))
    override = yaml.load((ROOT / "docker/compose.multi-gpu.yml").read_text(), Loader=ComposeLoader)
    replicas = {name: s for name, s in override["services"].items() if name.startswith("api-gpu")}
    devices = [
        s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for s in replicas.values()
    ]
    assert devices == [[str(i)] for i in range(len(replicas))] and len(replicas) >= 2
    for service in replicas.values():
        assert service["extends"] == {"file": "../docker-compose.yml", "service": "api-replica"}
        assert service["networks"]["default"]["aliases"] == ["api-replica"]
    assert set(override["services"]["lb"]["depends_on"]) == set(replicas)
    assert "api-replica" in (ROOT / "docker/nginx.conf").read_text()
