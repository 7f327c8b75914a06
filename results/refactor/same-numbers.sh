#!/usr/bin/env bash
# The same numbers before and after a refactor: three commands, each run with two source trees.
#   OLD=path/to/old/src NEW=path/to/new/src DATA=path/to/data OUT=/tmp/same bash results/refactor/same-numbers.sh
# then compare: diff <(grep -E "Loss|Test set" $OUT/old/seed2.log) <(grep -E "Loss|Test set" $OUT/new/seed2.log)
# (likewise demo.log and runs/*/train.log).
set -u
PY=${PY:-python}
for tree in old new; do
  src=$([ $tree = old ] && echo "$OLD" || echo "$NEW")
  out=$OUT/$tree; rm -rf "$out"; mkdir -p "$out"; cd "$out"
  PYTHONPATH=$src $PY -m stn train --data-root "$DATA/cifar10-jpeg" --epochs 2 --seed 1 --out seed2 --no-report --no-progress > seed2.log 2>&1
  PYTHONPATH=$src $PY -m stn demo --out demo > demo.log 2>&1
  # The bench now pins fp32 unless told; the one before ran --amp auto (bf16 on an AVX512-BF16 CPU): say bf16.
  amp=$([ $tree = new ] && echo "--amp bf16" || echo "")
  PYTHONPATH=$src $PY -m stn bench paper --budget cpu --models st-cnn-aff --variants R --data-root "$DATA" \
    --runs runs --out table --threads 1 $amp > paper.log 2>&1
done
