"""The shipped real transformers: a ViT on scikit-learn's digits and a character-level GPT.

No pretrained weights can be downloaded where sasim is developed, so sasim trains two small
real transformers itself, seeded, on the CPU, in about a minute each (docs/digits-model.md):

- ``digits_vit``: a Vision Transformer classifier on the 8x8 digits (2x2 patches, 16 patch
  tokens + a class token, d_model 48, 4 heads, 3 pre-LN blocks, GELU MLP), the same 70/30
  split as the digits ResNet;
- ``char_gpt``: a causal character-level GPT on the text of the GNU GPL version 3
  (``/usr/share/common-licenses/GPL-3``; ``--text PATH`` for another text), context 64,
  d_model 64, 4 query heads sharing 2 K/V heads (grouped-query attention), 3 pre-RMSNorm
  blocks, SiLU MLP.

Attention is explicit (:class:`simulator.export.transformer.MatMul` for Q·Kᵀ and P·V) so the
exporter quantises Q, K, V and P. Commands: ``workloads/digits_vit.py`` and
``workloads/char_gpt.py`` (``train``, ``trace``, ``accuracy``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from simulator.errors import SasimError
from simulator.export.transformer import Add, MatMul, TransformerOptions
from simulator.shipped import WORKLOAD_DIR

__all__ = ["Attention", "Block", "DigitsViT", "CharGPT", "vit_split", "text_splits",
           "train_vit", "train_gpt", "pretrained_vit", "pretrained_gpt", "lm_loss", "read_text",
           "windows", "gpt_state", "VIT_CALIBRATION", "GPT_CALIBRATION", "SHIPPED_OPTIONS",
           "VIT_WEIGHTS", "VIT_TRACE", "GPT_WEIGHTS", "GPT_TRACE", "GPT_DECODE_TRACE",
           "DEFAULT_TEXT", "SEED"]

SEED = 0
VIT_WEIGHTS = WORKLOAD_DIR / "digits_vit.pt"
VIT_TRACE = WORKLOAD_DIR / "digits_vit_int8.npz"
GPT_WEIGHTS = WORKLOAD_DIR / "char_gpt.pt"
GPT_TRACE = WORKLOAD_DIR / "char_gpt_int8.npz"
GPT_DECODE_TRACE = WORKLOAD_DIR / "char_gpt_decode_int8.npz"
DEFAULT_TEXT = Path("/usr/share/common-licenses/GPL-3")
CONTEXT = 64
#: Calibration of the shipped traces: the first 512 training images / 128 training windows.
VIT_CALIBRATION = 512
GPT_CALIBRATION = 128
#: The quantisation of the shipped traces (static per-tensor activations, P scale 1/255).
SHIPPED_OPTIONS = TransformerOptions()
_MASKED = -1e9  # a finite "minus infinity" for masked scores (traces hold finite floats)


class Attention(nn.Module):
    """Multi-head attention written out: Q, K, V projections, Q·Kᵀ, softmax, P·V, output.

    ``kv_heads`` < ``heads`` shares each K/V head among ``heads // kv_heads`` query heads
    (grouped-query attention). The 1/sqrt(head dim) scale is applied to Q.
    """

    sasim_role = "attention"

    def __init__(self, d_model: int, heads: int, kv_heads: int, causal: bool) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.causal = heads, kv_heads, causal
        self.head_dim = d_model // heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, kv_heads * self.head_dim)
        self.v = nn.Linear(d_model, kv_heads * self.head_dim)
        self.scores = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.context = MatMul(probabilities=True)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(x).reshape(b, t, self.kv_heads, self.head_dim).permute(0, 2, 3, 1)
        v = self.v(x).reshape(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        scores = self.scores(q / math.sqrt(self.head_dim), k)          # (b, h, t, t)
        if self.causal:
            mask = torch.ones(t, t, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, _MASKED)
        context = self.context(self.softmax(scores), v)                # (b, h, t, hd)
        return self.out(context.transpose(1, 2).reshape(b, t, -1))


class _MLP(nn.Module):
    sasim_role = "ffn"

    def __init__(self, d_model: int, hidden: int, activation: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.act = activation
        self.fc2 = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    sasim_role = "other"

    def __init__(self, d_model: int, heads: int, kv_heads: int, hidden: int, causal: bool,
                 rms: bool) -> None:
        super().__init__()
        norm = (lambda: nn.RMSNorm(d_model)) if rms else (lambda: nn.LayerNorm(d_model))
        self.norm1 = norm()
        self.attn = Attention(d_model, heads, kv_heads, causal)
        self.add1 = Add()
        self.norm2 = norm()
        self.mlp = _MLP(d_model, hidden, nn.SiLU() if rms else nn.GELU())
        self.add2 = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add1(x, self.attn(self.norm1(x)))
        return self.add2(x, self.mlp(self.norm2(x)))


class DigitsViT(nn.Module):
    """1x8x8 digits -> 10 classes: 2x2 patches (16 tokens) + class token, d_model 48,
    4 heads, 3 blocks, MLP 96 (GELU), LayerNorm; 21 linear/matmul layers per block set."""

    def __init__(self, d_model: int = 48, heads: int = 4, blocks: int = 3, patch: int = 2,
                 hidden: int = 96) -> None:
        super().__init__()
        self.patch = patch
        tokens = (8 // patch) ** 2
        self.embed = nn.Linear(patch * patch, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = nn.Parameter(torch.zeros(1, tokens + 1, d_model))
        self.blocks = nn.Sequential(*(Block(d_model, heads, heads, hidden, False, False)
                                      for _ in range(blocks)))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 10)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.cls, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        p = self.patch
        patches = x.reshape(b, 8 // p, p, 8 // p, p).permute(0, 1, 3, 2, 4).reshape(b, -1, p * p)
        tokens = torch.cat([self.cls.expand(b, -1, -1), self.embed(patches)], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens)[:, 0]))


class CharGPT(nn.Module):
    """Causal character-level GPT: tokens (B, T) -> logits (B, T, vocab)."""

    def __init__(self, vocab: int, d_model: int = 64, heads: int = 4, kv_heads: int = 2,
                 blocks: int = 3, hidden: int = 192, context: int = CONTEXT) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(1, context, d_model))
        self.blocks = nn.Sequential(*(Block(d_model, heads, kv_heads, hidden, True, True)
                                      for _ in range(blocks)))
        self.norm = nn.RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        h = self.embed(x) + self.pos[:, :x.shape[1]]
        return self.head(self.norm(self.blocks(h)))


# --------------------------------------------------------------------------- data

def vit_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits images (N, 1, 8, 8) in [-1, 1] and labels: 1257 ``train`` / 540 ``test``
    (the digits ResNet's split, at the images' own 8x8 size)."""
    from simulator.export.digits import digits_split

    return digits_split(split, size=8)


