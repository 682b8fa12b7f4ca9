"""Tagging a library from its stored image vectors: each vocabulary's plan run over every photo
(in chunks, no decoding, no re-embedding), the user's answers (which always win: a confirmed
photo carries the tag, a rejected one never does), threshold changes and their previews, and
what the app lists (a photo's tags, a label's photos, counts per label).

How a cosine becomes a probability, which threshold applies and what answers teach a label is
engine.tags.scoring's (see its docstring).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import QueryError
from . import tagstore as S
from .scoring import LabelCache, LabelPlan, Plan, Scoring, fit_threshold, logit, sigmoid
from .vocab import Label, VocabularyError, prompt_texts

TEXT_BATCH = 256
CHUNK = 16_384  # image vectors scored at a time (bounded memory for any library size)
MAX_RETRIES = 5


def texts_sig(texts: list[str]) -> str:
    return hashlib.blake2b(
        json.dumps(texts, ensure_ascii=False).encode(), digest_size=12
    ).hexdigest()


# -- the contract fine-tuning codes against ---------------------------------------------------


def confirmed_examples(db, vocab: str) -> dict[str, tuple[list[int], list[int]]]:
    """Label name -> (image ids the user confirmed, image ids the user rejected).

    Only photos still in the library are listed (answers are kept by content hash)."""
    sv = S.load(db, vocab)
    ans = S.answers(db, [sl.id for sl in sv.labels])
    return {sl.label.name: ans[sl.id] for sl in sv.labels}


def label_texts(db, vocab: str) -> dict[str, list[str]]:
    """Label name -> the prompt texts whose text vectors make the label's vector."""
    sv = S.load(db, vocab)
    return {sl.label.name: prompt_texts(sl.label, sv.vocab.templates) for sl in sv.labels}


# -- running a vocabulary over the library ------------------------------------------------------


@dataclass
class RunReport:
    vocabularies: int = 0
    labels: int = 0
    photos: int = 0
    assigned: int = 0
    added: int = 0
    removed: int = 0
    seconds: float = 0.0
    added_keys: list[np.ndarray] = field(default_factory=list)  # label_id << 32 | image_id
    removed_keys: list[np.ndarray] = field(default_factory=list)

    @property
    def entered(self) -> dict[int, list[int]]:
        """label id -> image ids that gained the automatic tag (built on demand: it is rarely read)."""
        return _by_label(self.added_keys)

    @property
    def left(self) -> dict[int, list[int]]:
        return _by_label(self.removed_keys)

    def as_dict(self) -> dict:
        return dict(vocabularies=self.vocabularies, labels=self.labels, photos=self.photos,
                    assigned=self.assigned, added=self.added, removed=self.removed,
                    seconds=round(self.seconds, 3))  # fmt: skip


_text_cache_lock = threading.Lock()
_text_cache: dict[tuple[str, str], np.ndarray] = {}  # (model key, texts sig) -> unit vector
_vec_cache_lock = threading.Lock()
_mean_cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}  # (db, space) -> X, mean(X)
_vec_cache: dict[
    tuple[str, int], tuple[int, np.ndarray, np.ndarray]
] = {}  # (db, space) -> seq, ids, X


