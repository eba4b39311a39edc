"""Top-1/top-5 of a network under a simulated PE: float, exact INT8, the hardware, the
hardware after BatchNorm recalibration, and the per-layer sensitivity (docs/accuracy.md)."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulator.accuracy.hardware import check_pe, with_hardware
from simulator.accuracy.models import DIGITS, ModelSetup, load_setup
from simulator.accuracy.recalibration import ActivationScales, recalibrated_model
from simulator.config.arch import ArchConfig
from simulator.config.schema import dump
from simulator.errors import SasimError, SimulationError
from simulator.export import QuantizedModel, quantize
from simulator.hw.pe import PEModel, get_pe_model
from simulator.records import record

__all__ = ["Baseline", "arch_pe", "Scores", "accuracy_for", "clear_accuracy_cache", "evaluate_accuracy",
           "layer_sensitivity", "per_layer_override", "prepare", "score",
           "TOP5_MIN_CLASSES"]

#: Top-5 is reported for at least this many classes (with 10 classes it is half of them and
#: near 100 % for any design, so it says nothing).
TOP5_MIN_CLASSES = 20
#: Default images per forward pass (one PE call per layer and group per batch).
BATCH_SIZE = 128


@record
class Scores:
    """Accuracy of one model on the evaluation set (fractions, not percent).

    Attributes
    ----------
    top1 : float
        Fraction of images whose highest logit is the label.
    top5 : float or None
        Fraction whose label is among the five highest logits (None below
        :data:`TOP5_MIN_CLASSES` classes).
    loss : float
        Mean cross-entropy of the logits, nats (a finer signal than top-1 on an easy set).
    agreement : float or None
        Fraction of images with the same top-1 prediction as the exact INT8 model.
    correct : int
        Images whose top-1 prediction is right (``top1`` times the images).
    predictions : np.ndarray
        The top-1 prediction of every image.
    """

    top1: float
    top5: float | None
    loss: float
    agreement: float | None
    correct: int
    predictions: np.ndarray = dataclasses.field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The scores as JSON-able data (without the predictions)."""
        return {"top1": self.top1, "top5": self.top5, "loss": self.loss,
                "agreement": self.agreement, "correct": self.correct}


def score(logits: torch.Tensor, labels: torch.Tensor,
          reference: np.ndarray | None = None) -> Scores:
    """:class:`Scores` of ``logits`` (N, classes) against ``labels`` (N,).

    ``reference`` (the INT8 model's predictions) gives the agreement.
    """
    predictions = logits.argmax(dim=1)
    classes = logits.shape[1]
    top5 = None
    if classes >= TOP5_MIN_CLASSES:
        top5 = float((logits.topk(5, dim=1).indices == labels[:, None]).any(dim=1)
                     .double().mean())
    loss = float(F.cross_entropy(logits.double(), labels))
    predicted = predictions.numpy()
    correct = int((predictions == labels).sum())
    return Scores(top1=correct / labels.shape[0], top5=top5, loss=loss,
                  agreement=None if reference is None
                  else float(np.mean(predicted == reference)),
                  correct=correct, predictions=predicted)


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int, what: str) -> torch.Tensor:
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                batch = model(x[start:start + batch_size])
                out.append(batch.reshape(batch.shape[0], -1).double())
    except RuntimeError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SasimError(f"{what}: the model cannot run on the data: {message}") from None
    return torch.cat(out)


@record
class Baseline:
    """A model set up for accuracy runs: its quantised model and float/INT8 scores.

    Attributes
    ----------
    setup : ModelSetup
        The float model and its data sets.
    qmodel : QuantizedModel
        The exporter's quantised model (BatchNorm folded, calibrated on
        ``setup.calibration``): exactly what ``sasim export`` traces.
    float_scores, int8_scores : Scores
        The float model's and the exact INT8 model's scores on ``setup.evaluation``.
    classes : int
        The model's outputs per image.
    """

    setup: ModelSetup
    qmodel: QuantizedModel
    float_scores: Scores
    int8_scores: Scores
    classes: int

    def evaluate(self, model: nn.Module, batch_size: int = BATCH_SIZE) -> Scores:
        """Scores of ``model`` on the evaluation set (agreement with INT8)."""
        data = self.setup.evaluation
        logits = _logits(model, data.x, batch_size, f"model {self.setup.name} on {data.name}")
        return score(logits, data.y, self.int8_scores.predictions)


