"""The model contract shared by ``training/`` (which writes model versions) and ``service/`` (which reads
them): what both must compute alike. It imports neither of them, nor torch. It holds the manifest's model
and the model-name rule (``manifest``), the checksums of a version's files (``files``) and caption
decoding, the one beam search (``beam``); the version-directory rules and image preprocessing are still
written in both packages (issue 22) and move here one by one."""
