#!/bin/bash
# Memory checks, run before a change lands (not in CI: they take minutes):
#  1. ASan + UBSan build: unit tests, and 2- and 3-rank integration runs with
#     the sanitized shim preloaded (libasan must come first in LD_PRELOAD);
#  2. ThreadSanitizer: threads making, using and freeing communicators
#     (MPI_THREAD_MULTIPLE) with the sanitized shim preloaded;
#  3. valgrind memcheck on the unit tests (release build) and on both ranks
#     of a 2-rank integration run (debug build, so our frames are named).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCOMMPRESS_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Open MPI's own allocations are not ours to fix.
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp:print_suppressions=0
# The runs check what compression does to each call; the policy's own runs
# set auto (docs/policy.md).
export COMMPRESS_POLICY=always
echo "== unit tests under ASan/UBSan"
(cd build-asan && ctest -L unit --output-on-failure)
asan=$(gcc -print-file-name=libasan.so)
# Under mpirun, Open MPI's components are unloaded before LeakSanitizer
# runs: their leaks cannot be attributed or suppressed. Ranks therefore run
# with ASan and UBSan but no LSan; leaks are checked by LSan in the unit
# tests and by valgrind on a rank below, where our frames are named.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
run() {
  LD_PRELOAD="$asan:$PWD/build-asan/libcommpress.so" tests/mpi/mpirun.sh "$@"
}
for comp in topk sign quant fp16 randk; do
  echo "== $comp, 3 ranks, ASan/UBSan/LSan"
  COMMPRESS_COMPRESSOR=$comp COMMPRESS_MIN_BYTES=0 COMMPRESS_STATE_KEY=address \
    COMMPRESS_RANDK_DENSITY=0.1 run 3 build-asan/tests/test_allreduce compress | tail -1
done
echo "== topk with fp16 values (slots sized for them), 3 ranks"
COMMPRESS_COMPRESSOR=topk COMMPRESS_TOPK_VALUES=fp16 COMMPRESS_MIN_BYTES=0 \
  COMMPRESS_STATE_KEY=address run 3 build-asan/tests/test_allreduce compress | tail -1
echo "== tensor identity: buffer patterns, changes, faults, overflow (4 and 3 ranks)"
for cfg in "topk ef21" "quant econtrol" "sign ef" "fp16 none" "topk ef21-sgdm"; do
  set -- $cfg
  COMMPRESS_COMPRESSOR=$1 COMMPRESS_FEEDBACK=$2 COMMPRESS_MIN_BYTES=0 \
    run 4 build-asan/tests/test_identity patterns | tail -1
done
COMMPRESS_COMPRESSOR=dgc COMMPRESS_DGC_WARMUP_STEPS=4 COMMPRESS_DGC_DENSE_BELOW=5000 \
  COMMPRESS_MIN_BYTES=0 run 4 build-asan/tests/test_identity patterns | tail -1
COMMPRESS_COMPRESSOR=topk COMMPRESS_MIN_BYTES=0 run 3 build-asan/tests/test_identity changes | tail -1
for f in alloc@1:8 alloc@2:9 wsalloc@1:9 encode@2:11; do
  COMMPRESS_COMPRESSOR=quant COMMPRESS_MIN_BYTES=0 COMMPRESS_FAULT=$f \
    run 3 build-asan/tests/test_identity faults | tail -1
done
COMMPRESS_COMPRESSOR=sign COMMPRESS_MIN_BYTES=0 COMMPRESS_FAULT=corrupt1@1:12 \
  run 3 build-asan/tests/test_identity faults | tail -1
COMMPRESS_COMPRESSOR=quant COMMPRESS_MIN_BYTES=0 run 3 build-asan/tests/test_identity range | tail -1
COMMPRESS_COMPRESSOR=fp16 COMMPRESS_MIN_BYTES=0 run 3 build-asan/tests/test_identity overflow | tail -1
# (No quarantine here: freed memory held back by ASan would read as growth
# in the test's flat-memory check.)
for key in auto address; do
  ASAN_OPTIONS=$ASAN_OPTIONS:quarantine_size_mb=0 COMMPRESS_COMPRESSOR=quant COMMPRESS_STATE_KEY=$key COMMPRESS_MIN_BYTES=0 COMMPRESS_MIN_RANKS=1 \
    COMMPRESS_MAX_TENSORS=64 COMMPRESS_MAX_STATE_BYTES=9000000 \
    run 3 build-asan/tests/test_identity bound 2>&1 | grep -v WARN | tail -1
