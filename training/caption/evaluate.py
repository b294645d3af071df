"""Evaluate an exported captioner through onnxruntime and the service's beam search (contract.beam):
BLEU-1..4 against every reference."""

from __future__ import annotations

import time
from pathlib import Path

from torch.utils.data import DataLoader

from training.caption.bleu import bleu_scores
from training.caption.card import render_card
from training.caption.data import load_split
from training.caption.features import ImageFiles
from training.caption.runtime import OnnxCaptioner
from training.caption.vocab import clean_words
from training.engine import progress
from training.presets import ImagePreset
from training.version import update_manifest


def preset_from_manifest(image: dict) -> ImagePreset:
    """The preprocessing a manifest's ``image`` section describes."""
    return ImagePreset(
        size=tuple(image["size"]),
        resize=image["resize"],
        color_mode=image["color_mode"],
        mean=tuple(image["mean"]),
        std=tuple(image["std"]),
        invert=image["invert"],
    )


def caption_files(
    captioner: OnnxCaptioner,
    paths: list[Path],
    *,
    beam_size: int = 3,
    batch_size: int = 32,
    desc: str = "captioning",
) -> list[str]:
    """Captions of image files as evaluation makes them: the manifest's preprocessing (training's preset),
    the version's graphs, and the beam search the service runs, with its banned tokens."""
    transform = preset_from_manifest(captioner.image).eval_transform()
    loader = DataLoader(ImageFiles(paths, transform), batch_size=batch_size)
    captions: list[str] = []
    for pixels in progress(loader, desc):
        captions += captioner.caption(pixels.numpy(), beam_size)
    return captions


def evaluate_version(
    version_dir: Path,
    data: Path,
    split: str = "dev",
    beam_size: int = 3,
    batch_size: int = 32,
    limit: int = 0,
) -> dict:
    """BLEU-1..4 of the version's beam-search captions on ``data``/``split``; return the metrics.

    Records ``metrics[split]`` and an evaluation note (with sample captions) in the manifest, rewrites
    card.md, and refreshes the sha256 entries. ``limit`` evaluates only the first images (quick checks).
    """
    started = time.time()
    captioner = OnnxCaptioner(Path(version_dir))
    items = load_split(Path(data), split)
    items = items[:limit] if limit else items
    hypotheses = caption_files(
        captioner,
        [item.path for item in items],
        beam_size=beam_size,
        batch_size=batch_size,
        desc=f"captioning {split} (beam {beam_size})",
    )
    references = [[clean_words(ref) for ref in item.captions] for item in items]
    metrics = {
        **bleu_scores(references, [h.split() for h in hypotheses]),
        "images": len(items),
        "beam_size": beam_size,
    }
    manifest = captioner.manifest
    seconds = round(time.time() - started, 1)
    evaluation = {
        "split": split,
        "data": str(Path(data).resolve()),
        "seconds": seconds,
        "samples": [item.sample(caption) for item, caption in zip(items[:5], hypotheses, strict=False)],
    }
    changes = {
        "metrics": {**manifest.get("metrics", {}), split: metrics},
        "provenance": {**manifest.get("provenance", {}), f"evaluation_{split}": evaluation},
    }
    (Path(version_dir) / "card.md").write_text(render_card({**manifest, **changes}))
    update_manifest(Path(version_dir), **changes)
    print(
        f"{split}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("bleu"))
        + f" ({len(items)} images, beam size {beam_size})",
        flush=True,
    )
    return metrics
