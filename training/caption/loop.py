"""The captioner's training and validation loop: caption pairs, the loss, one epoch, decoding and BLEU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from contract import beam
from training import engine
from training.caption.bleu import bleu_scores
from training.caption.data import CaptionedImage
from training.caption.model import Captioner, numpy_step
from training.caption.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, clean_words, decode_caption, encode_caption


class CaptionPairs(Dataset):
    """Every (image, caption) pair: ``images[i]`` (cached features or pixels) with one encoded caption."""

    def __init__(
        self,
        items: list[CaptionedImage],
        images: Dataset | torch.Tensor,
        tokenizer: Tokenizer,
        max_length: int,
    ) -> None:
        self.images = images
        self.pairs = [
            (index, torch.tensor(encode_caption(tokenizer, caption, max_length)))
            for index, item in enumerate(items)
            for caption in item.captions
        ]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, caption = self.pairs[index]
        return self.images[image], caption


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Stack the images, right-pad the captions with ``<pad>``; return (images, captions, lengths)."""
    images, captions = zip(*batch, strict=True)
    lengths = torch.tensor([len(c) for c in captions])
    padded = nn.utils.rnn.pad_sequence(list(captions), batch_first=True, padding_value=PAD_ID)
    return torch.stack(images), padded, lengths


def caption_loss(
    logits: torch.Tensor,
    alphas: torch.Tensor,
    captions: torch.Tensor,
    alpha_c: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(training loss, cross-entropy, correct tokens, tokens); the loss is the cross-entropy with
    ``label_smoothing``, plus the doubly stochastic term ``alpha_c * mean((1 - sum_t alpha_t)^2)`` that
    pushes attention to cover every image region. The cross-entropy returned is without smoothing."""
    targets = captions[:, 1:]
    mask = targets != PAD_ID
    cross_entropy = F.cross_entropy(logits[mask], targets[mask])
    fitted = (
        F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing)
        if label_smoothing
        else cross_entropy
    )
    regulariser = alpha_c * ((1.0 - alphas.sum(dim=1)) ** 2).mean()
    correct = int((logits[mask].argmax(dim=1) == targets[mask]).sum())
    return fitted + regulariser, cross_entropy, correct, int(mask.sum())


def run_epoch(
    model: Captioner,
    loader: DataLoader,
    device: torch.device,
    desc: str,
    *,
    cached: bool,
    tail: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    alpha_c: float = 1.0,
    grad_clip: float = 0.0,
    label_smoothing: float = 0.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> dict[str, float]:
    """One pass over ``loader``, training when ``optimizer`` is given (``scheduler`` stepped per batch);
    mean token loss (cross-entropy without smoothing) and accuracy. ``cached``: the loader gives the
    encoder's cached outputs, the features themselves or, with ``tail`` (``ImageEncoder.split``), the
    maps it turns into features; the encoder stays in eval mode (batch norms frozen) either way."""
    training = optimizer is not None
    model.train(training)
    if cached or not any(p.requires_grad for p in model.encoder.parameters()):
        model.encoder.eval()  # a frozen encoder keeps its batch-norm statistics
    total, correct, tokens = 0.0, 0, 0
    bar = engine.progress(loader, desc)
    with torch.set_grad_enabled(training):
        for images, captions, lengths in bar:
            images, captions = images.to(device), captions.to(device)
            if not cached:
                features = model.encoder(images)
            elif tail is None:
                features = images.float()
            else:
                features = tail(images.float())
            logits, alphas = model.decoder(features, captions, lengths)
            loss, cross_entropy, right, count = caption_loss(
                logits, alphas, captions, alpha_c, label_smoothing if training else 0.0
            )
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            total, correct, tokens = total + cross_entropy.item() * count, correct + right, tokens + count
            bar.set_postfix(loss=f"{total / tokens:.3f}", acc=f"{correct / tokens:.3f}", refresh=False)
    return {"loss": total / max(tokens, 1), "accuracy": correct / max(tokens, 1)}


@torch.no_grad()
def caption_features(
    model: Captioner,
    features: torch.Tensor,
    tokenizer: Tokenizer,
    device: torch.device,
    max_length: int,
    beam_size: int = 1,
    batch_size: int = 100,
) -> list[str]:
    """Captions of encoder ``features`` [N, L, D] with the PyTorch decoder, by the service's beam search
    (greedy for beam size 1), a batch of images at a time."""
    model.eval()
    captions: list[str] = []
    for chunk in features.split(batch_size):
        chunk = chunk.float().to(device)
        h, c = (x.cpu().numpy() for x in model.decoder.init_state(chunk))
        hypotheses = beam.decode(
            numpy_step(model.decoder, device, chunk),
            h,
            c,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            max_length=max_length,
            beam_size=beam_size,
            banned=beam.banned_tokens(bos_id=BOS_ID, pad_id=PAD_ID, unk_id=UNK_ID),
        )
        captions += [decode_caption(tokenizer, hypothesis.tokens) for hypothesis in hypotheses]
    return captions


def sample_captions(
    model: Captioner,
    features: torch.Tensor,
    items: list[CaptionedImage],
    tokenizer: Tokenizer,
    device: torch.device,
    max_length: int,
    beam_size: int = 3,
) -> list[dict]:
    """Beam-search captions of ``items`` (their encoder ``features``) beside their references, as a
    checkpoint's ``samples`` and its card list them."""
    captions = caption_features(model, features, tokenizer, device, max_length, beam_size)
    return [item.sample(caption) for item, caption in zip(items, captions, strict=True)]


def dev_bleu(captions: list[str], items: list[CaptionedImage]) -> dict[str, float]:
    """BLEU-1..4 of ``captions`` against the cleaned references of ``items``."""
    references = [[clean_words(ref) for ref in item.captions] for item in items[: len(captions)]]
    return bleu_scores(references, [caption.split() for caption in captions])
