"""Figures from saved sweep results and from one run: every kind renders, the numbers drawn
are the right ones (the baseline is 1.0), labels do not overlap, colours are fixed."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import _pylab_helpers
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from simulator import api
from simulator.errors import ResultsError
from simulator.reports import plots
from simulator.reports.sweep_results import load_results, parse_baseline
from simulator.sweep import load_sweep, plan_sweep, run_sweep
from simulator.sweep.worker import run_chunk

REPO = Path(__file__).resolve().parents[2]
TINY = """schema_version: 1
name: tiny
layers:
  - {name: conv1, op: conv2d, in_channels: 3, out_channels: 8, input_size: [12, 12], kernel_size: 3, padding: 1, activation_signed: true}
  - {name: conv2, op: conv2d, in_channels: 8, out_channels: 16, input_size: [12, 12], kernel_size: 3, stride: 2, padding: 1}
  - {name: fc, op: linear, in_features: 576, out_features: 10}
"""
SMALL = """schema_version: 1
name: small
layers:
  - {name: a, op: conv2d, in_channels: 4, out_channels: 12, input_size: [8, 8], kernel_size: 3, padding: 1}
  - {name: b, op: linear, in_features: 768, out_features: 20}
"""
DESIGNS = ["os_sa_16x16", "sysmt_2t_16x16", "swis_g8_n3_16x16", "bitserial_4b_16x16"]


class SerialExecutor:
    """Runs chunks in this process (the figures do not depend on the executor)."""

    workers = 1

    def run(self, chunks, axes):
        for chunk in chunks:
            yield run_chunk(chunk, axes)


def sweep(folder: Path, spec: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(TINY)
    (folder / "small.yaml").write_text(SMALL)
    path = folder / "spec.yaml"
    path.write_text(spec)
    run_sweep(plan_sweep(load_sweep(path), path), folder / "out", SerialExecutor())
    return folder / "out"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    return sweep(tmp_path_factory.mktemp("plots"), f"""schema_version: 1
name: designs
base: {DESIGNS}
workloads: [tiny.yaml, small.yaml]
grid: {{array.rows: [4, 8]}}
baseline: {{base: os_sa_16x16, array.rows: 8}}
""")


@pytest.fixture(scope="module")
def results(results_dir):
    return load_results(results_dir)


def rendered(fig: Figure, tmp_path: Path, name: str = "f.png") -> bytes:
    path = tmp_path / name
    plots.save_figure(fig, path)
    data = path.read_bytes()
    assert len(data) > 10_000
    return data


def text_of(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def row(results, base: str, rows: int, workload: str) -> dict:
    (match,) = [r for r in results.rows if r["base"] == base and r["array.rows"] == rows
                and r["workload"] == workload]
    return match


def assert_caption(fig: Figure) -> None:
    caption = fig.get_supxlabel().replace("\n", " ")
    for part in ("tech generic_45nm", "clock 1000 MHz", "array 4x16 OS; 8x16 OS",
                 "sysmt threads=2", "swis group_size=8 shifts=3", "bitserial bits=4"):
        assert part in caption, part


def test_speedup_bars_are_normalised_to_the_baseline(results, tmp_path):
    fig = plots.speedup_figure(results)
    assert isinstance(fig, Figure) and _pylab_helpers.Gcf.get_num_fig_managers() == 0
    assert rendered(fig, tmp_path).startswith(b"\x89PNG")
    (ax,) = fig.axes
    bars = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    assert list(bars) == ["tiny.yaml", "small.yaml", "geometric mean"]
    designs = results.designs()
    labels = [d.label for d in designs]
    base_index = labels.index("os_sa_16x16 rows=8")
    for workload in ("tiny.yaml", "small.yaml"):
        heights = [p.get_height() for p in bars[workload]]
        assert heights[base_index] == 1.0
        base_time = row(results, "os_sa_16x16", 8, workload)["time_us"]
        for design, height in zip(designs, heights):
            b, r = design.key
            assert math.isclose(height, base_time / row(results, b, r, workload)["time_us"])
    for i, p in enumerate(bars["geometric mean"]):
        naive = math.sqrt(bars["tiny.yaml"][i].get_height() * bars["small.yaml"][i].get_height())
        assert math.isclose(p.get_height(), naive)
    assert bars["geometric mean"][base_index].get_height() == 1.0
    assert_caption(fig)
    assert "baseline (1.0): os_sa_16x16 rows=8" in fig.get_suptitle()
    assert_labels_apart(fig, ax)
    narrow = plots.speedup_figure(results)
    narrow.set_size_inches(4, 4)  # crowded: the labels must turn
    plots._fit_tick_labels(narrow)
    assert narrow.axes[0].get_xticklabels()[0].get_rotation() in (40, 90)
    assert_labels_apart(narrow, narrow.axes[0])


def assert_labels_apart(fig, ax):
    """Category labels do not overlap: side by side, their boxes are apart; rotated by a,
    neighbouring parallel strips of text (height h) are dx * sin(a) apart, which is >= h."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    angle = labels[0].get_rotation()
    if angle == 0:
        boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 + 0.5 for a, b in zip(boxes, boxes[1:]))
        return
    anchors = sorted(ax.transData.transform([(x, 0) for x in ax.get_xticks()])[:, 0])
    labels[0].set_rotation(0)
    height = max(t.get_window_extent(renderer).height for t in labels[:1])
    labels[0].set_rotation(angle)
    for a, b in zip(anchors, anchors[1:]):
        assert (b - a) * math.sin(math.radians(angle)) >= height


