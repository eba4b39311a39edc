"""Seeded synthetic integer data for shape-only workloads (docs/synthetic-data.md).

Data-dependent hardware (SySMT, SPARQ, SWIS, zero skipping) needs values, but ResNet-50 or
MobileNet-v2 ship here as shapes only. :func:`synthesize` gives such a workload lazily generated,
deterministic data with realistic statistics, calibrated against the real digits trace
(``workloads/digits_int8.npz``):

- activations, zero point 0: unsigned (post-ReLU) layers have a fraction
  ``activation_zero_fraction`` of exact zeros; the non-zero magnitudes are log-normal (heavy
  tailed: many small values, a few large ones) with median ``activation_median`` and log-spread
  ``activation_log_sigma``, rounded and clipped to [1, 2^b - 1]. Signed layers use the same
  magnitudes with a random sign and ``signed_activation_zero_fraction`` zeros. Elements are
  independent (real feature maps are spatially correlated; per-element PE statistics do not
  depend on it);
- weights: Laplacian per output channel (``weight_shape: 1``; a generalised-normal shape
  ``weight_shape`` > 1 gives lighter tails, 2 = Gaussian), optionally magnitude-pruned (the smallest
  ``weight_prune_fraction`` of each layer set to 0) and/or 2:4 structured (in each group of 4
  consecutive K elements of a filter, in the K order of docs/hardware-spec.md §1, the 2 largest
  magnitudes are kept), then quantised symmetrically per output channel to ``weight_bits``
  (scale = max|w| / (2^(b-1) - 1)), as a real post-training-quantised model is.

Layer ``i`` draws from ``numpy.random.default_rng(SeedSequence([seed, i]))``, so any layer can
be generated alone, in any order, and always gives the same data. There is no bias and no
``output`` (compute it with :func:`simulator.workloads.lowering.exact_output`).

Workload YAML files may carry these options as a top-level ``data:`` mapping (keys = the
fields of :class:`SyntheticOptions`); :func:`synthetic_options_from_mapping` validates it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simulator.config.files import parse_override, read_yaml_mapping
from simulator.config.schema import build, option
from simulator.errors import ConfigError, SasimError, WorkloadError
from simulator.workloads.layers import Layer, LayerTensors, Workload

__all__ = ["SyntheticOptions", "synthesize", "synthetic_options_from_mapping",
           "synthetic_options_from_file", "layer_tensors"]


def _fraction(value: float) -> str | None:
    return None if 0.0 <= value < 1.0 else "a fraction in [0, 1)"


def _positive(value: float) -> str | None:
    return None if value > 0 else "a positive number"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "a non-negative number"


@dataclasses.dataclass(frozen=True)
class SyntheticOptions:
    """The ``data:`` section of a workload: how synthetic data are generated.

    The defaults are calibrated on the unsigned conv layers of the digits INT8 trace
    (docs/synthetic-data.md compares them layer by layer).
    """

    seed: int = option(0, doc="Base seed; layer i uses SeedSequence([seed, i]).",
                       check=lambda v: None if 0 <= v < 1 << 63 else "an integer from 0 to 2**63-1")
    activation_zero_fraction: float = option(
        0.52, doc="Fraction of exact zeros in unsigned (post-ReLU) activations.",
        check=_fraction)
    signed_activation_zero_fraction: float = option(
        0.0, doc="Fraction of exact zeros in signed activations (e.g. the first layer).",
        check=_fraction)
    activation_median: float = option(
        28.0, doc="Median of the non-zero activation magnitudes (integer units).",
        check=_positive)
    activation_log_sigma: float = option(
        1.0, doc="Standard deviation of ln|a| of the non-zero activations (tail weight).",
        check=_non_negative)
    weight_shape: float = option(
        1.0, doc="Shape beta of the generalised-normal weight distribution: 1 = Laplace, "
                 "2 = Gaussian.", check=_positive)
    weight_prune_fraction: float = option(
        0.0, doc="Fraction of each layer's weights zeroed by magnitude pruning.",
        check=_fraction)
    weight_structure: Literal["none", "2:4"] = option(
        "none", doc="'2:4': at most 2 non-zero weights in every 4 consecutive K elements.")


def synthetic_options_from_mapping(mapping: Mapping[str, Any] | None,
                                   where: str) -> SyntheticOptions:
    """Validate a ``data:`` mapping; errors are ConfigError naming ``where.key``.

    Parameters
    ----------
    mapping : mapping or None
        The raw YAML ``data`` value (``None`` means all defaults).
    where : str
        Key path used in messages, e.g. ``"workloads/resnet18_pruned40.yaml: data"``.
    """
    return build(SyntheticOptions, mapping, where)


def synthetic_options_from_file(path: str | Path) -> SyntheticOptions:
    """The ``data:`` section of a workload YAML file (defaults when it has none)."""
    path = Path(path)
    data = read_yaml_mapping(path, WorkloadError)
    try:
        return synthetic_options_from_mapping(data.get("data"), f"{path}: data")
    except ConfigError as exc:
        raise WorkloadError(str(exc)) from None


def _input_shape(layer: Layer) -> tuple[int, ...]:
    if layer.op == "conv2d":
        return (layer.batch, layer.in_channels, *layer.input_size)
    return (layer.batch, layer.in_channels)


def _weight_shape(layer: Layer) -> tuple[int, ...]:
    if layer.op == "conv2d":
        return (layer.out_channels, layer.in_channels // layer.groups, *layer.kernel_size)
    return (layer.out_channels, layer.in_channels)


def _activations(rng: np.random.Generator, layer: Layer, options: SyntheticOptions) -> np.ndarray:
    shape = _input_shape(layer)
    bits = layer.activation_bits
    magnitude = np.rint(rng.lognormal(np.log(options.activation_median),
                                      options.activation_log_sigma, size=shape))
    if layer.activation_signed:
        high = 1 << (bits - 1)
        sign = rng.integers(0, 2, size=shape, dtype=np.int8) * 2 - 1
        values = np.clip(magnitude, 1, high) * sign
        values = np.clip(values, -high, high - 1)
        zero_fraction = options.signed_activation_zero_fraction
    else:
        values = np.clip(magnitude, 1, (1 << bits) - 1)
        zero_fraction = options.activation_zero_fraction
    values[rng.random(size=shape) < zero_fraction] = 0
    dtype = np.int8 if layer.activation_signed else np.uint8
    return values.astype(dtype if bits <= 8 else np.int64)


def _weights(rng: np.random.Generator, layer: Layer, options: SyntheticOptions) -> np.ndarray:
    shape = _weight_shape(layer)
    beta = options.weight_shape
    # generalised normal: |w| = G^(1/beta), G ~ Gamma(1/beta); beta = 1 is the Laplace law
    magnitude = rng.gamma(1.0 / beta, 1.0, size=shape) ** (1.0 / beta)
    w = np.where(rng.random(size=shape) < 0.5, -magnitude, magnitude)
    if options.weight_prune_fraction > 0:
        cut = int(round(options.weight_prune_fraction * w.size))
        if cut:
            w.reshape(-1)[np.argsort(magnitude, axis=None, kind="stable")[:cut]] = 0.0
    if options.weight_structure == "2:4":
        w = _two_of_four(w, layer)
    qmax = (1 << (layer.weight_bits - 1)) - 1
    per_channel = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scale = np.where(per_channel > 0, per_channel / qmax, 1.0)
    q = np.rint(w / scale.reshape(-1, *([1] * (w.ndim - 1))))
    return q.astype(np.int8 if layer.weight_bits <= 8 else np.int64)


def _two_of_four(w: np.ndarray, layer: Layer) -> np.ndarray:
    """Keep the 2 largest magnitudes of every 4 consecutive K elements of each filter."""
    if layer.op == "conv2d":
        f, cg, r, s = w.shape
        g = layer.groups
        # the GEMM layout of lowering.weights_to_gemm, kept in float: (g, Kd, Fg)
        b = w.reshape(g, f // g, cg, r, s).transpose(0, 3, 4, 2, 1).reshape(g, r * s * cg, f // g)
    else:
        b = w.T[np.newaxis]
    g, kd, fg = b.shape
    pad = (-kd) % 4
    groups = np.concatenate([b, np.zeros((g, pad, fg))], axis=1).reshape(g, -1, 4, fg)
    rank = np.argsort(np.argsort(-np.abs(groups), axis=2, kind="stable"), axis=2)
    groups = np.where(rank < 2, groups, 0.0).reshape(g, kd + pad, fg)[:, :kd]
    # back from (g, Kd, Fg) with k = (r*S + s)*Cg + c to the layer's weight layout
    if layer.op != "conv2d":
        return groups[0].T.copy()
    out = groups.reshape(g, r, s, cg, f // g).transpose(0, 4, 3, 1, 2)
    return out.reshape(f, cg, r, s)


def layer_tensors(layer: Layer, index: int, options: SyntheticOptions) -> LayerTensors:
    """The synthetic data of the ``index``-th layer of a workload."""
    rng = np.random.default_rng(np.random.SeedSequence([options.seed, index]))
    activations = _activations(rng, layer, options)
    return LayerTensors(input=activations, weight=_weights(rng, layer, options))


def synthesize(workload: Workload, options: SyntheticOptions = SyntheticOptions()) -> Workload:
    """The same workload with lazily generated, seeded synthetic data.

    Returns
    -------
    Workload
        ``data_kind='synthetic'``; ``tensors(name)`` generates that layer's int input and
        weights (int8/uint8; ``bias`` and ``output`` are ``None``).
    """
    index = {layer.name: (i, layer) for i, layer in enumerate(workload.layers)}

    def tensors(name: str) -> LayerTensors:
        if name not in index:
            raise WorkloadError(f"{workload.source}: layer '{name}': no such layer")
        i, layer = index[name]
        return layer_tensors(layer, i, options)

    return dataclasses.replace(workload, tensors=tensors, data_kind="synthetic")


def _compare(trace_path: str, options: SyntheticOptions) -> str:
    """Markdown table: the trace's per-layer statistics next to synthetic data's."""
    from simulator.workloads.stats import workload_stats
    from simulator.workloads.trace import load_trace

    trace = load_trace(trace_path)
    real = list(workload_stats(trace, check_output=False))
    fake = list(workload_stats(synthesize(trace, options), check_output=False))
    keys = [("activation_zero_fraction", "act zero", "{:.2f}"),
            ("activation_small_fraction", "act <16", "{:.2f}"),
            ("activation_mean_bits", "act bits", "{:.2f}"),
            ("activation_median_nonzero", "act median", "{:.0f}"),
            ("weight_zero_fraction", "w zero", "{:.3f}"),
            ("weight_small_fraction", "w <16", "{:.2f}"),
            ("weight_mean_bits", "w bits", "{:.2f}")]
    header = "| layer | " + " | ".join(f"{label} real / syn" for _, label, _ in keys) + " |"
    lines = [header, "|---" * (len(keys) + 1) + "|"]
    for r, s in zip(real, fake):
        cells = [f"{fmt.format(getattr(r, k))} / {fmt.format(getattr(s, k))}" for k, _, fmt in keys]
        lines.append(f"| {r.name}{' (signed)' if r.activation_signed else ''} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulator.workloads.synthetic compare TRACE [KEY=VALUE ...]``.

    Prints the markdown table of docs/synthetic-data.md: the trace's statistics next to those
    of synthetic data generated for the same layer shapes (options as ``key=value``).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m simulator.workloads.synthetic")
    parser.add_argument("command", choices=["compare"])
    parser.add_argument("trace", help="a trace .npz, e.g. workloads/digits_int8.npz")
    parser.add_argument("options", nargs="*", metavar="KEY=VALUE", help="synthetic options")
    args = parser.parse_args(argv)
    try:
        raw = {}
        for item in args.options:
            key, value = parse_override(item, "option", dotted=False)
            raw[key[0]] = value
        print(_compare(args.trace, synthetic_options_from_mapping(raw, "options")))
    except SasimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
