"""photosift's tags <-> keywords other photo managers read (issue 5, item 6).

engine.xmp.keywords reads and writes keywords in files; this module decides *which* keywords, from
and into the library's tags.

Export (:func:`export_tags`)
    Each photo's tags in force (confirmed, plus automatic ones at or above the threshold;
    ``confirmed_only`` for just the confirmed) go into its XMP sidecar as ``dc:subject``, with
    ``lr:hierarchicalSubject`` ``photosift|<vocabulary>|<label>``. The RAW of a RAW + JPEG pair
    gets the tags of its JPEG, which stands for the pair in photosift. A label the user *rejected*
    for a photo is taken out of its sidecar: that keyword is photosift's (a label of one of its
    vocabularies), so photosift may remove it; every other keyword stays. A label already there
    in another case ("Red" for the label "red") is not added a second time. With ``embed`` the
    keywords also go into the photo file itself (only then is a photo ever rewritten; never a
    camera RAW file, whose keywords stay in its sidecar: ``raw_not_embedded``); that
    changes the file's bytes and so its content hash, and the library is updated in the same
    step (:func:`rehash_after_edit`): the photo keeps its id, vector and answers, and the next
    scan finds nothing new. A photo indexed at several paths is not embedded (its copies would
    stop being one photo); its sidecars are written as usual.

Import (:func:`import_tags`)
    Keywords of indexed photos (sidecars, embedded XMP, IPTC) become **confirmed** answers:
    ``photosift|<vocabulary>|<label>`` maps to exactly that label; any other keyword confirms
    every label of that name (compared as label names are: Unicode-normalised, case-folded);
    the rest become labels of the vocabulary ``Keywords`` (created on demand) unless
    ``only_known``. An answer already given in photosift wins: a rejection is never overridden
    (the report lists them). Running it twice changes nothing.

New photos
    Indexing reads the keywords of newly embedded photos as it commits them
    (:func:`import_for_new_images`, the library's commit hook; ``Settings.read_keywords``,
    default on), because it is cheap. Measured on ../shared/data/photos (111 files, this
    2-core machine, shared): exiv2 reading one photo's keywords takes 1.2-1.8 ms on average
    (median 0.6 ms) against 56-68 ms to decode it for the model; the whole hook, database
    writes included, took 5.8-5.9 ms a photo, 4.3-4.6 % of indexing with the tiny demo model
    (127-139 ms a photo), and a smaller share with any real model.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MetadataError, PhotosiftError
from ..index.indexer import Progress
from ..index.scan import file_hash, normalize_folder
from ..photos.formats import is_raw
from ..tags import tagstore as S
from ..tags.vocab import MAX_LABEL_CHARS, VocabularyError, label_key, make_label, make_vocabulary
from . import keywords as xmp

log = logging.getLogger(__name__)

KEYWORDS_VOCAB = "Keywords"  # where keywords that match no label go

ProgressFn = Callable[[Progress], None]


def _progress(fn: ProgressFn | None, start: float, done: int, total: int, failed: int, current):
    if fn is None:
        return
    elapsed = time.perf_counter() - start
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else None
    fn(
        Progress(
            done, total, 0, 0, failed, elapsed, rate, eta, None if current is None else str(current)
        )
    )


def _online_files(db, image_ids: Iterable[int]) -> dict[int, list[str]]:
    """image id -> paths of its files in online folders."""
    ids = list(image_ids)
    out: dict[int, list[str]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        for image_id, path in db.conn.execute(
            f"SELECT f.image_id, f.path FROM files f JOIN folders fo ON fo.id=f.folder_id "
            f"WHERE fo.online=1 AND f.image_id IN ({q}) ORDER BY f.path", chunk
        ):  # fmt: skip
            out.setdefault(image_id, []).append(path)
    return out


def _file_counts(db, image_ids: Iterable[int]) -> dict[int, int]:
    ids = list(image_ids)
    out: dict[int, int] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        out.update(db.conn.execute(
            f"SELECT image_id, COUNT(*) FROM files WHERE image_id IN ({q}) GROUP BY image_id", chunk
        ).fetchall())  # fmt: skip
    return out


# ------------------------------------------------------------------------------------ export


class LabelKeyed(Mapping):
    """label -> vocabulary, looked up as label names compare (case-folded): a label written in
    the spelling the photo already had ("Jupiter" for "jupiter") still finds its vocabulary."""

    def __init__(self):
        self._d: dict[str, str] = {}

    def setdefault(self, label: str, vocab: str) -> str:
        return self._d.setdefault(label_key(label), vocab)

    def __getitem__(self, label: str) -> str:
        return self._d[label_key(label)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


@dataclass
class ExportPlan:
    """Per photo path: the labels to have as keywords and the rejected ones to take out."""

    add: dict[Path, list[str]] = field(default_factory=dict)
    remove: dict[Path, list[str]] = field(default_factory=dict)
    vocabulary_of: LabelKeyed = field(default_factory=LabelKeyed)  # label -> vocabulary
    image_of: dict[Path, int] = field(default_factory=dict)


def plan_export(tagger, vocab: str | None = None, *, confirmed_only: bool = False) -> ExportPlan:
    """What :func:`export_tags` would write, from the tags in force under the tagger's model."""
    db = tagger.db
    names = [S.load(db, vocab).name] if vocab else S.vocab_names(db)
    carried: dict[int, list[str]] = {}
    rejected: dict[int, list[str]] = {}
    plan = ExportPlan()
    for name in names:
        if not confirmed_only:
            tagger.ensure_current(name)  # automatic tags of the vocabulary's current version
        sv = S.load(db, name)
        ids = [sl.id for sl in sv.labels]
        label_name = {sl.id: sl.label.name for sl in sv.labels}
        answers = S.answers(db, ids)
        auto = (
            S.auto_tags(db, tagger.model_id, ids) if not confirmed_only else np.zeros(0, np.int64)
        )
        auto_by_label: dict[int, set[int]] = {}
        for k in auto.tolist():
            auto_by_label.setdefault(k >> 32, set()).add(k & 0xFFFFFFFF)
        for lid in ids:
            conf, rej = answers[lid]
            rej_s = set(rej)
            for image_id in sorted((auto_by_label.get(lid, set()) - rej_s) | set(conf)):
                carried.setdefault(image_id, []).append(label_name[lid])
                plan.vocabulary_of.setdefault(label_name[lid], sv.name)
            for image_id in rej:
                rejected.setdefault(image_id, []).append(label_name[lid])
    if getattr(tagger, "pairs", False):
        # A RAW + JPEG pair is one photo to the user, who sees (and answers on) the JPEG: its
        # tags are the pair's, and go to the RAW's sidecar too, where Lightroom looks.
        for raw_id, jpeg_id in db.raw_jpeg_pairs(tagger.space_id):
            for table in (carried, rejected):
                if jpeg_id in table:
                    table[raw_id] = list(table[jpeg_id])
                else:
                    table.pop(raw_id, None)
    files = _online_files(db, set(carried) | set(rejected))
    for image_id, paths in files.items():
        for p in paths:
            path = Path(p)
            plan.image_of[path] = image_id
            if carried.get(image_id):
                plan.add[path] = list(dict.fromkeys(carried[image_id]))
            if rejected.get(image_id):
                plan.remove[path] = list(dict.fromkeys(rejected[image_id]))
    return plan