def read_text(path: str | Path | None = None) -> str:
    """The training text (default: the GPL-3 licence text)."""
    path = Path(path) if path is not None else DEFAULT_TEXT
    if not path.is_file():
        raise SasimError(f"text {path}: file not found; point the character GPT at another "
                         f"text with --text PATH (any UTF-8 text of 20 KB or more)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SasimError(f"text {path}: cannot read it as UTF-8: {exc}") from None
    if len(text) < 2 * CONTEXT + 2:
        raise SasimError(f"text {path}: {len(text)} characters, too short for a context of "
                         f"{CONTEXT}")
    return text


def text_splits(text: str, vocab: str | None = None,
                ) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The vocabulary (sorted characters) and the encoded training (first 90 %) and held-out
    (last 10 %) parts of ``text``. A character outside ``vocab`` is refused."""
    vocab = vocab if vocab is not None else "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise SasimError(f"the text has characters the model's vocabulary lacks: "
                         f"{''.join(missing[:10])!r}")
    ids = torch.tensor([index[c] for c in text], dtype=torch.int64)
    cut = int(0.9 * len(ids))
    return vocab, ids[:cut], ids[cut:]


def windows(ids: torch.Tensor, context: int = CONTEXT) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping (input, target) windows of ``context`` characters."""
    count = (ids.shape[0] - 1) // context
    x = ids[:count * context].reshape(count, context)
    y = ids[1:count * context + 1].reshape(count, context)
    return x, y


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    """Mean cross-entropy per character (nats) of ``model`` on windows ``x`` -> ``y``."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start:start + batch_size]).double()
            target = y[start:start + batch_size]
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           target.reshape(-1), reduction="sum"))
            count += target.numel()
    return total / count


# --------------------------------------------------------------------------- training

def train_vit(epochs: int = 60, seed: int = SEED,
              log: Callable[[str], None] | None = None) -> DigitsViT:
    """Train :class:`DigitsViT` on the training split (CPU, seeded, ±1-pixel shifts)."""
    from simulator.export.digits import fit

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = vit_split("train")
    return fit(DigitsViT(), x, y, epochs, generator, lr=2e-3, max_lr=3e-3,
               weight_decay=0.05, pixels=1, log=log, log_every=10)


def train_gpt(text: str, steps: int = 800, seed: int = SEED,
              log: Callable[[str], None] | None = None) -> tuple[CharGPT, str]:
    """Train :class:`CharGPT` on the first 90 % of ``text`` (CPU, seeded): random windows of
    64 characters, batch 32. Returns the model and its vocabulary."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    vocab, train_ids, _ = text_splits(text)
    model = CharGPT(len(vocab))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    model.train()
    total = 0.0
    for step in range(steps):
        starts = torch.randint(0, train_ids.shape[0] - CONTEXT - 1, (32,), generator=generator)
        x = torch.stack([train_ids[s:s + CONTEXT] for s in starts.tolist()])
        y = torch.stack([train_ids[s + 1:s + CONTEXT + 1] for s in starts.tolist()])
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        total += loss.item()
        if log is not None and (step + 1) % 100 == 0:
            log(f"step {step + 1:5d}/{steps}  loss {total / 100:.4f}")
            total = 0.0
    return model.eval(), vocab


# --------------------------------------------------------------------------- shipped weights

def pretrained_vit(path: str | Path = VIT_WEIGHTS) -> DigitsViT:
    """The shipped trained ViT (``workloads/digits_vit.pt``)."""
    model = DigitsViT()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def pretrained_gpt(path: str | Path = GPT_WEIGHTS) -> tuple[CharGPT, str]:
    """The shipped trained character GPT (``workloads/char_gpt.pt``) and its vocabulary."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    vocab = "".join(chr(c) for c in state.pop("vocab").tolist())
    model = CharGPT(len(vocab))
    model.load_state_dict(state)
    return model.eval(), vocab


def gpt_state(model: CharGPT, vocab: str) -> dict[str, torch.Tensor]:
    """The state dict to save, with the vocabulary as code points (``vocab``)."""
    return {**model.state_dict(),
            "vocab": torch.tensor([ord(c) for c in vocab], dtype=torch.int64)}
