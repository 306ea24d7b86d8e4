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
# callgrind with collection on only inside the measured ticks' updates
# (`measured_upstream_tick`, `measured_downstream_tick`), and prints instructions per changed
# entity: each side's whole update, and inclusively the mirror's own systems in it (the
# Upstream's change collection and sending, the Downstream's transaction handling).
set -eu
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
bin=$(cargo bench --bench mirror --no-run 2>&1 | sed -n 's/.*(\(target\/[^)]*mirror-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not find the mirror benchmark's binary" >&2; exit 1; }
[ $# -gt 0 ] || set -- 10000x10 10000x1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-14s %-44s %16s %18s\n' case "what (inclusive)" instructions "per changed entity"
for case in "$@"; do
    MIRROR_BENCH_CALLGRIND=$case valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect='*measured_upstream_tick*' --toggle-collect='*measured_downstream_tick*' \
        --callgrind-out-file="$out/$case.out" "$bin" >"$out/$case.log" 2>"$out/$case.err" \
        || { cat "$out/$case.err" >&2; exit 1; }
    line=$(grep '^callgrind case' "$out/$case.log")
    ticks=$(echo "$line" | sed -n 's/.*measured_ticks=\([0-9]*\).*/\1/p')
    changed=$(echo "$line" | sed -n 's/.*changed_per_tick=\([0-9]*\).*/\1/p')
    callgrind_annotate --inclusive=yes --threshold=100 "$out/$case.out" 2>/dev/null >"$out/$case.txt"
    for what in measured_upstream_tick 'upstream::collect_changes' 'upstream::send_transactions' \
        measured_downstream_tick 'downstream::handle_transaction'; do
        # Sum the inclusive counts of every function whose name matches (generic instances too).
        ir=$(grep -F "$what" "$out/$case.txt" | awk '{gsub(",", "", $1); s += $1} END {print s + 0}')
        awk -v c="$case" -v w="$what" -v ir="$ir" -v t="$ticks" -v n="$changed" \
            'BEGIN {printf "%-14s %-44s %16d %18.0f\n", c, w, ir, ir / (t * n)}'
    done
done
