"""The naive baseline: FastAPI with PyTorch eager, one request at a time, no batching, serving the same
weights as the service (each version's checkpoint, named by its manifest's ``provenance.checkpoint``, or
``<name>.pt`` in the folder of ``--checkpoints``).

    python -m bench.naive_server --models-dir /tmp/bench-models --port 8100

Same endpoints and fields as the service's /v1 (``files``, ``text``, ``beam_size``), simpler answers.
PyTorch runs on the GPU when there is one (``--device auto``), so that on a GPU host the baseline is
PyTorch eager on that GPU, not on the CPU; ``GET /info`` says which device it used.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
from pathlib import Path
from typing import Annotated, Any

import torch
import uvicorn
from fastapi import FastAPI, File, Form, UploadFile
from PIL import Image, ImageOps
from pydantic import BaseModel
from tokenizers import Tokenizer

from bench.checkpoints import naive_checkpoint
from contract import beam
from contract.versions import discover
from training.caption.export import load_captioner
from training.caption.model import numpy_step
from training.caption.vocab import decode_caption
from training.export import build_model
from training.presets import ImagePreset
from training.runs import load_checkpoint

TASK_MODELS = {
    "image-classification": "pets-resnet18",
    "sentiment": "sentiment-lstm",
    "image-captioning": "captioner",
}


def latest_manifest(models_dir: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """The highest version directory of ``name`` and its manifest."""
    latest = max((v for v in discover(models_dir) if v.name == name), key=lambda v: v.version)
    return latest.path, json.loads((latest.path / "manifest.json").read_text())


def _image(data: bytes) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")


class SentimentBody(BaseModel):
    text: str


def resolve_device(name: str) -> torch.device:
    """``auto``: the first CUDA device if torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def checkpoint_of(manifest: dict[str, Any], checkpoints: Path | None) -> Path:
    named = manifest["provenance"].get("checkpoint")
    path = naive_checkpoint(manifest["name"], named, checkpoints)
    if path is None:
        where = checkpoints / f"{manifest['name']}.pt" if checkpoints else named
        raise SystemExit(f"no training checkpoint of {manifest['name']} at {where}")
    return path


def create_app(
    models_dir: Path, device: torch.device | None = None, checkpoints: Path | None = None
) -> FastAPI:
    device = device or torch.device("cpu")
    app = FastAPI(title="naive")
    one_at_a_time = threading.Lock()  # the endpoints are sync: FastAPI runs them in threads; serialise

    directory, manifest = latest_manifest(models_dir, TASK_MODELS["image-classification"])
    classifier = build_model(load_checkpoint(checkpoint_of(manifest, checkpoints))).to(device)
    classify_transform = ImagePreset(
        **{**manifest["image"], "size": tuple(manifest["image"]["size"])}
    ).eval_transform()
    labels = manifest["labels"]

    @app.post("/v1/classify-image")
    def classify(files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
        with one_at_a_time, torch.no_grad():
            results = []
            for upload in files:
                x = classify_transform(_image(upload.file.read())).unsqueeze(0).to(device)
                probabilities = classifier(x).softmax(-1)[0]
                top = probabilities.topk(min(5, len(labels)))
                results.append([(labels[i], float(p)) for p, i in zip(top.values, top.indices, strict=True)])
            return {"results": results}

    directory, manifest = latest_manifest(models_dir, TASK_MODELS["sentiment"])
    sentiment = build_model(load_checkpoint(checkpoint_of(manifest, checkpoints))).to(device)
    text_tokenizer = Tokenizer.from_file(str(directory / manifest["text"]["tokenizer"]))
    text_spec, sentiment_labels = manifest["text"], manifest["labels"]

    @app.post("/v1/sentiment")
    def classify_text(body: SentimentBody) -> dict[str, Any]:
        with one_at_a_time, torch.no_grad():
            ids = text_tokenizer.encode(body.text).ids[: text_spec["max_length"]] or [text_spec["unk_id"]]
            logits = sentiment(torch.tensor([ids], device=device), torch.tensor([len(ids)], device=device))
            probabilities = logits.softmax(-1)[0]
            return {
                "label": sentiment_labels[int(probabilities.argmax())],
                "probability": float(probabilities.max()),
            }

    directory, manifest = latest_manifest(models_dir, TASK_MODELS["image-captioning"])
    captioner, checkpoint = load_captioner(checkpoint_of(manifest, checkpoints))
    captioner.eval().to(device)
    caption_transform = ImagePreset(
        **{**manifest["image"], "size": tuple(manifest["image"]["size"])}
    ).eval_transform()
    caption_tokenizer = Tokenizer.from_str(checkpoint["tokenizer"])
    caption_spec = manifest["caption"]
    banned = beam.banned_tokens(
        bos_id=caption_spec["bos_id"], pad_id=caption_spec["pad_id"], unk_id=caption_spec["unk_id"]
    )

    @app.post("/v1/caption")
    def caption(
        files: Annotated[list[UploadFile], File()], beam_size: Annotated[int, Form()] = 3
    ) -> dict[str, Any]:
        with one_at_a_time, torch.no_grad():
            results = []
            for upload in files:
                pixels = caption_transform(_image(upload.file.read())).unsqueeze(0).to(device)
                features, h, c = captioner.encode(pixels)
                (best,) = beam.decode(
                    numpy_step(captioner.decoder, device, features),
                    h.cpu().numpy(),
                    c.cpu().numpy(),
                    bos_id=caption_spec["bos_id"],
                    eos_id=caption_spec["eos_id"],
                    max_length=caption_spec["max_length"],
                    beam_size=beam_size,
                    length_penalty=caption_spec.get("length_penalty", 1.0),
                    banned=banned,
                )
                results.append(decode_caption(caption_tokenizer, best.tokens))
            return {"results": results}

    @app.get("/info")
    def info() -> dict[str, str]:
        return {"device": str(device), "torch": torch.__version__}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch decides)")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA if seen), cpu, cuda:0")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        help="a folder of <model name>.pt checkpoints, instead of each manifest's provenance.checkpoint",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    app = create_app(args.models_dir, resolve_device(args.device), args.checkpoints)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
