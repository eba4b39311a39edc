#!/bin/sh
# Regenerate the figures of docs/sweeps.md (docs/img/sweep_*.png) from the shipped sweeps, and
# the ops figure of docs/transformers.md (docs/img/ops_gpt2.png). The sweep and the ops figure
# pin the unbounded memory they were drawn with (memory=ideal; docs/memory-model.md).
#   sh sweeps/figures.sh            (PYTHON=.venv/bin/python by default)
set -e
PY=${PYTHON:-.venv/bin/python}
export MPLBACKEND=Agg
$PY -m simulator sweep sweeps/designs_digits.yaml --out out/designs_digits
for kind in speedup energy pareto utilization accuracy; do
  $PY -m simulator plot out/designs_digits --kind $kind --dpi 100 \
    --out docs/img/sweep_$kind.png
done
# the one-run plot shows the shipped chip as it is (its 32 KiB buffers and LPDDR5 stall)
$PY -m simulator run --arch sysmt_2t_16x16 --workload digits_int8 --plot docs/img/run_layers.png \
  > /dev/null
# docs/transformers.md and docs/sweeps.md: GPT-2's time by operation class (the ops plot)
$PY -m simulator compare --arch os_sa_32x32 --arch sysmt_2t_32x32 --arch swis_g8_n3_32x32 \
  --workload gpt2_prefill --workload gpt2_decode --timing-only --set memory=ideal \
  --out out/compare_gpt2 > /dev/null
cp out/compare_gpt2/ops.png docs/img/ops_gpt2.png
echo "wrote docs/img/sweep_*.png, docs/img/run_layers.png and docs/img/ops_gpt2.png"
