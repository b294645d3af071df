"""The GPU benchmarks in one short device loan: ``pack`` here, ``stage`` each part there, ``go`` there.

A device call sends this checkout's working tree (at most 64 MiB) to a GPU machine that reaches no
package index and has PyTorch but not onnxruntime-gpu or the service's web stack. What the benchmarks need
from here (those wheels, the benchmarked models, the captioner's training checkpoint for the naive
server, the batch benchmark's data) is about six times that, so it travels as one xz-compressed bundle
cut into parts that each fit a call, staged there (``.gpu-stage``, ignored) while the machine stays warm:

    python -m bench.device pack                 # here: .gpu/plan.json, .gpu/part-01 ... (ignored by git)
    mv models ../models.aside                   # here: the tracked models/ (139 MiB) must not travel
    python3 -m bench.device stage .gpu/part-01  # there, one call per part; carry .gpu/plan.json and it
    ...
    python3 -m bench.device go --part .gpu/part-06 --out "$OUT"   # there: the last part, then everything
    mv ../models.aside models                   # here, after the last call

``go`` checks each part's and the bundle's sha256, unpacks the bundle, installs its wheels with pip
(``--no-index --no-deps --target``), puts the host's CUDA and cuDNN libraries (PyTorch's ``nvidia``
wheels) on ``LD_LIBRARY_PATH``, writes random-weight checkpoints at the trained architecture for the
naive server where the trained one did not travel (the same network does the same work), then runs each
step under its own time limit inside ``--budget-s``: the environment, ``service.gpu_check``,
``bench.caption_steps``, ``bench.run --workers 1,4,8 --load-processes 4`` and ``bench.batch``. Their
output and chart land in ``--out`` (at most 8 files: what a call brings back). While the machine is warm,
``go --steps run,batch`` reruns steps without unpacking or installing again.

Only the standard library (and ``bench.checkpoints``, which imports nothing else) is imported at module
level: the device's Python has none of this project's dependencies until ``go`` has installed them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.checkpoints import REBUILDABLE, ROOT, naive_checkpoint

PACK_DIR = ROOT / ".gpu"
PLAN = "plan.json"
# there: in the checkout, where a warm machine keeps ignored files between calls
STAGE_DIR = ROOT / ".gpu-stage"
MIB = 1 << 20
CALL_LIMIT_MIB = 64  # what one device call sends: the working tree and the carried paths together
DEVICE_PYTHON = "3.12"  # the device image's python3 (.library/device/KINDS.md)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# The device image's Python packages: their wheels stay here, the rest of the service's travel.
DEVICE_PACKAGES = Path(__file__).with_name("device-image-packages.txt")
BENCH_MODELS = ("pets-resnet18", "sentiment-lstm", "captioner")  # bench.run's and bench.batch's models
BATCH_DATA = ("cats_vs_dogs/validation", "imdb/test.csv.gz")  # bench.batch's, under its --data
IMPORT_CHECK = (
    "import fastapi, uvicorn, pydantic_settings, multipart, fastapi_offline, onnxruntime as ort; "
    "print('onnxruntime', ort.__version__, 'from', ort.__file__); "
    "print('available providers:', ', '.join(ort.get_available_providers()))"
)


class DeviceError(Exception):
    """A problem this command explains in one line (exit status 2)."""


# ---------------------------------------------------------------------------------------------- pack


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The service's dependencies from ``pyproject.toml``, each pinned to the version installed here when
    there is one (the version the tests ran against), markers kept."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    pinned = []
    for line in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        with contextlib.suppress(PackageNotFoundError):
            requirement.specifier &= f"=={version(requirement.name)}"
        pinned.append(str(requirement))
    return pinned


def pip() -> list[str]:
    """pip: this Python's, or (a uv-made environment has none) the first ``python3`` on the PATH's."""
    if _has_module("pip"):
        return [sys.executable, "-m", "pip"]
    python3 = shutil.which("python3")
    if python3 is None:
        raise DeviceError("no pip here: install pip in this environment")
    return [python3, "-m", "pip"]


def download_wheels(requirements: Sequence[str], into: Path, python: str) -> list[Path]:
    """Every wheel the requirements need on the device (CPython ``python``, manylinux x86-64), with
    their dependencies, from the package index."""
    command = [*pip(), "download", "--quiet", "--only-binary=:all:", "--dest", str(into)]
    command += ["--python-version", python, "--implementation", "cp"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    done = subprocess.run([*command, *requirements], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise DeviceError(f"pip download failed: {last}")
    return sorted(into.glob("*.whl"))


def project_of(wheel: Path) -> str:
    """A wheel file's normalised project name (``Pydantic_Settings-2.3-...`` -> ``pydantic-settings``)."""
    return wheel.name.split("-")[0].lower().replace("_", "-").replace(".", "-")


