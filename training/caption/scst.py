"""Self-critical sequence training (Rennie et al. 2017) of a trained captioner's decoder.

Cross-entropy teaches the decoder the next word of a reference given the reference so far; at test time
it is fed its own words and judged on whole captions. Self-critical training closes that gap: for each
training image the decoder samples ``k`` captions, each scored by CIDEr-D against the image's references,
and the log-probability of a caption is pushed up by how much it beats the mean of the image's other
samples (the baseline of Luo 2020; no greedy pass needed), down when it falls short. The encoder stays
frozen, so its cached features serve (``training.caption.features``), and the checkpoint written has the
starting run's form: ``python -m training export`` takes it unchanged.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer

from contract import beam
from training import engine, runs
from training.caption.bleu import SentenceBleu
from training.caption.cider import CiderD
from training.caption.data import load_split
from training.caption.evaluate import preset_from_manifest
from training.caption.export import load_captioner
from training.caption.features import cached_features
from training.caption.loop import caption_features, dev_bleu, sample_captions
from training.caption.model import KIND, AttentionDecoder
from training.caption.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, encode_caption
from training.provenance import provenance
from training.version import UnsuitableVersion

BANNED = beam.banned_tokens(bos_id=BOS_ID, pad_id=PAD_ID, unk_id=UNK_ID)


def sample(
    decoder: AttentionDecoder, features: torch.Tensor, k: int, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` captions per image of ``features`` [B, L, D], sampled word by word from the decoder (the
    service's banned tokens never drawn). Returns tokens [B * k, T] (``<end>`` included, ``<pad>`` after)
    and each caption's summed log-probability [B * k], differentiable."""
    rows, device = features.shape[0] * k, features.device
    image = torch.arange(features.shape[0], device=device).repeat_interleave(k)
    projected = decoder.project(features)
    h, c = (x[image] for x in decoder.init_state(features))
    tokens = torch.full((rows,), BOS_ID, dtype=torch.long, device=device)
    alive = torch.ones(rows, dtype=torch.bool, device=device)
    banned = torch.zeros(decoder.fc.out_features, dtype=torch.bool, device=device)
    banned[list(BANNED)] = True
    chosen, total = [], torch.zeros(rows, device=device)
    for _ in range(max_length):
        log_probs, h, c, _ = decoder.step(tokens, h, c, features, projected, image)
        log_probs = torch.log_softmax(log_probs.masked_fill(banned, float("-inf")), dim=1)
        with torch.no_grad():
            drawn = torch.multinomial(log_probs.exp(), 1).squeeze(1)
        tokens = torch.where(alive, drawn, PAD_ID)
        total = total + log_probs.gather(1, drawn.unsqueeze(1)).squeeze(1) * alive
        chosen.append(tokens)
        alive = alive & (drawn != EOS_ID)
        if not alive.any():
            break
    return torch.stack(chosen, dim=1), total


def words(row: torch.Tensor) -> list[int]:
    """A sampled caption's word ids: up to ``<end>``, without it."""
    ids = row.tolist()
    return ids[: ids.index(EOS_ID)] if EOS_ID in ids else [i for i in ids if i != PAD_ID]


def _epoch(
    decoder: AttentionDecoder,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    reward_of: Callable[[list[int], int], float],
    generator: torch.Generator,
    epoch: int,
    max_length: int,
    args: argparse.Namespace,
    device: torch.device,
) -> float:
    """One self-critical pass over the training images (``features`` [N, L, D]); their mean reward."""
    decoder.train()
    rewards = []
    bar = engine.progress(
        torch.randperm(len(features), generator=generator).split(args.batch_size),
        f"epoch {epoch} self-critical",
    )
    for batch in bar:
        tokens, log_prob = sample(decoder, features[batch].float().to(device), args.samples, max_length)
        tokens = tokens.cpu()
        images = batch.repeat_interleave(args.samples).tolist()
        reward = torch.tensor([reward_of(words(row), i) for row, i in zip(tokens, images, strict=True)])
        reward = reward.view(-1, args.samples)
        baseline = (reward.sum(dim=1, keepdim=True) - reward) / (args.samples - 1)
        loss = -((reward - baseline).view(-1).to(device) * log_prob).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), args.grad_clip)
        optimizer.step()
        rewards.append(float(reward.mean()))
        bar.set_postfix(reward=f"{sum(rewards) / len(rewards):.3f}", refresh=False)
    return sum(rewards) / len(rewards)