def test_speedup_by_layer_and_another_baseline(results, tmp_path):
    base = parse_baseline("base=sysmt_2t_16x16,array.rows=4")
    fig = plots.speedup_figure(results, base, by="layer", workload="small.yaml")
    rendered(fig, tmp_path)
    (ax,) = fig.axes
    bars = {c.get_label(): [p.get_height() for p in c] for c in ax.containers}
    assert bars["sysmt_2t_16x16 rows=4"] == [1.0, 1.0, 1.0]  # two layers and their mean
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "geo. mean"]
    other = results.summary(row(results, "os_sa_16x16", 8, "small.yaml"))["layers"]
    mine = results.summary(row(results, "sysmt_2t_16x16", 4, "small.yaml"))["layers"]
    expected = [m["total_cycles"] / o["total_cycles"] for m, o in zip(mine, other)]
    assert np.allclose(bars["os_sa_16x16 rows=8"][:2], expected)
    with pytest.raises(ResultsError, match="matches 4 designs"):
        plots.speedup_figure(results, {"array.rows": 4})


def test_energy_stacks_by_component_and_the_baseline_totals_one(results, tmp_path):
    fig = plots.energy_figure(results)
    rendered(fig, tmp_path, "e.svg")
    rendered(fig, tmp_path, "e.pdf")
    axes = [ax for ax in fig.axes if ax.containers]
    assert [ax.get_title(loc="left") for ax in axes] == ["tiny.yaml", "small.yaml"]
    labels = [d.label for d in results.designs()]
    base_index = labels.index("os_sa_16x16 rows=8")
    for ax, workload in zip(axes, ["tiny.yaml", "small.yaml"]):
        stacks = np.array([[p.get_height() for p in c] for c in ax.containers])
        assert math.isclose(stacks[:, base_index].sum(), 1.0)
        for d, design in enumerate(results.designs()):
            r = design.rows[workload]
            assert math.isclose(stacks[:, d].sum(), r["energy_ratio"], rel_tol=1e-9)
        for container in ax.containers:
            name = container.get_label().replace(" ", "_")
            assert to_hex(container[0].get_facecolor()) == plots.COMPONENT_COLORS[name].lower()
    assert_caption(fig)


