"""``python -m bench.device``: a bundle packed here comes out whole there, part by part, or not at all.

Packing uses real tiny models, a real xz and real wheels (built here: no index is reached); staging checks
every part's sha256; unpacking checks the joined bundle's; installing is pip into a target folder."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from bench.device import (
    ROOT,
    DeviceError,
    Step,
    calls,
    install,
    largest_part_mib,
    main,
    pack,
    read_plan,
    run_step,
    stage,
    travelling_mib,
    unmet_requirements,
    unpack,
)
from tests.model_factory import make_repository


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel whose package ``name`` holds ``VERSION``, with a valid RECORD."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def packed(tmp_path: Path) -> tuple[Path, dict, Path, Path]:
    """A plan and its parts of at most 4 KiB: two tiny models, a little batch data and two wheels, one of
    a package the device's image has (numpy: it stays here)."""
    models = make_repository(tmp_path / "models")
    data = tmp_path / "data"
    (data / "cats_vs_dogs" / "validation").mkdir(parents=True)
    (data / "cats_vs_dogs" / "validation" / "cat.1.jpg").write_bytes(os.urandom(3000))
    (data / "imdb").mkdir()
    (data / "imdb" / "test.csv.gz").write_bytes(gzip.compress(b"text,label\ngood,1\n"))
    (tmp_path / "wheels").mkdir()
    wheels = [
        make_wheel(tmp_path / "wheels", "tinypkg", "1.0", ("numpy>=1", "surely-absent-package>=2")),
        make_wheel(tmp_path / "wheels", "numpy", "0.0.1"),
    ]
    out = tmp_path / "pack"
    plan = pack(out, models, data, 4 / 1024, "3.11", wheels, ("tiny-classifier", "tiny-sentiment"))
    return out, plan, models, data


