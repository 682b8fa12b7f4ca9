"""The optimiser and learning-rate schedule the project's from-scratch training shares
(the demo model and its NaFlex variant): AdamW as CLIP trains it, linear warm-up, cosine decay."""

from __future__ import annotations

import math


def adamw(decay: list, no_decay: list, lr: float, weight_decay: float):
    """AdamW with CLIP's betas (0.9, 0.98) and eps 1e-6; ``no_decay`` (gains, biases, the
    temperature) gets no weight decay."""
    import torch

    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def warmup_cosine(step: int, peak: float, warmup: int, total: int) -> float:
    """Learning rate at ``step``: linear warm-up over ``warmup`` steps to ``peak``, then a
    cosine decay to zero at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * t))
