"""The caption step report (bench/caption_steps.py) on the real tiny captioner: concurrent requests share
every decoder step (as many steps for four requests of the same photo as for one), each step's time is split
between onnxruntime and the rest, and the runtime gets its own sessions back afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench.caption_steps import load_captioner, main, measure
from bench.load import photo_jpeg
from service.preprocessing import load_pixels


def test_requests_at_once_share_each_decoder_step(per_image_repo: Path) -> None:
    runtime = load_captioner(per_image_repo, "tiny-captioner")
    runtime.warmup([1, 4])
    image = load_pixels(photo_jpeg(), runtime.settings.max_image_pixels, runtime.image_spec)[None]
    alone: list[int] = []
    step = runtime.step

    def counted(*args: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        alone.append(len(args[0]))
        return step(*args)

    runtime.step = counted  # type: ignore[method-assign]
    runtime.infer(image, runtime.default_max_length(), 3)
    runtime.step = step  # type: ignore[method-assign]

    result = measure(runtime, at_once=4, rounds=2, beam_size=3)
    assert result["steps"] == len(alone) > 0
    assert result["decoder_ms"] > 0 and result["other_ms"] > 0 and result["encoder_ms"] > 0
    assert result["captions_per_s"] > 0
    assert all(isinstance(s, ort.InferenceSession) for s in runtime.sessions.values())


def test_the_report_prints_a_row_per_request_count(
    per_image_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--models-dir", str(per_image_repo), "--model", "tiny-captioner", "--requests-at-once", "1,3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny-captioner v1 ran on decoder: ")
    rows = [line.split() for line in lines[2:4]]
    assert [row[0] for row in rows] == ["1", "3"]
    assert all(float(value) > 0 for row in rows for value in row[1:5])


def test_bad_arguments_are_refused(per_image_repo: Path) -> None:
    with pytest.raises(SystemExit, match="no model named 'missing'"):
        main(["--models-dir", str(per_image_repo), "--model", "missing"])
    with pytest.raises(SystemExit):
        main(["--models-dir", str(per_image_repo), "--model", "tiny-captioner", "--requests-at-once", "0"])
    with pytest.raises(SystemExit):
        main(["--models-dir", str(per_image_repo), "--model", "tiny-captioner", "--requests-at-once", "1,x"])
