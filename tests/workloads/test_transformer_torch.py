"""The transformer expansion against a PyTorch forward pass: torch's FLOP counter over a small
model written here (independently of simulator/workloads/transformer.py) counts 2 FLOPs per
multiply-accumulate of every linear, conv and matmul, and the expansion's MACs must be half
of it, for random configurations (GQA, gated FFNs, ViT patchify, prefill and decode)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from simulator.workloads.transformer import TransformerSpec, expand

nn = torch.nn


class Block(nn.Module):
    """One block, the way Hugging Face models write it (the norms carry no MACs)."""

    def __init__(self, d: int, heads: int, kv: int, dh: int, ffn: int, gated: bool):
        super().__init__()
        self.heads, self.kv, self.dh = heads, kv, dh
        self.q = nn.Linear(d, heads * dh, bias=False)
        self.k = nn.Linear(d, kv * dh, bias=False)
        self.v = nn.Linear(d, kv * dh, bias=False)
        self.o = nn.Linear(heads * dh, d, bias=False)
        self.up = nn.Linear(d, ffn, bias=False)
        self.gate = nn.Linear(d, ffn, bias=False) if gated else None
        self.down = nn.Linear(ffn, d, bias=False)

    def forward(self, x: torch.Tensor, past: int) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        # decode: the cached keys and values of `past` tokens, then this step's
        cache = torch.zeros(b, self.kv, past, self.dh)
        k = torch.cat([cache, self.k(x).view(b, t, self.kv, self.dh).transpose(1, 2)], 2)
        v = torch.cat([cache, self.v(x).view(b, t, self.kv, self.dh).transpose(1, 2)], 2)
        k = k.repeat_interleave(self.heads // self.kv, dim=1)
        v = v.repeat_interleave(self.heads // self.kv, dim=1)
        p = torch.softmax(q @ k.transpose(-1, -2) / self.dh ** 0.5, dim=-1)
        x = x + self.o((p @ v).transpose(1, 2).reshape(b, t, -1))
        h = self.up(x)
        if self.gate is not None:
            h = torch.nn.functional.silu(self.gate(x)) * h
        return x + self.down(torch.nn.functional.gelu(h) if self.gate is None else h)


def _torch_macs(spec: TransformerSpec) -> int:
    d, dh = spec.d_model, spec.head_dim or spec.d_model // spec.heads
    kv = spec.kv_heads or spec.heads
    gated = spec.ffn in ("swiglu", "geglu")
    blocks = [Block(d, spec.heads, kv, dh, spec.ffn_dim, gated) for _ in range(spec.layers)]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if spec.patch_size:
            image = torch.zeros(spec.batch, spec.channels, spec.image_size, spec.image_size)
            patches = nn.Conv2d(spec.channels, d, spec.patch_size, spec.patch_size)(image)
            x = torch.cat([torch.zeros(spec.batch, 1, d), patches.flatten(2).transpose(1, 2)], 1)
        else:
            x = torch.zeros(spec.batch, 1 if spec.phase == "decode" else spec.seq_len, d)
        for block in blocks:
            x = block(x, spec.context_len)
        if spec.classes:
            nn.Linear(d, spec.classes)(x[:, 0])
        if spec.vocab:
            nn.Linear(d, spec.vocab, bias=False)(x[:, -1:] if spec.logits == "last" else x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@st.composite
def specs(draw) -> TransformerSpec:
    kv = draw(st.integers(1, 3))
    heads = kv * draw(st.integers(1, 3))
    dh = draw(st.sampled_from([4, 8]))
    d = heads * dh if draw(st.booleans()) else draw(st.integers(8, 40))
    common = dict(d_model=d, layers=draw(st.integers(1, 3)), heads=heads, kv_heads=kv,
                  head_dim=0 if d == heads * dh else dh, ffn_dim=draw(st.integers(4, 48)),
                  ffn=draw(st.sampled_from(["gelu", "relu", "swiglu", "geglu"])),
                  norm=draw(st.sampled_from(["layernorm", "rmsnorm"])),
                  norm_placement=draw(st.sampled_from(["pre", "post"])),
                  positions=draw(st.sampled_from(["learned", "rope"])),
                  batch=draw(st.integers(1, 3)))
    if draw(st.integers(0, 3)) == 0:  # a ViT
        patch = draw(st.sampled_from([2, 4]))
        return TransformerSpec(**common, image_size=patch * draw(st.integers(1, 4)),
                               patch_size=patch, classes=draw(st.integers(0, 7)))
    vocab = dict(vocab=draw(st.integers(0, 50)), logits=draw(st.sampled_from(["all", "last"])))
    if draw(st.booleans()):
        return TransformerSpec(**common, **vocab, causal=True, phase="decode",
                               context_len=draw(st.integers(1, 20)))
    return TransformerSpec(**common, **vocab, causal=draw(st.booleans()),
                           seq_len=draw(st.integers(1, 20)))


@settings(max_examples=60, deadline=None)
@given(specs())
def test_expansion_macs_equal_a_torch_forward_pass(spec):
    macs = sum(layer.macs for layer in expand(spec))
    assert macs == _torch_macs(spec)


def test_one_llama_like_decode_step():
    spec = TransformerSpec(d_model=64, layers=2, heads=8, kv_heads=2, ffn_dim=96,
                           ffn="swiglu", norm="rmsnorm", positions="rope", causal=True,
                           vocab=100, phase="decode", batch=3, context_len=17)
    assert sum(layer.macs for layer in expand(spec)) == _torch_macs(spec)
