"""Build fine-tuning data (``engine.finetune.dataset.TrainingSet``) from the library database.

Two sources:

* a folder per label (``root/<label>/...``): the folders are indexed like any other,
  so their photos' vectors are in SQLite; a photo is positive for every label folder
  it lies in (the same content in two folders is a multi-label photo) and negative
  for the others;
* a tag vocabulary: the user's confirmed (positive) and rejected (negative) tags, read
  through ``engine.tags.tagging``; every other (photo, label) pair is unknown.

Only stored vectors are read: nothing is decoded. This module needs numpy only, so the
training child process and the engine can both use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import QueryError, TrainingDataError
from ..models.registry import ModelSpec, resources_dir
from ..store.db import LibraryDB
from .dataset import NEGATIVE, POSITIVE, UNKNOWN, GeneralCheck, TrainingSet

# How a bare label name becomes prompt texts when nobody wrote any.
FOLDER_TEMPLATES = ("{}", "a photo of {}")
MAX_GALLERY = 20_000  # vectors the general-knowledge check searches (a deterministic sample)


def _space_id(db: LibraryDB, spec: ModelSpec) -> int:
    row = db.conn.execute("SELECT id, dim FROM spaces WHERE key=?", (spec.space,)).fetchone()
    if row is None:
        raise TrainingDataError(
            f"the library has no photos indexed with model {spec.key!r} (image space "
            f"{spec.space!r}); index your folders with it first"
        )
    if row[1] != spec.embed_dim:
        raise TrainingDataError(
            f"image space {spec.space!r} holds {row[1]}-d vectors, not {spec.embed_dim}-d"
        )
    return int(row[0])


def _vectors(db: LibraryDB, space_id: int, ids: list[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """(ids that have a vector, their vectors, how many had none), in id order."""
    got = db.vectors_for(space_id, sorted(set(ids)))
    keep = np.array(sorted(got), dtype=np.int64)
    vecs = (
        np.stack([got[i] for i in keep]).astype(np.float32)
        if len(keep)
        else np.zeros((0, 0), np.float32)
    )
    return keep, vecs, len(set(ids)) - len(keep)


def label_folders(root: Path) -> list[Path]:
    """The label folders under ``root``: its sub-folders, except hidden ones and "_" ones
    (a folder such as ``_other`` holds photos that are none of the labels: negatives)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise QueryError(f"{root} is not a folder")
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not subs:
        raise TrainingDataError(
            f"{root} has no sub-folders; put each label's photos in a folder named after it"
        )
    return subs


def from_folders(db: LibraryDB, spec: ModelSpec, root: Path):
    """A TrainingSet from a folder-per-label tree that has been indexed with ``spec``."""
    from ..index.scan import normalize_folder

    space_id = _space_id(db, spec)
    members: dict[str, set[int]] = {}
    for sub in label_folders(root):
        members[sub.name] = db.filtered_image_ids(folders=[normalize_folder(sub)])
    labels = list(members)
    # Sub-folders named "_something" hold photos that are none of the labels.
    others = [p for p in Path(root).expanduser().iterdir() if p.is_dir() and p.name.startswith("_")]
    none_of = (
        db.filtered_image_ids(folders=[normalize_folder(p) for p in others]) if others else set()
    )
    all_ids = sorted(set().union(none_of, *members.values()))
    ids, vecs, missing = _vectors(db, space_id, all_ids)
    targets = np.full((len(ids), len(labels)), NEGATIVE, dtype=np.int8)
    row = {int(i): k for k, i in enumerate(ids)}
    for j, lab in enumerate(labels):
        for i in members[lab]:
            if i in row:
                targets[row[i], j] = POSITIVE
    notes = (
        [f"{missing} photos are not indexed with {spec.key} yet and were left out"]
        if missing
        else []
    )
    return TrainingSet(
        image_ids=ids, vectors=vecs, labels=labels,
        texts=[[t.format(lab) for t in FOLDER_TEMPLATES] for lab in labels],
        targets=targets, space=spec.space, source=f"folders:{Path(root).expanduser()}",
        general=general_check(db, spec, labels), notes=notes,
    )  # fmt: skip


def from_vocab(db: LibraryDB, spec: ModelSpec, vocab: str):
    """A TrainingSet from a tag vocabulary's confirmed and rejected tags (engine.tags.tagging)."""
    try:  # provided by the tagging feature; imported here so the rest works without it
        from ..tags.tagging import confirmed_examples, label_texts
    except ImportError as e:
        raise TrainingDataError(f"tag vocabularies are not available in this build ({e})") from e
    examples = confirmed_examples(db, vocab)
    texts = label_texts(db, vocab)
    labels = [lab for lab in examples if examples[lab][0] or examples[lab][1]]
    if not labels:
        raise TrainingDataError(f"vocabulary {vocab!r} has no confirmed or rejected tags yet")
    space_id = _space_id(db, spec)
    all_ids = sorted({i for lab in labels for part in examples[lab] for i in part})
    ids, vecs, missing = _vectors(db, space_id, all_ids)
    targets = np.full((len(ids), len(labels)), UNKNOWN, dtype=np.int8)
    row = {int(i): k for k, i in enumerate(ids)}
    for j, lab in enumerate(labels):
        pos, neg = examples[lab]
        for i in neg:
            if i in row:
                targets[row[i], j] = NEGATIVE
        for i in pos:  # a photo both confirmed and rejected: the confirmation wins
            if i in row:
                targets[row[i], j] = POSITIVE
    notes = (
        [f"{missing} tagged photos have no vector for {spec.key} and were left out"]
        if missing
        else []
    )
    return TrainingSet(
        image_ids=ids, vectors=vecs, labels=labels,
        texts=[list(texts.get(lab) or [t.format(lab) for t in FOLDER_TEMPLATES]) for lab in labels],
        targets=targets, space=spec.space, source=f"vocab:{vocab}",
        general=general_check(db, spec, labels), notes=notes,
    )  # fmt: skip


def general_queries(spec: ModelSpec) -> list[str]:
    """Queries that have nothing to do with the user's labels, in the model's own world.

    The demo model knows only its world of coloured shapes, so it is asked about that
    world's colours, shapes, counts and positions (its attribute queries, written out in
    resources/finetune/world_queries.txt); real models get everyday photo queries.
    """
    name = "world_queries.txt" if "world" in spec.extra else "general_queries.txt"
    path = resources_dir() / "finetune" / name
    lines = path.read_text(encoding="utf-8").splitlines()
    return [x.strip() for x in lines if x.strip() and not x.startswith("#")]


def general_check(db: LibraryDB, spec: ModelSpec, labels: list[str], seed: int = 0):
    """The general-knowledge check over (a sample of) the library's stored vectors."""
    words = {w.lower() for lab in labels for w in lab.split()}
    queries = [q for q in general_queries(spec) if not words & set(q.lower().split())]
    space_id = _space_id(db, spec)
    ids = db.live_image_ids(space_id)
    if len(ids) > MAX_GALLERY:
        ids = np.sort(np.random.default_rng(seed).choice(ids, MAX_GALLERY, replace=False))
    _, vecs, _ = _vectors(db, space_id, [int(i) for i in ids])
    return GeneralCheck(queries=queries, gallery=vecs)
