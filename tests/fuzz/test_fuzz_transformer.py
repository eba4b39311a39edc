"""Hypothesis fuzzing of the ``transformer:`` section of a workload YAML (docs/workloads.md).

A mutated or mangled section either loads (and every expanded layer is valid) or is refused
with one bounded line naming the file (a WorkloadError): never another exception, and never
slowly (the layer count is bounded before any layer is built).
"""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from simulator.errors import MAX_MESSAGE_CHARS, WorkloadError
from simulator.workloads.shapes import load_workload_yaml
from fuzz.test_fuzz_inputs import Workdir, _dump, fuzz, mangled_text, mutated

LLAMA = {"schema_version": 1, "name": "t", "transformer": {
    "d_model": 64, "layers": 2, "heads": 4, "kv_heads": 2, "ffn_dim": 96, "ffn": "swiglu",
    "norm": "rmsnorm", "positions": "rope", "causal": True, "vocab": 100, "logits": "last",
    "phase": "decode", "batch": 2, "context_len": 9}}
VIT = {"schema_version": 1, "name": "v", "transformer": {
    "d_model": 48, "layers": 1, "heads": 3, "ffn_dim": 64, "norm_placement": "post",
    "image_size": 32, "patch_size": 8, "channels": 3, "classes": 10, "seq_len": 17},
    "data": {"seed": 2}}


@fuzz(60)
@given(st.sampled_from([LLAMA, VIT]), st.data())
def test_transformer_section(base, data):
    with Workdir() as folder:
        path = folder / "w.yaml"
        if data.draw(st.booleans()):
            path.write_text(_dump(data.draw(mutated(base))))
        else:
            path.write_text(data.draw(mangled_text(_dump(base))))
        start = time.perf_counter()
        try:
            workload = load_workload_yaml(path)
        except WorkloadError as exc:
            message = str(exc)
            assert "\n" not in message and len(message) <= MAX_MESSAGE_CHARS, message
            assert "w.yaml" in message, message
        else:
            for layer in workload.layers:
                assert not list(layer.problems()), layer.name
        assert time.perf_counter() - start < 5