def self_critical(args: argparse.Namespace) -> Path:
    """Fine-tune the decoder of the captioner run ``args.run`` per ``args`` (see ``cli``); return the run."""
    with engine.setup(args) as (device, run_dir):
        started = time.time()
        try:
            model, checkpoint = load_captioner(args.run)
        except ValueError as exc:  # a checkpoint of another kind: one line, exit status 2
            raise UnsuitableVersion(f"caption-scst: {exc}") from None
        model.to(device)
        tokenizer = Tokenizer.from_str(checkpoint["tokenizer"])
        max_length = int(checkpoint["max_length"])
        preset = preset_from_manifest(checkpoint["image"])
        train_items, dev_items = (load_split(args.data, split) for split in ("train", "dev"))
        if args.limit:
            train_items, dev_items = train_items[: args.limit], dev_items[: args.limit]
        features = cached_features(
            model.encoder,
            [item.path for item in train_items + dev_items],
            preset,
            device,
            args.cache_dir or args.out / "cache",
            args.workers,
        )
        train_features, dev_features = features[: len(train_items)], features[len(train_items) :]
        bleu_items = dev_items[: args.bleu_images or None]
        references = [
            [encode_caption(tokenizer, c, max_length)[1:-1] for c in item.captions] for item in train_items
        ]
        cider, bleu = CiderD(references), SentenceBleu(references)

        def reward_of(caption: list[int], image: int) -> float:
            score = cider.score(caption, image)
            return score + args.bleu_weight * bleu.score(caption, image) if args.bleu_weight else score

        optimizer = torch.optim.Adam(model.decoder.parameters(), lr=args.lr)
        generator = torch.Generator().manual_seed(args.seed)

        def dev_scores() -> dict[str, float]:
            captions = caption_features(
                model, dev_features[: len(bleu_items)], tokenizer, device, max_length, args.beam_size
            )
            return dev_bleu(captions, bleu_items)

        start = dev_scores()
        print(f"epoch 0 (the starting run): dev BLEU-1 {start['bleu1']:.3f} BLEU-4 {start['bleu4']:.3f}")
        history: dict[str, list[float]] = {f"dev_{k}": [v] for k, v in start.items()}
        history.update(train_reward=[float("nan")], train_seconds=[0.0])
        best = {"epoch": 0, **{f"dev_{k}": v for k, v in start.items()}}
        best_state = {k: v.detach().clone() for k, v in model.decoder.state_dict().items()}
        for epoch in range(1, args.epochs + 1):
            tick = time.time()
            try:
                reward = _epoch(
                    model.decoder,
                    optimizer,
                    train_features,
                    reward_of,
                    generator,
                    epoch,
                    max_length,
                    args,
                    device,
                )
            except KeyboardInterrupt:  # Ctrl-C: stop here, keep the best finished epoch
                print(f"interrupted during epoch {epoch}: keeping epoch {best['epoch']}", flush=True)
                break
            seconds = time.time() - tick
            scores = dev_scores()
            history["train_reward"].append(reward)
            history["train_seconds"].append(seconds)
            for key, value in scores.items():
                history[f"dev_{key}"].append(value)
            print(
                f"epoch {epoch}: sampled reward {reward:.3f} ({seconds:.0f}s) | dev "
                f"BLEU-1 {scores['bleu1']:.3f} BLEU-4 {scores['bleu4']:.3f} (beam {args.beam_size}, "
                f"{len(bleu_items)} images)",
                flush=True,
            )
            if args.keep == "last" or scores["bleu4"] > best["dev_bleu4"]:
                best = {"epoch": epoch, **{f"dev_{k}": v for k, v in scores.items()}}
                best_state = {k: v.detach().clone() for k, v in model.decoder.state_dict().items()}
        model.decoder.load_state_dict(best_state)
        training_time = round(time.time() - started, 1)
        metrics = {
            "dev": {k.removeprefix("dev_"): v for k, v in best.items() if k.startswith("dev_")},
            "best_epoch": best["epoch"],
            "history": history,
            "bleu_images": len(bleu_items),
            "bleu_decoding": f"beam {args.beam_size}",
            "training_time_s": training_time,
        }
        runs.save_metrics(run_dir, metrics)
        runs.plot_curves(run_dir, {k: v[1:] for k, v in history.items() if k != "train_seconds"})
        tokenizer.save(str(run_dir / "tokenizer.json"))
        previous = checkpoint.get("provenance", {})
        samples = sample_captions(model, dev_features[:5], dev_items[:5], tokenizer, device, max_length)
        (run_dir / "samples.json").write_text(json.dumps(samples, indent=2) + "\n")
        extra = {
            **{key: checkpoint[key] for key in ("tokenizer", "image", "max_length")},
            "samples": samples,
            "metrics": {k: metrics[k] for k in ("dev", "best_epoch", "bleu_images", "bleu_decoding")},
            "training_time_s": round(float(checkpoint.get("training_time_s", 0.0)) + training_time, 1),
            "epoch_seconds": [
                *checkpoint.get("epoch_seconds", []),
                *(round(s, 1) for s in history["train_seconds"][1:]),
            ],
            "provenance": provenance(
                args.data,
                seed=args.seed,
                device=device,
                recipe="caption + caption-scst",
                reward=f"CIDEr-D + {args.bleu_weight:g} x BLEU-4" if args.bleu_weight else "CIDEr-D",
                initialisation=previous.get("initialisation", "unknown"),
                encoder=previous.get("encoder", "frozen"),  # the starting run's, unchanged here
                cross_entropy_run=str(runs.find_checkpoint(args.run)),
                cross_entropy_recipe=previous,
            ),
        }
        runs.save_checkpoint(
            run_dir / runs.CHECKPOINT_NAME,
            kind=KIND,
            model=model,
            model_args=checkpoint["model_args"],
            extra=extra,
        )
        print(f"run written to {run_dir} (best epoch {best['epoch']}: dev BLEU-4 {best['dev_bleu4']:.3f})")
    return run_dir