class Tagger:
    """Tags a library's photos with its vocabularies, under one model.

    `model` needs ``spec`` (family, key, logit_scale, logit_bias) and ``encode_texts``
    (engine.models.runtime.OnnxModel has them); `db` is this thread's LibraryDB.
    """

    def __init__(self, db, model, space_id: int, *, pairs: bool = False):
        self.db, self.model, self.space_id = db, model, space_id
        # Lists of photos (photos, counts) show a RAW + JPEG pair once, as its JPEG.
        self.pairs = pairs
        self.model_key = model.spec.key
        self.model_id = S.model_id(db, self.model_key)
        self._scoring: Scoring | None = None

    @property
    def scoring(self) -> Scoring:
        if self._scoring is None:
            self._scoring = Scoring.for_model(self.model)
        return self._scoring

    # -- label vectors ------------------------------------------------------------------------

    def label_vectors(self, sv: S.StoredVocab) -> np.ndarray:
        """[L, d] unit vectors, one per label: cached in memory and in the database."""
        texts = [prompt_texts(sl.label, sv.vocab.templates) for sl in sv.labels]
        sigs = [texts_sig(t) for t in texts]
        states = S.label_states(self.db, self.model_id, [sl.id for sl in sv.labels])
        out: list[np.ndarray | None] = []
        missing: list[int] = []
        with _text_cache_lock:
            for i, (sl, sig) in enumerate(zip(sv.labels, sigs, strict=True)):
                v = _text_cache.get((self.model_key, sig))
                st = states.get(sl.id)
                if v is None and st is not None and st["sig"] == sig and st["vec"] is not None:
                    v = st["vec"]
                    _text_cache[(self.model_key, sig)] = v
                out.append(v)
                if v is None or st is None or st["sig"] != sig:
                    missing.append(i)
        todo = [i for i in missing if out[i] is None]
        if todo:
            flat = sorted({t for i in todo for t in texts[i]})
            vecs: dict[str, np.ndarray] = {}
            for k in range(0, len(flat), TEXT_BATCH):
                part = flat[k : k + TEXT_BATCH]
                for t, v in zip(part, self.model.encode_texts(part), strict=True):
                    vecs[t] = v
            with _text_cache_lock:
                for i in todo:
                    m = np.mean([vecs[t] for t in texts[i]], axis=0)
                    out[i] = (m / max(np.linalg.norm(m), 1e-12)).astype(np.float32)
                    _text_cache[(self.model_key, sigs[i])] = out[i]
        if missing:
            S.save_text_vectors(
                self.db, self.model_id, [(sv.labels[i].id, sigs[i], out[i]) for i in missing]
            )
        d = self.model.spec.embed_dim
        return np.stack(out).astype(np.float32) if out else np.zeros((0, d), np.float32)

    def plan(self, sv: S.StoredVocab) -> Plan:
        t = self.label_vectors(sv)
        ids = [sl.id for sl in sv.labels]
        states = S.label_states(self.db, self.model_id, ids)
        ans = S.answers(self.db, ids)
        answered = sorted({i for p, n in ans.values() for i in (*p, *n)})
        vecs = self.db.vectors_for(self.space_id, answered) if answered else {}
        default = (
            sv.vocab.threshold
            if sv.vocab.threshold is not None
            else self.scoring.default_threshold()
        )
        labels = []
        for sl in sv.labels:
            st = states.get(sl.id, {})
            pos_ids, neg_ids = ans[sl.id]
            pos_ids = [i for i in pos_ids if i in vecs]
            neg_ids = [i for i in neg_ids if i in vecs]
            cache = None
            if pos_ids or neg_ids:
                cache = LabelCache(_stack(vecs, pos_ids, t.shape[1]), _stack(vecs, neg_ids, t.shape[1]),
                                   pos_ids, neg_ids, t[len(labels)].copy(), self.library_mean())  # fmt: skip
                t[len(labels)] = cache.direction()
            if st.get("user") is not None:
                thr, src = st["user"], "user"
            elif st.get("calibrated") is not None and cache is not None:
                thr, src = st["calibrated"], "calibrated"
            elif sl.label.threshold is not None:
                thr, src = sl.label.threshold, "default"
            else:
                thr, src = default, "default"
            labels.append(LabelPlan(sl.id, sl.label.name, float(thr), src, cache))
        thr = np.array([logit(lp.threshold) for lp in labels], np.float32)
        return Plan(sv.id, sv.name, sv.version, labels, t, thr, float(default), sv.vocab.auto)

    def prior_threshold(self, sv: S.StoredVocab, label: Label) -> float:
        if label.threshold is not None:
            return label.threshold
        return (
            sv.vocab.threshold
            if sv.vocab.threshold is not None
            else self.scoring.default_threshold()
        )

    # -- stored image vectors --------------------------------------------------------------------

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(image ids [n], vectors [n, d]) of every photo in this space, cached until it changes."""
        key = (str(getattr(self.db, "path", "")), self.space_id)
        seq = self.db.space_seq(self.space_id)
        with _vec_cache_lock:
            hit = _vec_cache.get(key)
            if hit is not None and hit[0] == seq:
                return hit[1], hit[2]
        ids_l, xs = [], []
        for ids, x in self.db.iter_vectors(self.space_id, chunk=20_000):
            ids_l.append(ids)
            xs.append(x)
        d = self.model.spec.embed_dim
        ids = np.concatenate(ids_l) if ids_l else np.zeros(0, np.int64)
        x = np.concatenate(xs) if xs else np.zeros((0, d), np.float32)
        with _vec_cache_lock:
            _vec_cache[key] = (seq, ids, x)
        return ids, x

    def library_mean(self) -> np.ndarray:
        key = (str(getattr(self.db, "path", "")), self.space_id)
        ids, x = self.vectors()
        with _vec_cache_lock:
            hit = _mean_cache.get(key)
            if hit is not None and hit[0] is x:
                return hit[1]
        m = (
            x.mean(0).astype(np.float32)
            if len(x)
            else np.zeros(self.model.spec.embed_dim, np.float32)
        )
        with _vec_cache_lock:
            _mean_cache[key] = (x, m)
        return m

    # -- tagging -------------------------------------------------------------------------------

    def _compute(
        self,
        plan: Plan,
        ids: np.ndarray,
        x: np.ndarray,
        cols: list[int] | None = None,
        scored: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Keys (label_id << 32 | image_id) of every (label, photo) at or over the threshold.

        `scored(n)` is told how many photos are scored, after each chunk but the last."""
        if not plan.auto:  # answers alone carry its labels: nothing is automatic
            return np.zeros(0, np.int64)
        sub = plan if cols is None else _subplan(plan, cols)
        sc = self.scoring
        lids = np.array([lp.id for lp in sub.labels], np.int64)
        # scale * cos + bias >= thr  <=>  cos >= (thr - bias) / scale: one pass over the scores
        # instead of three. Labels with an example cache are compared in logits.
        cos_thr = ((sub.thr - np.float32(sc.bias)) / np.float32(sc.scale)).astype(np.float32)
        cached = [j for j, lp in enumerate(sub.labels) if lp.cache is not None]
        keys = []
        n_labels = len(sub.labels)
        for s in range(0, len(ids), CHUNK):
            xs = x[s : s + CHUNK]
            cos = xs @ sub.t.T
            if sc.none_vec is not None:
                cos -= (xs @ sc.none_vec)[:, None]
            hit = np.greater_equal(cos, cos_thr[None, :], out=np.empty(cos.shape, bool))
            for j in cached:
                z = sc.scale * cos[:, j] + sc.bias + sub.labels[j].cache.term(xs)
                hit[:, j] = z >= sub.thr[j]
            # flatnonzero on the flat mask is ~20x faster than a 2-D nonzero (one index array
            # to fill, not two); row and column come back from it with one divmod
            r, c = (
                np.divmod(np.flatnonzero(hit), n_labels)
                if n_labels
                else (np.zeros(0, np.int64),) * 2
            )
            if len(r):
                keys.append((lids[c] << 32) | ids[s + r])
            if scored is not None and s + CHUNK < len(ids):
                scored(s + CHUNK)
        return np.sort(np.concatenate(keys)) if keys else np.zeros(0, np.int64)

    def run(self, vocab: str | None = None, *, labels: list[str] | None = None,
            progress: Callable[[int, int], None] | None = None) -> RunReport:  # fmt: skip
        """Re-tag the library from stored vectors (all vocabularies, or one; all its labels or some).

        A vocabulary edited while this runs is noticed before writing, and tagged again.
        `progress(done, total)` counts photos (each once per vocabulary); a vocabulary's last
        chunk of photos counts as done only once its tags are written."""
        t0 = time.perf_counter()
        rep = RunReport()
        names = [vocab] if vocab is not None else S.vocab_names(self.db)
        ids, x = self.vectors()
        rep.photos = len(ids)
        total = len(ids) * len(names)
        for n, name in enumerate(names):
            for _attempt in range(MAX_RETRIES):
                sv = S.load(self.db, name)
                plan = self.plan(sv)
                cols = None if labels is None else [plan.index(sv.label(lab).id) for lab in labels]
                base = n * len(ids)
                scored = None if progress is None else lambda k: progress(base + k, total)  # noqa: B023
                new = self._compute(plan, ids, x, cols, scored)
                if self._write(plan, ids, new, cols, rep):
                    rep.vocabularies += 1
                    rep.labels += len(plan.labels) if cols is None else len(cols)
                    break
                name = _current_name(self.db, sv.id)  # it may have been renamed
                if name is None:
                    break  # deleted meanwhile: nothing to tag
            else:
                raise VocabularyError(
                    f"vocabulary {name!r} kept changing while it was being tagged; try again"
                )
            if progress is not None:
                progress((n + 1) * len(ids), total)
        rep.seconds = time.perf_counter() - t0
        return rep

    def _write(
        self, plan: Plan, ids: np.ndarray, new: np.ndarray, cols: list[int] | None, rep: RunReport
    ) -> bool:
        label_ids = (
            [lp.id for lp in plan.labels] if cols is None else [plan.labels[c].id for c in cols]
        )
        with self.db.transaction(), S.big_cache(self.db):
            if S.version(self.db, plan.vocab_id) != plan.version:
                return False  # edited since the plan was made: compute again
            old = S.auto_tags(self.db, self.model_id, label_ids)
            # Photos indexed after `ids` was read were tagged by the indexing hook: leave them be.
            old = old[np.isin(old & 0xFFFFFFFF, ids)]
            added = np.setdiff1d(new, old, assume_unique=True)
            removed = np.setdiff1d(old, new, assume_unique=True)
            S.write_auto_tags(self.db, self.model_id, added, removed)
            if cols is None:
                self.db.conn.execute(
                    "INSERT OR REPLACE INTO tag_runs(vocab_id, model_id, version, at) VALUES(?,?,?,?)",
                    (plan.vocab_id, self.model_id, plan.version, time.time()),
                )
        rep.assigned += len(new)
        rep.added += len(added)
        rep.removed += len(removed)
        rep.added_keys.append(added)
        rep.removed_keys.append(removed)
        return True

    def ensure_current(self, vocab: str | None = None) -> RunReport | None:
        """Re-tag vocabularies whose automatic tags do not reflect their current version under
        this model (edited by another process, or a model switch). None when all are current."""
        stale = []
        for name in [vocab] if vocab else S.vocab_names(self.db):
            sv = S.load(self.db, name)
            row = self.db.conn.execute("SELECT version FROM tag_runs WHERE vocab_id=? AND model_id=?",
                                       (sv.id, self.model_id)).fetchone()  # fmt: skip
            if row is None or row[0] != sv.version:
                stale.append(sv.name)
        if not stale:
            return None
        rep = RunReport()
        for name in stale:
            r = self.run(name)
            for f in ("vocabularies", "labels", "assigned", "added", "removed", "seconds"):
                setattr(rep, f, getattr(rep, f) + getattr(r, f))
            rep.photos = r.photos
        return rep

    def tag_new(self, image_ids: np.ndarray, vecs: np.ndarray) -> int:
        """The indexing hook: tag photos just committed. Returns the tags added."""
        if len(image_ids) == 0:
            return 0
        total = 0
        ids = np.asarray(image_ids, np.int64)
        x = np.asarray(vecs, np.float32)
        for name in S.vocab_names(self.db):
            sv = S.load(self.db, name)
            row = self.db.conn.execute("SELECT version FROM tag_runs WHERE vocab_id=? AND model_id=?",
                                       (sv.id, self.model_id)).fetchone()  # fmt: skip
            if row is None or row[0] != sv.version:
                continue  # never tagged under this model: the next ensure_current does it all
            plan = self.plan(sv)
            keys = self._compute(plan, ids, x)
            with self.db.transaction():
                if S.version(self.db, sv.id) != plan.version:
                    continue
                S.write_auto_tags(self.db, self.model_id, keys, np.zeros(0, np.int64))
            total += len(keys)
        return total

    # -- thresholds and answers -------------------------------------------------------------------

    def threshold_change(
        self, vocab: str, label: str, threshold: float | None, *, preview: bool = False
    ) -> dict:
        """Move a label's threshold (None: back to calibrated/default). Reports who enters/leaves."""
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise VocabularyError(f"a threshold is a probability between 0 and 1, not {threshold}")
        self.ensure_current(vocab)
        sv = S.load(self.db, vocab)
        sl = sv.label(label)
        before = S.effective_ids(self.db, self.model_id, sl.id)
        if preview:
            plan = self.plan(sv)
            j = plan.index(sl.id)
            if threshold is not None:
                plan.labels[j].threshold, plan.labels[j].source = threshold, "user"
            else:
                st = S.label_states(self.db, self.model_id, [sl.id]).get(sl.id, {})
                has_cache = plan.labels[j].cache is not None
                if st.get("calibrated") is not None and has_cache:
                    plan.labels[j].threshold, plan.labels[j].source = st["calibrated"], "calibrated"
                else:
                    plan.labels[j].threshold, plan.labels[j].source = (
                        self.prior_threshold(sv, sl.label),
                        "default",
                    )
            plan.thr[j] = logit(plan.labels[j].threshold)
            ids, x = self.vectors()
            keys = self._compute(plan, ids, x, [j])
            conf, rej = S.answers(self.db, [sl.id])[sl.id]
            after = (set((keys & 0xFFFFFFFF).tolist()) - set(rej)) | set(conf)
            lp = plan.labels[j]
            entered, left = sorted(after - before), sorted(before - after)
            return dict(threshold=round(lp.threshold, 6), threshold_source=lp.source, entered=entered,
                        left=left, tagged=len(after), entered_total=len(entered), left_total=len(left),
                        entered_hits=moved_hits(self.db, self, plan, j, entered, "none"),
                        left_hits=moved_hits(self.db, self, plan, j, left, "auto"))  # fmt: skip
        else:
            # The threshold and the tags it gives, together (see answer).
            with self.db.transaction():
                S.set_threshold(self.db, self.model_id, sl.id, user=threshold)
                self.run(sv.name, labels=[sl.label.name])
            after = S.effective_ids(self.db, self.model_id, sl.id)
            plan = self.plan(S.load(self.db, sv.name))
            lp = plan.labels[plan.index(sl.id)]
        return dict(threshold=round(lp.threshold, 6), threshold_source=lp.source,
                    entered=sorted(after - before), left=sorted(before - after), tagged=len(after))  # fmt: skip

    def answer(self, vocab: str, label: str, image_ids: list[int], state: str) -> dict:
        """Record confirmations/rejections (state 'none' forgets them), recalibrate, re-tag the label."""
        codes = {"confirmed": S.CONFIRMED, "rejected": S.REJECTED, "none": None}
        if state not in codes:
            raise VocabularyError(f"an answer is confirmed, rejected or none, not {state!r}")
        self.ensure_current(vocab)
        sv = S.load(self.db, vocab)
        sl = sv.label(label)
        before = S.effective_ids(self.db, self.model_id, sl.id)
        # One transaction: a process killed in between must not leave answers (or a threshold)
        # whose label was never re-tagged, behind automatic tags still marked current.
        with self.db.transaction():
            n = S.set_answers(self.db, sl.id, list(image_ids), codes[state])
            self.recalibrate(sv, sl)
            self.run(sv.name, labels=[sl.label.name])
        after = S.effective_ids(self.db, self.model_id, sl.id)
        lp = self.plan(sv).labels[[s.id for s in sv.labels].index(sl.id)]
        return dict(answered=n, threshold=round(lp.threshold, 6), threshold_source=lp.source,
                    entered=sorted(after - before), left=sorted(before - after))  # fmt: skip

    def recalibrate(self, sv: S.StoredVocab, sl: S.StoredLabel) -> float | None:
        """Fit the label's threshold to its answers (leave-one-out scores). None: no answers."""
        plan = self.plan(sv)
        j = plan.index(sl.id)
        cache = plan.labels[j].cache
        if cache is None:
            S.set_threshold(self.db, self.model_id, sl.id, calibrated=None)
            return None
        # Leave-one-out: each answered photo is scored by the label as the other answers made it.
        lp, ln = cache.loo_terms()
        sc = self.scoring
        pos = np.array([sc.logits(cache.pos[i : i + 1], cache.direction(skip_pos=i)[None])[0, 0]
                        for i in range(len(cache.pos))], np.float32) + lp  # fmt: skip
        neg = np.array([sc.logits(cache.neg[i : i + 1], cache.direction(skip_neg=i)[None])[0, 0]
                        for i in range(len(cache.neg))], np.float32) + ln  # fmt: skip
        t = fit_threshold(pos, neg, logit(self.prior_threshold(sv, sl.label)))
        p = float(min(max(sigmoid(t), 1e-6), 1 - 1e-6))
        S.set_threshold(self.db, self.model_id, sl.id, calibrated=p)
        return p

    # -- reading tags -------------------------------------------------------------------------

    def photo_tags(
        self, image_id: int, vocab: str | None = None, *, all_labels: bool = False
    ) -> list[dict]:
        """The tags of one photo: in force (automatic or confirmed) and rejected; `all_labels` adds the rest."""
        self.ensure_current(vocab)
        vec = self.db.vectors_for(self.space_id, [image_id]).get(image_id)
        states = S.answers_for_image(self.db, image_id)
        auto = {r[0] for r in self.db.conn.execute(
            "SELECT label_id FROM auto_tags WHERE image_id=? AND model_id=?", (image_id, self.model_id))}  # fmt: skip
        out = []
        for name in [vocab] if vocab else S.vocab_names(self.db):
            sv = S.load(self.db, name)
            plan = self.plan(sv)
            probs = sigmoid(plan.logits(self.scoring, vec[None])[0]) if vec is not None else None
            for j, lp in enumerate(plan.labels):
                st = states.get(lp.id)
                state = (
                    "confirmed" if st == S.CONFIRMED else "rejected" if st == S.REJECTED else "auto"
                )
                if not all_labels and state == "auto" and lp.id not in auto:
                    continue
                out.append(dict(vocab=sv.name, label=lp.name, score=None if probs is None else round(float(probs[j]), 6),
                                state=state, threshold=round(lp.threshold, 6), tagged=state == "confirmed"
                                or (state == "auto" and lp.id in auto)))  # fmt: skip
        out.sort(key=lambda d: (not d["tagged"], -(d["score"] or 0)))
        return out

    def photos(
        self, vocab: str, label: str, state: str = "tagged", k: int = 200, offset: int = 0
    ) -> tuple[list[dict], int]:
        """Photos of a label, best score first: tagged (default), auto, confirmed, rejected or untagged."""
        self.ensure_current(vocab)
        sv = S.load(self.db, vocab)
        sl = sv.label(label)
        conf, rej = S.answers(self.db, [sl.id])[sl.id]
        auto = {r[0] for r in self.db.conn.execute(
            "SELECT image_id FROM auto_tags WHERE label_id=? AND model_id=?", (sl.id, self.model_id))}  # fmt: skip
        conf_s, rej_s = set(conf), set(rej)
        ids, x = self.vectors()
        plan = self.plan(sv)
        j = plan.index(sl.id)
        probs = sigmoid(plan.logits(self.scoring, x)[:, j]) if len(x) else np.zeros(0)
        live = set(self.db.live_image_ids(self.space_id).tolist())
        if state == "tagged":
            chosen = (auto - rej_s) | conf_s
        elif state == "auto":
            chosen = auto - rej_s - conf_s
        elif state == "confirmed":
            chosen = conf_s
        elif state == "rejected":
            chosen = rej_s
        elif state == "untagged":
            chosen = live - ((auto - rej_s) | conf_s)
        else:
            raise QueryError(f"unknown tag state {state!r}")
        chosen &= live
        if self.pairs:
            chosen -= self.db.hidden_raw_twins(self.space_id)
        pos = {int(i): n for n, i in enumerate(ids)}
        score = lambda i: float(probs[pos[i]]) if i in pos else None  # noqa: E731
        ranked = sorted(chosen, key=lambda i: (-(score(i) if score(i) is not None else -1), i))
        page = ranked[offset : offset + k]
        info = self.db.describe_images(page)
        hits = []
        for i in page:
            if i not in info:
                continue
            st = (
                "confirmed"
                if i in conf_s
                else "rejected"
                if i in rej_s
                else "auto"
                if i in auto
                else "none"
            )
            s = score(i)
            hits.append(dict(image_id=i, score=None if s is None else round(s, 6), state=st,
                             path=info[i]["path"], online=info[i]["online"]))  # fmt: skip
        return hits, len(chosen)

    def vocab_info(self, name: str) -> dict:
        """A vocabulary with, per label, the threshold in force, its source and its counts."""
        sv = S.load(self.db, name)
        plan = self.plan(sv)
        c = S.counts(self.db, self.model_id, [sl.id for sl in sv.labels])
        labels = [
            dict(name=sl.label.name, synonyms=list(sl.label.synonyms), prompts=list(sl.label.prompts),
                 threshold=round(lp.threshold, 6), threshold_source=lp.source,
                 confirmed=c[sl.id]["confirmed"], rejected=c[sl.id]["rejected"], tagged=c[sl.id]["tagged"])
            for sl, lp in zip(sv.labels, plan.labels, strict=True)
        ]  # fmt: skip
        return dict(vocab_summary(sv), label_list=labels, default_threshold=plan.default)

    def counts(self, vocab: str | None = None) -> list[dict]:
        self.ensure_current(vocab)
        hidden = self.db.hidden_raw_twins(self.space_id) if self.pairs else set()
        out = []
        for name in [vocab] if vocab else S.vocab_names(self.db):
            sv = S.load(self.db, name)
            c = S.counts(self.db, self.model_id, [sl.id for sl in sv.labels])
            if hidden:  # a pair is counted once, as the JPEG the lists show
                for sl in sv.labels:
                    c[sl.id]["tagged"] -= len(
                        S.effective_ids(self.db, self.model_id, sl.id) & hidden
                    )
            out += [dict(vocab=sv.name, label=sl.label.name, **c[sl.id]) for sl in sv.labels]
        return out


