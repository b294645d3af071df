"""The model contract shared by ``training/`` (which writes model versions) and ``service/`` (which reads
them): what both must compute alike. It imports neither of them, nor torch. It holds the manifest's model
and the model-name rule (``manifest``), the repository's directory rules: finding versions and writing one
whole and valid (``versions``), the checksums of a version's files (``files``) and caption decoding, the
one beam search (``beam``); image preprocessing is still written in both packages (issue 22) and moves
here next."""
