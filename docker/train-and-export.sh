#!/bin/sh
# Entrypoint of the compose train services: train with `python -m training RECIPE [OPTIONS]`, then export
# the run this made into the model repository as a new version (the service serves it after a restart).
#   train-and-export digits --data /data --epochs 6 --augment --seed 0
# Runs go under $RUNS_DIR (default /runs), versions into $MODELS_DIR (default /models).
set -eu
if [ "$#" -eq 0 ]; then
    echo "usage: train-and-export RECIPE [OPTIONS]  (recipes: python -m training --help)" >&2
    exit 2
fi
runs_dir=${RUNS_DIR:-/runs}
models_dir=${MODELS_DIR:-/models}
mkdir -p "$runs_dir"
# A directory of this job's own, so that the export finds the run this job made and no other.
job=$(mktemp -d "$runs_dir/job-XXXXXX")
python -m training "$@" --out "$job"
for run in "$job"/*/; do
    python -m training export "$run" --out "$models_dir"
done
