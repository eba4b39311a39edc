#!/bin/sh
# Regenerate the figures of docs/sweeps.md (docs/img/sweep_*.png) from the shipped sweeps.
#   sh sweeps/figures.sh            (PYTHON=.venv/bin/python by default)
set -e
PY=${PYTHON:-.venv/bin/python}
export MPLBACKEND=Agg
$PY -m simulator sweep sweeps/designs_digits.yaml --out out/designs_digits
for kind in speedup energy pareto utilization accuracy; do
  $PY -m simulator plot out/designs_digits --kind $kind --dpi 100 \
    --out docs/img/sweep_$kind.png
done
$PY -m simulator run --arch sysmt_2t_16x16 --workload digits_int8 --plot docs/img/run_layers.png \
  > /dev/null
echo "wrote docs/img/sweep_*.png and docs/img/run_layers.png"
