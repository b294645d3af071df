"""torchvision ResNet backbones and their initialisation (ImageNet, a saved state dict, or random)."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.error import URLError

import torch
import torchvision
from torch import nn

ARCHS = ("resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_resnet(arch: str, num_classes: int) -> nn.Module:
    """Build a randomly initialised torchvision ResNet with a ``num_classes`` head."""
    if arch not in ARCHS:
        raise ValueError(f"unsupported arch {arch!r}; supported: {', '.join(ARCHS)}")
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


def _imagenet_state_dict(model: nn.Module, option: str) -> tuple[dict[str, torch.Tensor], str]:
    arch = getattr(model, "arch", None)
    if arch not in ARCHS:
        raise ValueError(f"{option} imagenet needs a model built by build_resnet (unknown architecture)")
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
            "initialisation"
        ) from exc
    return state_dict, f"torchvision {arch} {weights} (ImageNet-1k)"


def load_backbone_weights(model: nn.Module, weights: str | None, *, option: str = "--weights") -> str:
    """Initialise ``model`` from ``weights`` and return a one-line description for provenance.

    ``"imagenet"`` downloads torchvision's default weights for the architecture; a path loads a state dict
    or a project checkpoint; ``None`` keeps the random initialisation. Tensors whose shapes differ (the
    ``fc`` head when class counts differ) are skipped; it is an error when no backbone tensor matches.
    ``option`` is the command-line option that gave ``weights`` (``--weights``, ``--init``,
    ``--encoder-weights``), named in every error message. A failed ImageNet download is a
    ``ConnectionError`` that says so and names the alternatives.
    """
    if weights is None or weights in ("", "none"):
        return "random initialisation"
    if weights == "imagenet":
        source, description = _imagenet_state_dict(model, option)
    else:
        source, description = _read_state_dict(Path(weights), option)
    target = model.state_dict()
    matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    if not any(not k.startswith("fc.") for k in matched):
        raise ValueError(
            f"{option} {weights}: no tensor matches the {len(target)} tensors of this model "
            "(wrong architecture?)"
        )
    model.load_state_dict(matched, strict=False)
    skipped = sorted({k.split(".")[0] for k in target if k not in matched})
    note = f"; re-initialised: {', '.join(skipped)}" if skipped else ""
    return f"{description}: {len(matched)}/{len(target)} tensors loaded{note}"