done
COMMPRESS_COMPRESSOR=quant COMMPRESS_MIN_BYTES=0 COMMPRESS_MAX_TENSORS=64 \
  COMMPRESS_MAX_STATE_BYTES=1500000 run 2 build-asan/tests/test_threads 2>&1 | grep -v WARN | tail -1
for comp in quant topk; do # L-GreCo plans (plugin/adapt.c)
  COMMPRESS_COMPRESSOR=$comp COMMPRESS_MIN_BYTES=0 COMMPRESS_ADAPT=lgreco \
    COMMPRESS_ADAPT_EVERY=5 COMMPRESS_ADAPT_WINDOW=2 run 3 build-asan/tests/test_identity adapt | tail -1
  # Fused buffers with layouts (plugin/layout.c), under plans and a bound
  COMMPRESS_COMPRESSOR=$comp COMMPRESS_MIN_BYTES=0 COMMPRESS_ADAPT=lgreco \
    COMMPRESS_ADAPT_EVERY=5 COMMPRESS_ADAPT_WINDOW=2 run 3 build-asan/tests/test_identity layout \
    2>&1 | tail -1
  COMMPRESS_COMPRESSOR=$comp COMMPRESS_MIN_BYTES=0 COMMPRESS_ADAPT=lgreco COMMPRESS_ADAPT_EVERY=5 \
    COMMPRESS_ADAPT_WINDOW=2 COMMPRESS_MAX_STATE_BYTES=1000000 run 3 build-asan/tests/test_identity \
    layout 2>&1 | tail -1
done
COMMPRESS_COMPRESSOR=quant COMMPRESS_MIN_BYTES=0 COMMPRESS_FAULT=alloc@1:0 \
  run 3 build-asan/tests/test_identity layout_fault | tail -1
echo "== LSH-MoE: the explicit API, the shim's all-to-all (ASan/UBSan)"
run 3 build-asan/tests/test_moe | tail -1
COMMPRESS_FAULT=corrupt1@1:0 run 3 build-asan/tests/test_moe corrupt | tail -1
for m in lsh fp16; do
  COMMPRESS_ALLTOALL=$m COMMPRESS_A2A_ROW=64 run 3 build-asan/tests/test_alltoall | tail -1
done
COMMPRESS_ALLTOALL=lsh COMMPRESS_A2A_ROW=64 COMMPRESS_FAULT=corrupt1@1:0 \
  run 3 build-asan/tests/test_alltoall corrupt | tail -1
