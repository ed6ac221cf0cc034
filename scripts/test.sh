#!/bin/bash
# README command 2: install what is missing, build, run the whole test suite
# (Criterion unit tests and mpirun integration tests with 2, 3 and 4 ranks).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure -j2 "$@"
