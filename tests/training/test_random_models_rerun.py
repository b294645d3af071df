"""``python -m bench.random_models`` into a repository that already holds its models is a one-line error
that writes nothing (it overwrote a checkpoint, then failed with a FileExistsError traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from bench.random_models import main


def test_a_repository_that_holds_the_models_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sentiment-lstm" / "1").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(f"error: {tmp_path} already holds sentiment-lstm/1: choose another --out")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentiment-lstm"]


def test_like_writes_a_checkpoint_at_the_trained_versions_architecture(tmp_path: Path) -> None:
    # the shipped sentiment version: its tokenizer's vocabulary and SentimentConfig's sizes
    import torch

    from bench.run import ROOT, latest_version
    from training.export import build_model
    from training.runs import load_checkpoint

    shipped = latest_version(ROOT / "models", "sentiment-lstm").path
    main(["--like", str(shipped), "--checkpoint", str(tmp_path / "ckpt" / "sentiment-lstm.pt")])
    checkpoint = load_checkpoint(tmp_path / "ckpt" / "sentiment-lstm.pt")
    model = build_model(checkpoint)
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert checkpoint["labels"] == manifest["labels"]
    assert (
        model.embedding.num_embeddings
        == Tokenizer.from_file(str(shipped / "tokenizer.json")).get_vocab_size()
    )
    logits = model(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
    assert logits.shape == (1, len(manifest["labels"]))


def test_like_refuses_a_captioner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.run import ROOT, latest_version

    shipped = latest_version(ROOT / "models", "captioner").path
    with pytest.raises(SystemExit) as exit_info:
        main(["--like", str(shipped), "--checkpoint", str(tmp_path / "c.pt")])
    assert exit_info.value.code == 2
    assert "captioner: only pets-resnet18 and sentiment-lstm" in capsys.readouterr().err
    assert not (tmp_path / "c.pt").exists()
