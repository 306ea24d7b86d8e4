#!/bin/sh
# Instruction counts of the mirror (issue 15, goal 6): the Upstream's tick and the Downstream's
# apply, counted by valgrind's callgrind, so that a change in cost shows even on a noisy machine
# where wall-clock figures drift. Needs valgrind (`apt-get install valgrind`).
#
#   benches/callgrind.sh                 # the 10k × 10 % and 10k × 100 % cases
#   benches/callgrind.sh 100000x10       # other cases (N x 1/f)
#
# It builds the `mirror` benchmark (release), runs each case's own side only
# (`MIRROR_BENCH_CALLGRIND=NxP`: initial sync, 3 warm-up ticks, 10 measured ticks) under
# callgrind, once with collection on only inside the Upstream's measured updates
# (`measured_upstream_tick`) and once inside the Downstream's (`measured_downstream_tick`), on the
# main thread (where the systems run; the transport's threads are not counted), and prints
# instructions per changed entity: the Upstream's whole update and, inclusively, its change
# collection and its encoding and sending; the Downstream's transaction handling (its whole
# updates are not shown: under valgrind the transport's threads are slow, so the Downstream
# spins through many empty updates per tick).
#
# For counts per source line: build the benchmark with line tables into a target directory of
# its own (`CARGO_PROFILE_BENCH_DEBUG=line-tables-only CARGO_TARGET_DIR=/tmp/lines cargo bench
# --bench mirror --no-run`, a full rebuild), run valgrind as `count` below does with
# `--dump-instr=yes`, and read `callgrind_annotate --auto=yes` on the main thread's file.
set -eu
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
bin=$(cargo bench --bench mirror --no-run 2>&1 | sed -n 's/.*(\(target\/[^)]*mirror-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not find the mirror benchmark's binary" >&2; exit 1; }
[ $# -gt 0 ] || set -- 10000x10 10000x1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-10s %-46s %14s %18s\n' case "what (inclusive, main thread)" instructions "per changed entity"
# Counts `$what` (function names, `|`-separated) inside the marker `$side` of case `$case`.
count() {
    case=$1 side=$2 what=$3
    f="$out/$case-$side"
    if [ ! -f "$f.txt" ]; then
        MIRROR_BENCH_CALLGRIND=$case valgrind --tool=callgrind --fair-sched=yes --separate-threads=yes \
            --collect-atstart=no --toggle-collect="*$side*" --callgrind-out-file="$f.out" "$bin" \
            >"$f.log" 2>"$f.err" || { cat "$f.err" >&2; exit 1; }
        # The main thread's file: the measured updates run there.
        callgrind_annotate --inclusive=yes --threshold=100 "$f.out-01" 2>/dev/null >"$f.txt"
    fi
    line=$(grep '^callgrind case' "$f.log")
    ticks=$(echo "$line" | sed -n 's/.*measured_ticks=\([0-9]*\).*/\1/p')
    changed=$(echo "$line" | sed -n 's/.*changed_per_tick=\([0-9]*\).*/\1/p')
    # Sum the inclusive counts of the functions named (generic instances too).
    ir=$(grep -E "$what" "$f.txt" | awk '{gsub(",", "", $1); s += $1} END {print s + 0}')
    awk -v c="$case" -v w="$4" -v ir="$ir" -v t="$ticks" -v n="$changed" \
        'BEGIN {printf "%-10s %-46s %14d %18.0f\n", c, w, ir, ir / (t * n)}'
}
for case in "$@"; do
    count "$case" measured_upstream_tick 'measured_upstream_tick \[' "Upstream: whole update"
    count "$case" measured_upstream_tick 'upstream::collect_changes' "Upstream: change collection"
    count "$case" measured_upstream_tick 'upstream::send_transactions' "Upstream: encoding and sending"
    count "$case" measured_downstream_tick 'downstream::handle_transaction' "Downstream: applying transactions"
done
