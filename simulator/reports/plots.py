"""Figures drawn from saved results: a sweep's results (speedup, energy, Pareto, utilisation,
accuracy) and one run's per-layer cycles and energy.

Every function returns a :class:`matplotlib.figure.Figure` built with the object-oriented API
(no pyplot state) and constrained layout. Each figure states the technology, clock, array
size and PE (its precision options) of the designs it shows, and a component class has the
same colour in every figure (:data:`COMPONENT_COLORS`). Nothing here imports the simulator's
engine or hardware: the inputs are summary dicts and :class:`SweepResults`.
"""

from __future__ import annotations

import logging
import math
import textwrap
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# matplotlib warns on import when it cannot write its configuration directory (a read-only
# home) and uses a temporary one instead, which changes nothing drawn here: errors only.
logging.getLogger("matplotlib").setLevel(logging.ERROR)

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from simulator.errors import ResultsError
from simulator.outputs import atomic_write
from simulator.reports.files import figure_format
from simulator.reports.sweep_results import Design, SweepResults

__all__ = [
    "KINDS",
    "COMPONENT_COLORS",
    "CYCLE_COLORS",
    "component_color",
    "speedup_figure",
    "energy_figure",
    "pareto_figure",
    "utilization_figure",
    "accuracy_figure",
    "sweep_figure",
    "run_figure",
    "comparison_figure",
    "ops_figure",
    "run_ops_figure",
    "ROLE_COLORS",
    "save_figure",
    "pareto_front",
    "geometric_mean",
]

KINDS = ("speedup", "energy", "pareto", "utilization", "accuracy", "ops")

#: One colour per component class (the energy and area breakdowns of docs/energy-model.md),
#: the same in every figure.
COMPONENT_COLORS: dict[str, str] = {
    "multipliers": "#4C72B0",
    "adders": "#55A868",
    "registers": "#8172B2",
    "pe_logic": "#CCB974",
    "control_wiring": "#64B5CD",
    "buffers": "#DD8452",
    "dram": "#C44E52",
    "leakage": "#8C8C8C",
}
#: Colours for classes a later energy model adds, picked by a stable hash of the name.
_EXTRA_COMPONENT_COLORS = ("#937860", "#DA8BC3", "#17BECF", "#BCBD22", "#2F4B7C", "#A05195")
#: Cycles of a layer: computing, and stalled on memory.
CYCLE_COLORS = {"compute": "#4C72B0", "stall": "#C44E52"}
_SERIES_COLORS = ("#1F77B4", "#FF7F0E", "#2CA02C", "#9467BD", "#8C564B", "#E377C2",
                  "#17BECF", "#BCBD22", "#7F7F7F", "#D62728")
_GEOMEAN_COLOR = "#333333"
_FRONT_COLOR = "#D62728"
_OTHER_COLOR = "#9E9E9E"
#: Designs up to which every point of a scatter is labelled (beyond: the Pareto front only).
LABEL_ALL_UP_TO = 20


def component_color(name: str) -> str:
    """The colour of a component class (fixed across figures)."""
    if name in COMPONENT_COLORS:
        return COMPONENT_COLORS[name]
    return _EXTRA_COMPONENT_COLORS[zlib.crc32(name.encode()) % len(_EXTRA_COMPONENT_COLORS)]


def _component_order(names: Sequence[str]) -> list[str]:
    known = [n for n in COMPONENT_COLORS if n in names]
    return known + sorted(n for n in names if n not in COMPONENT_COLORS)


def geometric_mean(values: Sequence[float | None]) -> float | None:
    """The geometric mean, or None when a value is missing or not positive."""
    if not values or any(v is None or not v > 0 or not math.isfinite(v) for v in values):
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: higher x (speedup) and lower y (cost),
    one of them strictly. Sorted by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(ox >= x and oy <= y and (ox > x or oy < y)
                        for j, (ox, oy) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


# --- figure scaffolding -------------------------------------------------------------------

def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(min(max(width, 6.0), 18.0), height), layout="constrained")
    FigureCanvasAgg(fig)  # a canvas to measure text with (labels are placed to not overlap)
    return fig


def _distinct(values: Sequence[Any], limit: int = 4) -> str:
    unique = list(dict.fromkeys(str(v) for v in values if v is not None))
    if not unique:
        return "n/a"
    if len(unique) <= limit:
        return "; ".join(unique)
    return "; ".join(unique[:limit]) + f"; ... ({len(unique)} kinds)"


def _pe_text(pe: Mapping[str, Any]) -> str:
    """A PE and the options that set its arithmetic: the numeric ones (threads, bits, ...)."""
    knobs = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in pe.items()
             if k != "type" and isinstance(v, int | float) and not isinstance(v, bool)]
    return " ".join([str(pe.get("type", "?")), *knobs])


def _caption(summaries: Sequence[Mapping[str, Any]], width: int = 140) -> str:
    """Technology, clock, array size, PE precision and mode of the designs shown."""
    configs = [s["arch_config"] for s in summaries if s.get("arch_config")]
    parts = [f"tech {_distinct([s.get('tech') for s in summaries])}",
             f"clock {_distinct([_mhz(s.get('clock_mhz')) for s in summaries])}"]
    if configs:
        parts.append("array " + _distinct(
            [f"{c['array']['rows']}x{c['array']['cols']} {c['array']['dataflow'].upper()}"
             for c in configs]))
        parts.append("PE (precision) " + _distinct([_pe_text(c["pe"]) for c in configs]))
    functional = {s.get("functional") for s in summaries}
    data = _distinct([s.get("data") for s in summaries if s.get("functional")])
    if functional == {False}:
        parts.append("timing only")
    elif functional == {True}:
        parts.append(f"functional ({data} data)")
    return "\n".join(textwrap.wrap("  |  ".join(parts), width))


