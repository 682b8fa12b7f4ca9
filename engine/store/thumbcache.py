"""The engine's thumbnail cache on disk: ``<data_dir>/thumbs/<2 hex>/<key>.jpg``.

A thumbnail's key is its photo's path, size and modification time plus the thumbnail
size, so an edited photo gets a new one and the old one is never asked for again. Left
alone the folder would only grow; ``prune`` keeps it under a byte budget by deleting the
thumbnails used longest ago. Use is recorded by touching a file's mtime on every hit
(atime is unreliable: most systems mount with relatime or noatime).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

PRUNE_TO = 0.8  # a prune goes this far below the budget, so it does not run on every miss


def thumbs_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "thumbs"


def thumb_file(data_dir: Path, path: str, st: os.stat_result, size: int) -> Path:
    """Where the thumbnail of ``path`` (as it is now, per ``st``) at ``size`` px lives."""
    key = hashlib.blake2b(
        f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{size}".encode(), digest_size=16
    ).hexdigest()
    return thumbs_dir(data_dir) / key[:2] / f"{key}.jpg"


def mark_used(file: Path) -> None:
    """Record a cache hit (best effort: a read-only cache still serves)."""
    with contextlib.suppress(OSError):
        os.utime(file)


def usage(data_dir: Path) -> tuple[int, int]:
    """(files, bytes) the thumbnail cache holds."""
    files = _entries(thumbs_dir(data_dir))
    return len(files), sum(size for _, size, _ in files)


def prune(data_dir: Path, budget_bytes: int) -> tuple[int, int]:
    """Delete the least recently used thumbnails while the cache is over ``budget_bytes``,
    down to ``PRUNE_TO`` of it; returns (files removed, bytes freed). Files that vanish or
    cannot be removed meanwhile (another process, permissions) are skipped."""
    files = _entries(thumbs_dir(data_dir))
    total = sum(size for _, size, _ in files)
    if total <= budget_bytes:
        return 0, 0
    target = int(budget_bytes * PRUNE_TO)
    removed = freed = 0
    for _, size, path in sorted(files):  # oldest use first
        if total - freed <= target:
            break
        try:
            os.unlink(path)
        except OSError:
            continue
        removed += 1
        freed += size
    return removed, freed


def _entries(root: Path) -> list[tuple[int, int, str]]:
    """(mtime_ns, bytes, path) of every file in the cache, leftovers of crashed writes included."""
    out = []
    try:
        subdirs = list(os.scandir(root))
    except OSError:
        return out
    for sub in subdirs:
        if not sub.is_dir(follow_symlinks=False):
            continue
        try:
            with os.scandir(sub.path) as it:
                for e in it:
                    if e.is_file(follow_symlinks=False):
                        try:
                            st = e.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        out.append((st.st_mtime_ns, st.st_size, e.path))
        except OSError:
            continue
    return out
