#!/bin/sh
# Installs the serving virtualenv at /opt/venv from the pinned lock, on either runtime base:
# the CUDA image (Ubuntu 24.04, no Python yet) or the slim Python image (Python already there).
set -eu
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    apt-get update
    apt-get install -y --no-install-recommends python3 python3-venv
    rm -rf /var/lib/apt/lists/*
fi
python3 -m venv /opt/venv
/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps -r /tmp/requirements-service.txt
/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /tmp/src
rm -rf /tmp/src /tmp/requirements-service.txt