def _check_batch_size(batch_size: int) -> None:
    if batch_size <= 0:
        raise SasimError(f"the batch size must be positive, not {batch_size}")


def prepare(setup: ModelSetup, batch_size: int = BATCH_SIZE) -> Baseline:
    """Quantise ``setup.model`` with the exporter and score float and exact INT8.

    Raises
    ------
    SasimError
        When the model cannot run on the data or the labels do not fit its outputs.
    """
    _check_batch_size(batch_size)
    data = setup.evaluation
    what = f"model {setup.name} on {data.name}"
    float_logits = _logits(setup.model, data.x, batch_size, what)
    if float_logits.shape[1] <= int(data.y.max()):
        raise SasimError(f"data set {data.name}: label {int(data.y.max())} is out of range "
                         f"for a model with {float_logits.shape[1]} outputs")
    try:
        qmodel = quantize(setup.model, setup.calibration.x, setup.options)
    except RuntimeError as exc:
        raise SasimError(f"model {setup.name}: cannot quantise it on "
                         f"{setup.calibration.name}: {str(exc).strip().splitlines()[0]}") \
            from None
    int8_logits = _logits(qmodel, data.x, batch_size, what)
    int8 = score(int8_logits, data.y)
    return Baseline(setup=setup, qmodel=qmodel,
                    float_scores=score(float_logits, data.y, int8.predictions),
                    int8_scores=dataclasses.replace(int8, agreement=1.0),
                    classes=int(float_logits.shape[1]))


def arch_pe(arch: ArchConfig) -> PEModel:
    """The PE model of ``arch``, refused when its type does not run the arch's dataflow."""
    pe = get_pe_model(arch.pe, arch.array)
    if arch.array.dataflow not in pe.dataflows:
        raise SimulationError(
            f"arch {arch.name}: PE type '{arch.pe.type}' is defined for the "
            f"{'/'.join(pe.dataflows)} dataflow, not '{arch.array.dataflow}'")
    return pe


def layer_sensitivity(baseline: Baseline, pe: PEModel,
                      batch_size: int = BATCH_SIZE) -> list[dict[str, Any]]:
    """Each layer alone on ``pe`` (the others exact INT8): its scores and what it costs.

    Returns
    -------
    list of dict
        One per layer in module order: ``layer``, ``top1``, ``drop_points`` (INT8 top-1
        minus this top-1, percentage points), ``loss_increase`` (nats) and ``agreement``.
    """
    rows = []
    int8 = baseline.int8_scores
    images = int(baseline.setup.evaluation.x.shape[0])
    for name in baseline.qmodel.integer_layers():
        scores = baseline.evaluate(with_hardware(baseline.qmodel, pe, [name]), batch_size)
        rows.append({"layer": name, "top1": scores.top1,
                     "drop_points": 100 * (int8.correct - scores.correct) / images,
                     "loss_increase": scores.loss - int8.loss, "agreement": scores.agreement})
    return rows


def per_layer_override(arch: ArchConfig, layers: Sequence[str]) -> dict[str, Any] | None:
    """The per-layer option that runs ``layers`` more precisely on ``arch``'s PE.

    Returns
    -------
    dict or None
        ``key`` (the dotted option, e.g. ``pe.layer_threads``), ``value`` (its whole new
        value), ``changed`` (the layers' new settings), ``yaml`` (a snippet for the arch
        file) and ``set`` (the ``--set`` argument); None when the PE type has no per-layer
        option (:meth:`simulator.hw.pe.PEModel.layer_override`) or the layers are already
        exact.
    """
    found = get_pe_model(arch.pe, arch.array).layer_override(layers)
    if found is None:
        return None
    override = {"key": found.key, "value": dict(found.value), "changed": dict(found.changed)}
    section, _, key = override["key"].partition(".")
    value = override["value"]
    flow = ", ".join(f"{name}: {v}" for name, v in value.items())
    yaml_text = f"{section}:\n  {key}:\n" + "".join(f"    {name}: {v}\n"
                                                   for name, v in value.items())
    return {**override, "yaml": yaml_text, "set": f"--set '{override['key']}={{{flow}}}'"}


