#!/bin/bash
# commpress-info: the listing covers every codec and its rows; -c gives the
# configuration of the environment or the job's one-line error.
# Usage: info.sh path/to/commpress-info
info=$1
pass=0 fail=0
check() { # what, command status
  if [ "$2" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi
}
out=$("$info"); check "listing exits 0" $?
grep -q "^commpress [0-9]\+\.[0-9]\+\.[0-9]\+$" <<<"$out"; check "version line" $?
grep -q "^  CUDA/NCCL path  *\(yes\|no\)" <<<"$out"; check "CUDA/NCCL capability" $?
grep -q "^  AVX2 clones  *\(yes\|no\)" <<<"$out"; check "AVX2 capability" $?
codecs=$("$info" --codecs)
for c in none fp16 bf16 topk sign quant dgc randk; do
  grep -qx "$c" <<<"$codecs"; check "--codecs lists $c" $?
done
for c in $codecs; do
  grep -q "^  $c  *\(pass-through\|two-phase\|sparse allgather\) algorithm" <<<"$out"
  check "listing describes $c" $?
done
grep -q "^      COMMPRESS_RANDK_DENSITY (default 0.01; a number in (0, 1\])" <<<"$out"
check "randk's row with default and range" $?
grep -q "^  ef21-sgdm\( \[gpu\]\)\?$" <<<"$out"; check "feedback variants listed" $?

out=$(env -i COMMPRESS_COMPRESSOR=randk COMMPRESS_RANDK_DENSITY=0.05 "$info" -c); check "-c exits 0" $?
grep -qx "compressor randk, feedback ef (auto)" <<<"$out"; check "-c: codec and feedback" $?
grep -qx "  COMMPRESS_RANDK_DENSITY=0.05   (set)" <<<"$out"; check "-c: the codec's row, marked set" $?
grep -qx "  COMMPRESS_MIN_BYTES=65536" <<<"$out"; check "-c: the shim's rows" $?
! grep -q "COMMPRESS_BITS" <<<"$out"; check "-c: no other codec's rows" $?

err=$(env -i COMMPRESS_RANDK_DENSITY=3 "$info" -c 2>&1); rc=$?
[ $rc = 1 ]; check "-c on an invalid value exits 1" $?
[ "$err" = "commpress: error: COMMPRESS_RANDK_DENSITY='3' is invalid; accepted: a number in (0, 1]" ]
check "-c prints the job's one line ($err)" $?
err=$(env -i COMMPRESS_COMPRESSOR=dgc COMMPRESS_FEEDBACK=ef "$info" -c 2>&1)
[ "$err" = "commpress: error: COMMPRESS_FEEDBACK='ef' is invalid with COMMPRESS_COMPRESSOR=dgc; accepted: auto (dgc keeps its own error feedback)" ]
check "-c prints the builder's line ($err)" $?
"$info" --bogus >/dev/null 2>&1; [ $? = 2 ]; check "unknown option exits 2" $?
echo "$pass passed, $fail failed"
[ $fail = 0 ]
