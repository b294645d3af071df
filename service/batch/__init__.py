"""Offline batch inference: ``python -m service.batch`` runs the service's runtimes in process over a
folder of images or a table of texts and writes one row per input (Parquet or JSONL), resumable, with
progress; ``--engine ray`` runs the same pipeline as a Ray Data job."""
