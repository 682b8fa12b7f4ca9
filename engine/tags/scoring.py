"""Zero-shot tagging from stored image vectors: scores, thresholds, learning from answers.

How a photo gets a probability for a label
------------------------------------------
A label's text vector is the mean of the unit text vectors of its prompts (the
vocabulary's templates applied to its name and synonyms, or its own prompts), made unit
length again: the CLIP paper's prompt ensemble. It is computed once per model and kept
in the database (``label_state.text_vec``), so re-tagging needs neither the text encoder
nor the images: only the stored image vectors.

* **SigLIP family** (sigmoid-trained): ``p = sigmoid(scale * cos + bias)`` with the
  model's own ``logit_scale`` and ``logit_bias``. SigLIP was trained to make exactly this
  an independent per-label probability, so labels do not compete and a photo may carry
  many of them.
* **CLIP family** (softmax-trained): a softmax over the whole vocabulary makes labels
  compete (and its values shrink as the vocabulary grows), so each label is instead
  scored by a two-way softmax against a "none of these" prototype (the mean of a few
  generic prompts, ``NONE_PROMPTS``): ``p = sigmoid(scale * (cos(x, label) - cos(x, none)))``
  with the model's ``logit_scale`` (100 when it has none). ``p > 0.5`` reads "more like
  the label than like a generic photo"; it stays independent per label and does not
  depend on the vocabulary's size.

Thresholds
----------
A label's threshold is, in order: the user's (a slider), else one calibrated from the
user's answers, else the label's own from the vocabulary file, else the vocabulary's,
else the model's own (``tag_threshold`` in its model.json, where one was measured), else
the family default (``FAMILY_THRESHOLD``). The default for SigLIP is 0.1, not 0.5:
SigLIP is trained with one positive among many negatives, so real matches commonly get
probabilities well under 0.5 while unrelated labels sit near zero. A model trained with
a small batch and a low logit scale, like the bundled demo model, spreads its
probabilities wider, so its threshold is measured when it is made.

Learning from answers (training-free)
-------------------------------------
Confirmed and rejected photos refine a label in three ways, all from stored vectors:

1. the label's vector moves towards its confirmed photos and away from its rejected ones
   (Rocchio; the text prior keeps weight 1 and the examples' pull grows as
   ``n / (n + 2)``), measured from the library's mean vector so that the offset every
   photo vector shares cancels out;
2. an example cache in the spirit of Tip-Adapter (Zhang et al. 2022) and APE: the
   logit gains ``alpha * w * (mean_k exp(-beta (1 - x.k+)) - mean_k exp(-beta (1 - x.k-)))``
   over the confirmed (k+) and rejected (k-) photos' vectors, ``w = n / (n + 2)`` so a
   single example does not swamp the text prior;
3. the threshold is refitted: a one-parameter logistic fit of "confirmed" on the
   refined logit (slope 1, as the logit is already the model's own scale), with a
   Gaussian prior on the threshold centred on the default, so that a few answers move
   it a little and many move it a lot. Each answered photo is scored leave-one-out (its
   own vector out of the prototype and the cache), or the fit would see perfect separation.

The constants were chosen on the demo world (``photosift bench tagging``), not on the
photos they are measured on.

Answers always win: a confirmed photo carries the tag, a rejected one never does,
whatever the scores, the thresholds or the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vocab import VocabularyError

FAMILY_THRESHOLD = {"siglip": 0.1, "clip": 0.5}
CLIP_DEFAULT_SCALE = 100.0
NONE_PROMPTS = ("a photo.", "a photo of something.", "an image.", "a picture of an object.")
CACHE_ALPHA = 6.0  # logit units added by a fully trusted, perfectly similar example
CACHE_BETA = 5.5  # sharpness of the example affinity (Tip-Adapter's default)
CACHE_PRIOR_N = 2.0  # w = n / (n + CACHE_PRIOR_N)
PROTO_GAMMA = 1.0  # how far answers move the label's vector (Rocchio), in units of the prior
PRIOR_SIGMA = 1.5  # logits: how far a handful of answers may move a threshold

def logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))



# -- scoring -----------------------------------------------------------------------------------


@dataclass
class Scoring:
    """How cosines become logits for one model (see the module docstring)."""

    family: str
    scale: float
    bias: float
    none_vec: np.ndarray | None = None  # CLIP family: the "none of these" prototype
    threshold: float | None = None  # the model's own default threshold, where it has one

    @classmethod
    def for_model(cls, model) -> Scoring:
        spec = model.spec
        if spec.family == "siglip":
            if spec.logit_scale is None or spec.logit_bias is None:
                raise VocabularyError(
                    f"model {spec.key!r} is a SigLIP model without logit_scale/logit_bias in its model.json"
                )
            return cls("siglip", float(spec.logit_scale), float(spec.logit_bias),
                       threshold=spec.tag_threshold)  # fmt: skip
        none = model.encode_texts(list(NONE_PROMPTS)).mean(0)
        none = (none / np.linalg.norm(none)).astype(np.float32)
        return cls(spec.family, float(spec.logit_scale or CLIP_DEFAULT_SCALE), 0.0, none,
                   threshold=spec.tag_threshold)  # fmt: skip

    def logits(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """x [n, d] image vectors, t [L, d] label vectors -> float32 logits [n, L]."""
        cos = x @ t.T
        if self.none_vec is not None:
            cos -= (x @ self.none_vec)[:, None]
        cos *= np.float32(self.scale)
        cos += np.float32(self.bias)
        return cos

    def default_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return FAMILY_THRESHOLD.get(self.family, 0.5)


@dataclass
class LabelCache:
    """The example cache of one label: its answered photos' vectors."""

    pos: np.ndarray  # [n+, d]
    neg: np.ndarray  # [n-, d]
    pos_ids: list[int]
    neg_ids: list[int]
    text: np.ndarray | None = None  # the label's text vector (the prior)
    mean: np.ndarray | None = None  # the mean of every photo's vector in the library

    def direction(self, skip_pos: int | None = None, skip_neg: int | None = None) -> np.ndarray:
        """The label's vector moved towards its confirmed photos and away from its rejected
        ones (Rocchio): t + gamma (w+ (mean+ - m) - w- (mean- - m)), m the library mean, so the
        offset all photo vectors share (the modality gap) cancels out. Unit length."""
        assert self.text is not None and self.mean is not None
        v = self.text.astype(np.float64).copy()
        for keys, sign, skip in ((self.pos, 1.0, skip_pos), (self.neg, -1.0, skip_neg)):
            if skip is not None:
                keys = np.delete(keys, skip, axis=0)
            if len(keys):
                w = len(keys) / (len(keys) + CACHE_PRIOR_N)
                v += PROTO_GAMMA * sign * w * (keys.mean(0) - self.mean)
        return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)

    def term(
        self, x: np.ndarray, alpha: float | None = None, beta: float | None = None
    ) -> np.ndarray:
        """The logit added for image vectors x [n, d]."""
        alpha = CACHE_ALPHA if alpha is None else alpha
        beta = CACHE_BETA if beta is None else beta
        out = np.zeros(len(x), np.float32)
        for keys, sign in ((self.pos, 1.0), (self.neg, -1.0)):
            if len(keys):
                n = len(keys)
                aff = np.exp(-beta * (1.0 - x @ keys.T)).mean(1)
                out += np.float32(sign * alpha * n / (n + CACHE_PRIOR_N)) * aff.astype(np.float32)
        return out

    def loo_terms(
        self, alpha: float | None = None, beta: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The cache term of each answered photo with itself left out of the cache."""

        def drop(keys, i):
            return np.delete(keys, i, axis=0)

        pos = np.array([LabelCache(drop(self.pos, i), self.neg, [], []).term(self.pos[i : i + 1], alpha, beta)[0]
                        for i in range(len(self.pos))], np.float32)  # fmt: skip
        neg = np.array([LabelCache(self.pos, drop(self.neg, i), [], []).term(self.neg[i : i + 1], alpha, beta)[0]
                        for i in range(len(self.neg))], np.float32)  # fmt: skip
        return pos, neg


def fit_threshold(
    pos: np.ndarray, neg: np.ndarray, prior: float, sigma: float | None = None
) -> float:
    """The logit threshold t maximising sum log s(p - t) + sum log s(t - n) - (t - prior)^2 / 2 sigma^2.

    Concave in t, so Newton's method converges from the prior in a few steps."""
    sigma = PRIOR_SIGMA if sigma is None else sigma
    t = float(prior)
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    for _ in range(50):
        sp = sigmoid(pos - t)  # d/dt log s(p - t) = -(1 - s(p - t))
        sn = sigmoid(t - neg)  # d/dt log s(t - n) = 1 - s(t - n)
        grad = -(1 - sp).sum() + (1 - sn).sum() - (t - prior) / sigma**2
        hess = -(sp * (1 - sp)).sum() - (sn * (1 - sn)).sum() - 1 / sigma**2
        step = grad / hess
        t -= step
        if abs(step) < 1e-6:
            break
    return t


# -- per-vocabulary plans ------------------------------------------------------------------------


@dataclass
class LabelPlan:
    id: int
    name: str
    threshold: float  # probability
    source: str  # default | calibrated | user
    cache: LabelCache | None = None


@dataclass
class Plan:
    """Everything needed to tag photos with one vocabulary under one model."""

    vocab_id: int
    vocab: str
    version: int
    labels: list[LabelPlan]
    t: np.ndarray  # [L, d] label text vectors
    thr: np.ndarray  # [L] logit thresholds
    default: float
    auto: bool = True  # False: no automatic tags, only confirmed answers carry its labels

    def logits(self, scoring: Scoring, x: np.ndarray) -> np.ndarray:
        z = scoring.logits(x, self.t)
        for j, lp in enumerate(self.labels):
            if lp.cache is not None:
                z[:, j] += lp.cache.term(x)
        return z

    def index(self, label_id: int) -> int:
        for j, lp in enumerate(self.labels):
            if lp.id == label_id:
                return j
        raise KeyError(label_id)