echo "== COMMPRESS_POLICY=auto: switches to plain and back (ASan/UBSan)"
for cf in quant:ef topk:ef quant:ef21 dgc:auto; do
  COMMPRESS_POLICY=auto COMMPRESS_POLICY_TEST_TIMES=500:500 COMMPRESS_COMPRESSOR=${cf%%:*} \
    COMMPRESS_FEEDBACK=${cf#*:} COMMPRESS_MIN_BYTES=0 run 3 build-asan/tests/test_policy conserve | tail -1
done
COMMPRESS_POLICY=auto COMMPRESS_POLICY_TEST_TIMES=500:500 COMMPRESS_COMPRESSOR=quant \
  COMMPRESS_MIN_BYTES=0 POLICY_TEST_LAYOUT=1 run 3 build-asan/tests/test_policy conserve | tail -1
COMMPRESS_POLICY=auto COMMPRESS_POLICY_TEST_TIMES=100:1000,1000:100,500:500 COMMPRESS_COMPRESSOR=quant \
  COMMPRESS_MIN_BYTES=0 run 3 build-asan/tests/test_policy schedule | tail -1
COMMPRESS_POLICY=auto COMMPRESS_POLICY_TEST_TIMES=500:500 COMMPRESS_COMPRESSOR=quant COMMPRESS_MIN_BYTES=0 \
  COMMPRESS_STATE_KEY=address run 3 build-asan/tests/test_policy moving | tail -1
COMMPRESS_POLICY=auto COMMPRESS_POLICY_TEST_TIMES=900:100,1000:200 COMMPRESS_COMPRESSOR=quant \
  COMMPRESS_MIN_BYTES=0 run 3 build-asan/tests/test_policy predict | tail -1
echo "== pipelined two-phase against the sequential schedule (fallbacks, 2-4 ranks)"
# (linked with the sanitized library: nothing to preload)
# (fields: ranks, codec, settings or -, overflow|no, fused|no, sparse|-)
for c in "3 quant - overflow fused -" "4 bf16 - overflow no -" "2 sign - no fused -" \
         "3 quant COMMPRESS_FEEDBACK=ef21 overflow no -" \
         "3 topk COMMPRESS_ALLREDUCE_ALGO=sparse no fused sparse"; do
  set -- $c
  tests/mpi/mpirun.sh "$1" build-asan/tests/test_pipeline "$2" "${3#-}" "$4" "$5" "${6#-}" | tail -1
done
echo "== sparse_rs against its reference (uneven and empty regions, ties, overflow); node-aware"
for c in "4 moving 65536 8 COMMPRESS_DENSITY=0.01" "5 random 3 4 COMMPRESS_DENSITY=1" \
         "3 ties 20000 6 COMMPRESS_DENSITY=0.05" "3 overflow 30000 5 COMMPRESS_DENSITY=0.01"; do
  set -- $c
  (export "$5"; COMMPRESS_COMPRESSOR=topk COMMPRESS_ALLREDUCE_ALGO=sparse_rs COMMPRESS_TOPK_SELECT=exact \
    COMMPRESS_MIN_BYTES=0 COMMPRESS_POLICY=always run "$1" build-asan/tests/test_sparse_rs "$2" "$3" "$4" | tail -1)
done
for comp in quant topk; do
  COMMPRESS_COMPRESSOR=$comp COMMPRESS_HIERARCHY=node COMMPRESS_HIERARCHY_TEST_NODE=2 \
    COMMPRESS_MIN_BYTES=0 COMMPRESS_POLICY=always run 5 build-asan/tests/test_hierarchy 30011 6 | tail -1
done
echo "== the DDP hook's transport (commpress_create_transport) under ASan/UBSan: python, gloo"
# libasan first in python (not the shim: the hook loads the sanitized
# library itself, through COMMPRESS_LIB)
hookstore=$(mktemp -u)
COMMPRESS_LIB=$PWD/build-asan/libcommpress.so OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  mpirun -np 2 --oversubscribe -x LD_PRELOAD="$asan" -x ASAN_OPTIONS -x COMMPRESS_LIB \
  /usr/bin/python3 tests/python/test_torch_hook.py "$hookstore" | tail -1
rm -f "$hookstore"
echo "== dgc, 3 ranks; 1-bit Adam, 2 and 4 ranks"
COMMPRESS_COMPRESSOR=dgc COMMPRESS_MIN_BYTES=0 COMMPRESS_TOPK_SELECT=exact \
  COMMPRESS_DGC_WARMUP_STEPS=3 COMMPRESS_DGC_CLIP=0.5 COMMPRESS_DGC_DENSE_BELOW=2000 \
  run 3 build-asan/tests/test_allreduce dgc | tail -1
for fb in ef21 econtrol; do
  COMMPRESS_COMPRESSOR=topk COMMPRESS_FEEDBACK=$fb COMMPRESS_TOPK_SELECT=exact \
    COMMPRESS_MIN_BYTES=0 COMMPRESS_DENSITY=0.05 COMMPRESS_ECONTROL_ETA=0.25 \
    run 3 build-asan/tests/test_allreduce estimator | tail -1
done
run 2 build-asan/tests/test_onebit_adam | tail -1
run 4 build-asan/tests/test_onebit_adam | tail -1
COMMPRESS_COMPRESSOR=topk run 2 build-asan/tests/test_allreduce passthrough | tail -1
COMMPRESS_COMPRESSOR=topk COMMPRESS_MIN_BYTES=0 COMMPRESS_STATE_KEY=order COMMPRESS_STEP_CALLS=2 \
  run 3 build-asan/tests/test_allreduce order | tail -1
echo "== ThreadSanitizer: 4 threads x communicators, 2 ranks"
# Without CUDA (its runtime is not instrumented) and without target_clones:
# an ifunc resolver runs before TSan's runtime is up. Open MPI is not
# instrumented either: ignore_noninstrumented_modules and scripts/tsan.supp
# keep its internals out; our code is never suppressed. mpirun is called
# directly: a TSan library must not be preloaded into mpirun or bash.
cmake -S . -B build-tsan -DCOMMPRESS_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS="-fsanitize=thread -O1 -g -DCP_NO_CLONES" \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build build-tsan -j"$(nproc)" --target commpress test_threads >/dev/null
for bound in 1500000 0; do
  TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp ignore_noninstrumented_modules=1 halt_on_error=1 exitcode=66" \
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
    mpirun -np 2 --oversubscribe --bind-to none -x TSAN_OPTIONS \
    -x LD_PRELOAD="$PWD/build-tsan/libcommpress.so" -x COMMPRESS_COMPRESSOR=quant -x COMMPRESS_POLICY \
    -x COMMPRESS_MIN_BYTES=0 -x COMMPRESS_MAX_TENSORS=64 -x COMMPRESS_MAX_STATE_BYTES=$bound \
    build-tsan/tests/test_threads 12 2>&1 | grep -v "WARN" | tail -2
done
echo "== valgrind on the unit tests"
scripts/build.sh >/dev/null
ulog=$(mktemp)
for u in cast sign quant topk randk feedback dgc fl config fuzz_decode step_detect lgreco; do
  t=build/tests/test_$u
  valgrind -q --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite \
    "$t" --no-early-exit --jobs 1 >/dev/null 2>"$ulog" || { cat "$ulog"; exit 1; }
  echo "$(basename "$t"): clean"
done
# A report is ours when one of the four frames nearest the allocation or
# the faulting access is in one of our source files (given as a regex of
# their names): Open MPI's reports pass through our MPI_Init/MPI_Finalize
# wrappers deeper in the stack. Every C file of the library is ours.
ours=$(ls util/*.c compressors/*.c collectives/*.c plugin/*.c optim/*.c moe/*.c |
       xargs -n1 basename | sed 's/\.c$//' | grep -vx info | paste -sd'|')
check_ours() {
  local re="\\($2\\.c:"
  if awk -v re="$re" '/definitely lost|Invalid (read|write)|uninitialised/ {n = 5; hdr = $0; next}
       n > 0 { n--; if ($0 ~ re) { print hdr; print; found = 1 } }
       END { exit !found }' "$1"/rank.*; then
    echo "valgrind found a problem in commpress (above)"; exit 1
  fi
  echo "valgrind: no error or definite leak in commpress"
}
echo "== valgrind on both ranks of a 2-rank run (topk, order keying; debug build)"
cmake -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-O1 -g" >/dev/null
cmake --build build-debug -j"$(nproc)" >/dev/null
vg=$(mktemp -d)
COMMPRESS_COMPRESSOR=topk COMMPRESS_MIN_BYTES=0 COMMPRESS_STATE_KEY=order COMMPRESS_STEP_CALLS=2 \
  LD_PRELOAD=$PWD/build-debug/libcommpress.so tests/mpi/mpirun.sh 2 valgrind -q \
  --suppressions=scripts/ompi.supp --leak-check=full --show-leak-kinds=definite \
  --log-file="$vg/rank.%p" build-debug/tests/test_allreduce order | tail -1
check_ours "$vg" "($ours|test_allreduce)"
rm -rf "$vg"
echo "== valgrind on both ranks of a 2-rank identity run (auto naming, EF21; debug build)"
vg=$(mktemp -d)
COMMPRESS_COMPRESSOR=topk COMMPRESS_FEEDBACK=ef21 COMMPRESS_MIN_BYTES=0 \
  LD_PRELOAD=$PWD/build-debug/libcommpress.so tests/mpi/mpirun.sh 2 valgrind -q \
  --suppressions=scripts/ompi.supp --leak-check=full --show-leak-kinds=definite \
  --log-file="$vg/rank.%p" build-debug/tests/test_identity patterns | tail -1
check_ours "$vg" "($ours|test_identity)"
rm -rf "$vg"
echo "== valgrind on both ranks of a 2-rank layout run (fused buffers, L-GreCo; debug build)"
vg=$(mktemp -d)
COMMPRESS_COMPRESSOR=topk COMMPRESS_MIN_BYTES=0 COMMPRESS_ADAPT=lgreco COMMPRESS_ADAPT_EVERY=5 \
  COMMPRESS_ADAPT_WINDOW=2 LD_PRELOAD=$PWD/build-debug/libcommpress.so tests/mpi/mpirun.sh 2 \
  valgrind -q --suppressions=scripts/ompi.supp --leak-check=full --show-leak-kinds=definite \
  --log-file="$vg/rank.%p" build-debug/tests/test_identity layout 2>&1 | tail -1
check_ours "$vg" "($ours|test_identity)"
rm -rf "$vg"
echo "== valgrind on both ranks of LSH-MoE and the lsh all-to-all (debug build)"
vg=$(mktemp -d)
tests/mpi/mpirun.sh 2 valgrind -q --suppressions=scripts/ompi.supp --leak-check=full \
  --show-leak-kinds=definite --log-file="$vg/rank.%p" build-debug/tests/test_moe | tail -1
COMMPRESS_ALLTOALL=lsh COMMPRESS_A2A_ROW=64 tests/mpi/mpirun.sh 2 valgrind -q \
  --suppressions=scripts/ompi.supp --leak-check=full --show-leak-kinds=definite \
  --log-file="$vg/rank.%p" build-debug/tests/test_alltoall | tail -1
check_ours "$vg" "($ours|test_moe|test_alltoall)"
rm -rf "$vg"
echo "== valgrind on both ranks of COMMPRESS_POLICY=auto (switches, address keying; debug build)"
vg=$(mktemp -d)
COMMPRESS_POLICY=auto COMMPRESS_POLICY_TEST_TIMES=500:500 COMMPRESS_COMPRESSOR=quant COMMPRESS_FEEDBACK=ef21 \
  COMMPRESS_MIN_BYTES=0 LD_PRELOAD=$PWD/build-debug/libcommpress.so tests/mpi/mpirun.sh 2 valgrind -q \
  --suppressions=scripts/ompi.supp --leak-check=full --show-leak-kinds=definite \
  --log-file="$vg/rank.%p" build-debug/tests/test_policy conserve | tail -1
COMMPRESS_POLICY=auto COMMPRESS_POLICY_TEST_TIMES=500:500 COMMPRESS_COMPRESSOR=quant COMMPRESS_MIN_BYTES=0 \
  COMMPRESS_STATE_KEY=address LD_PRELOAD=$PWD/build-debug/libcommpress.so tests/mpi/mpirun.sh 2 valgrind -q \
  --suppressions=scripts/ompi.supp --leak-check=full --show-leak-kinds=definite \
  --log-file="$vg/rank.%p" build-debug/tests/test_policy moving | tail -1
check_ours "$vg" "($ours|test_policy)"
rm -rf "$vg"
echo "== valgrind on both ranks of 1-bit Adam (debug build)"
vg=$(mktemp -d)
tests/mpi/mpirun.sh 2 valgrind -q --suppressions=scripts/ompi.supp --leak-check=full \
  --show-leak-kinds=definite --log-file="$vg/rank.%p" build-debug/tests/test_onebit_adam | tail -1
check_ours "$vg" "($ours|test_onebit_adam)"
rm -rf "$vg"
echo "== valgrind on both ranks of the pipelined two-phase (quant, fallbacks; debug build)"
vg=$(mktemp -d)
tests/mpi/mpirun.sh 2 valgrind -q --suppressions=scripts/ompi.supp --leak-check=full \
  --show-leak-kinds=definite --log-file="$vg/rank.%p" build-debug/tests/test_pipeline quant "" \
  overflow fused | tail -1
check_ours "$vg" "($ours|test_pipeline)"
rm -rf "$vg"
echo "== valgrind on both ranks of sparse_rs and of a node-aware run (debug build)"
vg=$(mktemp -d)
COMMPRESS_COMPRESSOR=topk COMMPRESS_ALLREDUCE_ALGO=sparse_rs COMMPRESS_TOPK_SELECT=exact \
  COMMPRESS_MIN_BYTES=0 COMMPRESS_POLICY=always LD_PRELOAD=$PWD/build-debug/libcommpress.so \
  tests/mpi/mpirun.sh 2 valgrind -q --suppressions=scripts/ompi.supp --leak-check=full \
  --show-leak-kinds=definite --log-file="$vg/rank.%p" build-debug/tests/test_sparse_rs ties 20000 4 | tail -1
COMMPRESS_COMPRESSOR=quant COMMPRESS_HIERARCHY=node COMMPRESS_HIERARCHY_TEST_NODE=2 \
  COMMPRESS_MIN_BYTES=0 COMMPRESS_POLICY=always LD_PRELOAD=$PWD/build-debug/libcommpress.so \
  tests/mpi/mpirun.sh 2 valgrind -q --suppressions=scripts/ompi.supp --leak-check=full \
  --show-leak-kinds=definite --log-file="$vg/rank.%p" build-debug/tests/test_hierarchy 30011 4 | tail -1
check_ours "$vg" "($ours|test_sparse_rs|test_hierarchy)"
rm -rf "$vg"
echo "memory checks passed"
