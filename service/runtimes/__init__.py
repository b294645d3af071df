"""One runtime per task, numpy in and numpy out, over onnxruntime sessions; each makes the batching queue
that serves it (``Runtime.batcher``)."""

from .base import Runtime, RuntimeLoadError
from .captioner import CaptionerRuntime
from .classifier import ClassifierRuntime
from .sentiment import SentimentRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    runtime.task: runtime for runtime in (ClassifierRuntime, SentimentRuntime, CaptionerRuntime)
}

__all__ = [
    "RUNTIMES",
    "CaptionerRuntime",
    "ClassifierRuntime",
    "Runtime",
    "RuntimeLoadError",
    "SentimentRuntime",
]
