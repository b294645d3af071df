"""The captioner's model card, rendered from its manifest (export writes it, evaluate rewrites it)."""

from __future__ import annotations


def _metrics_lines(manifest: dict) -> list[str]:
    lines = []
    for split, values in manifest.get("metrics", {}).items():
        scores = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        lines.append(f"- `{split}` (onnxruntime): {scores}")
    return lines or ["- not evaluated yet: run `python -m training evaluate <version dir> --data <dataset>`"]


def _reproduce_lines(prov: dict) -> list[str]:
    """The command that made the checkpoint, after the cross-entropy run's when it was fine-tuned from one
    (``python -m training caption-scst``)."""
    first = prov.get("cross_entropy_recipe")
    line = f"`{prov.get('command', '?')}` (seed {prov.get('seed', '?')})"
    if not first:
        return [f"- reproduce: {line}"]
    return [
        f"- reproduce: `{first.get('command', '?')}` (seed {first.get('seed', '?')}), then {line} on its run",
        f"- recipe: {prov.get('recipe')}: cross-entropy training, then self-critical sequence training "
        f"(Rennie et al. 2017) with {prov.get('reward', 'CIDEr-D')} as the reward and the mean of the "
        "image's other samples as the baseline",
    ]


def render_card(manifest: dict) -> str:
    """Markdown card: data and licence, initialisation, command, time and hardware, metrics, samples,
    known limits."""
    prov = manifest.get("provenance", {})
    dataset = prov.get("dataset", {})
    caption = manifest["caption"]
    training = prov.get("training_metrics", {})
    lines = [
        f"# {manifest['name']} v{manifest['version']}",
        "",
        manifest["description"],
        "",
        "## Data",
        "",
        f"- dataset: {dataset.get('name', '?')} (`{dataset.get('path', '?')}`)",
        f"- licence: {dataset.get('licence', 'unknown')}",
        f"- vocabulary: {manifest['graphs']['decoder']['outputs'][0]['shape'][1]} tokens "
        "(train captions, lowercased, punctuation removed), "
        f"captions up to {caption['max_length']} tokens",
        "",
        "## Training",
        "",
        f"- encoder initialisation: {prov.get('initialisation', '?')} ({prov.get('encoder', '?')})",
        *_reproduce_lines(prov),
        f"- hardware: {prov.get('hardware', '?')}; training time {prov.get('training_time_s', '?')} s "
        f"(seconds per epoch: {prov.get('epoch_seconds', '?')})",
        f"- git commit: {prov.get('git_commit')}",
        "",
        "## Metrics",
        "",
        *_metrics_lines(manifest),
        f"- during training (PyTorch, {training.get('decoding', 'greedy')}, first "
        f"{training.get('bleu_images', '?')} dev images, "
        f"best epoch): " + ", ".join(f"{k} {v:.4f}" for k, v in training.get("dev", {}).items()),
        "",
        "## Sample captions (dev images, beam size 3)",
        "",
    ]
    for sample in prov.get("samples", []):
        lines.append(f"- `{sample['image']}`: **{sample['caption']}** (reference: {sample['references'][0]})")
    lines += [
        "",
        "## Known limits",
        "",
        "- Trained on a few thousand Flickr photos of people and dogs: captions are generic, often repeat "
        "frequent phrases, and miss objects, counts and colours; other domains degrade.",
        "- Words outside the vocabulary are never produced; decoding stops at "
        f"{caption['max_length']} tokens.",
        "- BLEU against five references measures n-gram overlap, not correctness; do not use the captions "
        "for decisions about people.",
        *(f"- {note}" for note in prov.get("notes", [])),
    ]
    return "\n".join(lines) + "\n"
