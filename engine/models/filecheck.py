"""A model file must be the file model.json records: checked by sha256, once.

A damaged or swapped model file gives wrong vectors silently, so the runtime refuses one that
differs from what ``model.json`` records (``source.files[name]``: size, sha256). Hashing is
the slow part (the ViT-B/32 towers are 600 MB: about half a second at every start), so a file
whose hash matched is remembered with its size, modification time and inode in
``.photosift-checked.json`` beside model.json, and hashed again only when one of those
changes: a rewrite, a replacement or a copy over it. A model that ships with the app (its
folder is the app's, read-only once installed) is hashed each time; its files are small.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ModelError
from .registry import file_sha256

CHECKED_FILE = ".photosift-checked.json"


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class FileChecks:
    """The checks of one model folder's files against its model.json (thread-safe enough: the
    worst a race costs is one extra hash)."""

    def __init__(self, folder: Path, key: str, files: dict[str, dict]):
        self.folder, self.key, self.files = Path(folder), key, files
        self._path = self.folder / CHECKED_FILE
        try:
            self._known = json.loads(self._path.read_text(encoding="utf-8"))
            if not isinstance(self._known, dict):
                self._known = {}
        except (OSError, ValueError):
            self._known = {}

    def check(self, name: str, want: dict | None = None) -> None:
        """Raise ModelError unless ``name`` is the file model.json records (size, sha256), or
        ``want`` where given (a file photosift derived, recorded where it was made)."""
        want = want if want is not None else self.files.get(name) or {}
        path = self.folder / name
        redo = "download or import the model again"
        st = path.stat()
        if want.get("size") is not None and st.st_size != want["size"]:
            raise ModelError(
                f"model {self.key!r}: {name} is {st.st_size} bytes, model.json says {want['size']} "
                f"(damaged, or from another model); {redo}"
            )
        sha = want.get("sha256")
        if not sha:
            return
        stamp = _stamp(st)
        if self._known.get(name) == [*stamp, sha]:
            return  # hashed before, unchanged since
        if file_sha256(path) != sha:
            raise ModelError(
                f"model {self.key!r}: {name} does not match its checksum in model.json "
                f"(damaged, or from another model); {redo}"
            )
        self._known[name] = [*stamp, sha]
        self._save()

    def _save(self) -> None:
        from .registry import resources_dir

        if resources_dir().resolve() in self.folder.resolve().parents:
            return  # a model that ships with the app: its folder is the app's, not ours to write
        tmp = self._path.with_name(f"{CHECKED_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self._known), encoding="utf-8")
            tmp.replace(self._path)
        except OSError:  # a read-only folder: hashed again next time, no harm
            tmp.unlink(missing_ok=True)
