"""The projection head trained on top of the backbone, and the InfoNCE loss that trains it.

Two heads, chosen by hyperparameter:
- "mlp": 1280 -> hidden -> dim with a GELU between: a smaller vector (cheaper to store and to
  search) that is free to reorganise the space around what users click;
- "residual": x + W2 gelu(W1 x) at the backbone's width, W2 starting at zero, so training
  starts from the raw backbone exactly and can only move as far as the pairs push it: the
  safer choice when pairs are few, and instance matching (copy detection) is kept by design.
Either ends in L2 normalization, so the store's inner products stay cosines.

InfoNCE with in-batch negatives: each anchor's positive must win a softmax over every positive
in the batch (and, for click pairs, over the results that were shown but not clicked), and
symmetrically each positive must pick its anchor. Two pairs of a batch that share an image
(a query clicked twice, an image that is also another pair's positive, an augmentation pair
of a click pair's query) are not each other's negatives: those entries are masked. The
temperature is learnt (as CLIP does) and clamped, because an unbounded temperature lets the
loss fall by sharpening instead of learning.
"""

import math

import torch
from torch import nn

HEADS = ("mlp", "residual")


class ProjectionHead(nn.Module):
    def __init__(self, kind: str, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {kind!r}")
        self.kind = kind
        self.inner = nn.Linear(in_dim, hidden)
        self.outer = nn.Linear(hidden, in_dim if kind == "residual" else out_dim)
        if kind == "residual":
            nn.init.zeros_(self.outer.weight)
            nn.init.zeros_(self.outer.bias)

    @property
    def out_dim(self) -> int:
        return self.outer.out_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        projected = self.outer(nn.functional.gelu(self.inner(features)))
        if self.kind == "residual":
            projected = features + projected
        return nn.functional.normalize(projected, dim=1)


class InfoNCE(nn.Module):
    """Weighted, symmetric InfoNCE over in-batch negatives plus optional per-row hard negatives."""

    def __init__(self, temperature: float, learn: bool = True, bounds: tuple[float, float] = (0.01, 1.0)) -> None:
        super().__init__()
        if not bounds[0] <= temperature <= bounds[1]:
            raise ValueError(f"temperature {temperature} is outside its clamp {bounds}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)), requires_grad=learn)
        self.bounds = bounds

    @property
    def temperature(self) -> float:
        return 1 / self._scale().item()

    def _scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(1 / self.bounds[1], 1 / self.bounds[0])

    def forward(
        self,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        anchor_ids: torch.Tensor,
        positive_ids: torch.Tensor,
        weights: torch.Tensor,
        hard_negatives: torch.Tensor | None = None,
        hard_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """anchors, positives: (b, d) unit rows; anchor_ids, positive_ids: (b,) their images;
        weights: (b,); hard_negatives: (b, m, d) with hard_mask (b, m) True where a negative is real."""
        scale = self._scale()
        logits = scale * anchors @ positives.T
        shared = torch.zeros_like(logits, dtype=torch.bool)
        for ours in (anchor_ids, positive_ids):
            for theirs in (anchor_ids, positive_ids):
                shared |= ours[:, None] == theirs[None, :]
        logits = logits.masked_fill(shared & ~torch.eye(len(anchors), dtype=torch.bool), float("-inf"))
        targets = torch.arange(len(anchors))
        forward_logits = logits
        if hard_negatives is not None and hard_negatives.shape[1]:
            hard = scale * torch.einsum("bd,bmd->bm", anchors, hard_negatives)
            forward_logits = torch.cat([logits, hard.masked_fill(~hard_mask, float("-inf"))], dim=1)
        per_row = nn.functional.cross_entropy(forward_logits, targets, reduction="none")
        per_row = per_row + nn.functional.cross_entropy(logits.T, targets, reduction="none")
        return (weights * per_row).sum() / (2 * weights.sum())