def naive_front(points):
    """Pareto front by a sweep: by speedup descending, keep a point cheaper than all kept."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))
    kept, best = [], math.inf
    for i in order:
        x, y = points[i]
        if y < best or (kept and points[kept[-1]] == (x, y)):
            kept.append(i)
            best = min(best, y)
    return sorted(kept, key=lambda i: (points[i][0], points[i][1]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=12))
def test_pareto_front_matches_the_naive_sweep(points):
    assert plots.pareto_front(points) == naive_front(points)


def test_pareto_highlights_the_front_and_labels_do_not_overlap(results, tmp_path):
    for cost in ("area", "energy"):
        fig = plots.pareto_figure(results, cost=cost)
        rendered(fig, tmp_path)
        renderer = fig.canvas.get_renderer()
        for ax, workload in zip(fig.axes, results.workloads()):
            column = "area_um2" if cost == "area" else "energy_pj"
            front_dots = [c for c in ax.collections if c.get_label() == "Pareto front"][0]
            drawn = {tuple(np.round(p, 9)) for p in front_dots.get_offsets()}
            points = [(r["speedup"], r[column] / 1e6) for d in results.designs()
                      for r in [d.rows[workload]]]
            expected = {tuple(np.round(points[i], 9)) for i in plots.pareto_front(points)}
            assert drawn == expected and drawn
            texts = [t for t in ax.texts if t.get_text()]
            assert len(texts) == len(results.designs())  # every design labelled
            boxes = [t.get_window_extent(renderer) for t in texts]
            frame = ax.get_window_extent(renderer)
            for i, a in enumerate(boxes):
                assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0
                assert a.y1 <= frame.y1
                assert not any(a.overlaps(b) for b in boxes[i + 1:])
    # long names are numbered on the plot and listed in the legend
    legend = fig.axes[-1].get_legend()
    entries = [t.get_text() for t in legend.get_texts()]
    assert "1  os_sa_16x16 rows=4" in entries and "Pareto front" in entries


def test_utilization_per_layer_from_the_point_files(results, tmp_path):
    fig = plots.utilization_figure(results)
    rendered(fig, tmp_path)
    ax = fig.axes[0]
    design = results.designs()[0]
    layers = results.summary(design.rows["tiny.yaml"])["layers"]
    # eight designs: one line each (grouped bars up to six)
    first = ax.lines[0]
    assert first.get_label().startswith(design.label + " (")
    assert np.allclose(first.get_ydata(), [100 * l["utilization"] for l in layers])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "conv2", "fc"]


def test_accuracy_puts_exact_designs_on_the_exact_line(results, tmp_path):
    fig = plots.accuracy_figure(results)
    rendered(fig, tmp_path)
    (ax,) = fig.axes
    sqnr = {d.label: d.rows["tiny.yaml"]["sqnr_db"] for d in results.designs()}
    assert sqnr["os_sa_16x16 rows=8"] is None and sqnr["sysmt_2t_16x16 rows=8"] > 0
    dots = [c for c in ax.collections if c.get_label() == "tiny.yaml"][0].get_offsets()
    assert sorted(np.round(dots[:, 1], 9)) == sorted(round(v, 9) for v in sqnr.values()
                                                      if v is not None)
    exact = [c for c in ax.collections if c.get_label() == "tiny.yaml (exact)"][0]
    assert len(exact.get_offsets()) == sum(v is None for v in sqnr.values())
    assert "exact (no error)" in text_of(fig)


def test_a_top1_column_is_preferred(results, tmp_path):
    rows = tuple({**r, "top1": 70.0 + i} for i, r in enumerate(results.rows))
    fig = plots.accuracy_figure(type(results)(results.path, rows, results.axes, results.name,
                                              results.points_dir))
    assert fig.axes[0].get_ylabel() == "top-1 accuracy (%)"
    # a timing-only sweep with accuracy runs: the top-1 column is its accuracy data
    timing = tuple({**r, "functional": False} for r in rows)
    fig = plots.accuracy_figure(type(results)(results.path, timing, results.axes, results.name,
                                              results.points_dir))
    assert fig.axes[0].get_ylabel() == "top-1 accuracy (%)"


def test_timing_only_results_have_no_energy_or_accuracy(tmp_path, cli):
    out = sweep(tmp_path / "t", """schema_version: 1
