"""Training ZAP's zero-output predictors on a quantised model (docs/zap.md, "Training").

Each eligible layer (a conv followed by ReLU) gets its own predictor per mask type: a
depthwise 3x3 conv, BatchNorm, ReLU, a depthwise 3x3 conv and BatchNorm, applied to the
layer's post-ReLU output map with the predicted positions zeroed. The network is frozen and
no labels are used: the target is 1 where the true output is > 0 and at the computed
positions, the loss is the MSE against clamp(prediction x (1 - mask) + mask, 0, 1); Adam,
learning rate 0.01, a few epochs of batch 128, seeded (docs/hardware-spec.md §9).

The predictors are written with their BatchNorms folded, one file beside the trace
(:mod:`simulator.hw.zap` reads it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulator.export.ptq import QuantizedModel, run_hooked
from simulator.kernels.zap import gate, mask_pattern, predictor_scores
from simulator.outputs import atomic_write

__all__ = ["ZapPredictorNet", "capture_maps", "train_predictor", "folded", "mass_lost",
           "train_predictors", "THRESHOLD_GRID"]

#: Thresholds at which each predictor's activation mass lost is stored (per_layer choice).
THRESHOLD_GRID = np.round(np.arange(0.0, 1.0001, 0.02), 2)


class ZapPredictorNet(nn.Module):
    """The predictor: depthwise 3x3 -> BN -> ReLU -> depthwise 3x3 -> BN."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


def capture_maps(qmodel: QuantizedModel, layers: Sequence[str], x: torch.Tensor,
                 batch_size: int = 128) -> dict[str, torch.Tensor]:
    """The post-ReLU output maps of ``layers`` (integer layers followed by ReLU) on ``x``."""
    integer = qmodel.integer_layers()
    maps: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    handles = [integer[name].register_forward_hook(
        lambda module, inputs, output, name=name: maps[name].append(
            F.relu(output.detach().float()))) for name in layers]
    run_hooked(qmodel, x, batch_size, handles)
    return {name: torch.cat(parts) for name, parts in maps.items()}


def train_predictor(maps: torch.Tensor, mask_type: int, epochs: int = 5, batch: int = 128,
                    lr: float = 0.01, seed: int = 0) -> ZapPredictorNet:
    """Train one layer's predictor on its post-ReLU maps (N, C, H, W) (the spec's loss)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mask = torch.from_numpy(mask_pattern(mask_type, maps.shape[2], maps.shape[3])).float()
    complement = 1.0 - mask
    net = ZapPredictorNet(maps.shape[1])
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(maps.shape[0], generator=generator)
        for start in range(0, maps.shape[0], batch):
            x = maps[order[start:start + batch]]
            prediction = torch.clamp(net(x * mask) * complement + mask, 0.0, 1.0)
            target = (x > 0).float() * complement + mask
            loss = F.mse_loss(prediction, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = conv.weight[:, 0] * factor.reshape(-1, 1, 1)
        bias = (conv.bias - bn.running_mean) * factor + bn.bias
    return weight.double().numpy(), bias.double().numpy()


def folded(net: ZapPredictorNet) -> dict[str, np.ndarray]:
    """The predictor with its BatchNorms folded: ``w1`` (C, 3, 3), ``b1``, ``w2``, ``b2``."""
    w1, b1 = _fold(net.conv1, net.bn1)
    w2, b2 = _fold(net.conv2, net.bn2)
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}


def mass_lost(maps: np.ndarray, mask_type: int, weights: dict[str, np.ndarray],
              grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """The fraction of activation mass a folded predictor gates off at each threshold of
    ``grid``: 1 - sum(x * kept) / sum(x)."""
    mask = mask_pattern(mask_type, maps.shape[2], maps.shape[3])
    scores = predictor_scores(maps, mask, weights["w1"], weights["b1"], weights["w2"],
                              weights["b2"])
    total = float(maps.sum())
    out = np.empty(len(grid))
    for i, threshold in enumerate(grid):
        out[i] = float(maps[~gate(scores, mask, threshold)].sum()) / total if total else 0.0
    return out


def train_predictors(qmodel: QuantizedModel, layers: Sequence[str], x: torch.Tensor,
                     out: str | Path, mask_types: Sequence[int] = tuple(range(11)),
                     epochs: int = 5, seed: int = 0, provenance: dict[str, Any] | None = None,
                     log: Callable[[str], None] | None = None) -> Path:
    """Train a predictor per mask type and layer on ``x`` and write the predictors file.

    Parameters
    ----------
    qmodel : QuantizedModel
        The exporter's quantised model (the one the trace records), frozen.
    layers : names of its integer layers that are followed by ReLU.
    x : the training images.
    out : the ``.npz`` to write (atomically), e.g. ``workloads/digits_int8_zap.npz``.
    """
    maps = capture_maps(qmodel, layers, x)
    integer = qmodel.integer_layers()
    arrays: dict[str, np.ndarray] = {"grid": THRESHOLD_GRID}
    for name in layers:
        module = integer[name]
        arrays[f"{name}.scale"] = (module.activation_scale
                                   * module.weight_scales).double().numpy()
    for kind in mask_types:
        for index, name in enumerate(layers):
            net = train_predictor(maps[name], kind, epochs=epochs, seed=seed + 1000 * kind + index)
            weights = folded(net)
            for part, value in weights.items():
                arrays[f"{kind}/{name}.{part}"] = value
            arrays[f"{kind}/{name}.error"] = mass_lost(maps[name].double().numpy(), kind,
                                                       weights)
            if log is not None:
                errors = arrays[f"{kind}/{name}.error"]
                log(f"mask {kind:2d} {name:14s} mass lost at threshold 0: {100 * errors[0]:.2f} %")
    manifest = {"mask_types": list(mask_types), "layers": list(layers), "epochs": epochs,
                "seed": seed, "optimizer": "Adam lr 0.01, batch 128",
                "torch": torch.__version__, "training_images": int(x.shape[0]),
                **(provenance or {})}
    arrays["manifest"] = np.array(json.dumps(manifest))
    path = Path(out)

    def write(handle: Any) -> None:
        np.savez_compressed(handle, **arrays)

    atomic_write(path, write)
    return path
