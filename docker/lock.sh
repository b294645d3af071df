#!/bin/sh
# Pins the images' Python packages: writes docker/requirements-*.txt from pyproject.toml for the images'
# Python (3.12) on x86-64 Linux. Run from the repository root after changing a dependency, and commit the
# result (tests/deploy checks that every lock still satisfies pyproject.toml).
#   requirements-service-gpu.txt   the serving image on the CUDA base (onnxruntime-gpu)
#   requirements-service-cpu.txt   the serving image for CPU hosts: onnxruntime, same version, instead
#   requirements-train.txt         the training image (the train extra: torch, torchvision, ...)
set -eu
compile() {
    uv pip compile pyproject.toml --quiet --no-header --annotation-style split \
        --python-version 3.12 --python-platform x86_64-manylinux_2_28 "$@"
}
compile -o docker/requirements-service-gpu.txt
compile --extra train -o docker/requirements-train.txt
version=$(sed -n 's/^onnxruntime-gpu==//p' docker/requirements-service-gpu.txt)
overrides=$(mktemp)
trap 'rm -f "$overrides"' EXIT
echo 'onnxruntime-gpu ; sys_platform == "never"' >"$overrides"  # a marker that never holds drops it
echo "onnxruntime==$version" | compile - --override "$overrides" -o docker/requirements-service-cpu.txt
