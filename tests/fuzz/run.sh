#!/bin/bash
# tests/fuzz/run.sh -- build the libFuzzer targets with clang (in build-fuzz/, apart from the
# normal build), seed each one's corpus (valid images, journals and nodes, and the crafted nodes
# and images of docs/security.md), and fuzz each for ${FUZZ_SECONDS:-60} seconds, one after the
# other. Exits non-zero on any crash, leak, sanitizer report or timeout (a hang: -timeout=10);
# the reproducer (crash-*, leak-*, timeout-*) is left in ${FUZZ_ARTIFACTS:-build-fuzz/artifacts}/TARGET.
#
#   image_fuzzer   checkpoint images and journal records, in-process
#   node_fuzzer    whole node files: restore, live operations, checkpoint, check
#   import_fuzzer  export images through import
#
# env: FUZZ_SECONDS (60, per target), FUZZ_TARGETS (all three), FUZZ_JOBS (1),
#      FUZZ_BUILD_DIR (REPO/build-fuzz), FUZZ_CORPUS (BUILD_DIR/corpus, kept between runs; one
#      directory per target), FUZZ_ARTIFACTS (BUILD_DIR/artifacts)
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD_DIR:-$REPO/build-fuzz}
SECONDS_TO_RUN=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
CORPUS=${FUZZ_CORPUS:-$BUILD/corpus}
ARTIFACTS=${FUZZ_ARTIFACTS:-$BUILD/artifacts}

# The backend captures structured bindings in lambdas (C++20), which clang accepts from 16 on:
# Debian 12's default clang is 14, so use clang-16 or newer, installing clang-16 if needed.
fuzz_ok() { # fuzz_ok CLANG++: it is >= 16 and links -fsanitize=fuzzer
    command -v "$1" >/dev/null || return 1
    [ "$("$1" -dumpversion | cut -d. -f1)" -ge 16 ] || return 1
    echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }' |
        "$1" -x c++ -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null
}
pick_clang() {
    local c
    for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16; do
        if fuzz_ok "$c"; then CXX_BIN=$c; CC_BIN=${c/clang++/clang}; return 0; fi
    done
    return 1
}
if ! pick_clang; then
    echo "run.sh: installing clang-16 and its fuzzer runtime" >&2
    if [ "$(id -u)" != 0 ]; then echo "run.sh: no clang >= 16 with libFuzzer; run as root to install clang-16" >&2; exit 1; fi
    apt-get install -y clang-16 libclang-rt-16-dev >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y clang-16 libclang-rt-16-dev >/dev/null; }
    pick_clang || { echo "run.sh: clang-16 cannot link -fsanitize=fuzzer" >&2; exit 1; }
fi

TARGETS=${FUZZ_TARGETS:-image_fuzzer node_fuzzer import_fuzzer}
CC=$CC_BIN CXX=$CXX_BIN cmake -S "$REPO/tests/fuzz" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" >/dev/null
# shellcheck disable=SC2086  # a list of target names
cmake --build "$BUILD" -j2 --target $TARGETS

failed=0
for target in $TARGETS; do
    FUZZER=$BUILD/bin/$target
    corpus=$CORPUS/$target
    artifacts=$ARTIFACTS/$target
    mkdir -p "$corpus" "$artifacts"
    PKRAMFS_FUZZ_WRITE_SEEDS=$corpus "$FUZZER"
    max_len=65536
    [ "$target" = import_fuzzer ] && max_len=262144

    log=$BUILD/$target.log
    echo "run.sh: fuzzing $target for ${SECONDS_TO_RUN}s (log: $log)"
    jobs_args=()
    [ "$JOBS" -gt 1 ] && jobs_args=(-jobs="$JOBS" -workers="$JOBS")
    set +e
    (cd "$BUILD" && "$FUZZER" "$corpus" -max_total_time="$SECONDS_TO_RUN" -timeout=10 \
        -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${jobs_args[@]}") >"$log" 2>&1
    rc=$?
    set -e
    if [ "$JOBS" -gt 1 ]; then cat "$BUILD"/fuzz-*.log >>"$log" 2>/dev/null; rm -f "$BUILD"/fuzz-*.log; fi
    tail -n 15 "$log"
    if [ "$rc" != 0 ] || grep -qE "ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error:|$target: " "$log"; then
        echo "FAIL fuzz $target: found a problem (exit $rc); reproducers:" >&2
        ls -l "$artifacts" >&2
        echo "reproduce: $FUZZER ARTIFACT" >&2
        failed=1
    else
        echo "PASS fuzz $target: ${SECONDS_TO_RUN}s, no crash"
    fi
done
exit "$failed"
