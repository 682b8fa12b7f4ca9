"""SigLIT fine-tuning: the image tower locked (and never run), the text side trained.

The stored image vectors are the image side's output, so training decodes no photo and
runs no image model; the vectors in the library stay valid for the fine-tuned model.
What trains is chosen by ``FinetuneSettings.tune``:

``last:K``  the last K blocks of the text transformer, its final norm and projection.
            The frozen blocks below run once per prompt, before training (their output
            is cached), so a step costs K blocks instead of all of them.
``lora:R``  rank-R low-rank updates of every weight matrix in every text block
            (``torch.nn.utils.parametrize``; merged into the weights before export).
``full``    every text-tower weight, token embeddings included.

Always trained too: the temperature (logit scale) and the bias of the sigmoid loss.

Why ``last:2`` is the default (``photosift bench finetune``, measured on the 2-core
build machine while other jobs ran):

* learning: on the demo world (1,000 photos in 8 label folders of words the demo model
  never read, 500 held-out photos), held-out mAP went 0.487 (zero-shot) -> 0.824 with
  ``last:2``, 0.823 ``last:1``, 0.823 ``lora:8``, 0.822 ``full``: all four learn equally
  (the demo text tower has 2 blocks: there ``last:2`` freezes only the token embeddings);
* forgetting: the demo world's own attribute queries (mAP against the scenes' truth)
  went 0.860 -> 0.854 with ``last:2``, 0.837 ``last:1``, 0.845 ``lora:8``, 0.859 ``full``;
* cost: on a ViT-B-32 text tower (1,000 photos x 20 labels, one thread) a step took
  0.14 CPU-s with ``last:2``, 0.81 with ``lora:8`` and 1.14 with ``full``: LoRA and full
  tuning must run (and back-propagate through) all 12 blocks, ``last:2`` runs 2.

``full`` forgets least but costs ~8x more per step, which a laptop CPU cannot afford for a
ViT-B-32 (300 steps ~ 6 minutes); ``last:2`` is nearly as gentle: a complete early-stopped
run (1,000 photos x 20 labels, 160 steps) took 22.5 CPU-s on one thread.

Causal text towers pooled at the end-of-text token see nothing after it, so prompts are
cut to their longest real length before the transformer (77 -> ~10 tokens for short
labels): same vectors, several times less work.

``python -m training.finetune.job ...`` is the child process the engine starts: it reads the
library database read-only, streams JSON progress lines on stdout and writes the
candidate model folder under ``--out`` (see ``training.finetune.candidate``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.errors import Cancelled
from engine.finetune.dataset import POSITIVE, UNKNOWN, GeneralCheck, TrainingSet, stratified_split

TUNES = ("full", "last:K", "lora:R")
DEFAULT_LR = {"full": 2e-5, "last": 1e-4, "lora": 1e-3}
THRESHOLD = 0.5  # sigmoid probability at which a tag is proposed
TOP_K = 20  # the general-knowledge check compares the top 20 results per query


@dataclass
class FinetuneSettings:
    tune: str = "last:2"
    lr: float | None = None  # None: DEFAULT_LR for the kind of tuning
    max_steps: int = 300
    eval_every: int = 10
    patience: int = 5  # evaluations without a better validation mAP before stopping
    val_fraction: float = 0.3
    unknown_weight: float = 0.1  # unknown (photo, label) pairs count as weak negatives
    weight_decay: float = 0.0
    lora_alpha: float = 16.0
    seed: int = 0
    device: str | None = None  # None: CUDA when available, else CPU
    threads: int | None = None

    @classmethod
    def smoke(cls, **kw) -> FinetuneSettings:
        """A few steps only: for tests."""
        return cls(**{"max_steps": 6, "eval_every": 2, "patience": 2, **kw})

    def kind(self) -> tuple[str, int]:
        if self.tune == "full":
            return "full", 0
        name, _, n = self.tune.partition(":")
        if name not in ("last", "lora") or not n.isdigit() or int(n) < 1:
            raise ValueError(f"tune must be 'full', 'last:K' or 'lora:R', not {self.tune!r}")
        return name, int(n)

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.kind()[0]]


@dataclass
class FinetuneResult:
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


# -- the text side ----------------------------------------------------------------------------


class LoRA:
    """``W + B @ A * scale`` as a torch parametrization (built lazily: torch is imported late)."""

    @staticmethod
    def module(out_f: int, in_f: int, rank: int, alpha: float, device=None):
        import torch

        class _LoRA(torch.nn.Module):
            def __init__(self):
                super().__init__()
                a = torch.randn(rank, in_f) / math.sqrt(
                    in_f
                )  # drawn on the CPU: same on any device
                self.A = torch.nn.Parameter(a.to(device))
                self.B = torch.nn.Parameter(torch.zeros(out_f, rank, device=device))  # starts as W
                self.scale = alpha / rank

            def forward(self, w):
                return w + (self.B @ self.A).to(w.dtype) * self.scale

        return _LoRA()


class TextSide:
    """An open_clip text tower split into a frozen, cached prefix and a trainable rest."""

    def __init__(self, model, s: FinetuneSettings):
        import torch

        self.model = model
        t = model.text if hasattr(model, "text") else model  # CustomTextCLIP keeps it in .text
        self.t = t
        self.blocks = t.transformer.resblocks
        self.pool = getattr(t, "text_pool_type", getattr(t, "pool_type", "argmax"))
        self.eos = getattr(t, "text_eos_id", getattr(t, "eos_id", None))
        # The cut-and-cache path needs a causal tower pooled at one token (CLIP-style).
        self.fast = (
            getattr(t, "attn_mask", None) is not None
            and self.pool in ("argmax", "eos")
            and getattr(t, "cls_emb", None) is None
            and not getattr(t, "use_pad_mask", False)
        )
        kind, n = s.kind()
        for p in model.parameters():
            p.requires_grad_(False)
        self.kind = kind
        self.split = len(self.blocks) - min(n, len(self.blocks)) if kind == "last" else 0
        if not self.fast:
            self.split = 0
        self.lora: list[tuple[Any, str]] = []
        train: list = []
        if kind == "full":
            train = [p for p in self._text_params()]
        elif kind == "last":
            for blk in self.blocks[self.split :]:
                train += list(blk.parameters())
            train += list(t.ln_final.parameters())
            proj = t.text_projection
            train += list(proj.parameters()) if isinstance(proj, torch.nn.Module) else [proj]
        else:
            from torch.nn.utils import parametrize

            for blk in self.blocks:
                for mod in blk.modules():
                    for name in ("weight", "in_proj_weight"):
                        w = mod._parameters.get(name)
                        if w is not None and w.ndim == 2:
                            lora = LoRA.module(w.shape[0], w.shape[1], n, s.lora_alpha, w.device)
                            parametrize.register_parametrization(mod, name, lora)
                            self.lora.append((mod, name))
                            train += [lora.A, lora.B]
        if model.logit_bias is None:  # a softmax-trained base: start where SigLIP starts
            model.logit_bias = torch.nn.Parameter(
                torch.tensor([-10.0], device=model.logit_scale.device)
            )
        train += [model.logit_scale, model.logit_bias]
        for p in train:
            p.requires_grad_(True)
        self.params = train

    def _text_params(self):
        import torch

        t = self.t
        if t is not self.model:
            return list(t.parameters())
        mods = [t.token_embedding, t.transformer, t.ln_final]
        out = [p for m in mods for p in m.parameters()] + [t.positional_embedding]
        proj = t.text_projection
        out += list(proj.parameters()) if isinstance(proj, torch.nn.Module) else [proj]
        return out

    def prepare(self, tokens, run_frozen: bool = True) -> dict:
        """Cut prompts to their real length and run the frozen blocks once."""
        import torch

        if not self.fast:
            return {"tokens": tokens}
        if self.pool == "argmax":
            idx = tokens.argmax(dim=-1)
        else:
            idx = (tokens == self.eos).int().argmax(dim=-1)
        n = int(idx.max()) + 1
        cut = tokens[:, :n]
        mask = self.t.attn_mask[:n, :n]
        with torch.no_grad():
            x = self._embed(cut)
            for blk in self.blocks[: self.split] if run_frozen else ():
                x = blk(x, attn_mask=mask)
        return {"x": x, "cut": cut, "idx": idx, "mask": mask}

    def _embed(self, cut):
        t = self.t
        n = cut.shape[1]
        return t.token_embedding(cut) + t.positional_embedding[:n]

    def encode(self, cache: dict, rows=None):
        """Unit text vectors [len(rows), D] for the prepared prompts (all when rows is None)."""
        import torch.nn.functional as F

        if not self.fast:
            tok = cache["tokens"] if rows is None else cache["tokens"][rows]
            return F.normalize(self.model.encode_text(tok), dim=-1)
        sel = slice(None) if rows is None else rows
        x = self._embed(cache["cut"][sel]) if self.kind == "full" else cache["x"][sel]
        for blk in self.blocks[self.split :]:
            x = blk(x, attn_mask=cache["mask"])
        return self._head(x, cache["idx"][sel])

    def _head(self, x, idx):
        import torch
        import torch.nn.functional as F

        x = self.t.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), idx]
        proj = self.t.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, torch.nn.Module) else x @ proj
        return F.normalize(x, dim=-1)

    def encode_texts(self, tokens):
        """Unit vectors through the whole tower as it is now (no cache, no gradient)."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            if not self.fast:
                return F.normalize(self.model.encode_text(tokens), dim=-1)
            c = self.prepare(tokens, run_frozen=False)
            x = c["x"]
            for blk in self.blocks:
                x = blk(x, attn_mask=c["mask"])
            return self._head(x, c["idx"])

    def state(self) -> list:
        return [p.detach().clone() for p in self.params]

    def load(self, state: list) -> None:
        import torch

        with torch.no_grad():
            for p, v in zip(self.params, state, strict=True):
                p.copy_(v)

    def merge(self) -> None:
        """Bake LoRA updates into the weights: the model is a plain open_clip model again."""
        from torch.nn.utils import parametrize

        for mod, name in self.lora:
            parametrize.remove_parametrizations(mod, name, leave_parametrized=True)
        self.lora = []