class _AsSpelledInPhoto(Mapping):
    """Keywords per photo, each read as late as possible: a label the photo already holds in
    another case ("Red" for "red") keeps that spelling instead of being added a second time.

    A Mapping, so that engine.xmp.keywords's batch export asks for a photo's keywords right before it
    writes that photo (a problem reading them is that photo's failure, reported per file)."""

    def __init__(self, wanted: Mapping[Path, list[str]]):
        self._wanted = wanted

    def __getitem__(self, photo: Path) -> list[str]:
        labels = self._wanted[photo]
        have = {label_key(k): k for k in reversed(xmp.read_keywords(photo))}
        return [have.get(label_key(lab), lab) for lab in labels]

    def __iter__(self) -> Iterator[Path]:
        return iter(self._wanted)

    def __len__(self) -> int:
        return len(self._wanted)


@dataclass
class TagExportReport:
    """What :func:`export_tags` did. ``failed``: (path, reason) per photo, never aborting."""

    total: int = 0
    sidecars: list[str] = field(default_factory=list)
    embedded: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    dry_run: dict[str, dict[str, list[str]]] | None = None  # path -> {"add", "remove"}
    # embed: camera RAW files, never written into; their keywords went to their sidecars only
    raw_not_embedded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(kind="tag_export_xmp", cancelled=self.cancelled, total=self.total,
                    sidecars=len(self.sidecars), embedded=len(self.embedded), failed=len(self.failed),
                    failures=[dict(path=p, reason=r) for p, r in self.failed[:100]],
                    raw_not_embedded=len(self.raw_not_embedded))  # fmt: skip


