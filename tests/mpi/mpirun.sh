#!/bin/bash
# mpirun for the tests: NP ranks on this machine, oversubscribed, every
# COMMPRESS_* of the environment forwarded. Usage: mpirun.sh NP PROGRAM ARGS...
np=$1; shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Containers often forbid the cross-memory-attach single copy; plain copies
# work everywhere.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
fwd=()
for v in $(env | grep -o '^COMMPRESS_[A-Z0-9_]*'); do fwd+=(-x "$v"); done
# The preload is for the ranks, not for mpirun itself.
if [ -n "${LD_PRELOAD:-}" ]; then
  fwd+=(-x "LD_PRELOAD=$LD_PRELOAD")
  unset LD_PRELOAD
fi
exec mpirun -np "$np" --oversubscribe --bind-to none "${fwd[@]}" "$@"
