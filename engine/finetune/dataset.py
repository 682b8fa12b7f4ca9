"""What SigLIT fine-tuning learns from: stored image vectors, label texts, a target matrix.

Plain numpy (no torch), so the engine can build it from the library database and
tests can build it from anything. Images are never decoded for training: the image
tower is locked, so the vectors already in the database are the image side's output.

``targets[i, j]`` says what is known about image i and label j: 1 (the label applies:
a confirmed tag, or the photo lies in the label's folder), 0 (it does not: a rejected
tag, or a photo in another label's folder) or -1 (nobody said). Any number of labels
may apply to one photo; the sigmoid loss treats every (image, label) pair on its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import TrainingDataError

POSITIVE, NEGATIVE, UNKNOWN = 1, 0, -1

# Per label: enough positives to learn from and to check on. With VAL_FRACTION 0.3 the
# 10 positives split 7 (train) / 3 (validation); fewer make validation AP meaningless.
MIN_POSITIVES = 10
MIN_NEGATIVES = 10
VAL_FRACTION = 0.3


@dataclass
class GeneralCheck:
    """Queries outside the user's labels, to make forgetting visible.

    ``truth`` (bool [G, Q]) is known only for synthetic worlds; without it the check
    measures how much search results for these queries change against the base model.
    """

    queries: list[str]
    gallery: np.ndarray  # float32 [G, D] stored vectors to search
    truth: np.ndarray | None = None


@dataclass
class TrainingSet:
    image_ids: np.ndarray  # int64 [N]
    vectors: np.ndarray  # float32 [N, D], L2-normalised stored image vectors
    labels: list[str]
    texts: list[list[str]]  # per label: its prompt texts (an ensemble; at least one)
    targets: np.ndarray  # int8 [N, L]: POSITIVE, NEGATIVE or UNKNOWN
    space: str  # the image space the vectors belong to
    source: str = ""  # "folders:/path" | "vocab:name" | "world" ...
    general: GeneralCheck | None = None
    notes: list[str] = field(default_factory=list)  # what was skipped and why

    def validate(self) -> None:
        """Raise TrainingDataError on inconsistent shapes or values."""
        n, labels = len(self.image_ids), len(self.labels)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != n:
            raise TrainingDataError(f"vectors have shape {self.vectors.shape}, expected [{n}, D]")
        if self.targets.shape != (n, labels):
            raise TrainingDataError(
                f"targets have shape {self.targets.shape}, expected {(n, labels)}"
            )
        if len(self.texts) != labels or any(not t for t in self.texts):
            raise TrainingDataError("every label needs at least one prompt text")
        if len(set(self.labels)) != labels:
            raise TrainingDataError("label names must be unique")
        if not np.isin(self.targets, (POSITIVE, NEGATIVE, UNKNOWN)).all():
            raise TrainingDataError("targets may only hold 1, 0 or -1")
        if not np.isfinite(self.vectors).all():
            raise TrainingDataError("some stored image vectors are not finite")

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label: how many positive, negative and unknown photos."""
        return {
            lab: {
                "positive": int((self.targets[:, j] == POSITIVE).sum()),
                "negative": int((self.targets[:, j] == NEGATIVE).sum()),
                "unknown": int((self.targets[:, j] == UNKNOWN).sum()),
            }
            for j, lab in enumerate(self.labels)
        }

    def check_enough(self, unknown_as_negative: bool = True) -> None:
        """Refuse, naming every label that falls short and by how much."""
        if not self.labels:
            raise TrainingDataError("there are no labels to train on")
        short = []
        for lab, c in self.counts().items():
            neg = c["negative"] + (c["unknown"] if unknown_as_negative else 0)
            if c["positive"] < MIN_POSITIVES:
                short.append(
                    f"'{lab}' has {c['positive']} photos, needs at least {MIN_POSITIVES} "
                    f"({MIN_POSITIVES - c['positive']} more)"
                )
            elif neg < MIN_NEGATIVES:
                short.append(
                    f"'{lab}' has {neg} photos that are not '{lab}', needs at least {MIN_NEGATIVES}"
                )
        if short:
            raise TrainingDataError(
                "not enough tagged photos to fine-tune: "
                + "; ".join(short)
                + f". Each label needs {MIN_POSITIVES} confirmed photos "
                f"(about {round(MIN_POSITIVES * (1 - VAL_FRACTION))} to learn from and "
                f"{round(MIN_POSITIVES * VAL_FRACTION)} to check the result on)."
            )

    def fingerprint(self) -> str:
        """sha256 of everything training sees: same fingerprint, same training data."""
        h = hashlib.sha256()
        meta = {"space": self.space, "labels": self.labels, "texts": self.texts}
        h.update(json.dumps(meta, ensure_ascii=False, sort_keys=True).encode())
        for a in (
            self.image_ids.astype("<i8"),
            self.targets.astype("i1"),
            self.vectors.astype("<f4"),
        ):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def stratified_split(
    targets: np.ndarray, val_fraction: float = VAL_FRACTION, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train/validation indices, stratified per label (multi-label aware).

    Labels are served rarest first (the idea of Sechidis et al.'s iterative
    stratification): a label's not-yet-placed positives fill validation up to
    ``round(val_fraction * positives)`` (at least one), the rest go to training.
    Photos with no positive label are split by the same fraction. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    n, n_labels = targets.shape
    side = np.full(n, -1, dtype=np.int8)  # -1 unplaced, 0 train, 1 validation
    pos = targets == POSITIVE
    for j in np.argsort(pos.sum(0), kind="stable"):
        rows = np.flatnonzero(pos[:, j])
        if len(rows) == 0:
            continue
        want = max(1, int(round(val_fraction * len(rows)))) if len(rows) > 1 else 0
        need = want - int((side[rows] == 1).sum())
        free = rng.permutation(rows[side[rows] == -1])
        take = max(0, min(need, len(free)))
        side[free[:take]] = 1
        side[free[take:]] = 0
    rest = rng.permutation(np.flatnonzero(side == -1))
    k = int(round(val_fraction * len(rest)))
    side[rest[:k]] = 1
    side[rest[k:]] = 0
    return np.flatnonzero(side == 0), np.flatnonzero(side == 1)