def test_the_plan_names_every_part_with_its_size_and_sha256(packed: tuple[Path, dict, Path, Path]) -> None:
    out, plan, _, _ = packed
    assert read_plan(out / "plan.json") == plan
    assert plan["wheels"] == ["tinypkg-1.0-py3-none-any.whl"]  # numpy is on the device already
    assert plan["models"] == {"tiny-classifier": 1, "tiny-sentiment": 1}
    assert plan["data"] == ["cats_vs_dogs/validation", "imdb/test.csv.gz"]
    assert len(plan["parts"]) >= 2
    joined = b""
    for entry in plan["parts"]:
        data = (out / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"] <= 4096
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        joined += data
    assert hashlib.sha256(joined).hexdigest() == plan["sha256"]
    assert sorted(p.name for p in out.iterdir()) == sorted(["plan.json", *(e["file"] for e in plan["parts"])])


def test_parts_staged_one_call_at_a_time_unpack_and_install(
    packed: tuple[Path, dict, Path, Path], tmp_path: Path
) -> None:
    out, plan, models, data = packed
    staged = tmp_path / "stage"
    names = [entry["file"] for entry in plan["parts"]]
    for number, name in enumerate(names, 1):
        assert stage([out / name], plan, staged) == names[number:]

    bundle = unpack(plan, staged)
    model = models / "tiny-classifier" / "1"
    for file in model.iterdir():
        assert (bundle / "models" / "tiny-classifier" / "1" / file.name).read_bytes() == file.read_bytes()
    assert (bundle / "data" / "imdb" / "test.csv.gz").read_bytes() == (
        data / "imdb" / "test.csv.gz"
    ).read_bytes()
    with zipfile.ZipFile(bundle / "wheels" / "tinypkg-1.0-py3-none-any.whl") as wheel:
        # stored, not deflated: the bundle's xz compresses the contents
        assert {info.compress_type for info in wheel.infolist()} == {zipfile.ZIP_STORED}

    site = install(bundle, staged)
    assert (site / "tinypkg" / "__init__.py").read_text() == "VERSION = '1.0'\n"
    imported = subprocess.run(
        [sys.executable, "-c", "import tinypkg; print(tinypkg.VERSION)"],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout == "1.0\n"
    # numpy is here, the other is nowhere
    assert unmet_requirements(site) == ["tinypkg 1.0 needs surely-absent-package>=2, has none"]

    # a rerun on the warm machine neither needs the parts nor unpacks or installs again
    for name in names:
        (staged / name).unlink()
    installed = (site / "tinypkg" / "__init__.py").stat().st_mtime_ns
    assert unpack(plan, staged) == bundle
    assert install(bundle, staged) == site
    assert (site / "tinypkg" / "__init__.py").stat().st_mtime_ns == installed


def test_a_staging_call_says_what_is_staged_and_where_it_ran(
    packed: tuple[Path, dict, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, plan, _, _ = packed
    argv = ["stage", "--plan", str(out / "plan.json"), "--stage", str(tmp_path / "stage")]
    assert main([*argv, str(out / "part-01")]) == 0
    staged, where = capsys.readouterr().out.splitlines()[-2:]
    assert staged == f"1 of {len(plan['parts'])} parts staged in {tmp_path / 'stage'}"
    assert where.startswith(f"python {sys.version.split()[0]} ({sys.executable}), ")
    assert "nvidia library folders" in where


def test_a_part_that_does_not_match_the_plan_is_refused_and_not_staged(
    packed: tuple[Path, dict, Path, Path], tmp_path: Path
) -> None:
    out, plan, _, _ = packed
    first = plan["parts"][0]["file"]
    damaged = tmp_path / "damaged" / first
    damaged.parent.mkdir()
    data = bytearray((out / first).read_bytes())
    data[100] ^= 1
    damaged.write_bytes(bytes(data))
    staged = tmp_path / "stage"
    with pytest.raises(DeviceError, match=f"{first} does not match the plan's sha256"):
        stage([damaged], plan, staged)
    assert list(staged.iterdir()) == []
    with pytest.raises(DeviceError, match="is not a part of this plan"):
        stage([out / "plan.json"], plan, staged)


def test_a_bundle_that_does_not_join_to_the_plans_sha256_is_not_unpacked(
    packed: tuple[Path, dict, Path, Path], tmp_path: Path
) -> None:
    out, plan, _, _ = packed
    staged = tmp_path / "stage"
    stage([out / entry["file"] for entry in plan["parts"]], plan, staged)
    wrong = {**plan, "sha256": "0" * 64}
    with pytest.raises(DeviceError, match="do not match the bundle's sha256"):
        unpack(wrong, staged)
    assert not (staged / "bundle").exists()
    assert not (staged / "bundle.tar.xz").exists()


def test_go_names_the_parts_not_staged_and_runs_nothing(
    packed: tuple[Path, dict, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, plan, _, _ = packed
    staged, results = tmp_path / "stage", tmp_path / "out"
    first = plan["parts"][0]["file"]
    argv = ["go", "--plan", str(out / "plan.json"), "--stage", str(staged), "--out", str(results)]
    assert main([*argv, "--part", str(out / first)]) == 2
    rest = ", ".join(entry["file"] for entry in plan["parts"][1:])
    assert capsys.readouterr().err.strip() == f"python -m bench.device: error: parts not staged yet: {rest}"
    assert (staged / first).is_file()  # kept for the next call
    assert not (staged / "bundle").exists()


def test_a_step_past_its_limit_is_killed_with_what_it_started(tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(child)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)"
    )
    status, seconds = run_step(
        Step("sleepy", [sys.executable, "-c", script], 60), 2.0, dict(os.environ), tmp_path
    )
    assert status is None
    assert seconds < 30
    assert (tmp_path / "sleepy.txt").read_text() == "started\n"
    pid = int(child.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the step's child outlived it")


def test_the_plan_must_be_a_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plan.json").write_text(json.dumps({"parts": "no"}))
    assert main(["stage", "--plan", str(tmp_path / "plan.json"), str(tmp_path / "part-01")]) == 2
    assert "is not a plan written by 'python -m bench.device pack'" in capsys.readouterr().err


def test_a_pack_replaces_an_earlier_pack_but_nothing_else(tmp_path: Path) -> None:
    models = make_repository(tmp_path / "models")
    wheels = [make_wheel(tmp_path, "tinypkg", "1.0")]
    out = tmp_path / "pack"
    out.mkdir()
    (out / "part-09").write_bytes(b"from an earlier pack")
    plan = pack(out, models, None, 1.0, "3.11", wheels, ("tiny-sentiment",))
    assert sorted(p.name for p in out.iterdir()) == ["part-01", "plan.json"]
    assert plan["data"] == []
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DeviceError, match=r"holds other files than a pack's \(notes.txt\)"):
        pack(out, models, None, 1.0, "3.11", wheels, ("tiny-sentiment",))
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "part-01").is_file()


def test_the_calls_fit_the_device_tool(packed: tuple[Path, dict, Path, Path]) -> None:
    # one staging call per part, then go with the last; every path a call carries is in the checkout
    plan = packed[1]
    lines = calls(plan, ROOT / ".gpu")
    assert len(lines) == len(plan["parts"])
    for line, entry in zip(lines, plan["parts"], strict=True):
        command = line.split("command='")[1].split("' carry=")[0]
        carry = json.loads(line.split(" carry=")[1].split(" timeout_s=")[0])
        assert len(command) <= 2000
        assert carry == [".gpu/plan.json", f".gpu/{entry['file']}"]
        assert command.split()[4 if entry is not plan["parts"][-1] else 5] == f".gpu/{entry['file']}"
    assert lines[-1].split("command='")[1].startswith("python3 -m bench.device go --part")


def test_what_a_call_sends_and_the_part_beside_it(tmp_path: Path) -> None:
    # tracked and untracked-not-ignored files travel; ignored ones and (once moved out) models/ do not
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/ignored/\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "ignored").mkdir()
    for name, mib in (
        ("tracked.bin", 1.0),
        ("models/model.onnx", 3.0),
        ("untracked.bin", 0.5),
        ("ignored/x", 5),
    ):
        (tmp_path / name).write_bytes(b"\0" * int(mib * (1 << 20)))
    subprocess.run(["git", "add", "tracked.bin", "models/model.onnx"], cwd=tmp_path, check=True)
    extra = len("/ignored/\n") / (1 << 20)  # the .gitignore travels too
    assert travelling_mib(tmp_path) == pytest.approx(4.5 + extra)
    assert travelling_mib(tmp_path, without=("models",)) == pytest.approx(1.5 + extra)
    assert largest_part_mib(1.5) == 61.0
    with pytest.raises(DeviceError, match="too little of a call's 64 is left"):
        largest_part_mib(56.0)


def test_go_unpacks_installs_and_runs_the_steps_asked_for(
    packed: tuple[Path, dict, Path, Path], tmp_path: Path
) -> None:
    # the whole of go on the tiny bundle, with the cheapest step: the report names each stage, the
    # step's output lands in --out, and a rerun on the warm stage needs no parts
    out, plan, _, _ = packed
    staged, results = tmp_path / "stage", tmp_path / "out"
    parts = [str(out / entry["file"]) for entry in plan["parts"]]
    argv = ["go", "--plan", str(out / "plan.json"), "--stage", str(staged), "--out", str(results)]
    carried = [arg for part in parts for arg in ("--part", part)]
    assert main([*argv, *carried, "--steps", "environment"]) == 0
    log = (results / "session.log").read_text()
    assert f"all {len(parts)} parts staged" in log
    assert "unmet requirements" in log and "tinypkg 1.0 needs surely-absent-package>=2, has none" in log
    assert "available providers:" in log and "CPUExecutionProvider" in log
    # the tiny models are not benchmark models: no checkpoint can be made like them, and go says so
    assert "checkpoint tiny-classifier: none (not carried, and not rebuildable" in log
    assert "environment: exit 0" in log and log.rstrip().endswith("done: 0 step(s) not completed")
    assert "| onnxruntime" in (results / "environment.txt").read_text()
    assert sorted(p.name for p in results.iterdir()) == ["environment.txt", "session.log"]
    for part in parts:
        Path(part).unlink()
    assert main([*argv, "--steps", "environment"]) == 0