# -- metrics ----------------------------------------------------------------------------------


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    """AP of one ranking (the area under the precision-recall curve, step-wise)."""
    truth = truth.astype(bool)
    if not truth.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = truth[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def label_report(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict[str, dict]:
    """Per label, on the known entries: AP, and precision/recall at THRESHOLD."""
    out = {}
    for j, lab in enumerate(labels):
        known = targets[:, j] != UNKNOWN
        p, t = probs[known, j], targets[known, j] == POSITIVE
        pred = p >= THRESHOLD
        out[lab] = dict(
            positives=int(t.sum()), negatives=int((~t).sum()),
            ap=average_precision(p, t),
            recall=float((pred & t).sum() / max(1, t.sum())),
            precision=float((pred & t).sum() / pred.sum()) if pred.any() else None,
        )  # fmt: skip
    return out


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return float(np.mean(xs)) if xs else float("nan")


def general_report(before: np.ndarray, after: np.ndarray, g: GeneralCheck) -> dict[str, Any]:
    """How searches for queries outside the labels changed (before/after: unit [Q, D])."""
    sims_b, sims_a = before @ g.gallery.T, after @ g.gallery.T
    k = min(TOP_K, g.gallery.shape[0])
    out: dict[str, Any] = {"queries": len(g.queries), "gallery": int(g.gallery.shape[0])}
    if k and len(g.queries):
        top_b = np.argsort(-sims_b, axis=1, kind="stable")[:, :k]
        top_a = np.argsort(-sims_a, axis=1, kind="stable")[:, :k]
        same = [len(set(b) & set(a)) / k for b, a in zip(top_b, top_a, strict=True)]
        out[f"top{k}_agreement"] = float(np.mean(same))
        out["query_cosine"] = float(np.mean((before * after).sum(1)))
    if g.truth is not None:
        out["map_before"] = _mean(
            average_precision(sims_b[q], g.truth[:, q]) for q in range(len(g.queries))
        )
        out["map_after"] = _mean(
            average_precision(sims_a[q], g.truth[:, q]) for q in range(len(g.queries))
        )
    return out


# -- training ---------------------------------------------------------------------------------


def default_threads(model) -> int:
    """One thread for small text towers, all cores for big ones.

    Measured on the 2-core build machine while other jobs ran: 50 steps on the demo
    model's text tower took 1.5 s with one thread and 43 s with two (threads
    waiting on each other for tiny matrix products); a ViT-B-32 text tower is
    large enough that every core helps.
    """
    import os

    n = sum(p.numel() for p in (model.text if hasattr(model, "text") else model).parameters())
    return 1 if n < 20_000_000 else max(1, os.cpu_count() or 1)


def pick_device(requested: str | None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def finetune(
    model,
    tokenize: Callable[[list[str]], np.ndarray],
    data: TrainingSet,
    s: FinetuneSettings,
    *,
    progress: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> FinetuneResult:
    """Train ``model``'s text side in place on ``data``; returns before/after metrics.

    The best state on validation (mean AP over labels, checked every ``eval_every``
    steps, the untrained model included) is what ``model`` holds at the end.
    """
    import torch
    import torch.nn.functional as F

    data.validate()
    data.check_enough(unknown_as_negative=s.unknown_weight > 0)
    started = time.monotonic()
    torch.set_num_threads(s.threads or default_threads(model))
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    device = pick_device(s.device)
    model.to(device).eval()  # eval: no dropout; training here is only the weights changing

    train_idx, val_idx = stratified_split(data.targets, s.val_fraction, s.seed)
    flat = [t for ts in data.texts for t in ts]
    owner = np.array([j for j, ts in enumerate(data.texts) for _ in ts])
    prompts_of = [np.flatnonzero(owner == j) for j in range(len(data.labels))]
    side = TextSide(model, s)
    cache = side.prepare(torch.from_numpy(tokenize(flat)).to(device))
    general = data.general if data.general is not None and data.general.queries else None
    g_tokens = torch.from_numpy(tokenize(general.queries)).to(device) if general else None

    vecs = torch.from_numpy(np.ascontiguousarray(data.vectors, dtype=np.float32)).to(device)
    vecs = F.normalize(vecs, dim=-1)
    x_train, x_val = vecs[torch.from_numpy(train_idx)], vecs[torch.from_numpy(val_idx)]
    y = torch.from_numpy(data.targets[train_idx].astype(np.int64)).to(device)
    z = torch.where(y == POSITIVE, 1.0, -1.0)  # unknown pairs are (weak) negatives
    w = torch.where(y == UNKNOWN, s.unknown_weight, 1.0)
    owner_t = torch.from_numpy(owner).to(device)

    def label_vectors():
        """Prompt-ensemble vector per label (the mean of its prompts' unit vectors)."""
        with torch.no_grad():
            t = side.encode(cache)
            sums = torch.zeros(len(data.labels), t.shape[1], device=device).index_add_(
                0, owner_t, t
            )
            return F.normalize(sums, dim=-1)

    def probs(x, t):
        with torch.no_grad():
            return torch.sigmoid(x @ t.T * model.logit_scale.exp() + model.logit_bias).cpu().numpy()

    def general_vectors():
        return side.encode_texts(g_tokens).cpu().numpy() if general else None

    y_val = data.targets[val_idx]
    t0 = label_vectors()
    before = label_report(probs(x_val, t0), y_val, data.labels)
    g_before = general_vectors()
    best_map, best_step, best_state = _mean(r["ap"] for r in before.values()), 0, side.state()
    history = [dict(step=0, val_map=best_map)]
    if progress:
        progress(dict(event="eval", step=0, val_map=best_map))

    opt = torch.optim.AdamW(side.params, lr=s.learning_rate(), weight_decay=s.weight_decay)
    bad_evals, step = 0, 0
    for step in range(1, s.max_steps + 1):
        if cancel is not None and cancel():
            raise Cancelled("training cancelled; nothing was written")
        rows = torch.from_numpy(np.array([rng.choice(p) for p in prompts_of])).to(device)
        text = side.encode(cache, rows)  # [L, D], one prompt per label this step
        logits = x_train @ text.T * model.logit_scale.exp() + model.logit_bias
        # The sigmoid loss (Zhai et al. 2023): every (image, label) pair is its own binary
        # problem, so a photo may have any number of positive labels.
        loss = -(w * F.logsigmoid(z * logits)).sum() / x_train.shape[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        rec = dict(event="step", step=step, loss=loss.item())
        if step % s.eval_every == 0 or step == s.max_steps:
            report = label_report(probs(x_val, label_vectors()), y_val, data.labels)
            val_map = _mean(r["ap"] for r in report.values())
            rec.update(event="eval", val_map=val_map)
            history.append(dict(step=step, loss=rec["loss"], val_map=val_map))
            if val_map > best_map + 1e-6:
                best_map, best_step, best_state, bad_evals = val_map, step, side.state(), 0
            else:
                bad_evals += 1
        if progress:
            progress(rec)
        if bad_evals >= s.patience:
            break
    side.load(best_state)
    side.merge()
    after = label_report(probs(x_val, label_vectors()), y_val, data.labels)
    g_after = general_vectors()
    metrics: dict[str, Any] = dict(
        labels={lab: {f"{k}_before": before[lab][k] for k in ("ap", "recall", "precision")}
                | {f"{k}_after": after[lab][k] for k in ("ap", "recall", "precision")}
                | {"val_positives": after[lab]["positives"], "val_negatives": after[lab]["negatives"]}
                for lab in data.labels},
        map_before=_mean(r["ap"] for r in before.values()),
        map_after=_mean(r["ap"] for r in after.values()),
        threshold=THRESHOLD, n_train=int(len(train_idx)), n_val=int(len(val_idx)),
        steps=step, best_step=best_step, train_s=round(time.monotonic() - started, 2), device=device,
        trainable_params=int(sum(p.numel() for p in side.params)),
    )  # fmt: skip
    if g_before is not None:
        metrics["general"] = general_report(g_before, g_after, general)
    model.to("cpu")
    return FinetuneResult(metrics=metrics, history=history, settings=asdict(s))
