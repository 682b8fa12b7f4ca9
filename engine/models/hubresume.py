"""Downloads into the standard Hugging Face cache that resume across attempts.

Since huggingface/huggingface_hub#4228 (see also #4196 and #4306; 2.4.0 is installed here),
``hf_hub_download`` writes each download to a temporary file unique to the process and
deletes it on failure: a connection that breaks within one call is resumed, but a cancelled
or killed download starts again from zero. For a model of several hundred MB on a slow line
that is the difference between finishing and never finishing, so a file that is not in the
cache yet is fetched here, with huggingface_hub's own pieces:

1. ``get_hf_file_metadata`` (one HEAD): the file's ETag, size and the commit it is at;
2. the bytes go to ``blobs/<etag>.photosift.incomplete`` in the repo's cache folder;
   ``http_get`` appends to it from where it stops, with a Range request, under the lock
   file huggingface_hub takes for that blob. Its own downloads never open that name (they
   use ``<etag>.<8 hex digits>.incomplete``), while its cache tools see it as what it is:
   ``hf cache ls`` counts it among incomplete downloads and ``hf cache prune`` removes it;
3. the finished file is checked (the caller's ``checker``: the registry's or the hub's
   hash) *before* it enters the cache, then renamed to ``blobs/<etag>``;
4. ``hf_hub_download`` is called as always: it finds the blob and writes the snapshot entry
   (a symlink, or a copy where symlinks are not allowed) and ``refs/<revision>`` itself,
   so the cache is exactly what huggingface_hub would have left, and later
   ``hf_hub_download(..., local_files_only=True)`` calls (offline mode) find the file.

The cache layout is documented at https://huggingface.co/docs/hub/local-cache.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Cancelled, ChecksumMismatch, ModelError

PARTIAL_SUFFIX = ".photosift.incomplete"


class _CancellableFile:
    """The file ``http_get`` writes to: each chunk is on disk before a cancel is noticed, so
    a cancelled download keeps everything it received."""

    def __init__(self, f, cancel: threading.Event | None):
        self._f, self._cancel = f, cancel

    def write(self, data: bytes) -> int:
        n = self._f.write(data)
        if self._cancel is not None and self._cancel.is_set():
            self._f.flush()
            raise Cancelled("download cancelled; it resumes where it stopped next time")
        return n

    def __getattr__(self, name: str) -> Any:  # seek/tell/truncate when a server ignores Range
        return getattr(self._f, name)


def partial_path(cache_dir: str | os.PathLike, repo: str, etag: str) -> Path:
    """Where the unfinished download of blob ``etag`` of ``repo`` is kept between attempts."""
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(cache_dir) / repo_folder_name(repo_id=repo, repo_type="model")
    return folder / "blobs" / f"{etag}{PARTIAL_SUFFIX}"


def fetch_to_cache(
    repo: str,
    filename: str,
    *,
    revision: str | None,
    cache_dir: str,
    endpoint: str | None,
    checker: Callable[[str], Callable[[Path], dict]],
    tqdm_class=None,
    cancel: threading.Event | None = None,
) -> tuple[Path, dict | None]:
    """Get ``filename`` of ``repo`` into the HF cache, resuming what an earlier attempt left.

    ``checker(etag)`` returns the check for the finished file (called before any byte is
    fetched, so a file that cannot be checked is refused up front); the check returns what
    it recorded (e.g. ``{"sha256", "size"}``) and raises, deleting the file, on a mismatch.
    Returns the file's path in the snapshot folder and the check's result, or None when the
    file was already in the cache (or the hub did not answer and huggingface_hub took it from
    the cache): the caller checks those itself. Errors from huggingface_hub (network, auth,
    missing file) are not caught here.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.file_download import repo_folder_name

    revision = revision or "main"
    try:
        meta = get_hf_file_metadata(
            hf_hub_url(repo, filename, revision=revision, endpoint=endpoint), endpoint=endpoint
        )
    except Exception:  # not answering: hf_hub_download falls back to the cache, or says why
        meta = None
    checked, new_blob = None, None
    if meta is not None and meta.etag and meta.commit_hash:
        storage = Path(cache_dir) / repo_folder_name(repo_id=repo, repo_type="model")
        blob = storage / "blobs" / meta.etag
        pointer = storage / "snapshots" / meta.commit_hash / filename
        if not pointer.exists() and not blob.exists():
            check = checker(meta.etag)
            # at the commit the HEAD named, so the bytes are the blob's even if the branch moves
            url = hf_hub_url(repo, filename, revision=meta.commit_hash, endpoint=endpoint)
            lock = Path(cache_dir) / ".locks" / storage.name / f"{meta.etag}.lock"
            checked = _fetch_blob(url, blob, filename, meta.size, lock, check, tqdm_class, cancel)
            new_blob = blob if checked is not None else None
    # Finds the blob and links it; downloads itself only if the branch moved since the HEAD
    # above (then without resuming, but cancellable).
    bar = _cancelling(tqdm_class, cancel)
    path = Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir,
                                endpoint=endpoint, tqdm_class=bar))  # fmt: skip
    if new_blob is not None and not path.is_symlink() and path.is_file():
        # No symlinks here (Windows without developer mode): huggingface_hub copied the blob
        # into the snapshot; its own downloads move it there instead. Do as it does.
        new_blob.unlink(missing_ok=True)
    return path, checked


