"""The ``ops`` figure: time of transformer workloads by operation class (array time by role,
vector-unit time), from a sweep, a comparison or one run. The bars' heights are read back from
the matplotlib artists and compared with the results' own numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from matplotlib.colors import to_hex

from simulator import api
from simulator.errors import ResultsError
from simulator.reports import plots
from simulator.reports.sweep_results import load_results
from simulator.sweep import load_sweep, plan_sweep, run_sweep
from tests.reports.test_plots import TINY, SerialExecutor

DECODE = """schema_version: 1
name: tx_decode
transformer: {d_model: 64, layers: 1, heads: 4, ffn_dim: 128, ffn: gelu, norm: layernorm,
  norm_placement: pre, positions: learned, causal: true, vocab: 96, phase: decode, batch: 2,
  context_len: 32}
"""
PREFILL = """schema_version: 1
name: tx_prefill
transformer: {d_model: 64, layers: 1, heads: 4, kv_heads: 2, ffn_dim: 96, ffn: swiglu,
  norm: rmsnorm, norm_placement: pre, positions: rope, causal: true, vocab: 0, phase: prefill,
  batch: 1, seq_len: 24}
"""
LABELS = {"array: attention": "attention", "array: FFN": "ffn", "array: other": "other",
          "vector unit": "vector"}


def write_workloads(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "decode.yaml").write_text(DECODE)
    (folder / "prefill.yaml").write_text(PREFILL)
    (folder / "tiny.yaml").write_text(TINY)


def sweep(folder: Path, workloads: str) -> Path:
    write_workloads(folder)
    path = folder / "spec.yaml"
    path.write_text(f"""schema_version: 1
name: ops
base: [os_sa_16x16, sysmt_2t_16x16]
workloads: {workloads}
grid: {{array.rows: [8, 16]}}
timing_only: true
""")
    run_sweep(plan_sweep(load_sweep(path), path), folder / "out", SerialExecutor())
    return folder / "out"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    return sweep(tmp_path_factory.mktemp("ops"), "[decode.yaml, tiny.yaml, prefill.yaml]")


def bars_of(ax) -> dict[str, list[float]]:
    """Each role's bar heights in one panel, by role."""
    return {LABELS[c.get_label()]: [p.get_height() for p in c] for c in ax.containers}


def scale_of(ax) -> float:
    """The panel's time unit in us, from its y label."""
    unit = re.search(r"\((us|ms|s)\)$", ax.get_ylabel()).group(1)
    return {"us": 1.0, "ms": 1e3, "s": 1e6}[unit]


def assert_bars(ax, runs) -> None:
    """The stacked bars of ``ax`` are the runs' role_cycles over their clock (in the panel's
    unit), and each bar's top is the run's time."""
    heights = bars_of(ax)
    assert list(heights) == list(plots.ROLE_COLORS)
    scale = scale_of(ax)
    for i, run in enumerate(runs):
        clock = run["clock_mhz"]
        total = 0.0
        for role in plots.ROLE_COLORS:
            cycles = (run["role_cycles"][role] if "role_cycles" in run
                      else run[f"role_cycles.{role}"])
            assert heights[role][i] == pytest.approx(cycles / clock / scale, rel=1e-12)
            total += heights[role][i]
        assert total == pytest.approx(run["time_us"] / scale, rel=1e-12)


def test_sweep_ops_bars_are_the_time_by_role(results_dir, tmp_path):
    results = load_results(results_dir)
    fig = plots.sweep_figure(results, "ops")
    axes = [ax for ax in fig.axes if ax.containers]
    # the CNN workload has no transformer layers: no panel
    assert [ax.get_title(loc="left") for ax in axes] == ["decode.yaml (decode)",
                                                         "prefill.yaml (prefill)"]
    designs = results.designs()
    assert len(designs) == 4 and len(axes[-1].get_xticklabels()) == 4
    for ax, workload in zip(axes, ("decode.yaml", "prefill.yaml")):
        runs = [d.rows[workload] for d in designs]
        assert_bars(ax, runs)
        labels = [t.get_text() for t in ax.texts]
        assert len(labels) == len(runs) and scale_of(ax) == 1.0
        for run, label in zip(runs, labels):
            if workload == "decode.yaml":
                assert label.startswith(f"TPOT {plots._amount(run['time_per_output_token_us'])} "
                                        f"us\n{plots._amount(run['tokens_per_s'])} tok/s")
            else:
                assert label.startswith(
                    f"TTFT {plots._amount(run['time_to_first_token_us'])} us")
            share = 100 * run["role_cycles.vector"] / run["total_cycles"]
            assert label.endswith(f"vector {share:.0f} %")
        assert "per output token" in axes[0].get_ylabel()
        assert "first token" in axes[1].get_ylabel()
    for container in axes[0].containers:
        colour = plots.ROLE_COLORS[LABELS[container.get_label()]]
        assert to_hex(container[0].get_facecolor()) == colour.lower()
    one = plots.ops_figure(results, workload="prefill.yaml")
    (ax,) = [ax for ax in one.axes if ax.containers]
    assert_bars(ax, [d.rows["prefill.yaml"] for d in designs])
    path = tmp_path / "ops.png"
    plots.save_figure(fig, path)
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000


