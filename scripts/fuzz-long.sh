#!/usr/bin/env bash
# Every libFuzzer target for SECONDS each (default 3600), the grown corpus
# kept in $CP_FUZZ_BUILD/corpus/<target> (default build-fuzz/), never in
# the repository; prints target | executions | seconds | result, with the
# executions each target has survived over all long runs. scripts/fuzz.sh
# has the details and the environment.
exec "$(dirname "${BASH_SOURCE[0]}")/fuzz.sh" --long "${1:-3600}"
