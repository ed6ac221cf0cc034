#!/bin/bash
# README command 1: install what is missing, build, and run the main job:
# a 4-rank allreduce of a ResNet-50-sized gradient, plain and compressed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun -np 4 --oversubscribe --bind-to none build/resnet_allreduce "$@"
