"""Shared pytest configuration: the repository root is importable (``service``, ``tests.model_factory``)."""
