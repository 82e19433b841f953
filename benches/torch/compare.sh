#!/bin/sh
# make bench-compare: med-crossvit against its PyTorch twin, alternating, in one run.
#
#   PYTHON   interpreter with torch (default .venv-torch/bin/python; h5py for the parity check)
#   ROUNDS   rounds (default 2)        ITERS    timed iterations per figure (default 5)
#   THREADS  threads on both sides (default: every CPU)
#   TORCH_COMPILE=0  skip the torch.compile runs     COMPILE_TIMEOUT  their limit, s (1800)
#   BENCH_JSON=FILE  also write every raw result
#   BF16=0   skip the bf16 forward runs (ours at --precision bf16, PyTorch under bf16 autocast;
#            they run only where the CPU has avx512_bf16)
#   CARGO    cargo command (default cargo); the binary goes to $CARGO_TARGET_DIR as usual
#   FEATURES cargo features of our binary (default cli; cli,openblas: products through OpenBLAS)
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv-torch/bin/python}
CARGO=${CARGO:-cargo}
FEATURES=${FEATURES:-cli}

if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "bench-compare: '$PYTHON' cannot import torch." >&2
    echo "Install PyTorch in a virtual environment (the default wheel runs on the CPU; it is" >&2
    echo "large, ~6 GB, ~10 min; add h5py for the twin's parity check):" >&2
    echo "    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch h5py" >&2
    echo "or name an interpreter that has it: make bench-compare PYTHON=/path/to/python" >&2
    exit 2
fi

$CARGO build --release --locked --features "$FEATURES"
target_dir=$($CARGO metadata --format-version 1 --no-deps --locked |
    "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
exec "$PYTHON" benches/torch/compare.py --bin "$target_dir/release/med-crossvit" --features "$FEATURES" "$@"
