"""The exported captioner run by onnxruntime, driven only by the version directory's manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from contract import beam
from contract.beam import Hypothesis, Step
from contract.decoding import decoder_feeds, decoder_step_outputs, encoder_outputs
from contract.manifest import CaptionSpec
from training.caption.vocab import decode_caption
from training.version import read_manifest


class OnnxCaptioner:
    """encoder.onnx + decoder.onnx + tokenizer.json of one model version, as the service would load them."""

    def __init__(self, version_dir: Path, manifest: dict | None = None) -> None:
        """Load the version in ``version_dir``; ``manifest``, when given, stands in for its manifest.json."""
        import onnxruntime as ort

        self.version_dir = Path(version_dir)
        self.manifest = read_manifest(self.version_dir) if manifest is None else manifest
        if self.manifest.get("task") != "image-captioning":
            raise ValueError(f"{version_dir}: task is {self.manifest.get('task')!r}, not 'image-captioning'")
        self.spec: dict = self.manifest["caption"]
        self.names = CaptionSpec.model_validate(self.spec)  # the graphs' tensor names, typed
        self.image: dict = self.manifest["image"]
        graphs = self.manifest["graphs"]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.encoder, self.decoder = (
            ort.InferenceSession(
                str(self.version_dir / graphs[key]["file"]), options, providers=["CPUExecutionProvider"]
            )
            for key in ("encoder", "decoder")
        )
        self.tokenizer = Tokenizer.from_file(str(self.version_dir / self.spec["tokenizer"]))

    def encode(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Preprocessed images [B, 3, H, W] -> (features, h0, c0, projected); ``projected`` is None for
        versions whose encoder does not compute it (their decoder projects at every step)."""
        names = self.names.encoder
        features, h0, c0, *projected = self.encoder.run(
            encoder_outputs(names), {names.pixels: pixels.astype(np.float32)}
        )
        return features, h0, c0, (projected[0] if projected else None)

    def step_for(self, features: np.ndarray, projected: np.ndarray | None) -> Step:
        """The decoder step (``contract.beam.Step``) over the images whose encoder outputs are given. Versions
        whose decoder has ``image_index`` take the features once per image; older ones, per row."""
        names = self.names.decoder

        def step(
            tokens: np.ndarray, h: np.ndarray, c: np.ndarray, images: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            feed, _ = decoder_feeds(names, tokens, h, c, images, features, projected)
            outputs = self.decoder.run(decoder_step_outputs(names), feed)
            return outputs[0], outputs[1], outputs[2]

        return step

    def decode(self, step: Step, h0: np.ndarray, c0: np.ndarray, beam_size: int = 3) -> list[Hypothesis]:
        """The best hypothesis per image of ``step``'s batch from their initial states, by the beam search
        the service runs, with this version's manifest's options (special tokens, ``max_length``,
        ``length_penalty``, ``no_repeat_ngram_size``); ``step`` may be this version's graphs or the
        PyTorch network (parity)."""
        spec = self.spec
        return beam.decode(
            step,
            h0,
            c0,
            bos_id=spec["bos_id"],
            eos_id=spec["eos_id"],
            max_length=spec["max_length"],
            beam_size=beam_size,
            length_penalty=spec.get("length_penalty", 1.0),
            no_repeat_ngram=spec.get("no_repeat_ngram_size", 0),
            banned=beam.banned_tokens(bos_id=spec["bos_id"], pad_id=spec["pad_id"], unk_id=spec["unk_id"]),
        )

    def search(self, pixels: np.ndarray, beam_size: int = 3) -> list[Hypothesis]:
        """The best hypothesis for each image of a preprocessed batch [B, 3, H, W]."""
        features, h0, c0, projected = self.encode(pixels)
        return self.decode(self.step_for(features, projected), h0, c0, beam_size)

    def caption(self, pixels: np.ndarray, beam_size: int = 3) -> list[str]:
        """Caption text for each image of a preprocessed batch."""
        return [decode_caption(self.tokenizer, hyp.tokens) for hyp in self.search(pixels, beam_size)]
