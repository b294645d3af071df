"""Training the captioner: teacher forcing with attention regularisation, dev loss and BLEU every epoch."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from training import engine, runs
from training.caption.data import CaptionedImage, load_split
from training.caption.features import ImageFiles, cached_features, encode_images
from training.caption.loop import (
    CaptionPairs,
    caption_features,
    collate,
    dev_bleu,
    run_epoch,
    sample_captions,
)
from training.caption.model import KIND, Captioner, CaptionerConfig
from training.caption.vocab import build_tokenizer
from training.presets import ImagePreset, resnet_preset
from training.provenance import provenance


def _limit(items: list[CaptionedImage], limit: int) -> list[CaptionedImage]:
    return items[:limit] if limit else items


def _optimizer(model: Captioner, tail: nn.Module | None, args: argparse.Namespace) -> torch.optim.Optimizer:
    """Adam over the decoder at --lr and what is trained of the encoder (all of it, or the ``tail`` of
    --tune-stages) at --encoder-lr; the rest of the encoder is frozen."""
    groups = [{"params": list(model.decoder.parameters()), "lr": args.lr}]
    if args.fine_tune_encoder:
        groups.append({"params": list(model.encoder.parameters()), "lr": args.encoder_lr})
    else:
        model.encoder.requires_grad_(False)
        if tail is not None:
            tail.requires_grad_(True)
            groups.append({"params": list(tail.parameters()), "lr": args.encoder_lr})
    return torch.optim.Adam(groups, weight_decay=args.weight_decay)


def train(args: argparse.Namespace) -> Path:
    """Train a captioner per ``args`` (see ``cli.register``); return the run directory."""
    with engine.setup(args) as (device, run_dir):
        started = time.time()
        train_items, dev_items = (
            _limit(load_split(args.data, split), args.limit) for split in ("train", "dev")
        )
        tokenizer = build_tokenizer(
            (c for item in train_items for c in item.captions), args.min_freq, args.max_vocab or None
        )
        config = CaptionerConfig(
            tokenizer.get_vocab_size(),
            args.arch,
            None,
            args.embed_dim,
            args.attention_dim,
            args.hidden_dim,
            args.dropout,
            args.feature_layer or ("head" if args.arch.startswith("efficientnet") else "layer4"),
        )
        model = Captioner(config, args.encoder_weights)
        print(
            f"vocabulary: {config.vocab_size} tokens; encoder: {model.encoder.weights_description}",
            flush=True,
        )
        model.to(device)
        preset = resnet_preset(args.image_size, crop=False, arch=args.arch)
        cached = not args.fine_tune_encoder
        # --tune-stages: the frozen front's maps are cached, the tail runs (and learns) every step
        front, tail = model.encoder.split(args.tune_stages) if args.tune_stages else (model.encoder, None)
        images = _image_sources(front, train_items, dev_items, preset, device, args, cached)
        loaders = [
            DataLoader(
                CaptionPairs(items, images[i], tokenizer, args.max_length),
                args.batch_size,
                shuffle=i == 0,
                collate_fn=collate,
                num_workers=0 if cached else args.workers,
                generator=torch.Generator().manual_seed(args.seed),
            )
            for i, items in enumerate((train_items, dev_items))
        ]
        optimizer = _optimizer(model, tail, args)
        scheduler = (
            engine.one_cycle(
                optimizer,
                [group["lr"] for group in optimizer.param_groups],
                args.epochs * len(loaders[0]),
                pct_start=0.1,
            )
            if args.one_cycle
            else None
        )
        bleu_items = dev_items[: args.bleu_images or None]
        history: dict[str, list[float]] = {}
        best: dict = {"dev_bleu4": -1.0}
        interrupted = None
        for epoch in range(1, args.epochs + 1):
            tick = time.time()
            try:
                train_stats = run_epoch(
                    model,
                    loaders[0],
                    device,
                    f"epoch {epoch} train",
                    cached=cached,
                    tail=tail,
                    optimizer=optimizer,
                    alpha_c=args.alpha_c,
                    grad_clip=args.grad_clip,
                    label_smoothing=args.label_smoothing,
                    scheduler=scheduler,
                )
            except KeyboardInterrupt:
                if "state" not in best:
                    raise
                interrupted = epoch  # Ctrl-C: stop here and keep the best finished epoch
                print(f"interrupted during epoch {epoch}: keeping epoch {best['epoch']}", flush=True)
                break
            seconds = time.time() - tick
            dev_stats = run_epoch(model, loaders[1], device, f"epoch {epoch} dev", cached=cached, tail=tail)
            features = _features(model, tail, images[1], bleu_items, preset, device, cached)
            bleu = dev_bleu(caption_features(model, features, tokenizer, device, args.max_length), bleu_items)
            stats = {
                **{f"train_{k}": v for k, v in train_stats.items()},
                "train_seconds": seconds,
                **{f"dev_{k}": v for k, v in {**dev_stats, **bleu}.items()},
            }
            for key, value in stats.items():
                history.setdefault(key, []).append(value)
            print(
                f"epoch {epoch}: train loss {train_stats['loss']:.3f} acc {train_stats['accuracy']:.3f} "
                f"({seconds:.0f}s) | dev loss {dev_stats['loss']:.3f} acc {dev_stats['accuracy']:.3f} "
                f"BLEU-1 {bleu['bleu1']:.3f} BLEU-4 {bleu['bleu4']:.3f} (greedy, {len(bleu_items)} images)",
                flush=True,
            )
            if stats["dev_bleu4"] > best["dev_bleu4"]:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = {"epoch": epoch, **stats, "state": state}
        model.load_state_dict(best.pop("state"))
        samples = _samples(model, tail, images[1], dev_items, preset, tokenizer, device, args)
        metrics = {
            "dev": {k.removeprefix("dev_"): v for k, v in best.items() if k.startswith("dev_")},
            "best_epoch": best["epoch"],
            "history": history,
            "bleu_images": len(bleu_items),
            "bleu_decoding": "greedy",
            "training_time_s": round(time.time() - started, 1),
            "epochs_completed": len(history["train_seconds"]),
            "interrupted_in_epoch": interrupted,
        }
        runs.save_metrics(run_dir, metrics)
        runs.plot_curves(run_dir, {k: v for k, v in history.items() if k != "train_seconds"})
        (run_dir / "samples.json").write_text(json.dumps(samples, indent=2) + "\n")
        tokenizer.save(str(run_dir / "tokenizer.json"))
        extra = {
            "tokenizer": tokenizer.to_str(),
            "image": preset.manifest(),
            "max_length": args.max_length,
            "metrics": {
                "dev": metrics["dev"],
                "best_epoch": best["epoch"],
                "bleu_images": len(bleu_items),
                "epochs_completed": metrics["epochs_completed"],
            },
            "samples": samples,
            "training_time_s": metrics["training_time_s"],
            "epoch_seconds": [round(s, 1) for s in history["train_seconds"]],
            "provenance": provenance(
                args.data,
                seed=args.seed,
                device=device,
                recipe="caption",
                initialisation=model.encoder.weights_description,
                encoder=_encoder_training(args),
            ),
        }
        runs.save_checkpoint(
            run_dir / runs.CHECKPOINT_NAME,
            kind=KIND,
            model=model,
            model_args=asdict(model.config),
            extra=extra,
        )
        print(
            f"run written to {run_dir} (best epoch {best['epoch']}: dev BLEU-4 {best['dev_bleu4']:.3f})",
            flush=True,
        )
    return run_dir


def _encoder_training(args: argparse.Namespace) -> str:
    """How the encoder was trained, for provenance."""
    if args.fine_tune_encoder:
        return "fine-tuned"
    if args.tune_stages:
        return f"last {args.tune_stages} stage(s) fine-tuned, the rest frozen"
    return "frozen"


def _image_sources(
    encoder: nn.Module,
    train_items: list[CaptionedImage],
    dev_items: list[CaptionedImage],
    preset: ImagePreset,
    device: torch.device,
    args: argparse.Namespace,
    cached: bool,
) -> list[Dataset | torch.Tensor]:
    """[train, dev] images: what ``encoder`` (the frozen encoder or front) outputs, cached once, when the
    encoder is not fine-tuned as a whole; else pixel datasets."""
    if not cached:
        return [
            ImageFiles([item.path for item in items], preset.eval_transform())
            for items in (train_items, dev_items)
        ]
    paths = [item.path for item in train_items + dev_items]
    features = cached_features(
        encoder, paths, preset, device, args.cache_dir or args.out / "cache", args.workers
    )
    return [features[: len(train_items)], features[len(train_items) :]]


def _features(
    model: Captioner,
    tail: nn.Module | None,
    dev_images: Dataset | torch.Tensor,
    items: list[CaptionedImage],
    preset: ImagePreset,
    device: torch.device,
    cached: bool,
) -> torch.Tensor:
    """Encoder features of ``items`` (the first dev images): from the cache (through ``tail`` when
    given), or encoded now."""
    if cached:
        assert isinstance(dev_images, torch.Tensor)
        if tail is None:
            return dev_images[: len(items)]
        with torch.no_grad():
            return tail(dev_images[: len(items)].float().to(device)).cpu()
    return encode_images(model.encoder, [item.path for item in items], preset, device)


def _samples(
    model: Captioner,
    tail: nn.Module | None,
    dev_images: Dataset | torch.Tensor,
    dev_items: list[CaptionedImage],
    preset: ImagePreset,
    tokenizer: Tokenizer,
    device: torch.device,
    args: argparse.Namespace,
    count: int = 5,
    beam_size: int = 3,
) -> list[dict]:
    """Beam-search captions of the first dev images, beside their references."""
    items = dev_items[:count]
    features = _features(model, tail, dev_images, items, preset, device, not args.fine_tune_encoder)
    return sample_captions(model, features, items, tokenizer, device, args.max_length, beam_size)
