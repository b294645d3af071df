"""Service settings: one object, built once (environment variables prefixed ``MODELSERVE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .versions import POLICY_PATTERN

DEFAULT_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


class BatchingOverride(BaseModel):
    """Per-model batching settings; a field left out keeps the service-wide default."""

    max_size: int | None = Field(None, ge=1, description="Most items (images, texts) in one run.")
    max_delay_ms: float | None = Field(None, ge=0, description="Longest wait for a batch to fill.")
    queue_size: int | None = Field(None, ge=1, description="Most requests waiting for a run.")
    max_wait_ms: float | None = Field(
        None, ge=0, description="The queue-wait deadline (batch_max_wait_ms) for this model; 0: none."
    )


class Settings(BaseSettings):
    """Every option of the service. Each field is read from ``MODELSERVE_<FIELD_NAME>`` (case-insensitive);
    list fields take a JSON list, e.g. ``MODELSERVE_PROVIDERS='["CPUExecutionProvider"]'``."""

    model_config = SettingsConfigDict(env_prefix="MODELSERVE_", extra="ignore")

    # --- server and repository
    host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port of the HTTP server.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Logging level.")
    models_dir: Path = Field(
        Path("models"), description="The model repository: <name>/<version>/manifest.json."
    )
    enabled_models: list[str] = Field(
        default_factory=list,
        description="Model names to load; empty means every model found in models_dir. An enabled name with "
        "no loadable version keeps the service unready.",
    )
    version_policy: str = Field(
        "all",
        pattern=POLICY_PATTERN,
        description="Which versions of each model are loaded and served: 'all'; 'latest:N', the N highest "
        "that load (a newer version that fails never displaces a working one; older ones are retired once "
        "a newer one serves); 'specific:1,3'. Without a version in the request, the highest served one "
        "answers.",
    )
    repository_poll_s: float = Field(
        0.0,
        ge=0,
        description="Seconds between scans of models_dir for new, changed and removed versions, which are "
        "then loaded and warmed before they serve, or retired; 0: the repository is read at start only "
        "(POST /v2/repository/models/<name>/load still rescans).",
    )
    retire_grace_s: float = Field(
        5.0,
        ge=0,
        description="A retired version keeps answering the requests that reached it before it was retired "
        "for this long; then its queue is drained and its sessions released.",
    )
    default_image_classifier: str = Field(
        "imagenet-lite0",
        description="Model used by /v1/classify-image when the request names none. If the repository "
        "holds it but no version serves, requests get 503 with the reason and readiness is held back; "
        "only if the repository has no such model is the first image classifier by name used.",
    )
    default_sentiment_model: str = Field(
        "sentiment-lstm", description="Default model of /v1/sentiment (same fallback rule)."
    )
    default_captioner: str = Field(
        "captioner", description="Default model of /v1/caption (same fallback rule)."
    )

    api_keys_file: Path | None = Field(
        None,
        description="API keys: a file of lines '<inference|admin> <sha256 hex of a key>' (python -m "
        "service.keys new makes them). Unset: no keys, every endpoint open (the loopback default). Set: "
        "every endpoint but health needs a key (Authorization: Bearer, or X-API-Key); admin scope for "
        "/metrics, /v1/models and the v2 repository operations.",
    )

    @field_validator("api_keys_file")
    @classmethod
    def _keys_file_reads(cls, path: Path | None) -> Path | None:
        if path is not None:
            from .auth import KeyRing  # reads and checks it: a bad file stops the start, with the line

            KeyRing.read(path)
        return path

    # --- execution providers
    providers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROVIDERS),
        description="Execution providers in order of preference. Those not compiled into onnxruntime are "
        "dropped; onnxruntime itself may still fall back to CPU, which is reported per model.",
    )
    require_gpu: bool = Field(
        False, description="Readiness fails, with the reason, when any loaded model runs on CPU only."
    )
    device_id: int = Field(0, ge=0, description="GPU index for the CUDA and TensorRT providers.")
    cuda_mem_limit_bytes: int | None = Field(
        None, ge=1, description="CUDA memory arena limit in bytes (gpu_mem_limit); null: no limit."
    )
    cuda_arena_extend_strategy: Literal["kNextPowerOfTwo", "kSameAsRequested"] = Field(
        "kNextPowerOfTwo", description="How the CUDA memory arena grows."
    )
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "EXHAUSTIVE", description="cuDNN convolution algorithm search."
    )
    trt_fp16: bool = Field(False, description="Let TensorRT build fp16 engines.")
    trt_engine_cache_dir: Path | None = Field(
        None, description="Directory where TensorRT caches built engines; null: no cache."
    )
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime graph optimisation level."
    )
    intra_op_threads: int = Field(0, ge=0, description="Threads inside one operator; 0: onnxruntime decides.")
    inter_op_threads: int = Field(0, ge=0, description="Threads across operators; 0: onnxruntime decides.")
    cpu_memory_arena: bool = Field(
        True,
        description="onnxruntime's CPU memory arena: it keeps the largest batch's activations allocated "
        "(here imagenet-lite0 held 661 MB after warm-up with it, 152-277 MB without) and runs faster (its "
        "batch of 8 in 29 ms, 46-53 ms without; the service with every default model, 2,445 MB against "
        "397 MB). Off for a host short of memory.",
    )
    intra_op_spinning: bool = Field(
        False,
        description="Let onnxruntime's idle operator threads spin for work (faster hand-off, but they burn "
        "the CPU that the HTTP server and preprocessing need); off by default.",
    )

    # --- request limits
    max_upload_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1,
        description="Largest request body in bytes (413 above it, refused while reading).",
    )
    request_body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest a request body may take to arrive, from when its reading starts (408 after "
        "it, and the connection closed): a client that stalls or trickles its upload holds nothing longer.",
    )
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Largest image, width x height, checked from its header (413 above it)."
    )
    max_decoding_pixels: int = Field(
        100_000_000,
        ge=1,
        description="Most pixels being decoded at once over every request (an image's decoded RGB takes 3 "
        "bytes a pixel, and more while it is preprocessed); a decode waits for room, and an image alone "
        "always fits.",
    )
    max_requests_in_flight: int = Field(
        512,
        ge=0,
        description="Most requests being answered at once by one server process (health endpoints "
        "apart); beyond, 503 overloaded with Retry-After at once, before the body is read. 0: no bound.",
    )
    max_body_bytes_in_flight: int = Field(
        268_435_456,
        ge=0,
        description="Most bytes of request bodies the requests being answered may hold (each counts its "
        "Content-Length, or max_upload_bytes without one); beyond, 503 overloaded. 0: no bound.",
    )
    max_batch_items: int = Field(32, ge=1, description="Most images or texts in one request (413 above it).")
    max_text_chars: int = Field(
        100_000,
        ge=1,
        description="Longest text in characters (422 above it): a memory guard far above real documents. A "
        "text longer than the model reads (its manifest's max_length tokens) is read up to that and "
        "answered with truncated: true.",
    )
    max_axis_size: int = Field(
        1024,
        ge=1,
        description="Largest size of a /v2 graph input's free axis other than the first (a token sequence): "
        "413 above it. The first axis is held to max_batch_items.",
    )
    max_top_k: int = Field(100, ge=1, description="Largest top_k of /v1/classify-image.")
    max_caption_length: int = Field(50, ge=1, description="Largest max_length of /v1/caption, in tokens.")
    max_beam_size: int = Field(8, ge=1, description="Largest beam_size of /v1/caption.")

    # --- dynamic batching (service/batching.py)
    batch_max_size: int = Field(
        32,
        ge=1,
        description="Most items (images or texts) coalesced into one onnxruntime run; for a captioner, the "
        "most images decoded together (each with its beams). The model is warmed up at the powers of two "
        "up to it.",
    )
    batch_max_delay_ms: float = Field(
        0.0,
        ge=0,
        description="Once a request is waiting, the longest the batcher waits for more before it runs "
        "(it runs at once when the batch is full). 0: run what is waiting as soon as the model is free; "
        "under load, batches form from the requests that arrive during the previous run.",
    )
    batch_padding: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Pad each run's batch (its first axis) up to the next power of two, repeating its last "
        "row, drop the padded rows from the outputs, and give each padded size its own onnxruntime "
        "session (made at warm-up), so that a session always runs at one shape. With the CUDA provider a "
        "session whose input shape changes from one run to the next sets its convolutions up again "
        "(measured on an H100: about 250 ms per pets-resnet18 run, against 2-3 ms at a steady shape); "
        "the price is GPU memory: each size's session holds its own weights and memory arena (6 sizes up to "
        "32; cap them with cuda_mem_limit_bytes, which applies per session). On a CPU the padded "
        "rows are wasted work. auto: pad graphs whose session runs on a GPU provider.",
    )
    batch_queue_size: int = Field(
        256,
        ge=1,
        description="Most requests waiting per model; beyond, 503 queue_full with Retry-After.",
    )
    batch_max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="Longest a request may wait in a model's queue before its run starts, a deadline past "
        "which an answer is of no use to most clients: a request expected to wait longer (the items "
        "queued ahead of it over the items per second the model has been computing) is refused at once, "
        "and one that has waited longer when its turn comes is refused then, both with 503 queue_full "
        "and Retry-After, instead of being answered late. 0: no deadline (batch_queue_size bounds the "
        "queue).",
    )
    batching: dict[str, BatchingOverride] = Field(
        default_factory=dict,
        description="Per model name, overrides of the three batch settings, e.g. "
        '{"pets-resnet18": {"max_size": 64, "max_delay_ms": 5}}.',
    )

    # --- processes
    max_header_bytes: int = Field(
        65536,
        ge=1024,
        description="Largest request head (request line and headers) in bytes: 431, in the one error "
        "shape, above it, and the connection closed (httptools parser; with h11, its own limit).",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest a request's head may take to arrive, from its first byte (or from the "
        "connection, for one that sends nothing): 408 after it, and the connection closed (a slowloris "
        "client holds nothing longer; httptools parser).",
    )
    keep_alive_timeout_s: int = Field(
        5, ge=1, description="An idle kept-alive connection is closed after this many seconds."
    )
    max_connections: int = Field(
        0,
        ge=0,
        description="Most connections open at once; a new one beyond is answered 503 and closed "
        "(httptools parser). 0: the open-file limit less 128 for the process's own files.",
    )
    http_parser: Literal["httptools", "h11"] = Field(
        "httptools",
        description="uvicorn's HTTP/1.1 parser. httptools (C) costs a quarter less CPU a request than h11 "
        "(pure Python), but drops the body of a request that offers a protocol upgrade (Upgrade: h2c, as "
        "some HTTP/2-capable clients send), which the service then refuses with 400 and says why; h11 "
        "serves such requests.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Server processes sharing the port, each with its own models, sessions and batchers "
        "(memory, GPU memory included, times this). More than one: a supervisor process starts them, "
        "passes stop signals on and replaces a worker that dies; /metrics adds up the workers'. One Python "
        "process answers about 1,300 small requests a second (sentiment on an H100): more workers serve "
        "more where the model is not the limit.",
    )

    # --- shutdown (SIGTERM or SIGINT)
    shutdown_delay_s: int = Field(
        0,
        ge=0,
        description="Seconds between the signal, when readiness turns 503, and the moment the server stops "
        "accepting connections: set it to the time a load balancer polling readiness needs to take the "
        "instance out of rotation.",
    )
    shutdown_timeout_s: int = Field(
        30,
        ge=0,
        description="Once the server stops accepting, the most seconds it waits for requests in flight "
        "before cancelling them; then the models are released and the process exits 0.",
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
