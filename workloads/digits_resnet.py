"""Model factory for ``sasim export``: the shipped digits model with its trained weights.

    sasim export workloads/digits_resnet.py:model --calibration digits:train \
        --calibration-samples 512 --trace-data digits:test --trace-samples 32 \
        --eval digits:test --out out/digits_int8.npz
"""

from simulator.export.digits import pretrained


def model():
    """The trained :class:`simulator.export.digits.DigitsResNet` (float weights)."""
    return pretrained()