def export_tags(
    lib,
    vocab: str | None = None,
    *,
    confirmed_only: bool = False,
    embed: bool = False,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
) -> TagExportReport:
    """Write the library's tags as keywords: sidecars always, the photo itself with ``embed``.

    ``cancel`` is asked before each photo; every file written so far is whole (each write is
    atomic) and stays written. Per-photo failures are collected, never raised.
    """
    tagger = lib.tagger()
    plan = plan_export(tagger, vocab, confirmed_only=confirmed_only)
    paths = list(dict.fromkeys([*plan.add, *plan.remove]))
    report = TagExportReport(total=len(paths))
    if dry_run:
        report.dry_run = {str(p): dict(add=plan.add.get(p, []), remove=plan.remove.get(p, []))
                          for p in paths}  # fmt: skip
        return report
    start = time.perf_counter()
    to_embed = paths if embed else []
    total = len(paths) + len(to_embed)

    def side_progress(bp: xmp.BatchProgress) -> None:
        _progress(progress, start, bp.done, total, 0, bp.current)

    side = xmp.export_tags_to_sidecars(
        _AsSpelledInPhoto(plan.add), side_progress, remove=plan.remove,
        vocabulary_of=plan.vocabulary_of, cancel=cancel,
    )  # fmt: skip
    report.sidecars = [str(p) for p in side.written]
    report.failed = [(str(p), r) for p, r in side.failed]
    report.cancelled = side.cancelled
    if report.cancelled or not to_embed:
        return report
    sidecar_failed = {p for p, _ in side.failed}  # already reported; its photo is left alone too
    copies = _file_counts(lib.db, set(plan.image_of.values()))
    spelled = _AsSpelledInPhoto(plan.add)
    for n, path in enumerate(to_embed):
        if cancel is not None and cancel():
            report.cancelled = True
            break
        if is_raw(path.name):
            report.raw_not_embedded.append(str(path))  # photosift never writes into a RAW
        elif path not in sidecar_failed:
            try:
                if _embed_one(lib.db, path, plan, spelled, copies.get(plan.image_of[path], 0)):
                    report.embedded.append(str(path))
            except MetadataError as e:
                report.failed.append((str(path), e.reason))
            except OSError as e:
                report.failed.append((str(path), e.strerror or str(e)))
        _progress(progress, start, len(paths) + n + 1, total, len(report.failed), path)
    return report


def _embed_one(db, path: Path, plan: ExportPlan, spelled: Mapping, copies: int) -> bool:
    """Embed one photo's keywords and follow its new content hash; True if the file changed."""
    if copies > 1:
        raise MetadataError(
            path, f"the same photo is indexed at {copies} paths; keywords went to its sidecar only"
        )
    before = path.stat()
    xmp.embed_keywords(path, spelled.get(path, []), plan.remove.get(path, []),
                       vocabulary_of=plan.vocabulary_of)  # fmt: skip
    after = path.stat()
    if (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino
    ):  # fmt: skip
        return False  # the keywords were there already: nothing written
    rehash_after_edit(db, path)
    return True