def device_packages(path: Path = DEVICE_PACKAGES) -> frozenset[str]:
    """The normalised names of the packages the device's image has."""
    names = (line.strip() for line in path.read_text().splitlines())
    return frozenset(n.lower().replace("_", "-") for n in names if n and not n.startswith("#"))


def wheels_to_carry(wheels: Iterable[Path], present: frozenset[str]) -> list[Path]:
    """The wheels of the packages the device's image lacks (those it has are built against by its
    PyTorch, onnx and the rest, so their versions stay as they are there)."""
    return [wheel for wheel in wheels if project_of(wheel) not in present]


def stored_copy(wheel: Path, into: Path) -> Path:
    """``wheel`` rewritten without compression (the same members, so its RECORD still holds), so that the
    bundle's xz compresses its contents rather than deflate's output."""
    copy = into / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            stored = zipfile.ZipInfo(info.filename, info.date_time)
            stored.external_attr = info.external_attr
            target.writestr(stored, source.read(info), zipfile.ZIP_STORED)
    return copy


def latest_version_dir(models_dir: Path, name: str) -> Path:
    versions = [
        p for p in (models_dir / name).glob("*") if p.name.isdigit() and (p / "manifest.json").is_file()
    ]
    if not versions:
        raise DeviceError(f"no version of {name} in {models_dir}")
    return max(versions, key=lambda p: int(p.name))


def trained_checkpoint(version_dir: Path) -> Path | None:
    """The training checkpoint a version's manifest names, when it is on this machine."""
    manifest = json.loads((version_dir / "manifest.json").read_text())
    return naive_checkpoint(manifest["name"], manifest.get("provenance", {}).get("checkpoint"))


def blocks(path: Path) -> Iterator[bytes]:
    """``path``'s bytes, a MiB at a time."""
    with path.open("rb") as file:
        while block := file.read(MIB):
            yield block


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    for block in blocks(path):
        digest.update(block)
    return digest.hexdigest()


def compress(tar: Path, xz: Path) -> None:
    """xz of ``tar``: the ``xz`` program on every core where there is one, else Python's lzma."""
    if shutil.which("xz"):
        with xz.open("wb") as out:
            subprocess.run(["xz", "-6", "-T0", "-c", str(tar)], stdout=out, check=True)
    else:
        import lzma

        with tar.open("rb") as source, lzma.open(xz, "wb", preset=6) as target:
            shutil.copyfileobj(source, target, MIB)