def _with_override(arch: ArchConfig, override: Mapping[str, Any]) -> ArchConfig:
    section, _, key = override["key"].partition(".")
    part = dataclasses.replace(getattr(arch, section), **{key: dict(override["value"])})
    return dataclasses.replace(arch, **{section: part})


def evaluate_accuracy(arch: ArchConfig, baseline: Baseline, *, recalibrate: int = 0,
                      activation_scales: ActivationScales = "keep",
                      sensitivity: bool = False, threshold_points: float = 0.5,
                      batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """Evaluate the model with every quantised layer computed by ``arch``'s PE.

    Parameters
    ----------
    arch : ArchConfig
        The design (its ``pe`` section and array decide the arithmetic).
    baseline : Baseline
        The prepared model (:func:`prepare`).
    recalibrate : int
        N > 0: also evaluate after BatchNorm recalibration on the first N images of
        ``baseline.setup.recalibration`` (docs/accuracy.md).
    activation_scales : {'keep', 'recalibrate'}
        The activation quantisers after recalibration.
    sensitivity : bool
        Also run each layer alone on the PE and suggest a per-layer override for the layers
        whose top-1 drop is at least ``threshold_points`` (> 0, percentage points).
    batch_size : int
        Images per forward pass.

    Returns
    -------
    dict
        JSON-able: ``arch``, ``pe`` (its options), ``model``, ``data``, ``images``,
        ``classes``, ``float``, ``int8``, ``hardware`` (each ``top1``, ``top5``, ``loss``,
        ``agreement``), ``recalibration`` (None, or ``images``, ``data``, ``batch_size``,
        ``activation_scales`` and the scores), ``sensitivity`` and ``suggestion`` (None
        unless asked), ``seconds``.
    """
    _check_batch_size(batch_size)
    if sensitivity and not threshold_points > 0:
        raise SasimError(f"the sensitivity threshold must be a positive number of top-1 "
                         f"points, not {threshold_points}")
    start = time.perf_counter()
    setup = baseline.setup
    pe = arch_pe(arch)
    check_pe(pe, baseline.qmodel)
    zap = zap_plan(arch, baseline)
    model = with_hardware(baseline.qmodel, pe, zap=zap)
    codec = arch.memory.activation_codec
    if codec.bits is not None:  # the codec in the loop (docs/transform-coding.md)
        from simulator.accuracy.codec import calibrate_codecs, codec_summary, with_codec

        codecs = calibrate_codecs(baseline.qmodel, setup.calibration.x, codec, batch_size)
        model = with_codec(model, baseline.qmodel, codecs, codec)
    hardware = baseline.evaluate(model, batch_size)
    report: dict[str, Any] = {
        "arch": arch.name, "pe": dump(arch.pe), "model": setup.name,
        "data": setup.evaluation.name, "images": int(setup.evaluation.x.shape[0]),
        "classes": baseline.classes, "calibration": setup.calibration.name,
        "float": baseline.float_scores.as_dict(), "int8": baseline.int8_scores.as_dict(),
        "hardware": hardware.as_dict(), "recalibration": None, "sensitivity": None,
        "suggestion": None,
        "codec": codec_summary(model, codec) if codec.bits is not None else None,
        "zap": None if zap is None else zap_report(arch, model)}
    if recalibrate:
        available = setup.recalibration.x.shape[0]
        if recalibrate < 2 or recalibrate > available:
            raise SasimError(f"BatchNorm recalibration on {recalibrate} images: "
                             f"{setup.recalibration.name} has {available} (use 2..{available})")
        qmodel = recalibrated_model(setup.model, baseline.qmodel, pe,
                                    setup.recalibration.x[:recalibrate], setup.calibration.x,
                                    activation_scales, batch_size)
        scores = baseline.evaluate(with_hardware(qmodel, pe, zap=zap), batch_size)
        report["recalibration"] = {"images": recalibrate,
                                   "data": f"{setup.recalibration.name}[:{recalibrate}]",
                                   "batch_size": batch_size,
                                   "activation_scales": activation_scales,
                                   **scores.as_dict()}
    if sensitivity:
        rows = layer_sensitivity(baseline, pe, batch_size)
        report["sensitivity"] = rows
        worst = [r["layer"] for r in sorted(rows, key=lambda r: (-r["drop_points"],
                                                                 -r["loss_increase"]))
                 if r["drop_points"] >= threshold_points]
        override = per_layer_override(arch, worst) if worst else None
        suggestion: dict[str, Any] = {"threshold_points": threshold_points, "layers": worst,
                                      "override": override}
        if override is not None:
            suggested = _with_override(arch, override)
            suggestion["hardware"] = baseline.evaluate(
                with_hardware(baseline.qmodel, arch_pe(suggested)), batch_size).as_dict()
        elif worst:
            suggestion["note"] = (f"pe.type {arch.pe.type} has no per-layer option to run "
                                  f"these layers more precisely")
        report["suggestion"] = suggestion
    report["seconds"] = time.perf_counter() - start
    return report


def zap_plan(arch: ArchConfig, baseline: Baseline) -> dict[str, Any] | None:
    """Layer name -> (LayerZap, ZapConfig) of the layers ZAP gates (docs/zap.md); None when
    ``arch.zap`` is off. Trained predictors come from ``zap.predictors`` or, for the
    digits model, the shipped ``workloads/digits_int8_zap.npz``."""
    config = arch.zap
    if not config.enabled:
        return None
    from simulator.export.digits import ZAP_PATH
    from simulator.hw import zap as hw_zap
    from simulator.workloads.layers import Layer

    trained = None
    if config.predictor_source == "trained":
        path = config.predictors or (str(ZAP_PATH) if baseline.setup.name == DIGITS else "")
        if not path:
            raise SasimError(f"arch {arch.name}: zap.predictors: model {baseline.setup.name} "
                             f"has no shipped ZAP predictors; name a predictors file")
        trained = hw_zap.load_predictors(path)
    layers = [Layer(name=name, op="conv2d" if m.is_conv else "linear",
                    in_channels=int(m.weight_int.shape[1]),
                    out_channels=int(m.weight_int.shape[0]))
              for name, m in baseline.qmodel.integer_layers().items()]
    try:
        plan = hw_zap.plan_zap(config, layers, trained)
    except SasimError as exc:
        raise SasimError(f"arch {arch.name}: {exc}") from None
    return {name: (layer, config) for name, layer in plan.items()}


def zap_report(arch: ArchConfig, model: nn.Module) -> dict[str, Any]:
    """ZAP's counts over the evaluation set (docs/zap.md): per layer and in total, with the
    MACs saved as the paper counts them (gated-off outputs x their MACs)."""
    from simulator.accuracy.hardware import hardware_layers

    layers = {}
    total: dict[str, float] = {}
    network_macs = 0
    for name, layer in hardware_layers(model).items():
        network_macs += layer.zap_counts["layer_macs"]
        if layer.zap is None:
            continue
        counts = dict(layer.zap_counts)
        plan = layer.zap[0]
        layers[name] = {"mask_type": plan.mask_type, "threshold": plan.threshold,
                        "synthetic": plan.synthetic, **counts}
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    eligible = total.get("layer_macs", 0)
    return {"layers": layers, "synthetic": any(l["synthetic"] for l in layers.values()),
            "total": total, "network_macs": network_macs,
            "macs_saved_fraction": total.get("macs_saved", 0) / network_macs
            if network_macs else 0.0,
            "macs_saved_fraction_eligible": total.get("macs_saved", 0) / eligible
            if eligible else 0.0,
            "mass_lost_fraction": total.get("mass_lost", 0) / total["mass"]
            if total.get("mass") else 0.0}


#: How many prepared models (a model scored in float and INT8 on its data) and how many
#: design-point results :func:`accuracy_for` keeps, least recently used first out.
BASELINE_CACHE_SIZE = 4
RESULT_CACHE_SIZE = 1024


@functools.lru_cache(maxsize=BASELINE_CACHE_SIZE)
def _baseline(model: str, data: str | None, calibration: str | None, limit: int | None,
              batch_size: int) -> Baseline:
    return prepare(load_setup(model, data, calibration, limit=limit), batch_size)


class _Design:
    """A design point as a cache key: its ``pe`` and ``array`` sections and its
    ``memory.activation_codec``, the only ones that change the arithmetic (other memory,
    timing and energy settings and the name share a key)."""

    __slots__ = ("arch", "key")

    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        self.key = json.dumps({"pe": dump(arch.pe), "array": dump(arch.array),
                               "codec": dump(arch.memory.activation_codec),
                               "zap": dump(arch.zap)}, sort_keys=True)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Design) and self.key == other.key


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def _result(design: _Design, model: str, data: str | None, calibration: str | None,
            limit: int | None, recalibrate: int, batch_size: int) -> dict[str, Any]:
    report = evaluate_accuracy(design.arch, _baseline(model, data, calibration, limit,
                                                      batch_size),
                               recalibrate=recalibrate, batch_size=batch_size)
    hardware, recal = report["hardware"], report["recalibration"]
    return {
        "model": report["model"], "data": report["data"], "images": report["images"],
        "float_top1": report["float"]["top1"], "int8_top1": report["int8"]["top1"],
        "top1": hardware["top1"], "top5": hardware["top5"], "loss": hardware["loss"],
        "agreement": hardware["agreement"],
        "top1_drop_points": 100 * (report["int8"]["correct"] - hardware["correct"])
        / report["images"],
        "recalibrated_top1": None if recal is None else recal["top1"],
        **({} if report["codec"] is None else
           {"codec_stored_bits_per_value": report["codec"]["stored_bits_per_value"]}),
        "recalibration_images": recalibrate}


