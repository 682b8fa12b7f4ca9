"""Browse by tag: the photos carrying some tags, best first, without a text query.

Ranking: photos the user confirmed for the first tag come first, then by the first tag's
probability under the active model (the same number `tag photos` shows), then by id so
pages are stable. The other filters narrow the set exactly as they do for a text search.
"""

from __future__ import annotations

import numpy as np

from . import tagstore as S


def browse(
    db, model, space_id: int, first: tuple[str, str], ids: set[int], k: int
) -> list[tuple[int, float]]:
    """The best `k` of `ids` (photos already known to carry the tags) as (image id, score),
    ranked by the `first` (vocabulary, label) tag.

    Photos without a stored vector (indexed under another model only) rank last with score 0."""
    from .tagging import Tagger, sigmoid

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


PREVIEW_HITS = 500  # moved photos returned per side by a threshold preview


def moved_hits(
    db, tagger, plan, j: int, moved: list[int], state: str, cap: int = PREVIEW_HITS
) -> list[dict]:
    """TagHits (image_id, score, state, path, online) for photos a threshold change moves, best
    score first, at most `cap`: the app shows them without asking again. `state` is their
    state now ("auto" for photos that would leave, "none" for those that would enter)."""
    if not moved:
        return []
    ids, x = tagger.vectors()
    mask = np.isin(ids, np.asarray(moved, np.int64))
    from .tagging import sigmoid

    p = sigmoid(plan.logits(tagger.scoring, x[mask])[:, j]) if mask.any() else np.zeros(0)
    probs = dict(zip(ids[mask].tolist(), p.tolist(), strict=True))
    ranked = sorted(moved, key=lambda i: (-probs.get(i, 0.0), i))
    info = db.describe_images(ranked[: cap + 16])  # a few spare: a file may just have gone
    out = []
    for i in ranked:
        if len(out) >= cap:
            break
        if i in info:
            out.append(dict(image_id=i, score=round(probs.get(i, 0.0), 6), state=state,
                            path=info[i]["path"], online=info[i]["online"]))  # fmt: skip
    return out
