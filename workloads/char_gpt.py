#!/usr/bin/env python3
"""The shipped character-level GPT: model factory and its seeded training, trace and
accuracy commands (docs/digits-model.md). It trains on the GNU GPL version 3 text,
``/usr/share/common-licenses/GPL-3``; ``--text PATH`` trains (and evaluates) on another text.

Usage (from the repo root; needs the ``torch`` extra)::

    PYTHONPATH=$PWD .venv/bin/python workloads/char_gpt.py train     # -> workloads/char_gpt.pt
    PYTHONPATH=$PWD .venv/bin/python workloads/char_gpt.py trace     # -> workloads/char_gpt_int8.npz
                                                                   #    and char_gpt_decode_int8.npz
    PYTHONPATH=$PWD .venv/bin/python workloads/char_gpt.py accuracy  # loss, perplexity
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

TRACE_WINDOWS = 1           # first held-out windows recorded in the shipped trace
STEPS = 800


def model():
    """The trained :class:`simulator.export.tiny_transformers.CharGPT` (float weights)."""
    from simulator.export.tiny_transformers import pretrained_gpt

    return pretrained_gpt()[0]


def _options(name: str):
    from simulator.export.transformer import TransformerOptions

    from simulator.export.tiny_transformers import SHIPPED_OPTIONS

    return {"static": SHIPPED_OPTIONS,
            "dynamic": TransformerOptions(activations="dynamic"),
            "smoothquant 0.5": TransformerOptions(smooth_alpha=0.5)}[name]


def main(argv: Sequence[str] | None = None) -> int:
    """``workloads/char_gpt.py train|trace|accuracy``."""
    import torch

    from simulator.errors import SasimError
    from simulator.export.tiny_transformers import (GPT_CALIBRATION, GPT_DECODE_TRACE,
                                                    GPT_TRACE, GPT_WEIGHTS,
                                                    gpt_state, lm_loss,
                                                    pretrained_gpt, read_text, text_splits,
                                                    train_gpt, windows)
    from simulator.export.transformer import export_transformer, quantize_transformer

    parser = argparse.ArgumentParser(prog="workloads/char_gpt.py",
                                     description="Train, trace or evaluate the character GPT.")
    parser.add_argument("command", choices=["train", "trace", "accuracy"])
    parser.add_argument("--text", help="training text (default /usr/share/common-licenses/GPL-3)")
    parser.add_argument("--weights", default=str(GPT_WEIGHTS), help="float state dict (.pt)")
    parser.add_argument("--out", default=str(GPT_TRACE), help="prefill trace to write (trace)")
    parser.add_argument("--decode-out", default=str(GPT_DECODE_TRACE),
                        help="decode-step trace to write (trace)")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps (train)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # deterministic, and fastest for these tiny models on a busy machine
    try:
        text = read_text(args.text)
        if args.command == "train":
            start = time.perf_counter()
            trained, vocab = train_gpt(text, args.steps, log=print)
            torch.save(gpt_state(trained, vocab), args.weights)
            print(f"trained in {time.perf_counter() - start:.1f} s; wrote {args.weights}")
            return 0
        float_model, vocab = pretrained_gpt(args.weights)
        _, train_ids, test_ids = text_splits(text, vocab)
        calibration = windows(train_ids)[0][:GPT_CALIBRATION]
        x_test, y_test = windows(test_ids)
        if args.command == "accuracy":
            loss = lm_loss(float_model, x_test, y_test)
            print(f"held-out text ({y_test.numel()} characters): loss (nats/char), perplexity")
            print(f"  float32                           {loss:.4f}  {math.exp(loss):7.3f}")
            for name in ("static", "dynamic", "smoothquant 0.5"):
                q = lm_loss(quantize_transformer(float_model, calibration, _options(name)),
                            x_test, y_test)
                label = f"INT8, {name}" + (" (the shipped trace)" if name == "static" else "")
                print(f"  {label:<33} {q:.4f}  {math.exp(q):7.3f}  "
                      f"({100 * (q / loss - 1):+.2f} % loss)")
            return 0
        provenance = {"model": "simulator.export.tiny_transformers.CharGPT",
                      "weights": "char_gpt.pt", "text": str(args.text or "GPL-3"),
                      "calibration_data": f"training windows [:{GPT_CALIBRATION}]",
                      "traced_data": f"held-out windows [:{TRACE_WINDOWS}] of 64 characters"}
        for phase, out in (("prefill", args.out), ("decode", args.decode_out)):
            result = export_transformer(float_model, calibration, x_test[:TRACE_WINDOWS], out,
                                        "char_gpt" if phase == "prefill" else "char_gpt_decode",
                                        _options("static"), provenance=provenance, phase=phase)
            print(f"wrote {result.path} ({phase}): {len(result.layers)} layers, "
                  f"{result.traced_samples} sequence(s)")
    except SasimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