def clear_accuracy_cache() -> None:
    """Forget every cached baseline and result of :func:`accuracy_for`."""
    _baseline.cache_clear()
    _result.cache_clear()


def accuracy_for(arch: ArchConfig, model: str = DIGITS, data: str | None = None,
                 recalibrate: int = 0, *, calibration: str | None = None,
                 limit: int | None = None, batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """Accuracy of one design point, cached in-process (for sweeps' accuracy column).

    The cache key is the design's ``pe`` and ``array`` sections (the only ones that change
    the arithmetic: memory, timing and energy settings and the name reuse an entry), the
    model, the data sets, ``limit``, ``recalibrate`` and ``batch_size``; the model is loaded,
    quantised and scored in float and INT8 once per (model, data, calibration, limit,
    batch_size). Both caches are bounded (:data:`RESULT_CACHE_SIZE`,
    :data:`BASELINE_CACHE_SIZE`).

    Parameters
    ----------
    arch : ArchConfig
        The design point.
    model : str
        ``digits`` or ``path/to/file.py:factory``.
    data, calibration : str, optional
        Evaluation and calibration data sets (defaults for ``digits``).
    recalibrate : int
        N > 0 also reports the accuracy after BatchNorm recalibration on N images.
    limit : int, optional
        Evaluate on the first ``limit`` images.

    Returns
    -------
    dict
        ``model``, ``data``, ``images``, ``float_top1``, ``int8_top1``, ``top1``, ``top5``,
        ``loss``, ``agreement``, ``top1_drop_points`` (INT8 minus hardware, percentage
        points), ``recalibrated_top1`` (None without recalibration) and
        ``recalibration_images``. Fractions unless named ``_points``. A copy: callers may
        change it.
    """
    return dict(_result(_Design(arch), model, data, calibration, limit, recalibrate,
                        batch_size))