def rehash_after_edit(db, path: Path) -> str:
    """After photosift itself changed a photo's metadata (not its pixels): record the file's
    new content hash, size and mtime, in one transaction, so the photo keeps its image id,
    vectors, automatic tags and answers, and the next scan sees an unchanged file.

    Only for a photo indexed at this one path (copies elsewhere still hold the old bytes).
    Returns the new hash. Crash window: if photosift dies between the file write and this
    transaction, the next scan sees a changed file and embeds it again as a new photo.
    """
    path_s = str(path)
    st = os.stat(path)
    new = file_hash(path_s)
    with db.transaction():
        c = db.conn
        row = c.execute(
            "SELECT f.image_id, i.hash FROM files f JOIN images i ON i.id=f.image_id WHERE f.path=?",
            (path_s,),
        ).fetchone()
        if row is None:
            raise MetadataError(path, "not in the library")
        image_id, old = row
        if new != old:
            other = c.execute("SELECT id FROM images WHERE hash=?", (new,)).fetchone()
            if other is None:
                c.execute("UPDATE images SET hash=? WHERE id=?", (new, image_id))
            else:  # that content is already a photo of the library: the file joins it
                c.execute("UPDATE files SET image_id=? WHERE path=?", (other[0], path_s))
                db._mark_orphans_among([image_id], time.time())
            # The answers follow the content; the user's current ones win over stale ones.
            c.execute(
                "UPDATE OR REPLACE tag_answers SET image_hash=? WHERE image_hash=?", (new, old)
            )
        c.execute(
            "UPDATE files SET size=?, mtime_ns=? WHERE path=?", (st.st_size, st.st_mtime_ns, path_s)
        )
    return new


# ------------------------------------------------------------------------------------ import


@dataclass
class TagImportReport:
    """What :func:`import_tags` did.

    ``confirmed``: answers recorded now; ``already``: keywords whose label the user had already
    confirmed; ``kept_rejections``: (path, vocabulary, label) the user rejected in photosift,
    which a keyword did not override; ``labels_created``: new labels per vocabulary;
    ``skipped``: keywords that cannot be labels (too long ...), with why; ``failed``: photos
    whose sidecar could not be read; ``problems``: embedded metadata that was skipped.
    """

    total: int = 0
    with_keywords: int = 0
    confirmed: int = 0
    already: int = 0
    kept_rejections: list[tuple[str, str, str]] = field(default_factory=list)
    labels_created: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cancelled: bool = False
    retag_error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.confirmed or self.labels_created)

    def as_dict(self) -> dict:
        return dict(kind="tag_import_xmp", cancelled=self.cancelled, total=self.total,
                    with_keywords=self.with_keywords, confirmed=self.confirmed, already=self.already,
                    kept_rejections=[dict(path=p, vocab=v, label=lab) for p, v, lab in self.kept_rejections[:100]],
                    labels_created=self.labels_created, skipped=[dict(keyword=k, reason=r) for k, r in self.skipped[:100]],
                    failed=len(self.failed), failures=[dict(path=p, reason=r) for p, r in self.failed[:100]],
                    problems=self.problems[:100], retag_error=self.retag_error)  # fmt: skip


def _indexed_files(db, folders: list[str] | None) -> list[tuple[str, int]]:
    """(path, image id) of the indexed files in online folders, optionally under `folders`."""
    rows = db.conn.execute(
        "SELECT f.path, f.image_id FROM files f JOIN folders fo ON fo.id=f.folder_id "
        "WHERE fo.online=1 ORDER BY f.path"
    ).fetchall()
    if not folders:
        return rows
    roots = [normalize_folder(f).rstrip("/\\") for f in folders]  # as the library stores them
    return [(p, i) for p, i in rows if any(p == r or p.startswith(r + os.sep) for r in roots)]