def _mhz(value: Any) -> str | None:
    return None if value is None else f"{float(value):g} MHz"


def _side_legend(ax, handles: Sequence, labels: Sequence[str], title: str | None = None):
    """A legend to the right of ``ax``, top-aligned with it (the layout makes room for it, so
    it overlaps neither the plot nor the title)."""
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                     borderaxespad=0, frameon=False, fontsize=7.5, title=title,
                     title_fontsize=8, alignment="left")


def _finish(fig: Figure, title: str, summaries: Sequence[Mapping[str, Any]]) -> Figure:
    fig.suptitle(title, fontsize=11)
    # about 16 characters of 7.5 pt text per inch of figure width
    width = int(16 * fig.get_figwidth())
    fig.supxlabel(_caption(summaries, width), fontsize=7.5, color="0.3")
    _fit_tick_labels(fig)
    return fig


def _set_categories(ax, labels: Sequence[str]) -> None:
    """Category tick labels (lines split at newlines); :func:`_finish` rotates them when
    they do not fit side by side."""
    size = 8 if len(labels) <= 24 else 6.5
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=size)
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _fit_tick_labels(fig: Figure) -> None:
    """Rotate the category labels of an axes whose labels would overlap side by side: to 40
    degrees when neighbouring lines of text keep apart at that angle (their distance across
    the text is the tick spacing times sin 40), else upright, else smaller."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
        if len(labels) < 2:
            continue
        if not _overlapping([t.get_window_extent(renderer) for t in labels]):
            continue
        for text in labels:
            text.set_text(text.get_text().replace("\n", " "))
        anchors = sorted(ax.transData.transform([(x, 0) for x in ax.get_xticks()])[:, 0])
        spacing = min(b - a for a, b in zip(anchors, anchors[1:]))
        height = max(t.get_window_extent(renderer).height for t in labels) + 1.0
        if spacing * math.sin(math.radians(40)) >= height:
            options = dict(rotation=40, ha="right", rotation_mode="anchor")
        else:
            options = dict(rotation=90, ha="center", rotation_mode="default")
        size = labels[0].get_fontsize()
        if spacing < height:
            size *= max(0.5, spacing / height)
        # through the axis (not the Text objects, which the next draw regenerates)
        ax.set_xticks(ax.get_xticks(), [t.get_text() for t in labels], fontsize=size,
                      **options)


def _overlapping(boxes: Sequence[Bbox], pad: float = 1.0) -> bool:
    ordered = sorted(boxes, key=lambda b: b.x0)
    return any(a.x1 + pad > b.x0 and a.y1 > b.y0 and b.y1 > a.y0
               for a, b in zip(ordered, ordered[1:]))


def _tick(design: Design) -> str:
    return "\n".join(design.parts)


def _short_labels(designs: Sequence[Design]) -> bool:
    """Whether design names are short enough to write next to scatter points; otherwise
    the points carry numbers and the legend lists the names."""
    return max((len(d.label) for d in designs), default=0) <= 18


def _grouped_bars(ax, groups: Sequence[str],
                  series: Sequence[tuple[str, str, Sequence[float | None]]],
                  value_labels: Sequence[str] = ()) -> None:
    """One bar per (group, series); missing values are marked 'n/a'. Series named in
    ``value_labels`` get their value written above each bar."""
    n = len(series)
    width = 0.8 / n
    x = np.arange(len(groups))
    for i, (name, color, values) in enumerate(series):
        offset = (i - (n - 1) / 2) * width
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(x + offset, heights, width, label=name, color=color,
                      edgecolor="white", linewidth=0.4)
        for xi, v in zip(x, values):
            if v is None:
                ax.text(xi + offset, 0, "n/a", rotation=90, ha="center", va="bottom",
                        fontsize=6, color="0.4")
        if name in value_labels:
            ax.bar_label(bars, labels=["" if v is None else f"{v:.2f}" for v in values],
                         fontsize=6.5, padding=1.5, rotation=90 if n > 2 else 0)
    _set_categories(ax, groups)
    ax.margins(y=0.12)


def _rows_summaries(results: SweepResults, designs: Sequence[Design]) -> list[dict]:
    """Full summaries of the designs' rows where the point files are there; else the rows."""
    out = []
    for design in designs:
        for row in design.rows.values():
            if row.get("error"):
                continue
            out.append(results.summary(row) or row)
    return out


