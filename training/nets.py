"""The small networks: a digits CNN and a padding-invariant sentiment LSTM, each with a config dataclass."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DigitsConfig:
    """Two conv blocks (conv-ReLU-conv-ReLU-maxpool) then a dropout MLP head over ``num_classes``."""

    in_channels: int = 1
    image_size: int = 28
    channels: tuple[int, int] = (32, 64)
    hidden: int = 128
    dropout: float = 0.25
    num_classes: int = 10


class DigitsCNN(nn.Module):
    """CNN for small grey images; returns logits (the softmax is applied by the loss and the service)."""

    def __init__(self, config: DigitsConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = config.in_channels
        for out in config.channels:
            layers += [
                nn.Conv2d(channels, out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(out, out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        side = config.image_size // 2 ** len(config.channels)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(channels * side * side, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels))


@dataclass
class SentimentConfig:
    """Embedding, LSTM (optionally bidirectional) and a linear head; ``pooling`` is "last" or "max-mean"."""

    vocab_size: int = 20000
    embed_dim: int = 128
    hidden: int = 128
    bidirectional: bool = True
    pooling: str = "max-mean"
    dropout: float = 0.3
    num_classes: int = 2
    pad_id: int = 0


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[i]`` steps (dim 1), leaving its padding in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    last = lengths.unsqueeze(1) - 1
    index = torch.where(steps <= last, last - steps, steps)
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class SentimentLSTM(nn.Module):
    """Word ids and true lengths in, logits out; padding never changes a prediction.

    ``pack_padded_sequence`` does not export to ONNX, so both directions run over padded batches and only
    real steps are read: the forward LSTM is causal, and the backward LSTM runs over each sequence
    reversed within its length, so padding only ever follows the real tokens.
    """

    def __init__(self, config: SentimentConfig) -> None:
        super().__init__()
        if config.pooling not in ("last", "max-mean"):
            raise ValueError(f"unsupported pooling {config.pooling!r}; supported: last, max-mean")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=config.pad_id)
        self.forward_lstm = nn.LSTM(config.embed_dim, config.hidden, batch_first=True)
        self.backward_lstm = (
            nn.LSTM(config.embed_dim, config.hidden, batch_first=True) if config.bidirectional else None
        )
        directions = 2 if config.bidirectional else 1
        features = config.hidden * directions * (2 if config.pooling == "max-mean" else 1)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(features, config.num_classes)

    def _pool(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.config.pooling == "last":
            index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])
            return torch.gather(outputs, 1, index).squeeze(1)
        real = (
            torch.arange(outputs.shape[1], device=outputs.device).unsqueeze(0) < lengths.unsqueeze(1)
        ).unsqueeze(-1)
        mean = (outputs * real).sum(1) / lengths.unsqueeze(1).to(outputs.dtype)
        peak = outputs.masked_fill(~real, float("-inf")).amax(1)
        return torch.cat([peak, mean], dim=1)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.clamp(min=1)
        embedded = self.dropout(self.embedding(input_ids))
        pooled = [self._pool(self.forward_lstm(embedded)[0], lengths)]
        if self.backward_lstm is not None:
            reversed_out = self.backward_lstm(reverse_within_length(embedded, lengths))[0]
            pooled.append(self._pool(reversed_out, lengths))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))