def split(bundle: Path, out: Path, part_bytes: int) -> list[dict]:
    """``bundle`` cut into ``out/part-NN`` of at most ``part_bytes``, each with its size and sha256."""
    parts = []
    with bundle.open("rb") as source:
        for number in range(1, 100):
            block = source.read(part_bytes)
            if not block:
                break
            name = f"part-{number:02d}"
            (out / name).write_bytes(block)
            parts.append({"file": name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
        else:
            raise DeviceError("more than 99 parts: raise --part-mib")
    return parts


def pack(
    out: Path,
    models_dir: Path,
    data_dir: Path | None,
    part_mib: float,
    python: str = DEVICE_PYTHON,
    wheels: Sequence[Path] | None = None,
    models: Sequence[str] = BENCH_MODELS,
) -> dict:
    """Write ``out/plan.json`` and ``out/part-NN``: the bundle of wheels (downloaded for ``python`` unless
    ``wheels`` are given), the latest version of each of ``models``, their training checkpoints where
    they are here, and the batch benchmark's data from ``data_dir``. Returns the plan."""
    if out.exists():
        earlier = [p for p in out.iterdir() if p.name == PLAN or p.name.startswith("part-")]
        others = sorted(p.name for p in out.iterdir() if p not in earlier)
        if others:
            raise DeviceError(
                f"{out} holds other files than a pack's ({', '.join(others[:3])}): choose another --out"
            )
        for path in earlier:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    plan: dict = {"python": python, "wheels": [], "models": {}, "checkpoints": {}, "data": []}
    with tempfile.TemporaryDirectory(prefix="gpu-pack-") as scratch_name:
        scratch = Path(scratch_name)
        if wheels is None:
            (scratch / "downloaded").mkdir()
            wheels = download_wheels(project_requirements(), scratch / "downloaded", python)
        (scratch / "wheels").mkdir()
        tar_path = scratch / "bundle.tar"
        with tarfile.open(tar_path, "w") as tar:
            for wheel in wheels_to_carry(wheels, device_packages()):
                tar.add(stored_copy(wheel, scratch / "wheels"), f"wheels/{wheel.name}")
                plan["wheels"].append(wheel.name)
            for name in models:
                version_dir = latest_version_dir(models_dir, name)
                tar.add(version_dir, f"models/{name}/{version_dir.name}")
                plan["models"][name] = int(version_dir.name)
                checkpoint = trained_checkpoint(version_dir)
                if checkpoint is not None:
                    tar.add(checkpoint, f"checkpoints/{name}.pt")
                plan["checkpoints"][name] = (
                    "trained"
                    if checkpoint
                    else "random weights, same network"
                    if name in REBUILDABLE
                    else "none: the naive server will not start"
                )
            for item in BATCH_DATA if data_dir else ():
                assert data_dir is not None
                if (data_dir / item).exists():
                    tar.add(data_dir / item, f"data/{item}")
                    plan["data"].append(item)
        bundle = scratch / "bundle.tar.xz"
        compress(tar_path, bundle)
        plan["bytes"], plan["sha256"] = bundle.stat().st_size, sha256_of(bundle)
        plan["parts"] = split(bundle, out, int(part_mib * MIB))
    (out / PLAN).write_text(json.dumps(plan, indent=1) + "\n")
    return plan


def travelling_mib(root: Path = ROOT, without: Sequence[str] = ()) -> float:
    """What a device call sends from ``root`` besides its carried paths, in MiB: tracked files that are
    there and untracked files git does not ignore, except those under the folders ``without``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    names = {n for n in listed.decode().split("\0") if n and not any(n.startswith(f"{w}/") for w in without)}
    paths = [root / name for name in names]
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink()) / MIB


def largest_part_mib(tree_mib: float) -> float:
    """The largest part a call can carry beside a working tree of ``tree_mib`` (and the plan), in whole
    MiB, with 1.5 MiB to spare."""
    largest = float(int(CALL_LIMIT_MIB - tree_mib - 1.5))
    if largest < 8:
        raise DeviceError(
            f"the working tree is {tree_mib:.1f} MiB: too little of a call's {CALL_LIMIT_MIB} is left"
        )
    return largest


def calls(plan: dict, out: Path, timeout_s: int = 600) -> list[str]:
    """The device calls that stage the parts and run everything, in order, as text to follow (paths
    relative to the checkout: a call carries only paths inside it)."""
    rel = out.relative_to(ROOT) if out.is_absolute() and out.is_relative_to(ROOT) else out
    plan_option = "" if rel == PACK_DIR.relative_to(ROOT) else f" --plan {rel}/{PLAN}"
    lines = []
    for entry in plan["parts"]:
        carry = json.dumps([f"{rel}/{PLAN}", f"{rel}/{entry['file']}"])
        if entry is not plan["parts"][-1]:
            command = f"python3 -m bench.device stage{plan_option} {rel}/{entry['file']}"
            lines.append(f"run command='{command}' carry={carry} timeout_s=120")
        else:
            command = f'python3 -m bench.device go{plan_option} --part {rel}/{entry["file"]} --out "$OUT"'
            lines.append(f"run command='{command}' carry={carry} timeout_s={timeout_s}")
    return lines


# ----------------------------------------------------------------------------------------- the device


def read_plan(path: Path) -> dict:
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeviceError(f"cannot read the plan {path}: {exc}") from exc
    if not isinstance(plan, dict) or not isinstance(plan.get("parts"), list) or "sha256" not in plan:
        raise DeviceError(f"{path} is not a plan written by 'python -m bench.device pack'")
    return plan


def stage(parts: Sequence[Path], plan: dict, stage_dir: Path) -> list[str]:
    """Check each part against the plan and copy it into ``stage_dir``; returns the plan's parts still
    missing there."""
    expected = {entry["file"]: entry for entry in plan["parts"]}
    stage_dir.mkdir(parents=True, exist_ok=True)
    for part in parts:
        entry = expected.get(part.name)
        if entry is None:
            raise DeviceError(f"{part.name} is not a part of this plan ({', '.join(expected)})")
        if not part.is_file():
            raise DeviceError(f"{part} is not here: name it in the call's carry")
        if sha256_of(part) != entry["sha256"]:
            raise DeviceError(f"{part} does not match the plan's sha256: pack again, or carry the right part")
        shutil.copyfile(part, stage_dir / part.name)
        print(f"staged {part.name} ({entry['bytes'] / MIB:.1f} MiB)", flush=True)
    return [
        name
        for name, entry in expected.items()
        if not (stage_dir / name).is_file() or (stage_dir / name).stat().st_size != entry["bytes"]
    ]


def unpack(plan: dict, stage_dir: Path) -> Path:
    """The bundle, unpacked into ``stage_dir/bundle`` once per plan (a marker holds the plan's sha256):
    its parts joined, checked against the plan's sha256, then extracted."""
    bundle_dir, marker = stage_dir / "bundle", stage_dir / "bundle.sha256"
    if marker.is_file() and marker.read_text() == plan["sha256"] and bundle_dir.is_dir():
        return bundle_dir
    joined = stage_dir / "bundle.tar.xz"
    digest = hashlib.sha256()
    with joined.open("wb") as target:
        for entry in plan["parts"]:
            for block in blocks(stage_dir / entry["file"]):
                digest.update(block)
                target.write(block)
    if digest.hexdigest() != plan["sha256"]:
        joined.unlink()
        raise DeviceError("the joined parts do not match the bundle's sha256: stage the parts again")
    shutil.rmtree(bundle_dir, ignore_errors=True)
    with tarfile.open(joined, "r:xz") as tar:
        tar.extractall(bundle_dir, filter="data")
    joined.unlink()
    marker.write_text(plan["sha256"])
    return bundle_dir


def pip_install(wheels: Sequence[Path], site: Path) -> None:
    command = [*pip(), "install", "--quiet", "--no-index", "--no-deps", "--no-compile"]
    command += ["--no-cache-dir", "--disable-pip-version-check", "--upgrade", "--target", str(site)]
    done = subprocess.run([*command, *map(str, wheels)], capture_output=True, text=True)
    if done.returncode != 0:
        raise DeviceError(f"pip install failed: {(done.stderr or done.stdout).strip()[-2000:]}")


def install(bundle_dir: Path, stage_dir: Path, extra: Sequence[Path] = ()) -> Path:
    """The bundle's wheels installed into ``stage_dir/site`` (once per bundle), then the ``extra`` ones
    (carried by this call, e.g. a newer version of a package the image has), nothing fetched."""
    site, marker = stage_dir / "site", stage_dir / "site.done"
    if not (marker.is_file() and marker.read_text() == str(bundle_dir) and site.is_dir()):
        shutil.rmtree(site, ignore_errors=True)
        pip_install(sorted((bundle_dir / "wheels").glob("*.whl")), site)
        marker.write_text(str(bundle_dir))
    if extra:
        pip_install(extra, site)
    return site


def unmet_requirements(site: Path) -> list[str]:
    """What the packages installed in ``site`` require and this Python does not have (with ``site``
    first on its path): a package of the image too old for a carried one, say. One line each."""
    from importlib.metadata import PackageNotFoundError, distributions, version

    from packaging.requirements import Requirement

    unmet = []
    for dist in distributions(path=[str(site)]):
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                have = version(requirement.name)
            except PackageNotFoundError:
                have = None
            if have is None or not requirement.specifier.contains(have, prereleases=True):
                unmet.append(
                    f"{dist.metadata['Name']} {dist.version} needs {requirement}, has {have or 'none'}"
                )
    return sorted(unmet)


def nvidia_library_dirs() -> list[str]:
    """The ``lib`` folders of the ``nvidia`` wheels this Python sees (CUDA, cuDNN, cuBLAS...: PyTorch's),
    where onnxruntime-gpu finds them through ``LD_LIBRARY_PATH``."""
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec else []
    found = []
    for root in roots:
        for lib in sorted(Path(root).rglob("lib")):
            if lib.is_dir() and any(lib.glob("*.so*")):
                found.append(str(lib))
    return found


def device_env(site: Path) -> dict[str, str]:
    """This environment with the installed wheels and the project first on the path and the CUDA
    libraries on the loader's path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*nvidia_library_dirs(), env.get("LD_LIBRARY_PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def machine() -> str:
    """One line about where this runs, without importing anything heavy: Python, pip, the GPUs
    ``nvidia-smi -L`` lists and the CUDA library folders ``go`` would put on the loader's path."""
    import platform

    smi = shutil.which("nvidia-smi")
    gpus = "no nvidia-smi"
    if smi:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout.strip()
        gpus = "; ".join(listed.splitlines()) or "nvidia-smi lists no GPU"
    has_pip = "pip" if _has_module("pip") else "no pip in this Python"
    libraries = nvidia_library_dirs()
    return (
        f"python {platform.python_version()} ({sys.executable}), {has_pip}; {gpus}; "
        f"{len(libraries)} nvidia library folders{': ' + ', '.join(libraries) if libraries else ''}"
    )


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]
    limit_s: float  # the most it may take; less when the budget has less left


def steps(bundle_dir: Path, checkpoints: Path, out: Path, duration: float, requests: int) -> list[Step]:
    """What ``go`` runs, in this order (the cheap and the decisive first)."""
    python, models = sys.executable, str(bundle_dir / "models")
    environment = (
        "import platform, shutil, subprocess, torch, onnxruntime as ort; "
        "print('python', platform.python_version(), '| torch', torch.__version__, '| onnxruntime', "
        "ort.__version__); print('available providers:', ', '.join(ort.get_available_providers())); "
        "smi = shutil.which('nvidia-smi'); "
        "print(subprocess.run([smi], capture_output=True, text=True).stdout if smi else 'no nvidia-smi')"
    )
    run = [python, "-m", "bench.run", "--models-dir", models, "--checkpoints", str(checkpoints)]
    run += ["--workers", "1,4,8", "--load-processes", "4", "--duration", str(duration)]
    run += ["--requests", str(requests), "--plot", str(out / "bench-report.png")]
    batch = [python, "-m", "bench.batch", "--models-dir", models, "--data", str(bundle_dir / "data")]
    batch += ["--engines", "embedded", "--raw-batch-sizes", "32,64", "--json", str(out / "bench-batch.json")]
    caption = [python, "-m", "bench.caption_steps", "--models-dir", models]
    caption += ["--requests-at-once", "1,16,32", "--rounds", "3"]
    return [
        Step("environment", [python, "-c", environment], 60),
        Step("gpu-check", [python, "-m", "service.gpu_check", "--models-dir", models, "--require-gpu"], 150),
        Step("caption-steps", caption, 150),
        Step("run", run, 420),
        Step("batch", batch, 240),
    ]


STEP_NAMES = tuple(step.name for step in steps(Path(), Path(), Path(), 1.0, 1))  # the options' choices


def naive_checkpoints(bundle_dir: Path, stage_dir: Path, env: dict[str, str], log: Log) -> Path:
    """``stage_dir/checkpoints/<name>.pt`` for every bundled model: the trained checkpoint where it
    travelled, else random weights at the same architecture (``bench.random_models --like``)."""
    folder = stage_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    for version_dir in sorted((bundle_dir / "models").glob("*/*")):
        name, target = version_dir.parent.name, folder / f"{version_dir.parent.name}.pt"
        carried = bundle_dir / "checkpoints" / f"{name}.pt"
        if carried.is_file():
            shutil.copyfile(carried, target)
            log.line(f"checkpoint {name}: trained (carried)")
        elif target.is_file():
            log.line(f"checkpoint {name}: made earlier")
        elif name not in REBUILDABLE:
            log.line(f"checkpoint {name}: none (not carried, and not rebuildable: the naive server fails)")
        else:
            command = [sys.executable, "-m", "bench.random_models", "--like", str(version_dir)]
            done = subprocess.run(
                [*command, "--checkpoint", str(target)], env=env, capture_output=True, text=True
            )
            log.line(f"checkpoint {name}: random weights, same network (exit {done.returncode})")
            if done.returncode != 0:
                log.line(done.stderr.strip()[-1500:])
    return folder


class Log:
    """Lines to standard output and to ``out/session.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = time.monotonic()

    def line(self, text: str) -> None:
        stamped = f"[{time.monotonic() - self.start:6.1f} s] {text}"
        print(stamped, flush=True)
        with self.path.open("a") as file:
            file.write(stamped + "\n")


def run_step(step: Step, limit_s: float, env: dict[str, str], out: Path) -> tuple[int | None, float]:
    """``step`` with its output in ``out/<name>.txt``; killed with everything it started (its process
    group) after ``limit_s``. Returns its exit status (None when killed) and its seconds."""
    started = time.monotonic()
    with (out / f"{step.name}.txt").open("w") as output:
        process = subprocess.Popen(
            step.command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            status: int | None = process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            status = None
    return status, time.monotonic() - started


def go(args: argparse.Namespace, plan: dict) -> int:
    deadline = time.monotonic() + args.budget_s
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "session.log")
    missing = stage(args.part, plan, args.stage)
    if missing:
        raise DeviceError(f"parts not staged yet: {', '.join(missing)}")
    log.line(f"all {len(plan['parts'])} parts staged; unpacking {plan['bytes'] / MIB:.0f} MiB")
    bundle_dir = unpack(plan, args.stage)
    log.line(f"unpacked; installing {len(plan['wheels'])} wheels")
    extra = sorted(args.extra_wheels.glob("*.whl")) if args.extra_wheels else []
    site = install(bundle_dir, args.stage, extra)
    env = device_env(site)
    check = f"from bench.device import unmet_requirements as u; print(*u({str(site)!r}), sep=chr(10))"
    done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    unmet = (done.stdout + done.stderr).strip()
    log.line(
        f"unmet requirements (carry newer wheels with --extra-wheels):\n{unmet}"
        if unmet
        else "requirements met"
    )
    done = subprocess.run([sys.executable, "-c", IMPORT_CHECK], env=env, capture_output=True, text=True)
    log.line((done.stdout + done.stderr).strip()[-1500:])
    if done.returncode != 0:
        raise DeviceError("the installed packages do not import (above)")
    checkpoints = naive_checkpoints(bundle_dir, args.stage, env, log)
    failed = 0
    for step in steps(bundle_dir, checkpoints, out, args.duration, args.requests):
        if step.name not in args.steps:
            continue
        left = deadline - time.monotonic()
        if left < 20:
            log.line(f"{step.name}: skipped, {left:.0f} s of the budget left")
            failed += 1
            continue
        if step.name == "batch" and not (bundle_dir / "data").is_dir():
            log.line("batch: skipped, the bundle holds no data (pack found none under --data)")
            failed += 1
            continue
        log.line(f"{step.name}: {' '.join(step.command[1:])}")
        status, seconds = run_step(step, min(step.limit_s, left), env, out)
        verdict = f"exit {status}" if status is not None else "killed at its time limit"
        log.line(f"{step.name}: {verdict} after {seconds:.0f} s (output: {step.name}.txt)")
        failed += status != 0
    log.line(f"done: {failed} step(s) not completed")
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------- cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.device",
        allow_abbrev=False,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack", allow_abbrev=False, help="here: the bundle's parts and plan")
    packing.add_argument(
        "--out", type=Path, default=PACK_DIR, help="default .gpu (an earlier pack there is replaced)"
    )
    packing.add_argument("--models-dir", type=Path, default=ROOT / "models")
    packing.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="bench.batch's")
    packing.add_argument(
        "--part-mib",
        type=float,
        help="largest part (default: what a call can carry beside the working tree without models/)",
    )
    packing.add_argument(
        "--python",
        default=DEVICE_PYTHON,
        help=f"the device's Python, for its wheels (default {DEVICE_PYTHON})",
    )
    for verb, text in (
        ("stage", "there: check parts and copy them out of the checkout"),
        ("go", "there: run"),
    ):
        sub = verbs.add_parser(verb, allow_abbrev=False, help=text)
        sub.add_argument("--plan", type=Path, default=PACK_DIR / PLAN)
        sub.add_argument("--stage", type=Path, default=STAGE_DIR, help=f"default {STAGE_DIR}")
        if verb == "stage":
            sub.add_argument("part", type=Path, nargs="+")
    running = verbs.choices["go"]
    running.add_argument("--part", type=Path, action="append", default=[], help="parts carried by this call")
    running.add_argument(
        "--extra-wheels",
        type=Path,
        help="a carried folder of wheels installed over the bundle's (e.g. newer)",
    )
    running.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    running.add_argument("--budget-s", type=float, default=540.0, help="all steps together (default 540)")
    running.add_argument(
        "--steps", default=",".join(STEP_NAMES), help="comma-separated, of: " + ", ".join(STEP_NAMES)
    )
    running.add_argument("--duration", type=float, default=3.0, help="bench.run's --duration (default 3)")
    running.add_argument("--requests", type=int, default=4000, help="bench.run's --requests (default 4000)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        if args.verb == "pack":
            tree = travelling_mib(without=("models",))
            part_mib = args.part_mib or largest_part_mib(tree)
            if not 0 < part_mib < CALL_LIMIT_MIB:
                p.error(f"--part-mib must be between 0 and {CALL_LIMIT_MIB}")
            plan = pack(args.out, args.models_dir, args.data, part_mib, args.python)
            print(
                f"{len(plan['parts'])} parts of at most {part_mib:g} MiB, {plan['bytes'] / MIB:.0f} MiB in "
                f"all, {len(plan['wheels'])} wheels; models {plan['models']}; "
                f"checkpoints {plan['checkpoints']}; data {plan['data']}"
            )
            print(
                f"a call sends the working tree ({tree:.1f} MiB without models/), the plan and one part: "
                f"at most {CALL_LIMIT_MIB} MiB"
            )
            if travelling_mib() - tree > 0.1:
                print("first: mv models ../models.aside (and back after the last call)")
            print("then, one call after the other while the machine is warm:")
            print("\n".join(calls(plan, args.out)))
            return 0
        plan = read_plan(args.plan)
        if args.verb == "stage":
            missing = stage(args.part, plan, args.stage)
            print(f"{len(plan['parts']) - len(missing)} of {len(plan['parts'])} parts staged in {args.stage}")
            print(machine())  # learnt early, in case the loan ends before go
            return 0
        for option in ("budget_s", "duration", "requests"):
            if getattr(args, option) <= 0:
                p.error(f"--{option.replace('_', '-')} must be positive")
        args.steps = args.steps.split(",")
        unknown = [s for s in args.steps if s not in STEP_NAMES]
        if unknown:
            p.error(f"--steps: unknown {', '.join(unknown)}; known: {', '.join(STEP_NAMES)}")
        return go(args, plan)
    except DeviceError as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
