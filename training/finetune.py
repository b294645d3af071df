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
    arch_spec,
    build_image_model,
    hold_frozen_norms,
    imagenet_state_dict,
    load_backbone_weights,
)
from training.data.images import limit, load_image_folder
from training.provenance import provenance

KIND = "resnet"


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
