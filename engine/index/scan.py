"""Folder scanning: find what changed since the last scan by stat alone.

Content hashes are computed only for new or changed files (by the indexer's
workers), so re-scanning an unchanged library costs one ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..store.db import LibraryDB

HASH_CHUNK = 1 << 20
log = logging.getLogger(__name__)


def photo_extensions() -> frozenset[str]:
    from ..photos.formats import PHOTO_EXTENSIONS  # the list alone: no decoder is imported

    return frozenset(e.lower().lstrip(".") for e in PHOTO_EXTENSIONS)


@dataclass(frozen=True)
class FileTask:
    """A file the indexer must look at: new, or changed since it was last seen."""

    path: str
    folder_id: int
    size: int
    mtime_ns: int


@dataclass
class ScanPlan:
    todo: list[FileTask] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # indexed before, gone now
    unchanged: int = 0
    skipped_failures: int = 0  # failed before and unchanged since: not retried
    offline: list[str] = field(default_factory=list)  # folders that could not be reached


def file_hash(path: str) -> str:
    """Content identity of a photo: blake2b-128 of its bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def walk_photos(root: str, exts: frozenset[str], skip: set[str] = frozenset()):
    """Yield (path, stat) for photo files under `root`.

    Directory symlinks are not followed (no loops, no escaping the folder);
    hidden entries are skipped; unreadable subfolders are skipped, not fatal.
    `skip` holds other registered folders nested inside this one.
    """
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                name = e.name
                if name.startswith("."):
                    continue
                if not storable(name):
                    # Bytes that are not UTF-8 (an old camera, a foreign disk) cannot be stored in
                    # the database; one such name must not stop the rest of the folder.
                    log.warning("skipped %r: its name is not valid UTF-8; rename it to index it", e.path)
                    continue
                try:
                    if e.is_dir(follow_symlinks=False):
                        if e.path not in skip:
                            stack.append(e.path)
                        continue
                    dot = name.rfind(".")
                    if dot < 0 or name[dot + 1 :].lower() not in exts:
                        continue
                    st = e.stat()  # follows file symlinks: a linked photo is still a photo
                except OSError:
                    continue
                yield e.path, st


def storable(path: str) -> bool:
    """Whether a path can be stored as text: not so for names whose bytes are not UTF-8
    (Python hands them over with surrogate escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def folder_reachable(path: str) -> bool:
    """A folder is online if it exists and can be listed (an unplugged drive cannot)."""
    try:
        with os.scandir(path):
            return True
    except OSError:
        return False


def plan_scan(db: LibraryDB, folders: list[dict] | None = None, space_id: int | None = None) -> ScanPlan:
    """Compare the file system with the database for the given (or all) folders.

    With `space_id`, files already indexed but without a vector in that space (the
    active model changed its image tower) are planned too.
    """
    exts = photo_extensions()
    plan = ScanPlan()
    all_folders = db.folders()
    roots = {f["path"] for f in all_folders}
    for folder in folders or all_folders:
        root, fid = folder["path"], folder["id"]
        if not folder_reachable(root):
            plan.offline.append(root)
            db.set_folder_state(fid, online=False)
            continue
        nested = {r for r in roots if r != root and r.startswith(root.rstrip(os.sep) + os.sep)}
        known = db.files_in_folder(fid)
        failed = db.failures_in_folder(fid)
        unembedded = db.paths_missing_vectors(fid, space_id) if space_id is not None else {}
        seen: set[str] = set()
        for path, st in walk_photos(root, exts, nested):
            seen.add(path)
            row = known.get(path)
            if (row is not None and row.size == st.st_size and row.mtime_ns == st.st_mtime_ns
                    and path not in unembedded):  # fmt: skip
                plan.unchanged += 1
                continue
            if failed.get(path) == (st.st_size, st.st_mtime_ns):
                plan.skipped_failures += 1
                continue
            plan.todo.append(FileTask(path, fid, st.st_size, st.st_mtime_ns))
        plan.missing += [p for p in known if p not in seen]
        plan.missing += [p for p in failed if p not in seen]
        db.set_folder_state(fid, online=True, scanned=True)
    return plan


def normalize_folder(path: str | Path) -> str:
    """Absolute, symlink-resolved folder path: the key a folder is stored under."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path))))
