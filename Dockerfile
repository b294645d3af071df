# syntax=docker/dockerfile:1.7
# Images of modelserve; docker-compose.yml builds them (README, "Deploy with Docker").
#   target api (the default)  the service: non-root, the default models baked in at /models (mount a model
#                             repository over /models to replace them), a HEALTHCHECK on readiness.
#                             VARIANT=gpu (default): onnxruntime-gpu on a CUDA 13 + cuDNN 9 runtime base;
#                             VARIANT=cpu: onnxruntime on a slim Python base, for hosts without a GPU.
#   target train              PyTorch, torchvision and the training CLI (the compose train services).
# onnxruntime-gpu 1.31 is built against CUDA 13 and cuDNN 9: keep CUDA_IMAGE on those major versions.
# Python packages are pinned by docker/requirements-*.txt (written by docker/lock.sh), images by tag.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
ARG VARIANT=gpu

FROM ${UV_IMAGE} AS uv

# ---- the bases of the serving image: Python 3.12, and the execution providers the base can run.
# TensorRT is not in the CUDA runtime image, so the GPU image asks for CUDA, then CPU.
FROM ${CUDA_IMAGE} AS base-gpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
ENV MODELSERVE_PROVIDERS='["CUDAExecutionProvider", "CPUExecutionProvider"]'

FROM ${PYTHON_IMAGE} AS base-cpu
ENV MODELSERVE_PROVIDERS='["CPUExecutionProvider"]'

# ---- the serving virtualenv, built on the base it runs on; only /opt/venv leaves this stage.
# (DL3006 asks for a tagged image; base-${VARIANT} is one of the two stages above.)
# hadolint ignore=DL3006
FROM base-${VARIANT} AS venv
ARG VARIANT
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never
COPY --from=uv /uv /usr/local/bin/uv
COPY docker/requirements-service-${VARIANT}.txt /tmp/requirements.txt
RUN uv venv --python python3 /opt/venv \
    && uv pip install --python /opt/venv/bin/python --no-deps --requirement /tmp/requirements.txt
COPY pyproject.toml README.md /src/
COPY contract /src/contract
COPY service /src/service
RUN uv pip install --python /opt/venv/bin/python --no-deps /src

# ---- the training virtualenv: torch is large, so it lives only in the training image (its wheels bring
# their own CUDA libraries, so a GPU needs only the host's driver)
FROM ${PYTHON_IMAGE} AS train-venv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never
COPY --from=uv /uv /usr/local/bin/uv
COPY docker/requirements-train.txt /tmp/requirements.txt
RUN uv venv --python python3 /opt/venv \
    && uv pip install --python /opt/venv/bin/python --no-deps --requirement /tmp/requirements.txt
COPY pyproject.toml README.md /src/
COPY contract /src/contract
COPY training /src/training
RUN uv pip install --python /opt/venv/bin/python --no-deps /src

FROM ${PYTHON_IMAGE} AS train
COPY --from=train-venv /opt/venv /opt/venv
COPY --chmod=0755 docker/train-and-export.sh /usr/local/bin/train-and-export
RUN useradd --create-home --uid 10001 --user-group train
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg
USER 10001:10001
WORKDIR /home/train
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]

# ---- the serving image; last, so that a plain `docker build .` builds it
# hadolint ignore=DL3006
FROM base-${VARIANT} AS api
COPY --from=venv /opt/venv /opt/venv
COPY models /models
RUN useradd --create-home --uid 10001 --user-group serve
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MODELSERVE_HOST=0.0.0.0 \
    MODELSERVE_PORT=8000 \
    MODELSERVE_MODELS_DIR=/models
USER 10001:10001
WORKDIR /home/serve
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
CMD ["python", "-m", "service"]
