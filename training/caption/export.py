"""Export a captioner checkpoint to a model version: encoder.onnx, one-step decoder.onnx, tokenizer, card.

The export refuses to write a version unless onnxruntime matches PyTorch on the encoder and on decoder
steps over several batch sizes, and whole beam searches give the same ids in both.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from contract.versions import next_version, write_version
from training import runs
from training.caption.card import render_card
from training.caption.model import KIND, AttentionDecoder, Captioner, CaptionerConfig, numpy_step
from training.caption.runtime import OnnxCaptioner
from training.caption.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from training.version import ParityError, check_onnx, onnx_parity

OPSET = 17
ENCODER_IO = {"pixels": "pixels", "features": "features", "h0": "h0", "c0": "c0", "projected": "projected"}
DECODER_IO = {
    "tokens": "tokens",
    "h": "h",
    "c": "c",
    "features": "features",
    "projected": "projected",
    "image_index": "image_index",
    "log_probs": "log_probs",
    "h_out": "h_out",
    "c_out": "c_out",
    "alpha": "alpha",
}
DECODER_INPUTS = ["tokens", "h", "c", "features", "projected", "image_index"]


class EncoderGraph(nn.Module):
    """pixels -> (features, h0, c0, projected): the backbone, the decoder's initial-state layers and the
    attention's projection of the features (once per image rather than at every step)."""

    def __init__(self, model: Captioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, h0, c0 = self.model.encode(pixels)
        return features, h0, c0, self.model.decoder.project(features)


class DecoderGraph(nn.Module):
    """(tokens, h, c [R]; features, projected [B]; image_index [R]) -> (log_probs, h_out, c_out, alpha):
    one decoding step for R rows of B images."""

    def __init__(self, decoder: AttentionDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self,
        tokens: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        features: torch.Tensor,
        projected: torch.Tensor,
        image_index: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        return self.decoder.step(tokens, h, c, features, projected, image_index)


def load_captioner(checkpoint_path: Path) -> tuple[Captioner, dict]:
    """Rebuild the network of a ``captioner`` checkpoint (eval mode) and return it with the checkpoint."""
    checkpoint = runs.load_checkpoint(checkpoint_path)
    if checkpoint["kind"] != KIND:
        raise ValueError(f"{checkpoint_path}: a {checkpoint['kind']!r} checkpoint, not {KIND!r}")
    model = Captioner(CaptionerConfig(**checkpoint["model_args"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint


def _tensor(name: str, dtype: str, shape: list[int]) -> dict:
    return {"name": name, "dtype": dtype, "shape": shape}


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    per_image: tuple[str, ...] = (),
) -> None:
    """Export with every first axis dynamic: ``batch`` (rows), or ``images`` for the ``per_image`` tensors
    when rows and images differ (the decoder)."""
    module.eval()  # a fresh wrapper is in training mode, and export restores that mode onto the whole model
    axes = {name: {0: "images" if name in per_image else "batch"} for name in inputs + outputs}
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        opset_version=OPSET,
        dynamic_axes=axes,
        dynamo=False,
    )
    check_onnx(path)


def _graphs(config: CaptionerConfig, size: list[int], positions: int) -> dict:
    d, h, v, a = config.feature_dim, config.hidden_dim, config.vocab_size, config.attention_dim
    assert d is not None, "feature_dim is filled in from the architecture before export"
    state = [_tensor("h", "float32", [-1, h]), _tensor("c", "float32", [-1, h])]
    per_image = [
        _tensor("features", "float32", [-1, positions, d]),
        _tensor("projected", "float32", [-1, positions, a]),
    ]
    return {
        "encoder": {
            "file": "encoder.onnx",
            "inputs": [_tensor("pixels", "float32", [-1, 3, *size])],
            "outputs": [
                per_image[0],
                _tensor("h0", "float32", [-1, h]),
                _tensor("c0", "float32", [-1, h]),
                per_image[1],
            ],
        },
        "decoder": {
            "file": "decoder.onnx",
            "inputs": [
                _tensor("tokens", "int64", [-1]),
                *state,
                *per_image,
                _tensor("image_index", "int64", [-1]),
            ],
            "outputs": [
                _tensor("log_probs", "float32", [-1, v]),
                _tensor("h_out", "float32", [-1, h]),
                _tensor("c_out", "float32", [-1, h]),
                _tensor("alpha", "float32", [-1, positions]),
            ],
        },
    }


def _check_parity(model: Captioner, directory: Path, manifest: dict, size: list[int]) -> dict:
    """Graph parity over batch sizes 1, 2, 5 and identical beam searches; return the worst differences."""
    rng = np.random.default_rng(0)
    pixel_feeds = [{"pixels": rng.standard_normal((b, 3, *size), dtype=np.float32)} for b in (1, 2, 5)]

    @torch.no_grad()
    def encoder_ref(pixels: np.ndarray) -> list[np.ndarray]:
        return [x.numpy() for x in EncoderGraph(model)(torch.from_numpy(pixels))]

    @torch.no_grad()
    def decoder_ref(**feed: np.ndarray) -> list[np.ndarray]:
        arrays = (torch.from_numpy(feed[name]) for name in DECODER_INPUTS)
        return [x.numpy() for x in model.decoder.step(*arrays)]

    worst_encoder = onnx_parity(directory / "encoder.onnx", encoder_ref, pixel_feeds)
    decoder_feeds = []
    for feed in pixel_feeds:  # two rows per image, as beams are, in an order that mixes the images
        features, h, c, projected = encoder_ref(feed["pixels"])
        image_index = rng.permutation(np.repeat(np.arange(len(features)), 2))
        tokens = rng.integers(0, model.config.vocab_size, len(image_index), dtype=np.int64)
        decoder_feeds.append(
            {
                "tokens": tokens,
                "h": h[image_index],
                "c": c[image_index],
                "features": features,
                "projected": projected,
                "image_index": image_index,
            }
        )
    worst_decoder = onnx_parity(directory / "decoder.onnx", decoder_ref, decoder_feeds)
    onnx_model = OnnxCaptioner(directory, manifest)
    pixels = pixel_feeds[-1]["pixels"][:3]
    features, h0, c0, _ = encoder_ref(pixels)
    step = numpy_step(model.decoder, torch.device("cpu"), features)
    for beam_size in (1, 3):
        expected = [hyp.tokens for hyp in onnx_model.decode(step, h0, c0, beam_size)]
        got = [hyp.tokens for hyp in onnx_model.search(pixels, beam_size)]
        if got != expected:
            raise ParityError(
                f"beam search (beam size {beam_size}) differs: onnxruntime {got}, PyTorch {expected}"
            )
    return {
        "encoder_max_abs_diff": worst_encoder,
        "decoder_max_abs_diff": worst_decoder,
        "beam_search": "identical ids for beam sizes 1 and 3",
    }


def export_version(
    checkpoint_path: Path,
    out_root: Path,
    name: str,
    version: int | None = None,
    notes: list[str] | None = None,
    length_penalty: float = 0.0,
    no_repeat_ngram: int = 0,
) -> Path:
    """Write ``out_root/name/<version>/`` from a captioner checkpoint (or run directory); return its path.
    ``notes`` are known limits of this version, listed in its card."""
    model, checkpoint = load_captioner(checkpoint_path)
    config, image = model.config, checkpoint["image"]
    tokenizer = Tokenizer.from_str(checkpoint["tokenizer"])
    with torch.no_grad():
        pixels = torch.zeros(2, 3, *image["size"])
        features, h0, c0, projected = EncoderGraph(model)(pixels)
        image_index = torch.tensor([0, 0, 1])  # rows differ from images in number, as beams make them
    caption = {
        "tokenizer": "tokenizer.json",
        "bos_id": BOS_ID,
        "eos_id": EOS_ID,
        "pad_id": PAD_ID,
        "unk_id": UNK_ID,
        "max_length": checkpoint["max_length"],
        "length_penalty": length_penalty,
        "no_repeat_ngram_size": no_repeat_ngram,
        "encoder": dict(ENCODER_IO),
        "decoder": dict(DECODER_IO),
    }
    dataset = checkpoint["provenance"]["dataset"]["name"]
    version = version or next_version(Path(out_root) / name)
    manifest = {
        "task": "image-captioning",
        "name": name,
        "version": version,
        "description": f"Show, Attend and Tell image captioner ({config.arch} encoder, "
        f"soft-attention LSTM decoder) trained on {dataset}",
        "graphs": _graphs(config, image["size"], features.shape[1]),
        "image": image,
        "caption": caption,
        "metrics": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        tokens = torch.full((3,), BOS_ID, dtype=torch.long)
        _export(
            EncoderGraph(model),
            (pixels,),
            directory / "encoder.onnx",
            ["pixels"],
            ["features", "h0", "c0", "projected"],
        )
        _export(
            DecoderGraph(model.decoder),
            (tokens, h0[image_index], c0[image_index], features, projected, image_index),
            directory / "decoder.onnx",
            DECODER_INPUTS,
            ["log_probs", "h_out", "c_out", "alpha"],
            per_image=("features", "projected"),
        )
        tokenizer.save(str(directory / "tokenizer.json"))
        parity = _check_parity(model, directory, manifest, image["size"])
        manifest["provenance"] = {
            **checkpoint["provenance"],
            "checkpoint": str(runs.find_checkpoint(checkpoint_path)),
            "training_time_s": checkpoint.get("training_time_s"),
            "epoch_seconds": checkpoint.get("epoch_seconds"),
            "training_metrics": checkpoint.get("metrics", {}),
            "samples": checkpoint.get("samples", []),
            "export_parity": parity,
            "opset": OPSET,
            "notes": list(notes or []),
        }
        files = {file: directory / file for file in ("encoder.onnx", "decoder.onnx", "tokenizer.json")}
        version_dir = write_version(
            out_root, name, manifest, {**files, "card.md": render_card(manifest)}, manifest["version"]
        )
    print(f"exported {version_dir} (parity: {parity})", flush=True)
    return version_dir
