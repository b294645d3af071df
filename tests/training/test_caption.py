"""The captioner: data, vocabulary, network, training, ONNX export parity, evaluation, and evaluation's
captions equal to the service's (one beam search, contract.beam, with the same banned tokens)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from contract.beam import Step, banned_tokens, decode  # noqa: E402
from contract.files import sha256_file  # noqa: E402
from contract.versions import VersionDir  # noqa: E402
from service.repository import load_version, read_manifest  # noqa: E402
from service.runtimes import CaptionerRuntime  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.model_factory import make_captioner  # noqa: E402
from tests.service.conftest import running_client  # noqa: E402
from training.backbone import build_image_model  # noqa: E402
from training.caption.bleu import SentenceBleu, bleu_scores  # noqa: E402
from training.caption.cider import CiderD  # noqa: E402
from training.caption.cli import _stage_count  # noqa: E402
from training.caption.data import CaptionDataError, load_split  # noqa: E402
from training.caption.evaluate import caption_files, evaluate_version  # noqa: E402
from training.caption.export import export_version, load_captioner  # noqa: E402
from training.caption.model import Captioner, CaptionerConfig, ImageEncoder, numpy_step  # noqa: E402
from training.caption.runtime import OnnxCaptioner  # noqa: E402
from training.caption.scst import sample  # noqa: E402
from training.caption.vocab import BOS_ID, EOS_ID, build_tokenizer, decode_caption, encode_caption  # noqa: E402
from training.cli import main  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
SIZE = 64  # resnet18 layer3 -> 4x4 positions: small and fast


def _image(path: Path, colour: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(COLOURS[colour]) + rng.integers(-20, 20, (48, 48, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def _captions(colour: str) -> list[str]:
    return [
        f"A {colour} square.",
        f"a {colour} box",
        f"The {colour} picture!",
        f"A {colour} square on a wall",
        f"a bright {colour} square",
    ]


@pytest.fixture(scope="module")
def flickr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flickr8k layout: 9 train and 3 dev images, one colour each, five captions per image."""
    root = tmp_path_factory.mktemp("flickr8k")
    (root / "Images").mkdir()
    lines, splits = [], {"train": [], "dev": []}
    for i in range(12):
        colour, name = list(COLOURS)[i % 3], f"{i:04d}_img.jpg"
        _image(root / "Images" / name, colour, i)
        lines += [f"{name}#{n}\t{caption}" for n, caption in enumerate(_captions(colour))]
        splits["train" if i < 9 else "dev"].append(name)
    (root / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (root / "Flickr_8k.trainImages.txt").write_text("\n".join(splits["train"]) + "\n")
    (root / "Flickr_8k.devImages.txt").write_text("\n".join(splits["dev"]) + "\n")
    return root


def _caption_argv(flickr: Path, out: Path, epochs: int) -> list[str]:
    """A tiny decoder (random encoder) on the fake Flickr8k."""
    return [
        "caption",
        "--data",
        str(flickr),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--image-size",
        str(SIZE),
        "--embed-dim",
        "16",
        "--attention-dim",
        "16",
        "--hidden-dim",
        "32",
        "--min-freq",
        "1",
        "--max-length",
        "8",
        "--workers",
        "0",
        "--bleu-images",
        "3",
        "--feature-layer",
        "layer3",
    ]  # what the default captioner ships with


@pytest.fixture(scope="module")
def run_dir(flickr: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch training run."""
    out = tmp_path_factory.mktemp("runs")
    assert main(_caption_argv(flickr, out, epochs=1)) == 0
    return next(out.glob("captioner-*"))


@pytest.fixture(scope="module")
def version_dir(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # with bigram blocking: the service's captions must block what evaluation's do
    out = tmp_path_factory.mktemp("models")
    return export_version(run_dir, out, "captioner", None, ["A test note."], no_repeat_ngram=2)


def test_flickr8k_split(flickr: Path) -> None:
    train, dev = load_split(flickr, "train"), load_split(flickr, "dev")
    assert (len(train), len(dev)) == (9, 3)
    assert train[0].path == flickr / "Images" / "0000_img.jpg" and len(train[0].captions) == 5


def test_flickr8k_errors_name_the_file(flickr: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "Images").mkdir(parents=True)
    (bad / "Flickr8k.token.txt").write_text("a.jpg#0\tA cat.\nno tab here\n")
    with pytest.raises(CaptionDataError, match=r"Flickr_8k\.trainImages\.txt"):
        load_split(bad, "train")
    (bad / "Flickr_8k.trainImages.txt").write_text("a.jpg\n")
    with pytest.raises(CaptionDataError, match=r"Flickr8k\.token\.txt:2"):
        load_split(bad, "train")
    (bad / "Flickr8k.token.txt").write_text("a.jpg#0\tA cat.\n")
    with pytest.raises(CaptionDataError, match=r"missing, first: .*a\.jpg"):
        load_split(bad, "train")
    with pytest.raises(CaptionDataError, match="unknown split"):
        load_split(flickr, "holdout")


def test_coco_layout(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2014").mkdir()
    _image(tmp_path / "val2014" / "COCO_1.jpg", "red", 0)
    data = {
        "images": [{"id": 1, "file_name": "COCO_1.jpg"}, {"id": 2, "file_name": "unused.jpg"}],
        "annotations": [{"image_id": 1, "caption": "A red square. "}, {"image_id": 1, "caption": "red"}],
    }
    (tmp_path / "annotations" / "captions_val2014.json").write_text(json.dumps(data))
    [item] = load_split(tmp_path, "dev")
    assert item.path == tmp_path / "val2014" / "COCO_1.jpg" and item.captions == ("A red square.", "red")
    (tmp_path / "annotations" / "captions_val2014.json").write_text('{"images": []')
    with pytest.raises(CaptionDataError, match=r"captions_val2014\.json: malformed"):
        load_split(tmp_path, "dev")
    with pytest.raises(CaptionDataError, match="captions_train"):
        load_split(tmp_path, "train")


def test_tokenizer_round_trip(tmp_path: Path) -> None:
    tokenizer = build_tokenizer(["A dog runs.", "a DOG, jumps!", "the dog sleeps"], min_freq=2)
    assert [tokenizer.token_to_id(t) for t in ("<pad>", "<unk>", "<start>", "<end>")] == [0, 1, 2, 3]
    assert set(tokenizer.get_vocab()) == {"<pad>", "<unk>", "<start>", "<end>", "a", "dog"}
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    loaded = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ids = encode_caption(loaded, "A dog, flies!", max_length=20)
    assert ids == [BOS_ID, loaded.token_to_id("a"), loaded.token_to_id("dog"), 1, EOS_ID]
    assert decode_caption(loaded, ids) == "a dog"
    assert encode_caption(loaded, "dog a dog a", max_length=3) == [BOS_ID, *ids[2:0:-1], EOS_ID]


def test_forward_shapes_and_step_match_teacher_forcing() -> None:
    torch.manual_seed(0)
    model = Captioner(CaptionerConfig(vocab_size=30, embed_dim=8, attention_dim=8, hidden_dim=16)).eval()
    features, h, c = model.encode(torch.randn(3, 3, SIZE, SIZE))
    assert features.shape == (3, 4, 512) and h.shape == c.shape == (3, 16)
    captions = torch.tensor([[2, 5, 6, 3, 0], [2, 7, 3, 0, 0], [2, 5, 8, 9, 3]])
    logits, alphas = model.decoder(features, captions, torch.tensor([4, 3, 5]))
    assert logits.shape == (3, 4, 30) and alphas.shape == (3, 4, 4)
    torch.testing.assert_close(alphas[:, :2].sum(-1), torch.ones(3, 2))
    projected, rows = model.decoder.project(features), torch.arange(3)
    for t in range(2):  # one step of the exported graph equals teacher forcing
        log_probs, h, c, _ = model.decoder.step(captions[:, t], h, c, features, projected, rows)
        torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-4)


def test_layer3_encoder_is_a_quarter_of_the_body_with_a_finer_grid() -> None:
    full = Captioner(CaptionerConfig(vocab_size=30, hidden_dim=16))
    cut = Captioner(CaptionerConfig(vocab_size=30, hidden_dim=16, feature_layer="layer3")).eval()
    features, h, _ = cut.encode(torch.randn(2, 3, SIZE, SIZE))
    assert features.shape == (2, 16, 256) and h.shape == (2, 16)  # stride 16: (SIZE / 16) ** 2 positions
    assert cut.config.feature_dim == 256 and not any(k.startswith("trunk.7") for k in cut.state_dict())

    def count(m):
        return sum(p.numel() for p in m.encoder.parameters())

    assert count(cut) < count(full) / 3
    with pytest.raises(ValueError, match="layer2"):
        Captioner(CaptionerConfig(vocab_size=30, feature_layer="layer2"))


@pytest.mark.parametrize(
    ("arch", "layer", "stages"),
    [
        ("resnet18", "layer3", 3),
        ("resnet18", "layer4", 4),
        ("efficientnet_lite0", "head", 7),
        ("efficientnet_lite2", "head", 7),
    ],
)
def test_a_split_encoder_computes_the_whole_encoder_s_features(arch: str, layer: str, stages: int) -> None:
    encoder = ImageEncoder(arch, None, layer).eval()
    pixels = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        whole = encoder(pixels)
        # the command line refuses too many stages before torch is imported, from its own table
        assert encoder.stage_count == stages == _stage_count(arch, layer)
        for tuned in range(1, stages + 1):
            front, tail = encoder.split(tuned)
            torch.testing.assert_close(tail(front(pixels)), whole)
            assert sum(1 for _ in tail.parameters()) < sum(1 for _ in encoder.parameters())
    with pytest.raises(ValueError, match="1 to"):
        encoder.split(stages + 1)


def test_tune_stages_trains_the_last_stage_alone(flickr: Path, tmp_path: Path) -> None:
    """--tune-stages 1 on a layer3 encoder: layer3's weights learn; every other tensor, batch-norm
    statistics included, stays as the encoder's initial weights gave it."""
    initial = build_image_model("resnet18", num_classes=1).state_dict()
    torch.save(initial, tmp_path / "encoder.pt")
    argv = _caption_argv(flickr, tmp_path / "runs", epochs=1)
    argv += ["--tune-stages", "1", "--encoder-lr", "1e-3", "--encoder-weights", str(tmp_path / "encoder.pt")]
    assert main(argv) == 0
    run_dir = next((tmp_path / "runs").glob("captioner-*"))
    model, checkpoint = load_captioner(run_dir)
    trained = {k.removeprefix("trunk."): v for k, v in model.encoder.state_dict().items()}
    # the trunk's children: conv1, bn1, relu, maxpool, layer1, layer2, layer3 -> indices 0..6
    changed = {k for k, v in trained.items() if not torch.equal(v, initial[_resnet_name(k)])}
    assert changed and all(k.startswith("6.") for k in changed)
    assert not any("running" in k for k in changed)
    assert "last 1 stage(s) fine-tuned" in checkpoint["provenance"]["encoder"]
    # self-critical training from it keeps that encoder as it is, and says how it was trained
    scst_argv = ["caption-scst", str(run_dir), "--data", str(flickr), "--out", str(tmp_path / "scst")]
    assert main([*scst_argv, "--epochs", "1", "--workers", "0", "--bleu-images", "3"]) == 0
    scst_model, scst_checkpoint = load_captioner(next((tmp_path / "scst").glob("captioner-scst-*")))
    for key, value in scst_model.encoder.state_dict().items():
        assert torch.equal(value, model.encoder.state_dict()[key]), key
    assert scst_checkpoint["provenance"]["encoder"] == checkpoint["provenance"]["encoder"]


def _resnet_name(trunk_key: str) -> str:
    """A layer3 trunk's state-dict key ('4.0.conv1.weight') -> torchvision's ('layer1.0.conv1.weight')."""
    index, rest = trunk_key.split(".", 1)
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"]
    return f"{names[int(index)]}.{rest}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tune-stages", "4"], "has 3 stages"),
        (["--tune-stages", "1", "--fine-tune-encoder"], "exclude each other"),
    ],
)
def test_tune_stages_refusals(
    flickr: Path, tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(_caption_argv(flickr, tmp_path, epochs=1) + extra)
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_bleu_on_known_examples() -> None:
    reference = ["the", "cat", "sat", "on", "the", "mat"]
    assert bleu_scores([[reference]], [reference]) == pytest.approx(
        {"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0}
    )
    # all unigrams match, but the brevity penalty for 2 words against 6 is exp(1 - 6/2)
    assert bleu_scores([[reference]], [["the", "cat"]])["bleu1"] == pytest.approx(np.exp(-2))
    with pytest.raises(ValueError, match="one reference set per hypothesis"):
        bleu_scores([], [reference])


def test_training_run_writes_its_outputs(run_dir: Path) -> None:
    for name in (
        "config.json",
        "metrics.json",
        "checkpoint.pt",
        "samples.json",
        "tokenizer.json",
        "curve-loss.png",
        "curve-bleu4.png",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best_epoch"] == 1 and set(metrics["dev"]) >= {"loss", "accuracy", "bleu1", "bleu4"}
    model, checkpoint = load_captioner(run_dir)
    assert checkpoint["kind"] == "captioner" and checkpoint["image"]["size"] == [SIZE, SIZE]
    assert model.config.hidden_dim == 32 and checkpoint["max_length"] == 8


def test_ctrl_c_keeps_the_best_finished_epoch(
    flickr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.caption.train as caption_train

    calls = {"train": 0}
    real_epoch = caption_train.run_epoch

    def interrupted_in_epoch_3(*args, **kwargs):
        if kwargs.get("optimizer") is not None:
            calls["train"] += 1
            if calls["train"] == 3:
                raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(caption_train, "run_epoch", interrupted_in_epoch_3)
    assert main(_caption_argv(flickr, tmp_path, epochs=5)) == 0
    metrics = json.loads((next(tmp_path.glob("captioner-*")) / "metrics.json").read_text())
    assert (metrics["epochs_completed"], metrics["interrupted_in_epoch"]) == (2, 3)
    assert metrics["best_epoch"] in (1, 2) and len(metrics["history"]["dev_bleu4"]) == 2


def test_ctrl_c_before_any_epoch_is_not_swallowed(
    flickr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.caption.train as caption_train

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(caption_train, "run_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        main(_caption_argv(flickr, tmp_path, epochs=2))


def test_export_writes_the_contract(version_dir: Path) -> None:
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["task"] == "image-captioning" and manifest["image"]["resize"] is None
    assert set(manifest["files"]) == {"encoder.onnx", "decoder.onnx", "tokenizer.json", "card.md"}
    assert all(sha256_file(version_dir / f) == h for f, h in manifest["files"].items())
    assert "- A test note." in (version_dir / "card.md").read_text().split("## Known limits")[1]
    encoder, decoder = manifest["graphs"]["encoder"], manifest["graphs"]["decoder"]
    assert [t["name"] for t in encoder["outputs"]] == ["features", "h0", "c0", "projected"]
    assert encoder["outputs"][0]["shape"] == [-1, 16, 256]  # layer3, stride 16
    assert [(t["name"], t["dtype"]) for t in decoder["inputs"]] == [
        ("tokens", "int64"),
        ("h", "float32"),
        ("c", "float32"),
        ("features", "float32"),
        ("projected", "float32"),
        ("image_index", "int64"),
    ]
    assert [t["name"] for t in decoder["outputs"]] == ["log_probs", "h_out", "c_out", "alpha"]
    caption = manifest["caption"]
    assert (caption["bos_id"], caption["eos_id"], caption["pad_id"], caption["unk_id"]) == (2, 3, 0, 1)
    assert caption["max_length"] == 8 and manifest["provenance"]["export_parity"]["beam_search"]
    assert caption["no_repeat_ngram_size"] == 2
    card = (version_dir / "card.md").read_text()
    assert all(
        part in card
        for part in ("## Data", "licence", "reproduce: `", "## Sample captions", "## Known limits")
    )


def test_onnx_step_parity_and_beam_search(version_dir: Path, run_dir: Path) -> None:
    model, _ = load_captioner(run_dir)
    onnx_model = OnnxCaptioner(version_dir)
    pixels = np.random.default_rng(1).standard_normal((4, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        features, h0, c0 = model.encode(torch.from_numpy(pixels))
        projected = model.decoder.project(features)
    encoded = onnx_model.encode(pixels)
    for got, expected in zip(encoded, (features, h0, c0, projected), strict=True):
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-3)
    # rows of mixed images, one image twice and one not at all, as the beams of several searches are
    tokens, images = np.array([2, 5, 7, 3, 9], dtype=np.int64), np.array([3, 0, 3, 1, 0])
    h, c = h0.numpy()[images], c0.numpy()[images]
    torch_step = numpy_step(model.decoder, torch.device("cpu"), features)
    for got, expected in zip(
        onnx_model.step_for(encoded[0], encoded[3])(tokens, h, c, images),
        torch_step(tokens, h, c, images),
        strict=True,
    ):
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)
    expected = onnx_model.decode(torch_step, h0.numpy(), c0.numpy(), beam_size=3)
    for got, want in zip(onnx_model.search(pixels, beam_size=3), expected, strict=True):
        assert got.tokens == want.tokens
        assert got.score == pytest.approx(want.score, abs=1e-4)


def test_evaluate_writes_metrics(version_dir: Path, flickr: Path) -> None:
    metrics = evaluate_version(version_dir, flickr, "dev", beam_size=2)
    assert set(metrics) == {"bleu1", "bleu2", "bleu3", "bleu4", "images", "beam_size"}
    assert metrics["images"] == 3 and 0.0 <= metrics["bleu1"] <= 1.0
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["metrics"]["dev"] == metrics
    assert sha256_file(version_dir / "card.md") == manifest["files"]["card.md"]
    assert "`dev` (onnxruntime): bleu1" in (version_dir / "card.md").read_text()


# --------------------------------------------------------- evaluation answers what the service answers

MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}


def _service_captions(
    version_dir: Path, paths: list[Path], beam_sizes: tuple[int, ...]
) -> dict[int, list[str]]:
    """Per beam size, /v1/caption's captions of the image files ``paths``, from a running app over the
    repository holding ``version_dir`` (upload decoding, preprocessing, the step batcher)."""
    captions = {}
    with running_client(version_dir.parent.parent, providers=["CPUExecutionProvider"]) as client:
        files = [("files", (p.name, p.read_bytes(), MEDIA_TYPES[p.suffix])) for p in paths]
        for beam_size in beam_sizes:
            data = {"model": version_dir.parent.name, "beam_size": str(beam_size)}
            response = client.post("/v1/caption", files=files, data=data)
            assert response.status_code == 200, response.text
            captions[beam_size] = [result["caption"] for result in response.json()["results"]]
    return captions


def test_evaluation_captions_are_the_service_s(version_dir: Path, flickr: Path) -> None:
    """The exported captioner's captions of every image by training's evaluation path (torchvision's
    preprocessing, OnnxCaptioner, the one beam search) equal the service's answers to /v1/caption."""
    paths = sorted((flickr / "Images").iterdir())
    served = _service_captions(version_dir, paths, beam_sizes=(1, 3))
    captioner = OnnxCaptioner(version_dir)
    for beam_size, captions in served.items():
        assert caption_files(captioner, paths, beam_size=beam_size, batch_size=5) == captions


@pytest.mark.parametrize("per_image", [False, True], ids=["per_row", "per_image"])
def test_evaluation_captions_are_the_service_s_on_the_tiny_captioner(tmp_path: Path, per_image: bool) -> None:
    """The test factory's captioner (both decoder contracts), whose captions name the colour: uniform dark
    red is the image where greedy and beam search differ."""
    version_dir = make_captioner(tmp_path / "models", per_image=per_image)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (255, 255, 255), (89, 0, 0)]
    paths = []
    for i, rgb in enumerate(colours):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (32, 24), rgb).save(paths[-1])
    served = _service_captions(version_dir, paths, beam_sizes=(1, 2, 3))
    assert (served[1][-1], served[3][-1]) == ("a dark square", "a red square")
    captioner = OnnxCaptioner(version_dir)
    for beam_size, captions in served.items():
        assert caption_files(captioner, paths, beam_size=beam_size, batch_size=4) == captions


def _favouring(banned: tuple[int, ...]) -> Callable[[tuple[np.ndarray, ...]], tuple[np.ndarray, ...]]:
    """A decoder step's outputs -> the same with the ``banned`` tokens made the likeliest of every row
    (log-probabilities 0, -0.01, ...: above any other token's)."""

    def favour(outputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        log_probs, *states = outputs
        log_probs = log_probs.copy()
        log_probs[:, list(banned)] = -0.01 * np.arange(len(banned))
        return (log_probs, *states)

    return favour


def test_a_banned_token_is_never_emitted_even_when_likeliest(
    version_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a decoder that prefers the unknown word, padding and bos over every word at every step, the
    service's runtime and training's OnnxCaptioner emit none of them, and still answer alike."""
    captioner = OnnxCaptioner(version_dir)
    source = VersionDir(version_dir.parent.name, int(version_dir.name), version_dir)
    settings = Settings(models_dir=version_dir.parent.parent, providers=["CPUExecutionProvider"])
    runtime = load_version(read_manifest(source), version_dir, settings)
    assert isinstance(runtime, CaptionerRuntime)
    spec = captioner.spec
    banned = banned_tokens(bos_id=spec["bos_id"], pad_id=spec["pad_id"], unk_id=spec["unk_id"])
    favour = _favouring(banned)
    step_for, service_step = captioner.step_for, runtime.step

    def favoured_step_for(*args: np.ndarray | None) -> Step:
        step = step_for(*args)
        return lambda *inputs: favour(step(*inputs))  # type: ignore[return-value]

    monkeypatch.setattr(captioner, "step_for", favoured_step_for)
    monkeypatch.setattr(runtime, "step", lambda *inputs: favour(service_step(*inputs)))
    pixels = np.random.default_rng(2).standard_normal((4, 3, SIZE, SIZE)).astype(np.float32)
    features, h0, c0, projected = captioner.encode(pixels)
    options = {"bos_id": spec["bos_id"], "eos_id": spec["eos_id"], "max_length": spec["max_length"]}
    unbanned = decode(captioner.step_for(features, projected), h0, c0, beam_size=3, **options)
    assert all(hypothesis.tokens[0] == spec["unk_id"] for hypothesis in unbanned)  # favoured indeed
    for beam_size in (1, 3):
        training = captioner.search(pixels, beam_size)
        service = runtime.infer(pixels, runtime.default_max_length(), beam_size)
        assert [h.tokens for h in training] == [h.tokens for h in service]
        assert not {token for h in training for token in h.tokens} & set(banned)
        assert [h.score for h in training] == pytest.approx([h.score for h in service], abs=1e-4)


# ------------------------------------------------------------------------- self-critical training


def test_cider_d_on_known_examples() -> None:
    red = ["a", "red", "square", "box"]
    cider = CiderD([[red], [["a", "blue", "circle", "here"]]])
    # the caption is its image's only reference: cosine 1 for every n-gram order, no length penalty
    assert cider.score(red, 0) == pytest.approx(10.0)
    # one word short: cosines 2 / sqrt(6) for 1- and 2-grams ("a" weighs nothing, being in every image's
    # references), 1 / sqrt(2) for 3-grams, none for 4-grams; times the length penalty exp(-1 / 72)
    expected = 10 / 4 * (2 * 2 / np.sqrt(6) + 1 / np.sqrt(2)) * np.exp(-1 / 72)
    assert cider.score(red[:3], 0) == pytest.approx(expected)
    assert cider.score(red, 1) == 0.0  # shares only "a", which every image has
    # repeating a matching word earns nothing more than saying it once (the clipping of CIDEr-D)
    once, thrice = cider.score(["red"], 0), cider.score(["red", "red", "red"], 0)
    assert 0.0 < thrice < once
    with pytest.raises(ValueError, match="at least one image"):
        CiderD([])


def test_sentence_bleu_is_nltk_s_with_add_one_smoothing() -> None:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    rng = np.random.default_rng(0)
    vocabulary = ["a", "dog", "man", "runs", "in", "the", "park", "on", "grass", "black", "white"]
    references = [[list(rng.choice(vocabulary, rng.integers(4, 12))) for _ in range(5)] for _ in range(40)]
    bleu = SentenceBleu(references)
    for image, refs in enumerate(references):
        caption = list(rng.choice(vocabulary, rng.integers(4, 14)))
        expected = sentence_bleu(refs, caption, smoothing_function=SmoothingFunction().method2)
        assert bleu.score(caption, image) == pytest.approx(expected)
    assert bleu.score(references[3][0], 3) == pytest.approx(1.0) and bleu.score([], 0) == 0.0


def test_sampled_captions_and_their_log_probabilities() -> None:
    torch.manual_seed(0)
    model = Captioner(
        CaptionerConfig(vocab_size=12, arch="resnet18", embed_dim=8, attention_dim=8, hidden_dim=16)
    )
    model.eval()  # no dropout: the log-probabilities can be recomputed by teacher forcing
    features = torch.randn(3, 4, model.config.feature_dim)
    tokens, log_prob = sample(model.decoder, features, k=4, max_length=6)
    assert tokens.shape[0] == 12 and tokens.shape[1] <= 6 and log_prob.requires_grad
    banned = banned_tokens(bos_id=BOS_ID, pad_id=0, unk_id=1)
    for r, (row, total) in enumerate(zip(tokens, log_prob.detach(), strict=True)):
        caption = row.tolist()
        end = caption.index(EOS_ID) + 1 if EOS_ID in caption else len(caption)
        assert all(t not in banned for t in caption[:end]) and all(t == 0 for t in caption[end:])
        # teacher forcing the same tokens gives the same summed log-probability, the banned tokens
        # renormalised away as sampling does
        forced = torch.tensor([BOS_ID, *caption[:end]])
        logits, _ = model.decoder(
            features[r // 4 : r // 4 + 1], forced.unsqueeze(0), torch.tensor([len(forced)])
        )
        logits[..., list(banned)] = float("-inf")
        expected = torch.log_softmax(logits[0], dim=1).gather(1, forced[1:, None]).sum()
        assert float(total) == pytest.approx(float(expected), abs=1e-4)


def test_self_critical_run_raises_the_reward_and_exports(run_dir: Path, flickr: Path, tmp_path: Path) -> None:
    argv = ["caption-scst", str(run_dir), "--data", str(flickr), "--out", str(tmp_path)]
    argv += ["--epochs", "20", "--batch-size", "9", "--samples", "8", "--lr", "1e-2", "--workers", "0"]
    assert main([*argv, "--bleu-images", "3", "--beam-size", "2", "--bleu-weight", "1"]) == 0
    scst_run = next(tmp_path.glob("captioner-scst-*"))
    metrics = json.loads((scst_run / "metrics.json").read_text())
    rewards = metrics["history"]["train_reward"][1:]
    # the decoder learns what the reward prefers: the sampled captions' CIDEr-D rises (one epoch is one
    # batch of the 9 images here, so single epochs are noisy)
    assert len(rewards) == 20 and np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.05
    assert metrics["best_epoch"] in range(21) and (scst_run / "curve-reward.png").is_file()
    _, checkpoint = load_captioner(scst_run)
    assert checkpoint["provenance"]["cross_entropy_run"].endswith("checkpoint.pt")
    version = export_version(scst_run, tmp_path / "models", "captioner", None, [])
    assert OnnxCaptioner(version).caption(np.zeros((1, 3, SIZE, SIZE), np.float32))[0] is not None
    card = (version / "card.md").read_text()
    # both commands (in-process, each is pytest's command line), the second on the first one's run
    assert "reproduce, in order:\n  1. `" in card and "\n  2. `" in card and "on the run of step 1" in card
    assert (
        "reward CIDEr-D + 1 x BLEU-4) on the run" in card and "(PyTorch, beam 2, first 3 dev images" in card
    )


def test_average_of_a_run_and_its_self_critical_continuation(
    run_dir: Path, flickr: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["caption-scst", str(run_dir), "--data", str(flickr), "--out", str(tmp_path), "--keep", "last"]
    assert main([*argv, "--epochs", "2", "--batch-size", "9", "--lr", "1e-2", "--workers", "0"]) == 0
    scst_run = next(tmp_path.glob("captioner-scst-*"))
    assert json.loads((scst_run / "metrics.json").read_text())["best_epoch"] == 2  # the last, as asked
    assert main(["average", str(run_dir), str(scst_run), "--weights", "1", "3", "--out", str(tmp_path)]) == 0
    soup_run = next(tmp_path.glob("average-*"))
    (start, _), (tuned, _), (soup, checkpoint) = (load_captioner(r) for r in (run_dir, scst_run, soup_run))
    for key, value in soup.state_dict().items():
        first, second = start.state_dict()[key], tuned.state_dict()[key]
        expected = 0.25 * first + 0.75 * second if first.is_floating_point() else first  # counters kept
        torch.testing.assert_close(value, expected)
    assert [m["weight"] for m in checkpoint["provenance"]["members"]] == [0.25, 0.75]
    version = export_version(soup_run, tmp_path / "models", "captioner", None, [])
    evaluate_version(version, flickr, "dev", beam_size=2)
    card = (version / "card.md").read_text()
    steps = card.split("- reproduce, in order:\n")[1].split("\n- ")[0].splitlines()
    # the cross-entropy run once, its continuation on it, then the average of both
    assert [s.split(". ", 1)[0].strip() for s in steps] == ["1", "2", "3"]
    assert "on the run of step 1" in steps[1] and "step 1 (weight 0.25), step 2 (weight 0.75)" in steps[2]
    assert "model soups" in card and "## Sample captions" in card and "(reference: " in card
    # runs of different networks do not average
    other = tmp_path / "other"
    assert main([*_caption_argv(flickr, other, epochs=1), "--hidden-dim", "16"]) == 0
    capsys.readouterr()
    assert main(["average", str(run_dir), str(next(other.glob("captioner-*"))), "--out", str(tmp_path)]) == 2
    assert "only one network's runs average" in capsys.readouterr().err


def test_self_critical_refuses_one_sample_and_other_kinds(
    run_dir: Path, flickr: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["caption-scst", str(run_dir), "--data", str(flickr), "--samples", "1"])
    assert exit_info.value.code == 2
    assert (
        "--samples: must be at least 2 (the baseline is the other samples), got 1" in capsys.readouterr().err
    )
    other = tmp_path / "other.pt"
    torch.save({"kind": "digits", "model_args": {}, "state_dict": {}}, other)
    capsys.readouterr()
    assert main(["caption-scst", str(other), "--data", str(flickr), "--out", str(tmp_path / "runs")]) == 2
    assert "caption-scst: " in capsys.readouterr().err and not list((tmp_path / "runs").glob("*"))


def test_self_critical_ctrl_c_keeps_the_best_finished_epoch(
    run_dir: Path, flickr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.caption import scst

    real_epoch, calls = scst._epoch, []

    def interrupted_in_the_second(*args: object, **kwargs: object) -> float:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scst, "_epoch", interrupted_in_the_second)
    argv = ["caption-scst", str(run_dir), "--data", str(flickr), "--out", str(tmp_path), "--epochs", "5"]
    assert main([*argv, "--batch-size", "9", "--workers", "0", "--bleu-images", "3", "--beam-size", "2"]) == 0
    metrics = json.loads((next(tmp_path.glob("captioner-scst-*")) / "metrics.json").read_text())
    assert len(metrics["history"]["train_reward"]) == 2 and metrics["best_epoch"] in (0, 1)