def _fetch_blob(url: str, blob: Path, filename: str, size: int | None, lock_path: Path,
                check: Callable[[Path], dict], tqdm_class, cancel) -> dict | None:  # fmt: skip
    """Download ``url`` into ``blob``'s partial file, resuming it, check it, move it into place.
    None: another process put the blob there while this one waited for the lock."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    partial = blob.with_name(blob.name + PARTIAL_SUFFIX)
    blob.parent.mkdir(parents=True, exist_ok=True)
    with _locked(lock_path, cancel):
        if blob.exists():
            return None
        have = partial.stat().st_size if partial.exists() else 0
        if size is not None and have > size:
            partial.unlink()
            raise ModelError(
                f"{filename}: the partial download an earlier attempt left ({have} bytes) is "
                f"larger than the file ({size} bytes), so it is damaged; it was deleted. "
                f"Download the model again."
            )
        # Identity encoding: a Range counts bytes of the file, not of a compressed stream.
        headers = build_hf_headers(headers={"Accept-Encoding": "identity"})
        try:
            with partial.open("ab") as f:
                http_get(url, _CancellableFile(f, cancel), resume_size=have,
                         headers=headers, expected_size=size,
                         displayed_filename=filename, tqdm_class=tqdm_class)  # fmt: skip
        except BaseException:
            # Kept for the next attempt, unless it cannot be the start of the file.
            if size is not None and partial.exists() and partial.stat().st_size > size:
                partial.unlink()
            raise
        try:
            checked = check(partial)  # deletes the partial on a mismatch
        except ChecksumMismatch as e:
            if not have:
                raise
            raise ChecksumMismatch(
                f"{e} It was resumed from {have} bytes an earlier attempt had left, which are "
                f"deleted with it.",
                file=e.file, expected=e.expected, actual=e.actual, algorithm=e.algorithm,
                source=e.source,
            ) from e  # fmt: skip
        os.replace(partial, blob)  # same folder: the blob appears whole or not at all
    return checked


def _cancelling(tqdm_class, cancel: threading.Event | None):
    """``tqdm_class`` that also stops the download it counts once ``cancel`` is set."""
    if tqdm_class is None or cancel is None:
        return tqdm_class

    class _Cancelling(tqdm_class):
        def update(self, n=1):
            out = super().update(n)
            if cancel.is_set():
                raise Cancelled("download cancelled")
            return out

    return _Cancelling


class _locked:
    """huggingface_hub's lock file for a blob (``.locks/<repo folder>/<etag>.lock``), so that
    two processes never append to one partial file; waiting for it can be cancelled."""

    def __init__(self, path: Path, cancel: threading.Event | None):
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock, self._cancel = FileLock(str(path)), cancel

    def __enter__(self):
        from filelock import Timeout

        while True:
            try:
                self._lock.acquire(timeout=0.5)
                return self
            except Timeout:
                if self._cancel is not None and self._cancel.is_set():
                    raise Cancelled("download cancelled while another download of it ran") from None

    def __exit__(self, *exc) -> None:
        self._lock.release()