base: [os_sa_16x16, sysmt_2t_16x16]
workloads: [tiny.yaml]
timing_only: true
""")
    results = load_results(out / "results.csv")
    with pytest.raises(ResultsError, match="no energy breakdown .*timing-only"):
        plots.energy_figure(results)
    result = cli("plot", out, "--kind", "accuracy")
    assert result.status == 2 and result.err.count("\n") == 1
    assert "no accuracy data" in result.err
    result = cli("plot", out, "--kind", "pareto", "--out", tmp_path / "p.gif")
    assert result.status == 2 and "suffix" in result.err
    result = cli("plot", out, "--kind", "speedup")
    assert result.status == 0 and (out / "speedup.png").stat().st_size > 10_000


def test_plot_cli_draws_every_kind(results_dir, tmp_path, cli):
    for kind in plots.KINDS:
        target = tmp_path / f"{kind}.png"
        result = cli("plot", results_dir / "results.csv", "--kind", kind, "--out", target)
        if kind == "ops":  # CNNs only (the transformer sweep: tests/reports/test_ops_plot.py)
            assert result.status == 2 and "no transformer layers" in result.err
            continue
        assert result.status == 0, result.err
        assert result.out == f"wrote {target}\n" and target.read_bytes()[:4] == b"\x89PNG"
    result = cli("plot", results_dir, "--kind", "speedup", "--baseline", "nonsense")
    assert result.status == 2 and "no design has that label" in result.err
    result = cli("plot", results_dir, "--kind", "energy", "--cost", "area")
    assert result.status == 2 and result.err == ("sasim: error: --cost: not used by --kind "
                                                 "energy\n")
    result = cli("plot", results_dir, "--kind", "speedup", "--by", "layer", "--workload",
                 "small.yaml", "--out", tmp_path / "layers.svg")
    assert result.status == 0 and (tmp_path / "layers.svg").read_text().startswith("<?xml")


def test_run_plot_draws_cycles_and_energy_per_layer(tmp_path, cli):
    target = tmp_path / "run.png"
    result = cli("run", "--arch", "sysmt_2t_16x16", "--workload", "alexnet", "--timing-only",
                 "--plot", target)
    assert result.status == 0 and f"wrote the per-layer plot to {target}" in result.out
    assert target.stat().st_size > 10_000
    summary = api.simulate(api.load_arch("sysmt_2t_16x16"), api.load_workload("alexnet"),
                           functional=False).summary()
    fig = plots.run_figure(summary)
    (ax,) = fig.axes  # timing only: no energy panel
    compute, stall = ax.containers
    assert np.allclose([p.get_height() for p in compute],
                       [l["compute_cycles"] / 1e3 for l in summary["layers"]])
    assert to_hex(compute[0].get_facecolor()) == plots.CYCLE_COLORS["compute"].lower()


def test_run_figure_energy_uses_the_component_colours():
    summary = api.simulate(api.load_arch("os_sa_16x16"), api.load_workload("digits_int8"),
                           ).summary()
    fig = plots.run_figure(summary)
    energy_ax = fig.axes[1]
    totals = np.zeros(len(summary["layers"]))
    for container in energy_ax.containers:
        name = container.get_label().replace(" ", "_")
        assert to_hex(container[0].get_facecolor()) == plots.component_color(name).lower()
        totals += [p.get_height() for p in container]
    assert np.allclose(totals, [l["energy_pj"] / 1e6 for l in summary["layers"]])


def test_a_new_component_class_gets_a_stable_colour_of_its_own():
    # stable across processes (a str hash() would not be: PYTHONHASHSEED differs per run),
    # and not the colour of any known class
    colour = plots.component_color("new_class")
    code = "from simulator.reports import plots; print(plots.component_color('new_class'))"
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "PYTHONHASHSEED": seed,
                                              "PYTHONPATH": str(REPO)})
        assert done.stdout.strip() == colour, done.stderr
    assert colour not in plots.COMPONENT_COLORS.values()
    assert {plots.component_color(f"class_{i}") for i in range(40)} - set(
        plots.COMPONENT_COLORS.values()) == {plots.component_color(f"class_{i}")
                                             for i in range(40)}


def test_comparison_figure_draws_speedup_and_energy_per_design(tmp_path):
    records = []
    for workload in (TINY, SMALL):
        path = tmp_path / "w.yaml"
        path.write_text(workload)
        for arch in ("os_sa_16x16", "sysmt_2t_16x16"):
            summary = api.simulate(api.load_arch(arch), api.load_workload(path)).summary()
            records.append({"workload": summary["workload"], "arch": arch,
                            "time_us": summary["time_us"], "energy_pj": summary["energy_pj"],
                            **{k: summary[k] for k in ("tech", "clock_mhz", "arch_config",
                                                       "functional")}})
    fig = plots.comparison_figure(records)
    speedup_ax, energy_ax = fig.axes[:2]
    assert [t.get_text() for t in energy_ax.get_xticklabels()] == ["os_sa_16x16",
                                                                   "sysmt_2t_16x16"]
    first, second = records[2], records[3]  # the second workload: the second series
    bars = [c for c in speedup_ax.containers if c.get_label() == first["workload"]][0]
    assert [p.get_height() for p in bars] == pytest.approx(
        [1.0, first["time_us"] / second["time_us"]])
    bars = [c for c in energy_ax.containers if c.get_label() == first["workload"]][0]
    assert [p.get_height() for p in bars] == pytest.approx(
        [1.0, second["energy_pj"] / first["energy_pj"]])
    assert {c.get_label() for c in energy_ax.containers} == {
        records[0]["workload"], first["workload"], "geometric mean"}
    unpriced = plots.comparison_figure([{**r, "energy_pj": None} for r in records])
    assert len([ax for ax in unpriced.axes if ax.containers]) == 1  # no energy panel


def test_reports_do_not_import_the_simulator():
    code = ("import sys, simulator.reports.plots, simulator.reports.sweep_results; "
            "bad = [m for m in sys.modules if m.startswith(('simulator.hw', 'simulator.engine', "
            "'simulator.memory', 'simulator.api', 'simulator.sweep', 'matplotlib.pyplot'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_torn_last_line_is_ignored_and_bad_files_are_one_error(tmp_path, results_dir):
    text = (results_dir / "results.csv").read_text()
    torn = tmp_path / "results.csv"
    torn.write_text(text + text.splitlines()[1][:30])  # an append cut short by a kill
    shutil.copy(results_dir / "sweep.json", tmp_path / "sweep.json")
    assert len(load_results(torn).rows) == len(text.splitlines()) - 1
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="not a sweep's results.csv"):
        load_results(bad)
    with pytest.raises(ResultsError, match="file not found"):
        load_results(tmp_path / "missing.csv")


def test_an_unwritable_matplotlib_directory_adds_nothing_to_stderr(tmp_path):
    """matplotlib warns on import when it cannot write its configuration directory (a
    read-only home) and uses a temporary one; sasim's one-line promise keeps stderr empty."""
    code = "from simulator.reports import plots"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO),
                                          "MPLCONFIGDIR": "/proc/no-such-directory"})
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_a_run_of_many_layers_is_drawn_in_groups_of_consecutive_layers():
    summary = api.simulate(api.load_arch("os_sa_16x16"), api.load_workload("digits_int8"),
                           ).summary()
    copies = -(-300 // len(summary["layers"]))
    layers = [{**layer, "name": f"{layer['name']}#{i}"}
              for i in range(copies) for layer in summary["layers"]]
    many = {**summary, "layers": layers}
    fig = plots.run_figure(many)
    compute, _ = fig.axes[0].containers
    size = -(-len(layers) // plots.MAX_LAYER_BARS)
    assert len(compute) == -(-len(layers) // size) <= plots.MAX_LAYER_BARS
    cycles = np.array([layer["compute_cycles"] for layer in layers], dtype=float)
    assert np.allclose([p.get_height() for p in compute],
                       [cycles[i:i + size].sum() / 1e3 for i in range(0, len(layers), size)])
    assert fig.axes[-1].get_xticklabels()[0].get_text() == (
        f"{layers[0]['name']}..{layers[size - 1]['name']}")
    assert f"summed {size} by {size}" in fig.axes[-1].get_xlabel()
    energy = sum(p.get_height() for c in fig.axes[1].containers for p in c)
    assert energy * 1e6 == pytest.approx(sum(sum(layer["energy_breakdown_pj"].values())
                                             for layer in layers))


def test_a_speedup_that_overflows_is_not_drawn():
    """A positive but tiny time (5e-324 in a hand-edited results.csv) would give an infinite
    speedup and numpy's warnings on stderr: it is drawn as n/a instead."""
    from simulator.reports.plots import _ratio

    assert _ratio(586.7, 5e-324) is None and _ratio(1e308, 1e-308) is None
    assert _ratio(586.7, 477.6) == 586.7 / 477.6 and _ratio(1.0, 0.0) is None


def test_empty_paths_and_a_byte_order_mark(cli, tmp_path):
    """An empty sweep spec or results path is refused as such (not as the directory '.');
    a results.csv saved with a UTF-8 byte-order mark (a spreadsheet's) still reads."""
    for argv in (["sweep", "", "--out", tmp_path / "d"], ["plot", " ", "--kind", "speedup"]):
        result = cli(*argv)
        assert result.status == 2 and "an empty path" in result.err, result.err
    spec = tmp_path / "s.yaml"
    spec.write_text("schema_version: 1\nname: tiny\nbase: [os_sa_16x16, sysmt_2t_16x16]\n"
                    "workloads: [digits_int8]\ntiming_only: true\n")
    assert cli("sweep", spec, "--out", tmp_path / "sw").status == 0
    results = tmp_path / "sw" / "results.csv"
    results.write_bytes(b"\xef\xbb\xbf" + results.read_bytes())
    result = cli("plot", tmp_path / "sw", "--kind", "speedup", "--out", tmp_path / "p.png")
    assert result.status == 0, result.err