def import_tags(
    lib,
    folders: list[str] | None = None,
    *,
    vocab: str | None = None,
    only_known: bool = False,
    retag: bool = True,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
) -> TagImportReport:
    """Take the keywords of indexed photos in as confirmed tags (see the module docstring).

    ``vocab``: match only that vocabulary's labels, and add new keywords to it (default: match
    every vocabulary, new keywords go to ``Keywords``, created on demand). ``retag``: refresh
    thresholds and automatic tags of the labels that got answers (needs the model; without
    it the answers are stored all the same and the next re-tag catches up).
    """
    files = _indexed_files(lib.db, folders)
    start = time.perf_counter()
    failed = 0

    def on_progress(bp: xmp.BatchProgress) -> None:
        _progress(progress, start, bp.done, bp.total, failed, bp.current)

    read = xmp.import_keywords([Path(p) for p, _ in files], on_progress, cancel=cancel)
    report = TagImportReport(total=len(files), cancelled=read.cancelled)
    report.failed = [(str(p), r) for p, r in read.failed]
    report.problems = list(read.problems)
    image_of = {Path(p): i for p, i in files}
    found = {image_of[p]: [] for p in read.keywords}
    hier = {image_of[p]: [] for p in read.hierarchy}
    path_of: dict[int, str] = {}
    for p, kws in read.keywords.items():
        found[image_of[p]] += kws
        path_of.setdefault(image_of[p], str(p))
    for p, hs in read.hierarchy.items():
        hier[image_of[p]] += hs
        path_of.setdefault(image_of[p], str(p))
    report.with_keywords = len(found)
    touched = record_keywords(
        lib.db, found, hier, path_of, report, vocab=vocab, only_known=only_known
    )
    if retag and touched:
        _refresh(lib, touched, report)
    return report


def record_keywords(
    db,
    keywords: Mapping[int, list[str]],
    hierarchy: Mapping[int, list[str]],
    path_of: Mapping[int, str],
    report: TagImportReport,
    *,
    vocab: str | None = None,
    only_known: bool = False,
) -> dict[str, set[int]]:
    """Record keywords of photos (by image id) as confirmed answers, in one transaction.

    Returns vocabulary name -> label ids that got new answers (for recalibration)."""
    touched: dict[str, set[int]] = {}
    with db.transaction():
        if vocab:  # a vocabulary not there yet is made when a keyword needs a label in it
            vocabs = [S.load(db, vocab)] if vocab_exists(db, vocab) else []
        else:
            vocabs = S.load_all(db)
        by_key: dict[str, list[tuple[str, int]]] = {}  # label key -> [(vocab, label id)]
        exact: dict[tuple[str, str], tuple[str, int]] = {}  # (vocab key, label key) -> ...
        for sv in vocabs:
            for sl in sv.labels:
                by_key.setdefault(label_key(sl.label.name), []).append((sv.name, sl.id))
                exact[(label_key(sv.name), label_key(sl.label.name))] = (sv.name, sl.id)
        wanted: dict[tuple[str, int], set[int]] = {}  # (vocab, label id) -> image ids
        new_labels: dict[str, str] = {}  # label key -> keyword as first written
        new_for: dict[str, set[int]] = {}
        for image_id in set(keywords) | set(hierarchy):
            covered = set()
            for h in hierarchy.get(image_id, []):
                parts = h.split("|")
                if len(parts) == 3 and parts[0] == xmp.HIERARCHY_ROOT:
                    hit = exact.get((label_key(parts[1]), label_key(parts[2])))
                    if hit is not None:
                        wanted.setdefault(hit, set()).add(image_id)
                        covered.add(label_key(parts[2]))
            for kw in keywords.get(image_id, []):
                k = label_key(kw)
                if k in covered:
                    continue
                if k in by_key:
                    for hit in by_key[k]:
                        wanted.setdefault(hit, set()).add(image_id)
                elif not only_known:
                    new_labels.setdefault(k, kw.strip())
                    new_for.setdefault(k, set()).add(image_id)
        if new_labels:
            target = vocab or KEYWORDS_VOCAB
            good = []
            for k, kw in new_labels.items():
                if "|" in kw or len(kw) > MAX_LABEL_CHARS:
                    report.skipped.append(
                        (kw, "not usable as a label name (too long, or holds '|')")
                    )
                    continue
                try:
                    good.append((k, make_label(kw, f"keyword {kw!r}")))
                except VocabularyError as e:
                    report.skipped.append((kw, str(e)))
            if good:
                if vocab_exists(db, target):
                    sv = S.load(db, target)
                else:
                    # keywords ("2008", "dublin") are the user's own facts about some photos:
                    # only those answers carry them, never a guess spread to other photos
                    sv = S.create(db, make_vocabulary(target, [], auto=False))
                sv = S.update(db, sv.name, add=[lab for _, lab in good])
                report.labels_created.setdefault(sv.name, []).extend(lab.name for _, lab in good)
                for k, lab in good:
                    wanted.setdefault((sv.name, sv.label(lab.name).id), set()).update(new_for[k])
        hashes = _hashes(db, {i for ids in wanted.values() for i in ids})
        c = db.conn
        now = time.time()
        for (vname, label_id), image_ids in wanted.items():
            have = dict(c.execute(
                "SELECT image_hash, state FROM tag_answers WHERE label_id=?", (label_id,)
            ).fetchall())  # fmt: skip
            label_name = c.execute("SELECT name FROM labels WHERE id=?", (label_id,)).fetchone()[0]
            for image_id in sorted(image_ids):
                state = have.get(hashes[image_id])
                if state == S.CONFIRMED:
                    report.already += 1
                elif state == S.REJECTED:
                    report.kept_rejections.append(
                        (path_of.get(image_id, str(image_id)), vname, label_name)
                    )
                else:
                    c.execute("INSERT INTO tag_answers(label_id, image_hash, state, at) VALUES(?,?,?,?)",
                              (label_id, hashes[image_id], S.CONFIRMED, now))  # fmt: skip
                    report.confirmed += 1
                    touched.setdefault(vname, set()).add(label_id)
    return touched


