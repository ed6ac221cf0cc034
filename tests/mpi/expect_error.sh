#!/bin/bash
# Runs a command that must fail: non-zero exit, within a time limit (a hang
# is a failure), and its output must contain the expected text exactly.
# Usage: expect_error.sh 'expected text' COMMAND...
expected=$1; shift
out=$(timeout 60 "$@" 2>&1); rc=$?
if [ $rc -eq 124 ]; then echo "FAIL: timed out (hang)"; echo "$out"; exit 1; fi
if [ $rc -eq 0 ]; then echo "FAIL: exited 0"; echo "$out"; exit 1; fi
if ! grep -qF -- "$expected" <<<"$out"; then
  echo "FAIL: output lacks: $expected"; echo "$out"; exit 1
fi
n=$(grep -cF -- "$expected" <<<"$out")
if [ "$n" -ne 1 ]; then echo "FAIL: the error line appears $n times"; echo "$out"; exit 1; fi
echo "exit $rc with: $expected"
echo "1 passed, 0 failed"
