"""Checking files downloaded from the Hugging Face hub against the hashes their publishers recorded.

``hf_hub_download`` checks only a download's size (its maintainers leave content checks
out on purpose, for speed: huggingface/huggingface_hub#2364), so a same-size file damaged
on the way, by a proxy or on disk, would pass. Each file is therefore checked against:

1. the sha256 the registry entry records for it (``source.files[name].sha256``), when it
   does: a pin that also catches a repo whose files changed since the entry was written;
2. else the hash the hub publishes for it: the ETag of its ``resolve`` URL
   (``huggingface_hub.get_hf_file_metadata``), which is the file's sha256 for a file stored
   in LFS (every weights file: the hub refuses files over 10 MB in plain git) and its
   git blob id (git-sha1) for a small file kept in git (configs, tokenizers).

A new download is checked before it enters the cache (engine.models.hubresume calls
``check_file`` on the finished partial file); files already in the cache are checked by
``verify_downloads``. Offline, only registry pins can be checked: a file already in the
cache was checked when it arrived (a file that failed was deleted then).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ChecksumMismatch, ModelError, ModelNotAvailable
from .registry import file_sha256

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Expected:
    """The hash a file must have, and who said so."""

    algorithm: str  # "sha256" | "git-sha1"
    digest: str
    source: str  # "registry" | "hub"


def published_hash(
    repo: str, filename: str, revision: str, endpoint: str | None = None
) -> Expected:
    """The hash the hub publishes for ``filename`` at ``revision`` (one HEAD request).

    Raises ModelNotAvailable when the hub does not answer, and ModelError when it answers
    with an ETag that is neither a sha256 nor a git-sha1 (not the Hugging Face hub, or a
    mirror that rewrites ETags): the file cannot be checked, so it is not trusted.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    try:
        etag = (get_hf_file_metadata(url, endpoint=endpoint).etag or "").lower()
    except Exception as e:  # network, auth, a mirror without the file: the check cannot be made
        raise ModelNotAvailable(
            f"{filename} from {repo} was downloaded but its published checksum could not be "
            f"fetched to check it ({type(e).__name__}: {e}); try again when the hub answers, or "
            f"import an exported model folder (`photosift models import FOLDER`)."
        ) from e
    return expected_from_etag(repo, filename, etag)


def expected_from_etag(repo: str, filename: str, etag: str) -> Expected:
    """What a hub ETag says a file's hash is (sha256 for LFS files, git blob id otherwise).

    Raises ModelError for an ETag that is neither (not the Hugging Face hub, or a mirror that
    rewrites ETags): the file cannot be checked, so it is not trusted.
    """
    etag = (etag or "").lower()
    if _SHA256.fullmatch(etag):
        return Expected("sha256", etag, "hub")
    if _GIT_SHA1.fullmatch(etag):
        return Expected("git-sha1", etag, "hub")
    raise ModelError(
        f"{filename} from {repo}: the server publishes no checksum for it (ETag {etag!r}), so "
        f"the download cannot be checked. Download from huggingface.co (unset HF_ENDPOINT), or "
        f"import an exported model folder (`photosift models import FOLDER`)."
    )


def git_sha1(path: Path) -> str:
    """The git blob id of a file (what the hub publishes for small files kept in git; the hub
    keeps files over 10 MB in LFS, so reading the file whole is fine)."""
    from huggingface_hub.utils.sha import git_hash

    return git_hash(Path(path).read_bytes())


def snapshot_revision(path: Path, filename: str) -> str | None:
    """The commit a file of the HF cache belongs to (``.../snapshots/<commit>/<filename>``)."""
    depth = len(PurePosixPath(filename).parts)
    commit = Path(path).parents[depth - 1].name
    return commit if _GIT_SHA1.fullmatch(commit) else None


def discard(path: Path) -> None:
    """Delete a cached file: its snapshot entry and the blob it points at, so that the next
    download fetches it again instead of finding the bad copy in the cache."""
    path = Path(path)
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)


def verify_downloads(
    key: str,
    repo: str,
    files: Mapping[str, Path],
    pins: Mapping[str, str | None],
    *,
    offline: bool,
    revision: str | None = None,
    endpoint: str | None = None,
) -> dict[str, dict]:
    """Check each downloaded file (name -> path in the HF cache) against its pin or the hub.

    ``pins`` maps file names to the sha256 the registry records (None: none recorded).
    Returns name -> {"sha256", "size"} for every file checked. On a mismatch the bad copy
    is deleted from the cache and ChecksumMismatch says which file, both hashes and what to do.
    """
    checked: dict[str, dict] = {}
    for name, path in files.items():
        path = Path(path)
        pin = pins.get(name)
        if pin:
            want = Expected("sha256", pin.lower(), "registry")
        elif offline:
            continue  # nothing to ask: checked when it arrived
        else:
            at = snapshot_revision(path, name) or revision or "main"
            want = published_hash(repo, name, at, endpoint)
        checked[name] = check_file(key, repo, name, path, want)
    return checked


def check_file(key: str, repo: str, name: str, path: Path, want: Expected) -> dict:
    """Check one file against ``want``; returns {"sha256", "size"}. On a mismatch the file is
    deleted (with the cache blob it points at) and ChecksumMismatch says which file, both
    hashes and what to do."""
    path = Path(path)
    sha = file_sha256(path)
    got = sha if want.algorithm == "sha256" else git_sha1(path)
    if got != want.digest:
        discard(path)
        raise ChecksumMismatch(
            _mismatch_message(key, repo, name, want, got),
            file=name, expected=want.digest, actual=got, algorithm=want.algorithm,
            source=want.source,
        )  # fmt: skip
    return {"sha256": sha, "size": path.stat().st_size}


def _mismatch_message(key: str, repo: str, name: str, want: Expected, got: str) -> str:
    if want.source == "registry":
        who, why = (
            "the registry records",
            " or the repo changed since its registry entry was written",
        )
    else:
        who, why = f"hub repo {repo} publishes", ""
    return (
        f"model {key!r}: the downloaded {name} is damaged or not the published file: {who} "
        f"{want.algorithm} {want.digest}, the download has {got}. The bad copy was deleted; "
        f"download the model again. If it fails the same way, something between here and the "
        f"hub alters files{why}: import an exported model folder instead (Models > Import "
        f"folder, or `photosift models import FOLDER`)."
    )
