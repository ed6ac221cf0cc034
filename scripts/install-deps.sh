#!/bin/bash
# Installs what commpress needs from Debian's packages, if missing:
# one 'apt-get update', then 'apt-get install -y' of the missing ones.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin
      libcriterion-dev libhwloc-dev python3
      # the Python binding's tests and the fast DGC / 1-bit Adam training
      # tests (ctest label "python"); OpenBLAS makes Debian's torch fast
      python3-numpy python3-torch python3-mpi4py dataset-fashion-mnist
      libopenblas0-pthread
      # libFuzzer for the fuzz targets' short runs (scripts/fuzz.sh)
      clang libclang-rt-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "commpress: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
