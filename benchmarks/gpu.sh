#!/usr/bin/env bash
# The GPU benchmark suite in one command (at most 8 minutes on one H100): throughput against the
# tutorial loop, the seed recipe's 50-epoch time, the fast recipe's time to 75%, the warp table,
# written to results/benchmarks.json (section gpu_suite). See benchmarks/gpu_suite.py.
#
#   benchmarks/gpu.sh --data-root ../shared/data/cifar10-jpeg   # on the GPU machine
#   benchmarks/gpu.sh --quick                                   # on the CPU, in CI: seconds, writes nothing
#
# Other arguments go to gpu_suite.py (--out FILE, --limit SECONDS, --no-compile, --device ...).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python}"
device=(--device auto)
for arg in "$@"; do
    case "$arg" in
        --quick) device=(--device cpu --threads 1) ;;
        --device | --device=*) device=() ;;
    esac
done
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/benchmarks/gpu_suite.py" "${device[@]}" "$@"
