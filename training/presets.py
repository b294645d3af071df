"""Image transform presets: the eval preprocessing is defined once and written into the manifest."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2 as T

from training.backbone import IMAGENET_MEAN, IMAGENET_STD, arch_spec


class ConvertMode:
    """Convert a PIL image to a colour mode ("RGB" or "L"); a class so data workers can pickle it."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.convert(self.mode)


class Invert:
    """x -> 1 - x on a [0, 1] tensor (dark-on-light images for a light-on-dark model)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return 1 - x


@dataclass
class ImagePreset:
    """The manifest's ``image`` block; ``eval_transform`` is the torchvision version of it."""

    size: tuple[int, int]
    resize: int | None = None
    color_mode: str = "RGB"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    invert: bool = False

    def _tail(self) -> list:
        tail = [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
        if self.invert:
            tail.append(Invert())
        return [*tail, T.Normalize(list(self.mean), list(self.std))]

    def eval_transform(self) -> T.Compose:
        """Decode-time preprocessing the service reproduces from the manifest."""
        bilinear = T.InterpolationMode.BILINEAR
        geometry = (
            [T.Resize(self.resize, interpolation=bilinear), T.CenterCrop(self.size)]
            if self.resize is not None
            else [T.Resize(self.size, interpolation=bilinear)]
        )
        return T.Compose([ConvertMode(self.color_mode), *geometry, *self._tail()])

    def train_transform(self, augment: list) -> T.Compose:
        """Training preprocessing: ``augment`` (PIL-level geometry) replaces the eval resize and crop."""
        return T.Compose([ConvertMode(self.color_mode), *augment, *self._tail()])

    def manifest(self) -> dict:
        """The ``image`` block of the manifest (models/README.md)."""
        return {
            "color_mode": self.color_mode,
            "resize": self.resize,
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "invert": self.invert,
        }


def digits_preset() -> ImagePreset:
    """MNIST: 28x28 grey, white digit on black, dataset mean and std."""
    return ImagePreset(size=(28, 28), color_mode="L", mean=(0.1307,), std=(0.3081,))


def resnet_preset(image_size: int, crop: bool = True, arch: str = "resnet18") -> ImagePreset:
    """ImageNet-style: resize the short side to size/0.875 and center-crop, or resize straight to size;
    normalised as ``arch``'s ImageNet weights expect (EfficientNet-Lite: mean = std = 0.5)."""
    spec = arch_spec(arch)
    return ImagePreset(
        size=(image_size, image_size),
        resize=round(image_size / 0.875) if crop else None,
        mean=spec.mean,
        std=spec.std,
    )


def resnet_augment(image_size: int, min_scale: float) -> list:
    """Random resized crop and horizontal flip."""
    return [T.RandomResizedCrop(image_size, scale=(min_scale, 1.0), antialias=True), T.RandomHorizontalFlip()]


def digits_augment() -> list:
    """A small random affine: a few degrees, pixels and percent of scale."""
    return [T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))]
