"""Forward shapes of each net, and padding invariance of the sentiment net in PyTorch."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from training.backbone import build_image_model  # noqa: E402
from training.nets import (  # noqa: E402
    DigitsCNN,
    DigitsConfig,
    SentimentConfig,
    SentimentLSTM,
    reverse_within_length,
)


def test_digits_shapes() -> None:
    assert DigitsCNN(DigitsConfig())(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_resnet_shapes(arch: str) -> None:
    assert build_image_model(arch, 2).eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_reverse_within_length() -> None:
    x = torch.arange(8.0).view(2, 4, 1)
    out = reverse_within_length(x, torch.tensor([4, 2])).squeeze(-1)
    assert out.tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


@pytest.mark.parametrize("pooling", ["max-mean", "last"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_sentiment_padding_invariance(pooling: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    net = SentimentLSTM(
        SentimentConfig(vocab_size=30, embed_dim=8, hidden=6, pooling=pooling, bidirectional=bidirectional)
    ).eval()
    rows = [[5, 6, 7, 8, 9], [4, 3], [11]]
    alone = torch.cat([net(torch.tensor([r]), torch.tensor([len(r)])) for r in rows])
    for width in (5, 9):
        ids = torch.zeros(3, width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        batched = net(ids, torch.tensor([len(r) for r in rows]))
        assert batched.shape == (3, 2)
        torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