def vocab_exists(db, name: str) -> bool:
    try:
        S.load(db, name)
    except VocabularyError:
        return False
    return True


def _hashes(db, image_ids: set[int]) -> dict[int, str]:
    ids = list(image_ids)
    out: dict[int, str] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        out.update(
            db.conn.execute(f"SELECT id, hash FROM images WHERE id IN ({q})", chunk).fetchall()
        )
    return out


def _refresh(lib, touched: dict[str, set[int]], report: TagImportReport) -> None:
    """Recalibrate the labels that got answers and re-tag their vocabularies."""
    try:
        tg = lib.tagger()
        for name, label_ids in touched.items():
            sv = S.load(lib.db, name)
            for sl in sv.labels:
                if sl.id in label_ids:
                    tg.recalibrate(sv, sl)
            tg.run(sv.name)
    except PhotosiftError as e:  # no model: the answers are stored; the next re-tag catches up
        report.retag_error = str(e)


def import_for_new_images(lib, image_ids: Iterable[int]) -> TagImportReport | None:
    """The indexing hook: take in the keywords of photos just committed (answers only; their
    vocabularies are re-tagged lazily, by the next query or re-tag). Never raises."""
    try:
        ids = [int(i) for i in image_ids]
        files = _online_files(lib.db, ids)
        paths = [Path(p) for ps in files.values() for p in ps]
        read = xmp.import_keywords(paths)
        if not read.keywords and not read.hierarchy:
            return None
        image_of = {Path(p): i for i, ps in files.items() for p in ps}
        kws: dict[int, list[str]] = {}
        hier: dict[int, list[str]] = {}
        for p, k in read.keywords.items():
            kws.setdefault(image_of[p], []).extend(k)
        for p, h in read.hierarchy.items():
            hier.setdefault(image_of[p], []).extend(h)
        report = TagImportReport(total=len(paths), with_keywords=len(kws))
        path_of = {i: str(ps[0]) for i, ps in files.items()}
        record_keywords(lib.db, kws, hier, path_of, report)
        return report
    except (PhotosiftError, OSError, sqlite3.Error):
        log.exception("could not read the keywords of new photos (indexing goes on)")
        return None
