"""The shipped digits model: a small ResNet-style CNN on scikit-learn's handwritten digits.

No pretrained weights can be downloaded where sasim is developed, so sasim trains its own real
model: scikit-learn's bundled 8x8 digits (1797 images, 10 classes), split 70/30 (stratified,
``random_state=0``) into 1257 training and 540 held-out test images, upsampled bilinearly to
32x32 and normalised to [-1, 1]. The network has BatchNorm, residual adds, a strided 1x1
downsample, a depthwise conv and a linear head, so its trace exercises every layer kind.

Commands (docs/digits-model.md; the script is ``benchmarks/digits_model.py``)::

    .venv/bin/python benchmarks/digits_model.py train     # retrain -> workloads/digits_resnet.pt
    .venv/bin/python benchmarks/digits_model.py trace     # PTQ + trace -> workloads/digits_int8.npz
    .venv/bin/python benchmarks/digits_model.py accuracy  # float and INT8 top-1 (held-out split)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from simulator.errors import SasimError
from simulator.shipped import WORKLOAD_DIR

__all__ = ["DigitsResNet", "digits_split", "pretrained", "train", "WEIGHTS_PATH", "TRACE_PATH",
           "SEED", "TRACE_SAMPLES", "CALIBRATION_SAMPLES", "RELU_CONVS", "ZAP_PATH"]

WEIGHTS_PATH = WORKLOAD_DIR / "digits_resnet.pt"
TRACE_PATH = WORKLOAD_DIR / "digits_int8.npz"
#: ZAP's trained predictors beside the trace (docs/zap.md).
ZAP_PATH = WORKLOAD_DIR / "digits_int8_zap.npz"
#: The convs whose output goes through BatchNorm straight into a ReLU (ZAP's layers,
#: docs/zap.md); the blocks' second convs and the downsample feed a residual add first.
RELU_CONVS = ("stem", "layer1.conv1", "layer2.conv1", "dw", "pw")
SEED = 0
TRACE_SAMPLES = 32          # first test images recorded in the shipped trace
CALIBRATION_SAMPLES = 512   # first training images used for calibration
EPOCHS = 30


class _BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN + (downsampled) identity, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class DigitsResNet(nn.Module):
    """1x32x32 -> 10 classes; 9 conv/linear layers, 22,554 parameters.

    stem 3x3/2 (16) -> block 16 -> block 32 (/2, 1x1 downsample) -> depthwise 3x3/2 (32) ->
    pointwise 1x1 (64) -> global average pool -> linear 64 -> 10.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, 2, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        self.layer1 = _BasicBlock(16, 16, 1)
        self.layer2 = _BasicBlock(16, 32, 2)
        self.dw = nn.Conv2d(32, 32, 3, 2, 1, groups=32, bias=False)
        self.dw_bn = nn.BatchNorm2d(32)
        self.pw = nn.Conv2d(32, 64, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.layer2(self.layer1(x))
        x = F.relu(self.dw_bn(self.dw(x)))
        x = F.relu(self.pw_bn(self.pw(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def digits_split(split: str, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The prepared digits images (N, 1, size, size) in [-1, 1] and labels of one split
    (``size`` 8: the images as they are; otherwise bilinearly resized).

    Parameters
    ----------
    split : {'train', 'test'}
        1257 training or 540 held-out test images (stratified 70/30, ``random_state=0``).
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SasimError("the digits data set needs scikit-learn: install the torch extra: "
                         "pip install 'sasim[torch]'") from None
    images, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.3, random_state=SEED, stratify=labels)
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    x = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - 0.5) / 0.5, torch.tensor(y, dtype=torch.int64)


def shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Random translation by up to ``pixels`` pixels (training augmentation), background -1."""
    dy, dx = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=generator))
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    h, w = x.shape[-2:]
    return padded[:, :, pixels + dy:pixels + dy + h, pixels + dx:pixels + dx + w]


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
        generator: torch.Generator, lr: float, max_lr: float, weight_decay: float,
        pixels: int, log: Callable[[str], None] | None = None, log_every: int = 1) -> nn.Module:
    """Train ``model`` on images ``x`` and labels ``y``: AdamW with a one-cycle schedule,
    batches of 64 in an order drawn from ``generator``, each batch shifted by up to
    ``pixels`` (:func:`shift`); ``log`` gets the mean loss every ``log_every`` epochs."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((x.shape[0] + 63) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=max_lr, total_steps=steps)
    width = len(str(epochs))
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(x.shape[0], generator=generator)
        total = 0.0
        for start in range(0, x.shape[0], 64):
            index = order[start:start + 64]
            loss = F.cross_entropy(model(shift(x[index], generator, pixels)), y[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * index.numel()
        if log is not None and (epoch + 1) % log_every == 0:
            log(f"epoch {epoch + 1:{width}d}/{epochs}  loss {total / x.shape[0]:.4f}")
    return model.eval()


def train(epochs: int = EPOCHS, seed: int = SEED,
          log: Callable[[str], None] | None = None) -> DigitsResNet:
    """Train :class:`DigitsResNet` from scratch on the training split (CPU, deterministic);
    ``log`` receives a line per epoch (its mean loss)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = digits_split("train")
    return fit(DigitsResNet(), x, y, epochs, generator, lr=3e-3, max_lr=1e-2,
               weight_decay=1e-4, pixels=2, log=log)


def pretrained(path: str | Path = WEIGHTS_PATH) -> DigitsResNet:
    """The shipped trained model (float weights from ``workloads/digits_resnet.pt``)."""
    model = DigitsResNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
