"""Encoder features for a whole dataset, computed once and cached while the encoder is frozen.

With a frozen encoder every epoch would recompute identical ResNet features; on a CPU that is most of the
time of an epoch. The cache file is keyed by the encoder weights, the preprocessing and the image list,
so a different backbone or dataset never reads stale features.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from training.errors import NumericalError
from training.presets import ImagePreset

FLOAT16_MAX = torch.finfo(torch.float16).max  # 65,504: what the cache's float16 holds


class ImageFiles(Dataset):
    """Preprocessed pixels (``transform`` applied) of a list of image files."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            return self.transform(image)


def cache_key(encoder: nn.Module, paths: Sequence[Path], preset: ImagePreset) -> str:
    """sha256 over the encoder's tensors (their names included, so a part of an encoder cut by
    ``ImageEncoder.split`` never shares a key with the whole), the preprocessing and the image paths."""
    digest = hashlib.sha256()
    for name, tensor in encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps([preset.manifest(), [str(p) for p in paths]], sort_keys=True).encode())
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_images(
    encoder: nn.Module,
    paths: Sequence[Path],
    preset: ImagePreset,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 0,
) -> torch.Tensor:
    """What ``encoder`` outputs for every image (float16, on the CPU), in eval mode: features [N, L, D]
    for an :class:`ImageEncoder`, maps [N, C, h, w] for the front of one (``ImageEncoder.split``).
    Outputs that are not finite or beyond float16's range raise :class:`NumericalError` (float16 would
    hold them as inf, and training would fail later on a traceback far from the cause)."""
    encoder.eval().to(device)
    loader = DataLoader(
        ImageFiles(paths, preset.eval_transform()), batch_size=batch_size, num_workers=workers
    )
    chunks = []
    for pixels in tqdm(loader, desc="encoding images", unit="batch", leave=False):
        outputs = encoder(pixels.to(device))
        largest = float(outputs.abs().max())
        if not largest <= FLOAT16_MAX:  # nan fails this too
            raise NumericalError(
                f"the image encoder's outputs reach {largest:.3g}, beyond the {FLOAT16_MAX:,.0f} that the "
                "float16 feature cache holds: its weights have diverged (a fine-tuned encoder: a lower "
                "--encoder-lr)"
            )
        chunks.append(outputs.half().cpu())
    return torch.cat(chunks)


def cached_features(
    encoder: nn.Module,
    paths: Sequence[Path],
    preset: ImagePreset,
    device: torch.device,
    cache_dir: Path | None,
    workers: int = 0,
) -> torch.Tensor:
    """:func:`encode_images`, read from or written to ``cache_dir/features-<key>.pt`` when given."""
    if cache_dir is None:
        return encode_images(encoder, paths, preset, device, workers=workers)
    path = Path(cache_dir) / f"features-{cache_key(encoder, paths, preset)}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu")
    features = encode_images(encoder, paths, preset, device, workers=workers)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(features, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    return features
