"""The Open Inference Protocol v2 (KServe, Triton) over the registry and runtimes: the wire format
(``tensors``), the models it serves (``base``; ``pipelines`` for the tasks, ``graphs`` for the ONNX graphs,
``catalogue`` naming them) and its response schemas; routes/v2.py is its HTTP layer."""
