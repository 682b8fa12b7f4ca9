"""Browse by tag: the photos carrying some tags, best first, without a text query.

Ranking: photos the user confirmed for the first tag come first, then by the first tag's
probability under the active model (the same number `tag photos` shows), then by id so
pages are stable. The other filters narrow the set exactly as they do for a text search.
"""

from __future__ import annotations

import numpy as np

from . import tagstore as S
from .scoring import sigmoid
from .tagging import Tagger


def browse(
    db, model, space_id: int, first: tuple[str, str], ids: set[int], k: int
) -> list[tuple[int, float]]:
    """The best `k` of `ids` (photos already known to carry the tags) as (image id, score),
    ranked by the `first` (vocabulary, label) tag.

    Photos without a stored vector (indexed under another model only) rank last with score 0."""
    if not ids:
        return []
    tg = Tagger(db, model, space_id)
    sv = S.load(db, first[0])
    sl = sv.label(first[1])
    plan = tg.plan(sv)
    j = plan.index(sl.id)
    cand = sorted(ids)
    all_ids, x = tg.vectors()  # cached per space: cheaper than fetching 100,000s of rows by id
    mask = np.isin(all_ids, np.fromiter(ids, np.int64, len(ids)))
    probs: dict[int, float] = {}
    if mask.any():
        p = sigmoid(plan.logits(tg.scoring, x[mask])[:, j])
        probs = dict(zip(all_ids[mask].tolist(), p.tolist(), strict=True))
    confirmed = set(S.answers(db, [sl.id])[sl.id][0])
    ranked = sorted(cand, key=lambda i: (i not in confirmed, -probs.get(i, 0.0), i))
    return [(i, probs.get(i, 0.0)) for i in ranked[:k]]