def vocab_summary(sv: S.StoredVocab) -> dict:
    return dict(name=sv.name, labels=len(sv.labels), templates=list(sv.vocab.templates),
                threshold=sv.vocab.threshold, updated_at=sv.updated_at, auto=sv.vocab.auto)  # fmt: skip


def _by_label(parts: list[np.ndarray]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for keys in parts:
        for k in keys.tolist():
            out.setdefault(k >> 32, []).append(k & 0xFFFFFFFF)
    return out


def _stack(vecs: dict[int, np.ndarray], ids: list[int], d: int) -> np.ndarray:
    return np.stack([vecs[i] for i in ids]) if ids else np.zeros((0, d), np.float32)


def _subplan(plan: Plan, cols: list[int]) -> Plan:
    return Plan(plan.vocab_id, plan.vocab, plan.version, [plan.labels[c] for c in cols], plan.t[cols],
                plan.thr[cols], plan.default, plan.auto)  # fmt: skip


def _current_name(db, vocab_id: int) -> str | None:
    row = S._conn(db).execute("SELECT name FROM vocabularies WHERE id=?", (vocab_id,)).fetchone()
    return row[0] if row else None


def tagged_image_ids(db, model_key: str, refs: list[tuple[str, str]]) -> set[int]:
    """Photos carrying every one of the (vocabulary, label) tags, under this model."""
    model = S.model_id(db, model_key)
    out: set[int] | None = None
    for vocab, label in refs:
        sl = S.load(db, vocab).label(label)
        ids = S.effective_ids(db, model, sl.id)
        out = ids if out is None else out & ids
    return out or set()


def resolve_tag(db, ref: str) -> tuple[str, str]:
    """'vocab/label' or a bare label that only one vocabulary has -> (vocab, label)."""
    names = S.vocab_names(db)
    if "/" in ref:
        v, _, lab = ref.partition("/")
        if v in names or any(n.casefold() == v.casefold() for n in names):
            sv = S.load(db, v)
            return sv.name, sv.label(lab).label.name
    found = []
    for n in names:
        sv = S.load(db, n)
        with contextlib.suppress(VocabularyError):
            found.append((sv.name, sv.label(ref).label.name))
    if not found:
        raise VocabularyError(f"no vocabulary has a label {ref!r} (write VOCABULARY/LABEL)")
    if len(found) > 1:
        raise VocabularyError(f"label {ref!r} is in several vocabularies ({', '.join(v for v, _ in found)}); "
                              f"write VOCABULARY/LABEL")  # fmt: skip
    return found[0]


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
