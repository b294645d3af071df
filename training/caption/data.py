"""Captioning datasets: Flickr8k (token file + split lists) and COCO captions (annotations JSON).

Both loaders return the same thing, a list of :class:`CaptionedImage` (an image path and its reference
captions), so the rest of the package never cares which layout the data came in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from training.data import DataError

FLICKR_TOKENS = "Flickr8k.token.txt"
FLICKR_SPLITS = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
COCO_SPLITS = {"train": "train", "dev": "val", "val": "val", "test": "test"}


class CaptionDataError(DataError):
    """The captioning data is missing a file or a file is malformed; the message names the file."""


@dataclass(frozen=True)
class CaptionedImage:
    """One image and its reference captions (raw text, cleaned later by the tokenizer)."""

    path: Path
    captions: tuple[str, ...]

    def sample(self, caption: str) -> dict:
        """A caption of this image beside its references, as a checkpoint's or an evaluation's samples
        (and the card) list them."""
        return {"image": self.path.name, "caption": caption, "references": list(self.captions)}


def load_split(root: Path, split: str) -> list[CaptionedImage]:
    """Load ``split`` (train, dev, test) of the dataset in ``root``, detecting Flickr8k or COCO layout."""
    root = Path(root)
    if not root.is_dir():
        raise CaptionDataError(f"--data {root}: no such directory")
    if (root / FLICKR_TOKENS).exists():
        return load_flickr8k(root, split)
    if (root / "annotations").is_dir():
        return load_coco(root, split)
    raise CaptionDataError(
        f"--data {root}: neither the Flickr8k ({FLICKR_TOKENS}) nor the COCO (annotations/) layout"
    )


def _read_flickr_tokens(path: Path) -> dict[str, list[str]]:
    captions: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        name, hash_, index = key.partition("#")
        if not tab or not hash_ or not index.strip().isdigit() or not caption.strip():
            raise CaptionDataError(f"{path}:{number}: expected '<image>#<n>\\t<caption>', got {line[:80]!r}")
        captions.setdefault(name.strip(), []).append(caption.strip())
    return captions


def load_flickr8k(root: Path, split: str) -> list[CaptionedImage]:
    """Read ``Flickr8k.token.txt``, the split's image list and check every listed image exists."""
    if split not in FLICKR_SPLITS:
        raise CaptionDataError(f"unknown split {split!r}; supported: {', '.join(FLICKR_SPLITS)}")
    tokens_path, split_path = root / FLICKR_TOKENS, root / FLICKR_SPLITS[split]
    for path in (tokens_path, split_path):
        if not path.is_file():
            raise CaptionDataError(f"missing Flickr8k file {path}")
    captions = _read_flickr_tokens(tokens_path)
    names = [line.strip() for line in split_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise CaptionDataError(f"{split_path} lists no images")
    items = []
    for name in names:
        if name not in captions:
            raise CaptionDataError(f"{split_path}: image {name} has no caption in {tokens_path}")
        items.append(CaptionedImage(root / "Images" / name, tuple(captions[name])))
    _check_images(items)
    return items


def load_coco(root: Path, split: str) -> list[CaptionedImage]:
    """Read ``annotations/captions_<split>*.json``; images lie in ``root/<suffix of the json name>/``
    (``captions_val2014.json`` -> ``val2014/``)."""
    if split not in COCO_SPLITS:
        raise CaptionDataError(f"unknown split {split!r}; supported: {', '.join(COCO_SPLITS)}")
    matches = sorted((root / "annotations").glob(f"captions_{COCO_SPLITS[split]}*.json"))
    if not matches:
        pattern = f"captions_{COCO_SPLITS[split]}*.json"
        raise CaptionDataError(f"missing COCO file {root / 'annotations' / pattern}")
    path = matches[-1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = {image["id"]: image["file_name"] for image in data["images"]}
        captions: dict[int, list[str]] = {}
        for annotation in data["annotations"]:
            captions.setdefault(annotation["image_id"], []).append(annotation["caption"].strip())
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CaptionDataError(f"{path}: malformed COCO captions file ({error!r})") from error
    image_dir = root / path.stem.removeprefix("captions_")
    if not image_dir.is_dir():
        raise CaptionDataError(f"missing COCO image directory {image_dir} (for {path.name})")
    items = [CaptionedImage(image_dir / files[i], tuple(captions[i])) for i in sorted(captions) if i in files]
    if not items:
        raise CaptionDataError(f"{path}: no annotation refers to a listed image")
    _check_images(items)
    return items


def _check_images(items: list[CaptionedImage]) -> None:
    missing = [item.path for item in items if not item.path.is_file()]
    if missing:
        raise CaptionDataError(f"{len(missing)} image file(s) missing, first: {missing[0]}")
