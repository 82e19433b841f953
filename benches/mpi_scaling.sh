#!/usr/bin/env bash
# Steps per second of one training run with 1 and with 2 MPI ranks (and, for comparison, one
# process with --devices 2), in one go on this machine. Not a test: a benchmark.
#
#   benches/mpi_scaling.sh            # needs OpenMPI and a build with --features mpi
#
# The run: a synthetic cohort of SLIDES slides, the small preset, batch 16, EPOCHS epochs,
# dropout as the preset has it. Time includes each epoch's validation.
set -euo pipefail
cd "$(dirname "$0")/.."
SLIDES=${SLIDES:-160}
EPOCHS=${EPOCHS:-2}
ROUNDS=${ROUNDS:-2}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --locked --release --features mpi >&2
BIN="$CARGO_TARGET_DIR/release/med-crossvit"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" synth --out "$WORK/cohort" --slides "$SLIDES" --seed 1 >/dev/null
ARGS=(train --csv "$WORK/cohort/cohort.csv" --features "$WORK/cohort/features"
      --preset small --epochs "$EPOCHS" --batch-size 16 --bag-size 32 --seed 1 --bootstrap 0)
steps() { # batches per epoch × epochs, from the run's own progress line
    grep -o 'epochs of [0-9]* batches' "$1" | head -1 | awk -v e="$EPOCHS" '{print $3 * e}'
}
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
for round in $(seq "$ROUNDS"); do
    for mode in "1 rank" "2 ranks" "1 rank, --devices 2"; do
        out="$WORK/run-$round-${mode// /_}"
        start=$(date +%s.%N)
        case "$mode" in
            "1 rank") mpirun --allow-run-as-root -n 1 "$BIN" "${ARGS[@]}" --out "$out" --distributed mpi 2>"$out.log" >/dev/null ;;
            "2 ranks") mpirun --allow-run-as-root --oversubscribe -n 2 "$BIN" "${ARGS[@]}" --out "$out" --distributed mpi 2>"$out.log" >/dev/null ;;
            *) "$BIN" "${ARGS[@]}" --out "$out" --devices 2 2>"$out.log" >/dev/null ;;
        esac
        end=$(date +%s.%N)
        n=$(steps "$out.log")
        awk -v r="$round" -v m="$mode" -v n="$n" -v s="$start" -v e="$end" \
            'BEGIN { printf "round %s  %-20s %4d steps  %7.1f s  %.3f steps/s\n", r, m, n, e - s, n / (e - s) }'
    done
done