def _metric(row: Mapping[str, Any] | None, key: str) -> float | None:
    if row is None or row.get("error"):
        return None
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``, or None when either is missing or the ratio is not a finite number
    (a time so small, say 5e-324, that the speedup overflows: drawn as n/a)."""
    if num is None or den is None or den == 0:
        return None
    ratio = num / den  # floats: an overflow is inf, not an exception
    return ratio if math.isfinite(ratio) else None


def _speedups(design: Design, base: Design, workloads: Sequence[str]) -> list[float | None]:
    return [_ratio(_metric(base.rows.get(w), "time_us"), _metric(design.rows.get(w), "time_us"))
            for w in workloads]


# --- sweep figures -----------------------------------------------------------------------

def speedup_figure(results: SweepResults, baseline: Mapping[str, Any] | str | None = None,
                   *, by: str = "workload", workload: str | None = None) -> Figure:
    """Speedup of every design over the baseline (time per inference; baseline = 1.0).

    ``by="workload"``: one bar per design and workload, and a geometric-mean bar per design
    when there are several workloads. ``by="layer"``: for one ``workload`` (default the
    first), one bar per design and layer, and a group with each design's geometric mean
    over the layers (needs the point files).
    """
    designs = results.designs()
    base = results.baseline_design(baseline)
    workloads = results.workloads()
    if by == "layer":
        return _speedup_by_layer(results, designs, base, workload or workloads[0])
    if by != "workload":
        raise ResultsError(f"speedup: by must be 'workload' or 'layer', not {by!r}")
    values = {d.label: _speedups(d, base, workloads) for d in designs}
    if all(v is None for row in values.values() for v in row):
        raise ResultsError(f"{results.path}: no design has a usable time_us against the "
                           f"baseline {base.label} (failed points, or no timings)")
    series = [(w, _SERIES_COLORS[i % len(_SERIES_COLORS)], [values[d.label][i] for d in designs])
              for i, w in enumerate(workloads)]
    if len(workloads) > 1:
        series.append(("geometric mean", _GEOMEAN_COLOR,
                       [geometric_mean(values[d.label]) for d in designs]))
    lines = max(len(d.parts) for d in designs)
    fig = _figure(2.5 + 0.22 * len(designs) * len(series) + 0.25 * len(designs),
                  4.2 + 0.15 * lines)
    ax = fig.add_subplot()
    _grouped_bars(ax, [_tick(d) for d in designs], series, value_labels=[series[-1][0]])
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_ylabel("speedup over the baseline (x)")
    ax.set_xlabel("design")
    _side_legend(ax, *ax.get_legend_handles_labels(), title="workload")
    return _finish(fig, f"{results.name}: speedup, time per inference\n"
                        f"baseline (1.0): {base.label}", _rows_summaries(results, designs))


def _layers(results: SweepResults, design: Design, workload: str) -> list[dict] | None:
    summary = results.summary(design.rows.get(workload, {}))
    return None if summary is None else summary["layers"]


def _need_points(results: SweepResults, what: str) -> None:
    if results.points_dir is None:
        raise ResultsError(f"{results.path}: {what} needs the per-layer data of the point "
                           f"files (points/ beside results.csv), which is missing")


def _speedup_by_layer(results: SweepResults, designs: Sequence[Design], base: Design,
                      workload: str) -> Figure:
    _need_points(results, "speedup by layer")
    if workload not in results.workloads():
        raise ResultsError(f"{results.path}: no workload {workload!r} "
                           f"(workloads: {', '.join(results.workloads())})")
    base_layers = _layers(results, base, workload)
    if base_layers is None:
        raise ResultsError(f"{results.path}: the baseline {base.label} has no result on "
                           f"{workload}")
    names = [layer["name"] for layer in base_layers]
    base_clock = results.summary(base.rows[workload])["clock_mhz"]
    series = []
    for i, design in enumerate(designs):
        layers = _layers(results, design, workload)
        if layers is None:
            per_layer: list[float | None] = [None] * len(names)
        else:
            clock = results.summary(design.rows[workload])["clock_mhz"]
            per_layer = [_ratio(b["total_cycles"] / base_clock, l["total_cycles"] / clock)
                         for b, l in zip(base_layers, layers)]
        series.append((design.label, _SERIES_COLORS[i % len(_SERIES_COLORS)],
                       [*per_layer, geometric_mean(per_layer)]))
    groups = [*names, "geo. mean"]
    fig = _figure(2.5 + 0.16 * len(groups) * len(designs), 4.8)
    ax = fig.add_subplot()
    _grouped_bars(ax, groups, series)
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_ylabel("speedup over the baseline (x)")
    ax.set_xlabel(f"layer of {workload}")
    _side_legend(ax, *ax.get_legend_handles_labels(), title="design")
    return _finish(fig, f"{results.name}: speedup per layer on {workload}\n"
                        f"baseline (1.0): {base.label}", _rows_summaries(results, designs))


def energy_figure(results: SweepResults,
                  baseline: Mapping[str, Any] | str | None = None) -> Figure:
    """Energy per inference of every design, stacked by component class and normalised to
    the baseline's total on the same workload (baseline = 1.0); one panel per workload."""
    designs = results.designs()
    base = results.baseline_design(baseline)
    workloads = results.workloads()
    prefix = "energy_breakdown_pj."
    classes = _component_order([c[len(prefix):] for c in results.columns
                                if c.startswith(prefix)])
    if not classes:
        raise ResultsError(f"{results.path}: no energy breakdown in the results (a "
                           f"timing-only sweep has none: set timing_only: false)")
    labels = [_tick(d) for d in designs]
    lines = max(len(d.parts) for d in designs)
    fig = _figure(3.0 + 0.5 * len(designs), 2.2 + 0.15 * lines + 2.6 * len(workloads))
    axes = fig.subplots(len(workloads), 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(len(designs))
    for ax, workload in zip(axes, workloads):
        total = _metric(base.rows.get(workload), "energy_pj")
        bottom = np.zeros(len(designs))
        for name in classes:
            heights = np.array([(_ratio(_metric(d.rows.get(workload), prefix + name), total)
                                 or 0.0) for d in designs])
            ax.bar(x, heights, 0.7, bottom=bottom, color=component_color(name),
                   label=name.replace("_", " "), edgecolor="white", linewidth=0.4)
            bottom += heights
        totals = [_ratio(_metric(d.rows.get(workload), "energy_pj"), total) for d in designs]
        for xi, (t, top) in enumerate(zip(totals, bottom)):
            ax.text(xi, top, "n/a" if t is None else f"{t:.2f}", ha="center", va="bottom",
                    fontsize=6.5)
        ax.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8)
        ax.set_ylabel("chip-scope energy / baseline")
        ax.set_title(workload, fontsize=9, loc="left")
        # room for the totals (stacked bases are sticky edges: margins would not apply)
        ax.set_ylim(0, 1.12 * max(float(bottom.max()), 1.0))
    _set_categories(axes[-1], labels)
    axes[-1].set_xlabel("design")
    handles, names = axes[0].get_legend_handles_labels()
    _side_legend(axes[0], handles[::-1], names[::-1], title="component")
    return _finish(fig, f"{results.name}: chip-scope energy per inference by component\n"
                        f"baseline (1.0): {base.label}", _rows_summaries(results, designs))


