"""The two-stage freeze policy and ``--weights`` loading (state dict, project checkpoint, mismatch)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training import runs  # noqa: E402
from training.backbone import build_image_model, load_backbone_weights  # noqa: E402
from training.caption.model import ImageEncoder  # noqa: E402
from training.finetune import set_stage  # noqa: E402


def test_stage_one_trains_only_the_head_and_stage_two_adds_layer4() -> None:
    model = build_image_model("resnet18", 2)
    head = set_stage(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"} and len(head) == 2
    optimizer = torch.optim.SGD(set_stage(model, 2), lr=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    in_optimizer = {names[id(p)] for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith(("fc.", "layer4.")) for n in in_optimizer)
    assert any(n.startswith("layer4.") for n in in_optimizer)
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith(("conv1", "layer3")))


def _same(a: torch.nn.Module, b: torch.nn.Module, prefix: str) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if k.startswith(prefix))


def test_weights_from_state_dict_and_checkpoint(tmp_path: Path) -> None:
    source = build_image_model("resnet18", 10)
    torch.save(source.state_dict(), tmp_path / "state.pt")
    runs.save_checkpoint(
        tmp_path / "checkpoint.pt",
        kind="resnet",
        model=source,
        model_args={"arch": "resnet18", "num_classes": 10},
        extra={},
    )
    for path in (tmp_path / "state.pt", tmp_path / "checkpoint.pt"):
        target = build_image_model("resnet18", 2)
        description = load_backbone_weights(target, str(path))
        assert _same(source, target, "layer") and _same(source, target, "conv1")
        assert "re-initialised: fc" in description
    assert load_backbone_weights(build_image_model("resnet18", 2), None) == "random initialisation"


def test_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_backbone_weights(build_image_model("resnet18", 2), str(tmp_path / "missing.pt"))
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no tensor matches"):
        load_backbone_weights(build_image_model("resnet18", 2), str(tmp_path / "other.pt"))


def test_weights_errors_name_the_option_the_user_gave(tmp_path: Path) -> None:
    """``pretrain --init`` and ``caption --encoder-weights`` load through the same code as ``finetune
    --weights``; their messages named --weights, an option those commands do not have."""
    missing = tmp_path / "missing.pt"
    with pytest.raises(FileNotFoundError, match=r"^--init .*missing\.pt: no such file$"):
        load_backbone_weights(build_image_model("resnet18", 2), str(missing), option="--init")
    with pytest.raises(FileNotFoundError, match=r"^--encoder-weights .*missing\.pt: no such file$"):
        ImageEncoder("resnet18", str(missing))
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"^--init .*other\.pt: no tensor matches"):
        load_backbone_weights(build_image_model("resnet18", 2), str(tmp_path / "other.pt"), option="--init")
    with pytest.raises(FileNotFoundError, match=r"^--weights "):  # finetune's option stays the default
        load_backbone_weights(build_image_model("resnet18", 2), str(missing))
