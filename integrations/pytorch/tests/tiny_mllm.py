"""A tiny multimodal model and a seeded batch generator for the 4-rank check.

Everything an example's loss depends on is computed from that example alone (attention within a
segment or a sequence, no batch statistics), which is what makes moving examples between ranks
leave the loss and the gradients unchanged: the global loss is a sum over examples divided by
the global token count.
"""
from __future__ import annotations

import math
import random
from typing import Any, Dict, List

import torch
from torch import nn

PATCH_DIM = 48   # one image "patch" row
FRAME_DIM = 32   # one audio frame row
VOCAB = 64
D_ENC = 32
D_MODEL = 48
IMAGE_POOL = 4   # vision outputs: ceil(patches / 4) = ceil(L × scale.image)
AUDIO_POOL = 2   # audio outputs:  ceil(frames / 2)  = ceil(L × scale.audio)

# Costs fitted to this model's measured CPU time per item, forward + backward (thread time,
# float64, one thread; integrations/pytorch/check_training.py --calibrate prints the fit):
# encoders ≈ 1 ms per call + 0.03 ms per row + a small L² term; the LLM is attention-heavy.
CONFIG: Dict[str, Any] = {
    "ranks": 4,
    "ranksPerNode": 2,
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment",
         "cost": {"perItem": 33, "perToken": 1.0, "perTokenSquared": 0.0047}},
        {"name": "audio", "modalities": ["audio"], "unit": "segment",
         "cost": {"perItem": 33, "perToken": 1.0, "perTokenSquared": 0.005}},
        {"name": "llm", "modalities": ["text", "image", "audio"], "unit": "example",
         "scale": {"image": 1 / IMAGE_POOL, "audio": 1 / AUDIO_POOL},
         "cost": {"perItem": 13, "perToken": 1.0, "perTokenSquared": 0.0023}},
    ],
    "bytesPerToken": {"text": 8, "image": 8 * PATCH_DIM, "audio": 8 * FRAME_DIM},
}


class Block(nn.Module):
    """Pre-norm transformer block over one sequence [L, d] (single head: enough to be real)."""

    def __init__(self, d: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        att = (q @ k.transpose(0, 1)) / math.sqrt(q.shape[-1])
        if self.causal:
            L = x.shape[0]
            mask = torch.ones(L, L, dtype=torch.bool).triu(1)
            att = att.masked_fill(mask, float("-inf"))
        x = x + self.proj(att.softmax(-1) @ v)
        return x + self.mlp(self.ln2(x))


def pool_rows(h: torch.Tensor, p: int) -> torch.Tensor:
    """Mean over consecutive groups of p rows: ceil(L/p) outputs (the last group may be short)."""
    L = h.shape[0]
    n = -(-L // p)
    pad = n * p - L
    s = torch.cat([h, h.new_zeros(pad, h.shape[1])]).view(n, p, h.shape[1]).sum(1)
    counts = torch.full((n, 1), float(p), dtype=h.dtype)
    counts[-1, 0] = p - pad
    return s / counts


class Encoder(nn.Module):
    """Per-segment encoder: rows → block → pooled → projected to the LLM width."""

    def __init__(self, din: int, pool: int) -> None:
        super().__init__()
        self.inp = nn.Linear(din, D_ENC)
        self.block = Block(D_ENC, causal=False)
        self.pool = pool
        self.out = nn.Linear(D_ENC, D_MODEL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(pool_rows(self.block(self.inp(x)), self.pool))


class TinyLLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bos = nn.Parameter(torch.randn(1, D_MODEL) * 0.02)
        self.embed = nn.Embedding(VOCAB, D_MODEL)
        self.blocks = nn.ModuleList([Block(D_MODEL, causal=True) for _ in range(2)])
        self.ln = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, VOCAB)

    def example_loss(self, encoded: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Sum of next-token cross-entropies over the text of one example, conditioned on its
        encoder outputs: sequence [BOS, encoder outputs..., text...]."""
        x = torch.cat([self.bos, encoded, self.embed(text)])
        for b in self.blocks:
            x = b(x)
        T = text.shape[0]
        prefix = 1 + encoded.shape[0]
        logits = self.head(self.ln(x[prefix - 1: prefix - 1 + T]))
        return nn.functional.cross_entropy(logits, text, reduction="sum")


class TinyMLLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.vision = Encoder(PATCH_DIM, IMAGE_POOL)
        self.audio = Encoder(FRAME_DIM, AUDIO_POOL)
        self.llm = TinyLLM()


def build_model(seed: int) -> TinyMLLM:
    torch.manual_seed(seed)
    return TinyMLLM().double()


# -- data ----------------------------------------------------------------------------------------


def _clamp(x: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(round(x))))


def sample_global_batch(seed: int, step: int, ranks: int, per_rank: int) -> List[Dict[str, Any]]:
    """The global batch of one step in the CLI's example shape (lengths only), each rank's share
    in its sampling order. A heavy-tailed mix like the demo's, scaled down to CPU sizes. Every
    example has text (the loss is over text) and every batch has an image and an audio clip."""
    rnd = random.Random(f"{seed}/{step}")
    out: List[Dict[str, Any]] = []
    kinds = ["caption", "interleaved", "asr", "spokenQA", "text", "video"]
    weights = [0.3, 0.1, 0.15, 0.1, 0.25, 0.1]
    for r in range(ranks):
        for j in range(per_rank):
            e: Dict[str, Any] = {"id": f"s{step}r{r}e{j}", "rank": r}
            kind = rnd.choices(kinds, weights)[0]
            if step == 0 and r == 0 and j == 0:
                kind = "caption"
            if step == 0 and r == 0 and j == 1:
                kind = "asr"
            ln = lambda med, sig, lo, hi: _clamp(rnd.lognormvariate(math.log(med), sig), lo, hi)
            if kind == "caption":
                e["image"] = [36 * rnd.randint(1, 4)]
                e["text"] = ln(16, 0.5, 4, 80)
            elif kind == "interleaved":
                e["image"] = [36 * rnd.randint(1, 3) for _ in range(rnd.randint(2, 4))]
                e["text"] = ln(200, 0.5, 40, 500)
            elif kind == "asr":
                e["audio"] = [ln(160, 0.5, 30, 500)]
                e["text"] = ln(24, 0.5, 4, 120)
            elif kind == "spokenQA":
                e["audio"] = [ln(120, 0.4, 30, 500)]
                e["text"] = ln(160, 0.5, 30, 480)
            elif kind == "text":
                e["text"] = ln(120, 0.9, 8, 600)
            else:
                e["image"] = [16] * rnd.randint(3, 8)
                e["text"] = ln(40, 0.5, 8, 160)
            out.append(e)
    # The planner refuses a phase without items: make sure both encoders have work.
    if not any("image" in e for e in out):
        out[0]["image"] = [36]
    if not any("audio" in e for e in out):
        out[-1]["audio"] = [60]
    return out


def example_data(e: Dict[str, Any]) -> Dict[str, Any]:
    """The tensors of one example, generated from its id alone (only its sampling rank calls
    this: in the balanced run the data reach other ranks through the exchanges)."""
    g = torch.Generator().manual_seed(int.from_bytes(str(e["id"]).encode(), "little") % (2**63))
    return {
        "image": [torch.randn(L, PATCH_DIM, generator=g, dtype=torch.float64) for L in e.get("image", [])],
        "audio": [torch.randn(L, FRAME_DIM, generator=g, dtype=torch.float64) for L in e.get("audio", [])],
        "text": torch.randint(0, VOCAB, (e["text"],), generator=g),
    }