def _place_labels(fig: Figure, ax, items: Sequence[tuple[float, float, str]],
                  fontsize: float = 7) -> list:
    """Annotate points so that no two labels overlap each other or a marker, all inside the
    axes: each label takes the first free spot of a list of candidate offsets."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    anchors = ax.transData.transform([(x, y) for x, y, _ in items]) if items else []
    markers = [Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in anchors]
    # texts already on the axes (notes such as 'exact') are obstacles too
    markers += [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
    candidates = [(6, 3, "left", "bottom"), (6, -3, "left", "top"),
                  (-6, 3, "right", "bottom"), (-6, -3, "right", "top")]
    for step in range(1, 8):
        lift = 11 * step
        candidates += [(6, 3 + lift, "left", "bottom"), (6, -3 - lift, "left", "top"),
                       (-6, 3 + lift, "right", "bottom"), (-6, -3 - lift, "right", "top")]
    placed: list[Bbox] = []
    texts = []
    for x, y, text in items:
        chosen = None
        for dx, dy, ha, va in candidates:
            trial = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                                ha=ha, va=va, fontsize=fontsize)
            box = trial.get_window_extent(renderer)
            trial.remove()
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                      and box.y1 <= frame.y1)
            # a little air between labels, so that '7' and '1' do not read as '71'
            if inside and not any(box.padded(2).overlaps(b) for b in placed + markers):
                chosen = (dx, dy, ha, va, box)
                break
        if chosen is None:  # no free spot: the nearest one (a crowded plot)
            dx, dy, ha, va = candidates[0]
            chosen = (dx, dy, ha, va, None)
        dx, dy, ha, va, box = chosen
        arrow = dict(arrowstyle="-", color="0.55", linewidth=0.5) if abs(dy) > 10 else None
        label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                            ha=ha, va=va, fontsize=fontsize, arrowprops=arrow)
        label.set_in_layout(False)
        placed.append(box if box is not None else label.get_window_extent(renderer))
        texts.append(label)
    return texts


def _design_names(designs: Sequence[Design]) -> tuple[dict[tuple, str], list]:
    """What to write next to each design's points, and legend entries for a key: the names
    themselves when short, else numbers with a key ``1  name`` in the legend."""
    from matplotlib.lines import Line2D

    if _short_labels(designs):
        return {d.key: d.label for d in designs}, []
    names = {d.key: str(i + 1) for i, d in enumerate(designs)}
    key = [Line2D([], [], linestyle="none", label=f"{names[d.key]}  {d.label}")
           for d in designs]
    return names, key


def pareto_figure(results: SweepResults, baseline: Mapping[str, Any] | str | None = None,
                  *, cost: str = "area") -> Figure:
    """Cost (``area`` in mm^2 or ``energy`` per inference in uJ) against speedup over the
    baseline, one panel per workload; the Pareto front (faster and cheaper) highlighted and
    the designs labelled (all of them up to :data:`LABEL_ALL_UP_TO` designs, else the
    front). Long design names are replaced by numbers listed in the legend."""
    if cost not in ("area", "energy"):
        raise ResultsError(f"pareto: cost must be 'area' or 'energy', not {cost!r}")
    column, scale, unit = (("area_um2", 1e-6, "area (mm$^2$)") if cost == "area"
                           else ("energy_pj", 1e-6, "chip-scope energy per inference (uJ)"))
    designs = results.designs()
    base = results.baseline_design(baseline)
    workloads = results.workloads()
    if all(_metric(r, column) is None for d in designs for r in d.rows.values()):
        hint = " (a timing-only sweep has no energy)" if cost == "energy" else ""
        raise ResultsError(f"{results.path}: no {column} in the results{hint}")
    names, key = _design_names(designs)
    ncols = min(len(workloads), 3)
    nrows = math.ceil(len(workloads) / ncols)
    fig = _figure(2.5 + 4.4 * ncols, 1.2 + 3.8 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(workloads):]:
        ax.set_visible(False)
    labels = []
    for ax, workload in zip(axes, workloads):
        shown = []
        for design in designs:
            speedup = _speedups(design, base, [workload])[0]
            value = _metric(design.rows.get(workload), column)
            if speedup is not None and value is not None:
                shown.append((design, speedup, value * scale))
        coords = [(s, c) for _, s, c in shown]
        ordered = pareto_front(coords)
        others = [i for i in range(len(shown)) if i not in ordered]
        ax.scatter([coords[i][0] for i in others], [coords[i][1] for i in others], s=22,
                   color=_OTHER_COLOR, label="dominated", zorder=2)
        ax.plot([coords[i][0] for i in ordered], [coords[i][1] for i in ordered], "--",
                color=_FRONT_COLOR, linewidth=0.9, zorder=1)
        ax.scatter([coords[i][0] for i in ordered], [coords[i][1] for i in ordered], s=34,
                   color=_FRONT_COLOR, label="Pareto front", zorder=3)
        for design, s, c in shown:
            if design.key == base.key:
                ax.scatter([s], [c], s=130, facecolors="none", edgecolors="0.2",
                           linewidths=1.0, label="baseline", zorder=4)
        ax.set_xlabel("speedup over the baseline (x)")
        ax.set_ylabel(unit)
        ax.set_title(workload, fontsize=9, loc="left")
        ax.margins(x=0.12, y=0.15)
        ax.grid(True, linewidth=0.3, color="0.85")
        labels.append([(s, c, names[design.key]) for i, (design, s, c) in enumerate(shown)
                       if len(shown) <= LABEL_ALL_UP_TO or i in ordered])
    handles, texts = axes[0].get_legend_handles_labels()
    _side_legend(axes[min(ncols, len(workloads)) - 1], handles + key,
                 texts + [h.get_label() for h in key])
    _finish(fig, f"{results.name}: {cost} vs speedup; Pareto front: faster and "
                 f"{'smaller' if cost == 'area' else 'less energy'}\n"
                 f"baseline: {base.label}", _rows_summaries(results, designs))
    # labels last: their free spots are found on the final layout
    for ax, items in zip(axes, labels):
        _place_labels(fig, ax, items)
    return fig


def utilization_figure(results: SweepResults, *, workload: str | None = None) -> Figure:
    """Utilisation of the array per layer (MACs done / MACs possible in the layer's cycles),
    one panel per workload (or only ``workload``); needs the point files."""
    _need_points(results, "utilization")
    designs = results.designs()
    workloads = [workload] if workload else results.workloads()
    if workload and workload not in results.workloads():
        raise ResultsError(f"{results.path}: no workload {workload!r}")
    panels = []
    for name in workloads:
        layer_names: list[str] = []
        series = []
        for i, design in enumerate(designs):
            layers = _layers(results, design, name)
            if layers is None:
                continue
            layer_names = layer_names or [l["name"] for l in layers]
            overall = 100 * design.rows[name]["utilization"]
            series.append((f"{design.label} ({overall:.0f} % overall)",
                           _SERIES_COLORS[i % len(_SERIES_COLORS)],
                           [100 * l["utilization"] for l in layers]))
        if not series:
            raise ResultsError(f"{results.path}: no finished point on {name}")
        panels.append((name, layer_names, series))
    most = max(len(p[1]) for p in panels)
    # the legend beside the panels takes about four inches
    fig = _figure(4.5 + most * min(0.5, 0.12 * len(designs) + 0.2), 1.4 + 2.9 * len(panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (name, layer_names, series) in zip(axes, panels):
        if len(series) <= 6:
            _grouped_bars(ax, layer_names, series)
        else:
            for i, (label, color, values) in enumerate(series):
                # colours repeat after ten designs: the marker tells them apart
                marker = "osD^v"[(i // len(_SERIES_COLORS)) % 5]
                ax.plot(np.arange(len(values)), values, marker=marker, markersize=3.5,
                        linewidth=0.8, color=color, label=label)
            _set_categories(ax, layer_names)
        ax.set_ylim(0, 105)
        ax.set_ylabel("utilisation (%)")
        ax.set_title(name, fontsize=9, loc="left")
        ax.grid(True, axis="y", linewidth=0.3, color="0.85")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0),
                  borderaxespad=0, frameon=False)
    axes[-1].set_xlabel("layer")
    return _finish(fig, f"{results.name}: array utilisation per layer",
                   _rows_summaries(results, designs))


def accuracy_figure(results: SweepResults,
                    baseline: Mapping[str, Any] | str | None = None) -> Figure:
    """Output quality against speedup: top-1 accuracy when the results have a ``top1``
    column, else the SQNR of the simulated outputs against the exact GEMM (dB; exact designs
    are drawn on the 'exact' line at the top). One colour per workload."""
    designs = results.designs()
    base = results.baseline_design(baseline)
    workloads = results.workloads()
    use_top1 = any(_metric(r, "top1") is not None for d in designs for r in d.rows.values())
    key_column = "top1" if use_top1 else "sqnr_db"
    points = []  # (workload index, design, speedup, value; None = exact)
    for wi, workload in enumerate(workloads):
        for design in designs:
            row = design.rows.get(workload)
            speedup = _speedups(design, base, [workload])[0]
            # top-1 comes from the sweep's accuracy runs, even in a timing-only sweep
            if row is None or speedup is None or (row.get("functional") is not True
                                                  and not use_top1):
                continue
            value = _metric(row, key_column)
            if use_top1 and value is None:
                continue
            points.append((wi, design, speedup, value))
    if not points:
        no_macs = all(not _metric(row, "macs") for design in designs
                      for row in design.rows.values())
        why = ("its workloads have no array layers: no MACs whose error could be measured"
               if no_macs else "a timing-only sweep has none: set timing_only: false")
        raise ResultsError(f"{results.path}: no accuracy data ({why})")
    finite = [v for *_, v in points if v is not None]
    top = max(finite) if finite else 0.0
    span = (top - min(finite)) if len(finite) > 1 else 10.0
    exact_y = top + max(0.15 * span, 3.0)
    names, key = _design_names(designs)
    fig = _figure(8.5 if key else 7.5, 5.0)
    ax = fig.add_subplot()
    items = []
    for wi, workload in enumerate(workloads):
        mine = [(d, s, v) for w, d, s, v in points if w == wi]
        if not mine:
            continue
        color = _SERIES_COLORS[wi % len(_SERIES_COLORS)]
        ax.scatter([s for _, s, v in mine if v is not None],
                   [v for _, _, v in mine if v is not None], s=28, color=color,
                   label=workload, zorder=3)
        exact = [s for _, s, v in mine if v is None]
        if exact:
            ax.scatter(exact, [exact_y] * len(exact), s=40, marker="^", color=color,
                       zorder=3, label=f"{workload} (exact)")
        items += [(s, exact_y if v is None else v, names[d.key]) for d, s, v in mine]
    if any(v is None for *_, v in points):
        ax.axhline(exact_y, color="0.6", linewidth=0.6, linestyle=":")
        ax.annotate("exact (no error)", (1, exact_y), xycoords=("axes fraction", "data"),
                    xytext=(-3, 3), textcoords="offset points", fontsize=7, color="0.4",
                    ha="right")
    ax.set_xlabel("speedup over the baseline (x)")
    ax.set_ylabel("top-1 accuracy (%)" if use_top1
                  else "SQNR of the outputs vs the exact GEMM (dB)")
    ax.margins(x=0.12, y=0.12)
    ax.grid(True, linewidth=0.3, color="0.85")
    handles, texts = ax.get_legend_handles_labels()
    _side_legend(ax, handles + key, texts + [h.get_label() for h in key])
    what = "top-1 accuracy" if use_top1 else "output error (SQNR)"
    _finish(fig, f"{results.name}: {what} vs speedup\nbaseline: {base.label}",
            _rows_summaries(results, designs))
    _place_labels(fig, ax, items if len(designs) <= LABEL_ALL_UP_TO else [])
    return fig


_SWEEP_FIGURES: dict[str, Callable[..., Figure]] = {
    "speedup": speedup_figure, "energy": energy_figure, "pareto": pareto_figure,
    "utilization": utilization_figure, "accuracy": accuracy_figure,
    "ops": lambda results, **options: ops_figure(results, **options),
}


def sweep_figure(results: SweepResults, kind: str, **options: Any) -> Figure:
    """The figure of ``kind`` (one of :data:`KINDS`) for a sweep's results."""
    if kind not in _SWEEP_FIGURES:
        raise ResultsError(f"unknown plot kind {kind!r} (kinds: {', '.join(KINDS)})")
    needs = _NEEDS[kind](options)
    usable = any(all(_metric(row, c) is not None for c in needs) for row in results.rows)
    if not usable:
        raise ResultsError(f"{results.path}: no row has a usable {' and '.join(needs)} "
                           f"(failed points or another kind of results): nothing to plot")
    if kind in ("speedup", "energy"):
        base = results.baseline_design(options.get("baseline"))
        if not any(_metric(row, needs[0]) is not None for row in base.rows.values()):
            raise ResultsError(f"{results.path}: the baseline design {base.label!r} has no "
                               f"usable {needs[0]} (did its points fail?): choose another "
                               f"with --baseline")
    return _SWEEP_FIGURES[kind](results, **options)


# --- a comparison (sasim compare) --------------------------------------------------------

def comparison_figure(records: Sequence[Mapping[str, Any]]) -> Figure:
    """``sasim compare``: speedup (time per inference) and energy of every design relative
    to the first one, per workload, with their geometric mean over several workloads.

    Parameters
    ----------
    records : sequence of mapping
        One per (workload, design), in the comparison's order: ``workload``, ``arch`` (the
        design's name), ``time_us`` and ``energy_pj`` (None when not priced), plus the run
        summary's ``tech``, ``clock_mhz``, ``arch_config``, ``functional`` and ``data`` for
        the caption.
    """
    if not records:
        raise ResultsError("comparison plot: no results")
    # the design's name is its one axis ("base": labelled by the name alone)
    results = SweepResults(path=Path("comparison"),
                           rows=tuple({**r, "base": r["arch"]} for r in records),
                           axes=("base",), name="compare", points_dir=None)
    designs = results.designs()
    base = designs[0]
    workloads = results.workloads()
    panels = [("speedup over the first design (x)",
               {d.label: _speedups(d, base, workloads) for d in designs})]
    priced = False
    for scope, key in (("array", "array_energy_pj"), ("chip", "energy_pj")):
        # both scopes, named (docs/energy-model.md, "Two scopes")
        energies = {d.label: [_ratio(_metric(d.rows.get(w), key),
                                     _metric(base.rows.get(w), key)) for w in workloads]
                    for d in designs}
        if any(v is not None for values in energies.values() for v in values):
            priced = True  # a timing-only comparison has no energy
            panels.append((f"{scope}-scope energy\n/ first design", energies))
    lines = max(len(d.parts) for d in designs)
    bars = len(designs) * (len(workloads) + (len(workloads) > 1))
    fig = _figure(2.5 + 0.22 * bars + 0.25 * len(designs),
                  1.6 + 0.15 * lines + 2.8 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (ylabel, values) in zip(axes, panels):
        series = [(w, _SERIES_COLORS[i % len(_SERIES_COLORS)],
                   [values[d.label][i] for d in designs]) for i, w in enumerate(workloads)]
        if len(workloads) > 1:
            series.append(("geometric mean", _GEOMEAN_COLOR,
                           [geometric_mean(values[d.label]) for d in designs]))
        _grouped_bars(ax, [_tick(d) for d in designs], series, value_labels=[series[-1][0]])
        ax.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8)
        ax.set_ylabel(ylabel)
    axes[-1].set_xlabel("design")
    _side_legend(axes[0], *axes[0].get_legend_handles_labels(), title="workload")
    title = ("speedup and energy per inference (array scope: the PEs; chip scope: + buffers, "
             "DRAM, leakage)" if priced else "speedup per inference")
    return _finish(fig, f"{title}\nrelative to {base.label} (1.0)", list(records))
#: The columns a kind of sweep figure draws (given its options).
_NEEDS: dict[str, Callable[[Mapping[str, Any]], tuple[str, ...]]] = {
    "speedup": lambda o: ("time_us",),
    "energy": lambda o: ("energy_pj",),
    "pareto": lambda o: ("time_us",),  # the cost column is checked with a hint there
    "utilization": lambda o: ("utilization",),
    "accuracy": lambda o: ("time_us",),
    "ops": lambda o: ("time_us",),  # the role_cycles columns are checked with a hint there
}


# --- transformers: time by kind of operation ---------------------------------------------

#: Where a transformer's time goes (docs/transformers.md, "Prefill and decode reports"): the
#: array's cycles by the role of its layers, and the vector unit's (what ``role_cycles``
#: holds; the four add up to ``total_cycles``). The same colours in every ``ops`` figure.
ROLE_COLORS: dict[str, str] = {"attention": "#4C72B0", "ffn": "#55A868", "other": "#9E9E9E",
                               "vector": "#DD8452"}
_ROLE_LABELS = {"attention": "array: attention", "ffn": "array: FFN",
                "other": "array: other", "vector": "vector unit"}
#: Time units of an ``ops`` panel: the first whose largest bar stays below 10,000.
_TIME_UNITS = (("us", 1.0), ("ms", 1e3), ("s", 1e6))


def _role_times(row: Mapping[str, Any] | None) -> dict[str, float] | None:
    """A run's time (us) by role: its ``role_cycles`` (a summary's mapping or a sweep's
    ``role_cycles.ROLE`` columns) over its clock; None for a run without them (not a
    transformer, or a failed point)."""
    if row is None or row.get("error"):
        return None
    clock = _metric(row, "clock_mhz")
    nested = row.get("role_cycles")
    out = {}
    for role in ROLE_COLORS:
        value = (_metric(nested, role) if isinstance(nested, Mapping)
                 else _metric(row, f"role_cycles.{role}"))
        if value is None or clock is None or clock <= 0:
            return None
        out[role] = value / clock
    return out


def _amount(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _phase_label(row: Mapping[str, Any], times: Mapping[str, float], unit: str = "us",
                 scale: float = 1.0) -> str:
    """What is written above a bar: the phase's latency figure (TTFT for prefill; TPOT and
    tokens/s for decode; else the time per inference) in ``unit`` (``scale`` us) and the
    vector unit's share."""
    total = sum(times.values())
    phase = row.get("phase")
    ttft = _metric(row, "time_to_first_token_us")
    tpot = _metric(row, "time_per_output_token_us")
    if phase == "prefill" and ttft is not None:
        text = f"TTFT {_amount(ttft / scale)} {unit}"
    elif phase == "decode" and tpot is not None:
        text = f"TPOT {_amount(tpot / scale)} {unit}"
        rate = _metric(row, "tokens_per_s")
        if rate is not None:
            text += f"\n{_amount(rate)} tok/s"
    else:
        text = f"{_amount(total / scale)} {unit}"
    share = 100 * times["vector"] / total if total else 0.0
    return f"{text}\nvector {share:.0f} %"


def _phase_axis(rows: Sequence[Mapping[str, Any]]) -> str:
    """The y axis of a panel: the phase's latency when its runs share a phase."""
    phases = {r.get("phase") for r in rows}
    if phases == {"prefill"}:
        return "time to first token"
    if phases == {"decode"}:
        return "time per output token"
    return "time per inference"


def _ops_panels(workloads: Sequence[str], designs: Sequence[str],
                rows: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[tuple]:
    """(workload, [(design, row, times or None)]) for every workload where some design has
    time by role."""
    panels = []
    for workload in workloads:
        bars = []
        for design in designs:
            row = rows.get((workload, design))
            bars.append((design, row, _role_times(row)))
        if any(times is not None for _, _, times in bars):
            panels.append((workload, bars))
    return panels


def _draw_ops(panels: Sequence[tuple], tick_labels: Sequence[str], title: str,
              summaries: Sequence[Mapping[str, Any]]) -> Figure:
    """Stacked bars of time by role per design, one panel per workload."""
    lines = max(label.count("\n") + 1 for label in tick_labels)
    fig = _figure(3.6 + 0.75 * len(tick_labels), 1.6 + 0.15 * lines + 3.0 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(len(tick_labels))
    for ax, (workload, bars) in zip(axes, panels):
        largest = max(sum(t.values()) for _, _, t in bars if t is not None)
        unit, scale = next(((u, s) for u, s in _TIME_UNITS if largest / s < 1e4),
                           _TIME_UNITS[-1])
        bottom = np.zeros(len(bars))
        for role, color in ROLE_COLORS.items():
            heights = np.array([0.0 if t is None else t[role] / scale for _, _, t in bars])
            ax.bar(x, heights, 0.6, bottom=bottom, color=color, label=_ROLE_LABELS[role],
                   edgecolor="white", linewidth=0.4)
            bottom += heights
        for xi, (_, row, times), top in zip(x, bars, bottom):
            text = "n/a" if times is None else _phase_label(row, times, unit, scale)
            ax.text(xi, top, text, ha="center", va="bottom", fontsize=6.5, linespacing=1.1)
        shown = [row for _, row, t in bars if t is not None]
        phases = sorted({str(r.get("phase")) for r in shown if r.get("phase")})
        ax.set_title(workload + (f" ({', '.join(phases)})" if phases else ""), fontsize=9,
                     loc="left")
        ax.set_ylabel(f"{_phase_axis(shown)} ({unit})")
        # room for the labels (stacked bases are sticky edges: margins would not apply)
        ax.set_ylim(0, 1.3 * max(float(bottom.max()), 1e-9))
        ax.grid(True, axis="y", linewidth=0.3, color="0.85")
    _set_categories(axes[-1], tick_labels)
    axes[-1].set_xlabel("design")
    handles, names = axes[0].get_legend_handles_labels()
    _side_legend(axes[0], handles[::-1], names[::-1], title="time on")
    return _finish(fig, title, summaries)


def _no_transformer(where: str) -> ResultsError:
    return ResultsError(f"{where}: no transformer layers in the results (no role_cycles): the "
                        f"ops plot splits the time of transformer workloads (e.g. gpt2_decode) "
                        f"into array time by role and vector-unit time")


def ops_figure(results: SweepResults, *, workload: str | None = None) -> Figure:
    """Time per inference of every design on every transformer workload (or only
    ``workload``), stacked by where it goes: the array's time on attention, FFN and other
    layers, and the vector unit's; above each bar the phase's latency figure (TTFT or TPOT
    and tokens/s) and the vector unit's share. One panel per workload; from results.csv
    (the ``role_cycles`` columns), without the point files."""
    workloads = results.workloads()
    if workload is not None:
        if workload not in workloads:
            raise ResultsError(f"{results.path}: no workload {workload!r} "
                               f"(workloads: {', '.join(workloads)})")
        workloads = [workload]
    designs = results.designs()
    rows = {(w, d.label): r for d in designs for w, r in d.rows.items()}
    panels = _ops_panels(workloads, [d.label for d in designs], rows)
    if not panels:
        raise _no_transformer(str(results.path) + (f" ({workload})" if workload else ""))
    return _draw_ops(panels, [_tick(d) for d in designs],
                     f"{results.name}: time by operation class (array by role, vector "
                     f"unit)", _rows_summaries(results, designs))


def run_ops_figure(summaries: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                   where: str = "ops plot") -> Figure:
    """:func:`ops_figure` of run summaries: one run (``sasim run --out``'s summary.json) or
    a comparison's runs (``sasim compare``: one per design and workload, each with its
    ``workload``, ``arch``, ``clock_mhz``, ``role_cycles`` and phase figures). Designs are
    told apart by their ``arch`` name; ``where`` names the source in the error raised when
    no run has transformer layers."""
    if isinstance(summaries, Mapping):
        summaries = [summaries]
    workloads = list(dict.fromkeys(str(s.get("workload")) for s in summaries))
    designs = list(dict.fromkeys(str(s.get("arch")) for s in summaries))
    rows = {(str(s.get("workload")), str(s.get("arch"))): s for s in summaries}
    panels = _ops_panels(workloads, designs, rows)
    if not panels:
        raise _no_transformer(where)
    first = designs[0]
    title = ("time by operation class (array by role, vector unit)"
             + (f"\n{first} on {workloads[0]}" if len(summaries) == 1 else ""))
    return _draw_ops(panels, designs, title, list(summaries))


# --- one run -----------------------------------------------------------------------------

def run_figure(summary: Mapping[str, Any]) -> Figure:
    """One run's per-layer cycles (compute and memory stalls) and, when the run was priced,
    its per-layer energy by component class; past :data:`MAX_LAYER_BARS` layers, each bar
    sums a group of consecutive layers."""
    layers = summary.get("layers") or []
    if not layers:
        raise ResultsError("run plot: the summary has no layers")
    names, starts = _layer_groups([layer["name"] for layer in layers])
    grouped = len(names) < len(layers)

    def per_bar(values: Sequence[float]) -> np.ndarray:
        return np.add.reduceat(np.asarray(values, dtype=float), starts)

    priced = all(layer.get("energy_breakdown_pj") for layer in layers)
    fig = _figure(2.0 + 0.32 * len(names), 3.2 + (2.8 if priced else 0.0))
    axes = fig.subplots(2 if priced else 1, 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(len(names))
    compute = per_bar([layer["compute_cycles"] for layer in layers])
    stall = per_bar([layer["stall_cycles"] for layer in layers])
    ax = axes[0]
    ax.bar(x, compute / 1e3, 0.7, color=CYCLE_COLORS["compute"], label="compute")
    ax.bar(x, stall / 1e3, 0.7, bottom=compute / 1e3, color=CYCLE_COLORS["stall"],
           label="memory stall")
    ax.set_ylabel("cycles (thousands)")
    # explicit: the stacked bars' bases are sticky edges that would stop any margin
    ax.set_ylim(0, 1.08 * max(float((compute + stall).max()) / 1e3, 1e-9))
    ax.set_title(f"cycles per layer: {summary['total_cycles']:,} in total "
                 f"({summary['time_us']:.1f} us)", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0,
              frameon=False)
    if priced:
        ax = axes[1]
        classes = _component_order(sorted({k for layer in layers
                                            for k in layer["energy_breakdown_pj"]}))
        bottom = np.zeros(len(names))
        for name in classes:
            heights = per_bar([layer["energy_breakdown_pj"].get(name, 0.0)
                               for layer in layers]) / 1e6
            ax.bar(x, heights, 0.7, bottom=bottom, color=component_color(name),
                   label=name.replace("_", " "), edgecolor="white", linewidth=0.3)
            bottom += heights
        ax.set_ylabel("chip-scope energy (uJ)")
        ax.set_ylim(0, 1.08 * max(float(bottom.max()), 1e-9))
        array = summary.get("array_energy_pj")
        ax.set_title(f"chip-scope energy per layer by class: {summary['energy_pj'] / 1e6:.1f} uJ "
                     f"in total" + ("" if array is None else
                                    f" (array scope {array / 1e6:.1f} uJ)"),
                     fontsize=9, loc="left")
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.005, 1.0), borderaxespad=0, frameon=False)
    _set_categories(axes[-1], names)
    axes[-1].set_xlabel(f"layers, summed {starts[1]} by {starts[1]} in order ({len(layers):,} "
                        f"in all)" if grouped else "layer")
    return _finish(fig, f"{summary['arch']} on {summary['workload']}", [summary])


#: Bars of a per-layer figure at most: a run of more layers shows consecutive groups of
#: layers, summed (a bar and a label per layer of a 16,384-layer run took minutes to draw).
MAX_LAYER_BARS = 128


def _layer_groups(names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The bars' labels and the index of each bar's first layer: one bar per layer, or, past
    :data:`MAX_LAYER_BARS`, consecutive layers in equal groups (the last may be shorter),
    labelled ``first..last``."""
    size = max(1, -(-len(names) // MAX_LAYER_BARS))
    starts = np.arange(0, len(names), size)
    if size == 1:
        return list(names), starts
    labels = [f"{names[i]}..{names[min(i + size, len(names)) - 1]}" for i in starts]
    return labels, starts


def save_figure(fig: Figure, path: str | Path, *, dpi: float = 150) -> None:
    """Write ``fig`` as PNG, SVG or PDF (by the suffix), whole or not at all; ``dpi`` sets
    the resolution of a PNG."""
    path = Path(path)
    fmt = figure_format(path)
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi), sync=False)
