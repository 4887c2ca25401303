#!/usr/bin/env bash
# scripts/check-src.sh: rules of the source tree that the compiler cannot enforce, run by
# ctest (test check_src). Exit 0 when every rule holds; otherwise each offending line is
# printed with the rule it breaks, and the exit status is 1.
#
#   1. Every allocation of src/ goes through the funnel (src/base/alloc.c): no call to,
#      nor use as a function pointer of, malloc, calloc, realloc, free, strdup, strndup,
#      asprintf, vasprintf, getline or getdelim anywhere else in src/ (a member such as
#      allocator->free is fine). Comments and strings do not count.
#   2. Threads are created in one place: pthread_create appears only in
#      src/base/workq.c (tp__thread_start and the workers).
#
# usage: check-src.sh [SOURCE_DIR]   (default: the tree this script is in)
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
status=0

# strip FILE: the file without comments (the preprocessor's own tokenizer, so a "/*" in
# a string stays a string), without #include lines (which it would not resolve anyway)
# and with string literals emptied.
strip() {
    grep -v '^[[:space:]]*#[[:space:]]*include' "$1" |
        gcc -fpreprocessed -dD -E -P -x c - 2>/dev/null |
        sed -E 's/"([^"\\]|\\.)*"/""/g'
}

# rule PATTERN EXEMPT WHAT: every line of src/ outside EXEMPT matching PATTERN (in the
# stripped text) is printed with WHAT, and the run fails.
rule() {
    local pattern=$1 exempt=$2 what=$3 f hits h
    while IFS= read -r f; do
        [[ "$f" == "$exempt" ]] && continue
        hits=$(strip "$f" | grep -nE "$pattern" || true)
        [[ -n "$hits" ]] || continue
        while IFS= read -r h; do
            echo "$f: $what: ${h#*:}"
        done <<<"$hits"
        status=1
    done < <(find src -name '*.[ch]' | sort)
}

rule '(^|[^A-Za-z0-9_.>])(malloc|calloc|realloc|free|strdup|strndup|asprintf|vasprintf|getline|getdelim)([^A-Za-z0-9_]|$)' \
    src/base/alloc.c "raw allocation outside src/base/alloc.c (use tp__malloc & co.)"
rule '(^|[^A-Za-z0-9_])pthread_create([^A-Za-z0-9_]|$)' \
    src/base/workq.c "pthread_create outside src/base/workq.c (use tp__thread_start)"

exit "$status"