def test_the_sweep_cli_draws_ops_and_refuses_results_without_transformers(results_dir,
                                                                           tmp_path, cli):
    result = cli("plot", results_dir, "--kind", "ops")
    assert result.status == 0, result.err
    assert result.out == f"wrote {results_dir / 'ops.png'}\n"
    assert (results_dir / "ops.png").stat().st_size > 10_000
    result = cli("plot", results_dir, "--kind", "ops", "--workload", "tiny.yaml")
    assert result.status == 2 and result.err.count("\n") == 1
    assert "no transformer layers" in result.err and "tiny.yaml" in result.err
    result = cli("plot", results_dir, "--kind", "ops", "--workload", "nope.yaml")
    assert result.status == 2 and "no workload 'nope.yaml'" in result.err
    result = cli("plot", results_dir, "--kind", "ops", "--baseline", "base=os_sa_16x16")
    assert result.status == 2 and result.err == ("sasim: error: --baseline: an ops plot is "
                                                 "not normalised\n")
    cnn = sweep(tmp_path / "cnn", "[tiny.yaml]")
    result = cli("plot", cnn, "--kind", "ops")
    assert result.status == 2 and result.err.count("\n") == 1 and not result.out
    assert "no transformer layers in the results" in result.err
    assert not (cnn / "ops.png").exists()
    with pytest.raises(ResultsError, match="no transformer layers"):
        plots.ops_figure(load_results(cnn))


def run_summary(workload: Path, arch: str = "os_sa_16x16") -> dict:
    return api.simulate(api.load_arch(arch), api.load_workload(workload),
                        functional=False).summary()


def test_one_run_from_its_summary(tmp_path, cli):
    write_workloads(tmp_path)
    out = tmp_path / "run"
    result = cli("run", "--arch", "sysmt_2t_16x16", "--workload", tmp_path / "decode.yaml",
                 "--timing-only", "--out", out)
    assert result.status == 0, result.err
    result = cli("plot", out, "--kind", "ops")
    assert result.status == 0 and result.out == f"wrote {out / 'ops.png'}\n"
    assert (out / "ops.png").stat().st_size > 10_000
    result = cli("plot", out / "summary.json", "--kind", "ops", "--out", tmp_path / "o.svg")
    assert result.status == 0 and (tmp_path / "o.svg").read_text().startswith("<?xml")
    summary = json.loads((out / "summary.json").read_text())
    fig = plots.run_ops_figure(summary)
    (ax,) = [ax for ax in fig.axes if ax.containers]
    assert_bars(ax, [summary])
    assert "sysmt_2t_16x16 on tx_decode" in fig.get_suptitle()
    # a slow clock: the panel switches to milliseconds, the bars still the run's time
    slow = {**summary, "clock_mhz": summary["clock_mhz"] / 1e4,
            "time_us": summary["time_us"] * 1e4}
    (ax,) = [ax for ax in plots.run_ops_figure(slow).axes if ax.containers]
    assert ax.get_ylabel().endswith("(ms)")
    assert_bars(ax, [slow])
    # the label in the panel's unit (time_per_output_token_us kept: the label reads it)
    tpot = plots._amount(summary["time_per_output_token_us"] / 1e3)
    assert ax.texts[0].get_text().startswith(f"TPOT {tpot} ms\n")


def test_a_run_without_transformer_layers_is_one_line(tmp_path, cli):
    write_workloads(tmp_path)
    out = tmp_path / "cnn"
    assert cli("run", "--arch", "os_sa_16x16", "--workload", tmp_path / "tiny.yaml",
               "--timing-only", "--out", out).status == 0
    result = cli("plot", out, "--kind", "ops")
    assert result.status == 2 and result.err.count("\n") == 1 and not result.out
    assert f"{out / 'summary.json'}: no transformer layers" in result.err
    assert not (out / "ops.png").exists()
    result = cli("plot", out, "--kind", "speedup")
    assert result.status == 2 and "a run's summary, not a sweep's results" in result.err
    result = cli("plot", out, "--kind", "ops", "--workload", "x")
    assert result.status == 2 and "--workload: not used with one run's summary" in result.err
    (tmp_path / "bad.json").write_text('{"arch": 1}')
    result = cli("plot", tmp_path / "bad.json", "--kind", "ops")
    assert result.status == 2 and "not a run's summary.json" in result.err
    summary = json.loads((out / "summary.json").read_text())
    summary.update(role_cycles={"attention": 1, "ffn": 1, "other": 0, "vector": "many"})
    (tmp_path / "edited.json").write_text(json.dumps(summary))
    result = cli("plot", tmp_path / "edited.json", "--kind", "ops")
    assert result.status == 2 and "no transformer layers" in result.err


def test_compare_writes_ops_png_for_transformer_workloads(tmp_path, cli):
    write_workloads(tmp_path)
    out = tmp_path / "cmp"
    result = cli("compare", "--arch", "os_sa_16x16", "--arch", "swis_g8_n3_16x16",
                 "--workload", tmp_path / "tiny.yaml", "--workload", tmp_path / "prefill.yaml",
                 "--timing-only", "--out", out)
    assert result.status == 0, result.err
    assert f"time by operation class (array by role, vector unit), {out / 'ops.png'}" \
        in result.out
    assert (out / "ops.png").stat().st_size > 10_000
    records = []
    for arch in ("os_sa_16x16", "swis_g8_n3_16x16"):
        summary = run_summary(tmp_path / "prefill.yaml", arch)
        records.append({**summary, "arch": arch})
    fig = plots.run_ops_figure(records, "compare")
    (ax,) = [ax for ax in fig.axes if ax.containers]
    assert_bars(ax, records)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["os_sa_16x16", "swis_g8_n3_16x16"]
    cnn = tmp_path / "cmp_cnn"
    result = cli("compare", "--arch", "os_sa_16x16", "--workload", tmp_path / "tiny.yaml",
                 "--timing-only", "--out", cnn)
    assert result.status == 0 and "ops.png" not in result.out
    assert (cnn / "comparison.png").exists() and not (cnn / "ops.png").exists()
    with pytest.raises(ResultsError, match="^compare: no transformer layers"):
        plots.run_ops_figure([run_summary(tmp_path / "tiny.yaml")], "compare")
