"""Benchmark: the raw pipeline in-process, the service over HTTP and a naive PyTorch server (README.md)."""
