"""The captioner's model card, rendered from its manifest (export writes it, evaluate rewrites it)."""

from __future__ import annotations


def _metrics_lines(manifest: dict) -> list[str]:
    lines = []
    for split, values in manifest.get("metrics", {}).items():
        scores = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        lines.append(f"- `{split}` (onnxruntime): {scores}")
    return lines or ["- not evaluated yet: run `python -m training evaluate <version dir> --data <dataset>`"]


def _step(prov: dict, steps: list[str], recipes: set[str]) -> int:
    """Append the commands that made the run of ``prov`` to ``steps``, the runs it was made from first, each
    once, and the recipes met on the way to ``recipes``; return the (1-based) step that made it."""
    command = f"`{prov.get('command', '?')}`"
    if "members" in prov:  # python -m training average
        recipes.add("average")
        made = [(_step(m.get("provenance", {}), steps, recipes), m.get("weight")) for m in prov["members"]]
        text = f"{command}: the average of the runs of " + ", ".join(
            f"step {i} (weight {w:.2f})" if isinstance(w, float) else f"step {i}" for i, w in made
        )
    elif "cross_entropy_recipe" in prov:  # python -m training caption-scst
        recipes.add("caption-scst")
        start = _step(prov["cross_entropy_recipe"], steps, recipes)
        reward = prov.get("reward", "CIDEr-D")
        text = f"{command} (seed {prov.get('seed', '?')}; reward {reward}) on the run of step {start}"
    else:
        text = f"{command} (seed {prov.get('seed', '?')})"
    if text not in steps:
        steps.append(text)
    return steps.index(text) + 1


def _reproduce_lines(prov: dict) -> list[str]:
    """The commands that made the checkpoint, in order: one line, or numbered steps when it was made from
    other runs (``caption-scst``, ``average``), with what those recipes are."""
    steps: list[str] = []
    recipes: set[str] = set()
    _step(prov, steps, recipes)
    if len(steps) == 1:
        return [f"- reproduce: {steps[0]}"]
    lines = ["- reproduce, in order:", *(f"  {i}. {step}" for i, step in enumerate(steps, start=1))]
    if "caption-scst" in recipes:
        lines.append(
            "- self-critical sequence training (`caption-scst`; Rennie et al. 2017): the decoder samples "
            "captions and is rewarded by their score against the image's references (the step's reward), "
            "the mean of the image's other samples as the baseline"
        )
    if "average" in recipes:
        lines.append(
            "- weight averaging (`average`; model soups, Wortsman et al. 2022): the mean of the weights of "
            "runs that share their start, one model at the cost of one"
        )
    return lines


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
        *(
            [
                f"- during training (PyTorch, {training.get('bleu_decoding', 'greedy')}, first "
                f"{training.get('bleu_images', '?')} dev images, best epoch): "
                + ", ".join(f"{k} {v:.4f}" for k, v in training["dev"].items())
            ]
            if training.get("dev")
            else []
        ),
        "",
        "## Sample captions (dev images, beam size 3)",
        "",
    ]
    # the training run's (PyTorch), or, for a run that has none (an average), the dev evaluation's
    samples = prov.get("samples") or prov.get("evaluation_dev", {}).get("samples", [])
    for sample in samples:
        reference = f" (reference: {sample['references'][0]})" if sample.get("references") else ""
        lines.append(f"- `{sample['image']}`: **{sample['caption']}**{reference}")
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
