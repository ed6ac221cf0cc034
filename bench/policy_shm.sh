#!/bin/bash
# Shared memory (no emulated network), 4 ranks on 2 cores: plain vs quant
# (always) vs quant (auto), fused and per-tensor, interleaved, 2 rounds.
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
out=$PWD/docs/results/policy/shm; mkdir -p $out
lib=$PWD/build/libcommpress.so
for r in 1 2; do
 for b in fused per-tensor; do
  mpirun -np 4 --oversubscribe --bind-to none /usr/bin/python3 examples/train_fmnist.py --mode mpi --bucket $b --steps 300 --label plain-$b --out $out/plain-$b-r$r.json >/dev/null 2>&1
  for pol in always auto; do
   mpirun -np 4 --oversubscribe --bind-to none -x LD_PRELOAD=$lib -x COMMPRESS_COMPRESSOR=quant -x COMMPRESS_POLICY=$pol -x COMMPRESS_DEBUG=INFO \
     /usr/bin/python3 examples/train_fmnist.py --mode mpi --bucket $b --steps 300 --label quant-$pol-$b --out $out/quant-$pol-$b-r$r.json > $out/quant-$pol-$b-r$r.log 2>&1
  done
 done
done
for f in $out/*.json; do python3 -c "
import json; d=json.load(open('$f')); print('%-40s total %.1f s median step %.1f ms acc %.4f' % ('$f'.split('/')[-1], d['total_s'], 1e3*d['median_step_s'], d['final_test_acc']))"; done
