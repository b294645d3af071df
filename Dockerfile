# syntax=docker/dockerfile:1.7
# Images of the model-serving product.
#   target api (default)   the service; VARIANT=gpu (default): onnxruntime-gpu on a CUDA 13 + cuDNN 9 runtime
#                          base; VARIANT=cpu: the same service on a slim Python base for hosts without a GPU
#   target train           PyTorch + torchvision and the training CLI (the compose `train` profile)
# onnxruntime-gpu 1.31 is built against CUDA 13 and cuDNN 9: keep CUDA_IMAGE on those major versions.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
ARG VARIANT=gpu

# ---- the two runtime bases, each with the serving virtualenv (pinned by docker/requirements-service.txt) ----
FROM ${CUDA_IMAGE} AS runtime-gpu
COPY docker/requirements-service.txt /tmp/requirements-service.txt
COPY pyproject.toml README.md /tmp/src/
COPY service /tmp/src/service
COPY docker/install-service.sh /usr/local/bin/install-service
RUN install-service

FROM ${PYTHON_IMAGE} AS runtime-cpu
COPY docker/requirements-service.txt /tmp/requirements-service.txt
COPY pyproject.toml README.md /tmp/src/
COPY service /tmp/src/service
COPY docker/install-service.sh /usr/local/bin/install-service
RUN install-service

# ---- the serving image: non-root, default models baked in (mount a repository over /models to replace) ----
# hadolint ignore=DL3006
FROM runtime-${VARIANT} AS api
RUN useradd --create-home --uid 10001 --user-group serve \
    && mkdir -p /var/cache/modelserve/trt \
    && chown serve:serve /var/cache/modelserve/trt
COPY --chown=serve:serve models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MODELSERVE_HOST=0.0.0.0 \
    MODELSERVE_PORT=8000 \
    MODELSERVE_MODELS_DIR=/models \
    MODELSERVE_TRT_ENGINE_CACHE_DIR=/var/cache/modelserve/trt
USER serve
WORKDIR /home/serve
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
CMD ["python", "-m", "service"]

# ---- training image: torch is large, so it lives only here ----
FROM ${PYTHON_IMAGE} AS train
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
RUN pip install --no-cache-dir ".[train]==0.1.0" 2>/dev/null || pip install --no-cache-dir ".[train]"
RUN useradd --create-home --uid 10001 --user-group train
USER train
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]
