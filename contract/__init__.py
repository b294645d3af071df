"""The model contract shared by ``training/`` (which writes model versions) and ``service/`` (which reads
them): what both must compute alike, written once (issue 22). It imports neither of them, nor torch:

- ``manifest``: the pydantic model of manifest.json, the model-name rule, writing a manifest only once it
  validates;
- ``versions``: the repository's ``<name>/<version>/`` directories, finding them, writing one whole;
- ``files``: the checksums of a version's files;
- ``preprocess``: image preprocessing per the manifest's ``image`` section;
- ``text``: what a sentiment graph reads of texts per the manifest's ``text`` section (window, padding);
- ``beam``: caption decoding, the one beam search;
- ``decoding``: what the captioner's graphs are fed and asked for at each step;
- ``outputs``: a classifier's probabilities from its graph's output (softmax of logits)."""
