"""Search: text, example photos, or both, with negative terms and filters.

A query becomes one vector: the weighted sum of its positive parts (text and
example photos) minus a weighted negative text vector, re-normalised. Because
cosine is linear in the query, this ranks exactly like "similar to the
positives, penalised by similarity to the negatives".
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DecodeError, QueryError

MAX_QUERY_CHARS = 1000


@dataclass
class Filters:
    folders: list[str] = field(default_factory=list)
    date_from: str | None = None  # ISO date, inclusive
    date_to: str | None = None  # ISO date, inclusive
    exts: list[str] = field(default_factory=list)  # jpg, heic, png ...
    tags: list[tuple[str, str]] = field(default_factory=list)  # (vocabulary, label): all of them

    def active(self) -> bool:
        return bool(self.folders or self.date_from or self.date_to or self.exts)


@dataclass
class Query:
    text: str = ""
    like: list[str | int] = field(default_factory=list)  # example photos: paths or image ids
    negatives: list[str] = field(default_factory=list)
    filters: Filters = field(default_factory=Filters)
    k: int = 50
    text_weight: float = 1.0
    like_weight: float = 1.0
    negative_weight: float = 0.5


@dataclass
class Hit:
    image_id: int
    score: float
    path: str
    online: bool
    info: dict


def clean_text(text: str) -> str:
    """NFC-normalise, collapse whitespace. Case is left to the model's tokenizer."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def split_negatives(text: str) -> tuple[str, list[str]]:
    """'beach at dusk -people -"red car"' -> ('beach at dusk', ['people', 'red car'])."""
    try:
        parts = shlex.split(text, posix=True)
    except ValueError:  # unbalanced quotes: treat as plain words
        parts = text.split()
    pos, neg = [], []
    for p in parts:
        if len(p) > 1 and p.startswith("-"):
            neg.append(p[1:].strip())
        else:
            pos.append(p)
    return " ".join(pos), [n for n in neg if n]


def validate_text(text: str, what: str = "query") -> str:
    text = clean_text(text)
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the {what} is {len(text)} characters long; keep it under {MAX_QUERY_CHARS}")
    if text and not re.search(r"\w", text):
        raise QueryError(f"the {what} {text!r} has no words to search for")
    return text


class Searcher:
    """Searches one image space with one model (its text tower and the stored vectors)."""

    def __init__(self, db, model, ann, space_id: int, *, pairs: bool = True):
        self.db, self.model, self.ann, self.space_id = db, model, ann, space_id
        # RAW + JPEG of one shot answer as one photo, the JPEG (its RAW in info["twins"]).
        self.pairs = pairs

    def query_vector(self, q: Query) -> np.ndarray:
        text, inline_neg = split_negatives(q.text)
        text = validate_text(text)
        negatives = [validate_text(n, "negative term") for n in [*inline_neg, *q.negatives]]
        negatives = [n for n in negatives if n]
        if not text and not q.like:
            if negatives:
                raise QueryError("a search needs something to look for, not only things to avoid")
            raise QueryError("type something to search for, or give an example photo")
        parts: list[np.ndarray] = []
        if text:
            parts.append(q.text_weight * self.model.encode_texts([text])[0])
        for example in q.like:
            parts.append(q.like_weight * self.example_vector(example))
        vec = np.sum(parts, axis=0)
        if negatives:
            neg = self.model.encode_texts(negatives).mean(axis=0)
            vec = vec / max(np.linalg.norm(vec), 1e-12) - q.negative_weight * neg
        norm = np.linalg.norm(vec)
        if norm < 1e-6:
            raise QueryError("the query's parts cancel each other out; remove a negative term")
        return (vec / norm).astype(np.float32)

    def example_vector(self, example: str | int) -> np.ndarray:
        """The stored vector of an indexed photo, or a fresh embedding of any photo file."""
        image_id = example if isinstance(example, int) else None
        if image_id is not None and not -(2**63) <= image_id < 2**63:
            raise QueryError(f"no photo with id {example}")  # SQLite's integers stop there
        if image_id is None:
            try:
                path = str(Path(example).expanduser().resolve())
                image_id = self.db.image_id_for_path(path)
                if image_id is None and Path(path).is_file():
                    from .index.scan import file_hash

                    image_id = self.db.image_id_for_hash(file_hash(path))
                if image_id is None:
                    return self._embed_file(path)
            except OSError as e:  # a name too long, a folder we may not read ...
                raise QueryError(f"example photo {example!r:.200} cannot be read: {e.strerror or e}") from None
        vec = self.db.vectors_for(self.space_id, [image_id]).get(image_id)
        if vec is None:
            raise QueryError(f"photo {example} has not been indexed with this model yet")
        return vec

    def _embed_file(self, path: str) -> np.ndarray:
        from .photos.decode import decode_photo

        if not Path(path).is_file():
            raise QueryError(f"example photo {path} does not exist")
        try:
            photo = decode_photo(path, target=self.model.input_size)
        except DecodeError as e:
            raise QueryError(f"example photo {path} cannot be read: {e}") from e
        x = self.model.preprocess(photo.image)  # NaFlex models: a patch sequence, not an array
        return self.model.encode_images(x[None] if hasattr(x, "ndim") else [x])[0]

    def search(self, q: Query) -> list[Hit]:
        if q.k <= 0:
            raise QueryError("ask for at least one result")
        browse = q.filters.tags and not q.like and not q.negatives and not clean_text(q.text)
        vec = None if browse else self.query_vector(q)
        allowed = None
        if q.filters.active():
            f = q.filters
            allowed = self.db.filtered_image_ids(
                folders=f.folders, date_from=f.date_from, date_to=f.date_to, exts=f.exts
            )
            if not allowed:
                return []
        if q.filters.tags:
            from .tags.tagging import tagged_image_ids

            tagged = tagged_image_ids(self.db, self.model.spec.key, q.filters.tags)
            allowed = tagged if allowed is None else allowed & tagged
            if not allowed:
                return []
        hidden = self.db.hidden_raw_twins(self.space_id, allowed) if self.pairs else set()
        n = q.k + 16 + q.k // 4
        if browse:  # tags alone: the photos carrying them, by the first tag's score
            from .tags.browse import browse as browse_tags

            shown = allowed - hidden
            raw = browse_tags(self.db, self.model, self.space_id, q.filters.tags[0], shown, n)
        else:  # over-fetch a little: the ANN may still hold photos whose files just went away
            raw = self.ann.search(vec, n, allowed, excluded=hidden)
        info = self.db.describe_images([i for i, _ in raw])
        hits = [Hit(i, s, info[i]["path"], info[i]["online"], info[i]) for i, s in raw if i in info]
        return hits[: q.k]
