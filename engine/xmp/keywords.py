"""photosift's tags as keywords other photo managers read: XMP sidecars, embedded XMP and IPTC.

Where keywords live
    ``dc:subject`` (an rdf:Bag) in an XMP sidecar beside the photo is what digiKam, darktable
    and Lightroom read and write. photosift writes sidecars by default and never changes a
    photo unless :func:`embed_keywords` is called, which the app does only when the user asks.
    Reading takes the union of the sidecar, the XMP embedded in the photo and its IPTC-IIM
    Keywords (2:25), so keywords set in any of those programs come in as confirmed tags.

Sidecar names (see :func:`sidecar_path`)
    ``photo.jpg.xmp`` ("appended": digiKam, darktable, RawTherapee) keeps the sidecars of
    ``photo.jpg`` and ``photo.cr2`` apart, so it is what photosift creates. ``photo.xmp``
    ("replaced": Lightroom, Capture One, Bridge) is read too, and updated instead when it is the
    one that already exists, so the program that made it sees the change.

Keywords
    Compared after Unicode NFC normalisation (an "é" typed decomposed and one typed precomposed
    are one keyword) but written exactly as given, so any text (Chinese, Arabic, emoji, NFD)
    round-trips. Case matters ("Cat" and "cat" differ), as in digiKam. Surrounding white space is
    dropped; a keyword with control characters is refused (XML cannot hold most of them).
    With ``vocabulary_of``, a label also goes into ``lr:hierarchicalSubject`` as
    ``photosift|<vocabulary>|<label>``, the hierarchy Lightroom and digiKam show as a tree.

Safety
    Every write builds the complete new file in memory, writes it to a temporary file in the same
    folder and swaps it in with ``os.replace`` (:mod:`engine.store.atomicfile`); if the file changed on
    disk meanwhile, the write is refused. A sidecar that cannot be parsed is reported, never
    overwritten. In a JPEG only the XMP and IPTC segments change (:mod:`engine.xmp.jpegsegments`).
    Problems are raised as :class:`~engine.errors.MetadataError` naming the file and the reason.
"""

from __future__ import annotations

import functools
import glob
import io
import os
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import exiv2
from PIL import Image

from ..errors import MetadataError
from ..photos import exiv2meta as meta
from ..photos.formats import is_raw
from ..store.atomicfile import FileChanged, replace_bytes
from . import jpegsegments

SidecarStyle = Literal["auto", "appended", "replaced"]

DC_SUBJECT = "Xmp.dc.subject"
LR_HIERARCHY = "Xmp.lr.hierarchicalSubject"
HIERARCHY_ROOT = "photosift"
_SIDECAR_SUFFIXES = (".xmp", ".XMP")
# A sidecar whose last property was removed. exiv2 cannot write one (with no XMP left it
# keeps the old packet), so the keyword would silently stay; this is what it should hold.
EMPTY_SIDECAR = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""/>\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
).encode()


def _exiv2_locked(fn):
    """Run ``fn`` holding the exiv2 lock (see :data:`engine.photos.exiv2meta.LOCK`)."""

    @functools.wraps(fn)
    def locked(*args, **kwargs):
        with meta.LOCK:
            return fn(*args, **kwargs)

    return locked


# ------------------------------------------------------------------------------------ naming


def sidecar_path(photo: Path, style: SidecarStyle = "auto") -> Path:
    """Where the XMP sidecar of ``photo`` is (or would be).

    ``"appended"``: ``IMG_1.jpg.xmp`` (digiKam, darktable). ``"replaced"``: ``IMG_1.xmp``
    (Lightroom). ``"auto"``: the sidecar that already exists, in that order of preference
    (either suffix case), else the appended name. A replaced-style ``IMG_1.xmp`` is not taken
    for ``IMG_1.jpg`` when another ``IMG_1.*`` sits beside it: Lightroom writes sidecars for raw
    files only, so that one belongs to ``IMG_1.cr2`` (it is still read, as the same shot's).
    A camera RAW file takes it whatever sits beside it: ``IMG_1.cr2`` with ``IMG_1.jpg`` and
    Lightroom's ``IMG_1.xmp`` updates that sidecar.
    """
    photo = Path(photo)
    appended = photo.with_name(photo.name + ".xmp")
    replaced = photo.with_suffix(".xmp")
    if style == "appended":
        return appended
    if style == "replaced":
        return replaced
    if style != "auto":
        raise ValueError(f"unknown sidecar style {style!r} (auto, appended, replaced)")
    existing = existing_sidecars(photo)
    if (
        existing
        and existing[0].name.lower() == replaced.name.lower()
        and not is_raw(photo.name)
        and _has_twin(photo)
    ):
        existing = existing[1:]
    return existing[0] if existing else appended


def _has_twin(photo: Path) -> bool:
    """Another file with the same stem beside ``photo`` (IMG_1.cr2 for IMG_1.jpg), not a sidecar."""
    pattern = glob.escape(photo.stem) + ".*"
    return any(
        p.name != photo.name and p.suffix.lower() != ".xmp" for p in photo.parent.glob(pattern)
    )


def existing_sidecars(photo: Path) -> list[Path]:
    """The sidecars of ``photo`` that exist, appended-style first."""
    photo = Path(photo)
    found: list[Path] = []
    for base in (photo.name, photo.stem):
        for suffix in _SIDECAR_SUFFIXES:
            p = photo.with_name(base + suffix)
            # On a case-insensitive disk both suffix spellings name the same file.
            if p.is_file() and not any(_same_file(p, q) for q in found):
                found.append(p)
    return found


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ------------------------------------------------------------------------------------ reading


@dataclass
class KeywordSources:
    """Keywords of one photo, by where they were found.

    ``problems``: embedded metadata that could not be read (the photo itself is fine to use;
    those keywords are just missing). A broken sidecar is not a problem but an error.
    """

    sidecar: list[str] = field(default_factory=list)
    xmp: list[str] = field(default_factory=list)
    iptc: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # lr:hierarchicalSubject entries of the sidecar and the embedded XMP ("a|b|c"), each once.
    hierarchy: list[str] = field(default_factory=list)

    def union(self) -> list[str]:
        """Sidecar, then embedded XMP, then IPTC keywords, each once (first spelling wins)."""
        return _merge([], [*self.sidecar, *self.xmp, *self.iptc])


@_exiv2_locked
def read_keyword_sources(photo: Path) -> KeywordSources:
    """The keywords of ``photo`` from each place they can live; see :class:`KeywordSources`.

    Raises :class:`MetadataError` if the photo does not exist or a sidecar of it is malformed.
    """
    photo = Path(photo)
    if not photo.is_file():
        raise MetadataError(photo, "no such photo")
    out = KeywordSources()
    for sidecar in existing_sidecars(photo):
        opened = _open_sidecar(sidecar)
        if opened is not None:
            out.sidecar.extend(meta.get_bag(opened, DC_SUBJECT))
            out.hierarchy = _merge(out.hierarchy, meta.get_bag(opened, LR_HIERARCHY))
    try:
        opened = meta.open_bytes(_read(photo))
    except exiv2.Exiv2Error as e:
        out.problems.append(f"{photo}: metadata not readable ({e.message})")
        return out
    if opened.xmp_broken:
        out.problems.append(f"{photo}: embedded XMP is malformed ({'; '.join(opened.errors)})")
    out.xmp = meta.get_bag(opened, DC_SUBJECT)
    out.iptc = meta.get_iptc_keywords(opened)
    out.hierarchy = _merge(out.hierarchy, meta.get_bag(opened, LR_HIERARCHY))
    return out


def read_keywords(photo: Path) -> list[str]:
    """All keywords of ``photo``: sidecar ``dc:subject``, embedded XMP ``dc:subject`` and IPTC
    Keywords, de-duplicated, in that order. Unreadable embedded metadata is skipped (see
    :func:`read_keyword_sources` for what was skipped); a malformed sidecar raises
    :class:`MetadataError`."""
    return read_keyword_sources(photo).union()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise MetadataError(path, f"cannot read ({e.strerror or e})") from e


def _open_sidecar(path: Path) -> meta.Opened | None:
    """The parsed sidecar; None for an empty file (treated as a sidecar with nothing in it).

    A sidecar that does not parse is an error, never "no keywords": the user's keywords are in
    there, and writing over it would lose them.
    """
    data = _read(path)
    if not data.strip():
        return None
    bad = "malformed XMP sidecar, left untouched"
    try:
        opened = meta.open_bytes(data)
    except exiv2.Exiv2Error as e:
        raise MetadataError(path, f"{bad} ({e.message})") from e
    if opened.mime != meta.XMP_MIME:
        raise MetadataError(path, f"{bad} (it holds {opened.mime} data)")
    if opened.errors:
        raise MetadataError(path, f"{bad} ({'; '.join(opened.errors)})")
    return opened


# ------------------------------------------------------------------------------------ writing


@_exiv2_locked
def write_sidecar_keywords(
    photo: Path,
    add: Iterable[str],
    remove: Iterable[str] = (),
    *,
    vocabulary_of: Mapping[str, str] | None = None,
    style: SidecarStyle = "auto",
) -> Path:
    """Add and remove keywords in the XMP sidecar of ``photo``; returns the sidecar's path.

    Creates the sidecar if there is none (see :func:`sidecar_path` for the name). Everything
    else already in it (ratings, edits, other namespaces, keywords set elsewhere) is kept.
    ``vocabulary_of`` maps a label to its vocabulary for ``lr:hierarchicalSubject``. The photo
    is never opened for writing, and an unchanged sidecar is not rewritten.
    Removing a keyword here does not remove a copy embedded in the photo itself.
    """
    photo = Path(photo)
    if not photo.is_file():
        raise MetadataError(photo, "no such photo")
    path = sidecar_path(photo, style)
    add_list, remove_list = _clean_all(path, add), _clean_all(path, remove)
    before = None
    opened = None
    if path.exists():
        before = _stat(path)
        opened = _open_sidecar(path)
    if opened is None:
        opened = meta.new_sidecar()
    if not _edit_xmp(opened, add_list, remove_list, vocabulary_of):
        return path
    try:
        data = EMPTY_SIDECAR if opened.image.xmpData().empty() else opened.serialize()
    except exiv2.Exiv2Error as e:
        raise MetadataError(path, f"exiv2 could not write the XMP ({e.message})") from e
    _check_written(path, data, opened, iptc=False)
    _replace(path, data, before)
    return path


@_exiv2_locked
def embed_keywords(
    photo: Path,
    add: Iterable[str],
    remove: Iterable[str] = (),
    *,
    vocabulary_of: Mapping[str, str] | None = None,
) -> None:
    """Write keywords into the photo file itself. Call only when the user asked for it.

    Updates the embedded XMP ``dc:subject`` and, when the photo already carries IPTC-IIM data,
    its Keywords too (so the two do not disagree; IPTC is not added to a photo without it).
    Camera RAW files are refused (:class:`MetadataError`): their keywords live in a sidecar.
    JPEG: only the XMP and IPTC segments change, the image data and all other segments stay byte
    for byte. PNG, WebP, TIFF: exiv2 rewrites the metadata chunks, and the write is refused
    unless the decoded pixels come out identical. HEIF/AVIF, multi-picture JPEG (MPO) and
    formats exiv2 cannot write raise :class:`MetadataError` (use a sidecar instead).
    The file is replaced atomically; the content hash changes, as for any edit.
    """
    photo = Path(photo)
    if is_raw(photo.name):
        # exiv2 could write into a DNG, CR2 or NEF (they are TIFF inside), but a RAW is the
        # photographer's negative: photosift never changes one.
        raise MetadataError(
            photo, "camera RAW file: keywords go to its XMP sidecar, never into the RAW"
        )
    add_list, remove_list = _clean_all(photo, add), _clean_all(photo, remove)
    before = _stat(photo)
    original = _read(photo)
    try:
        opened = meta.open_bytes(original)
    except exiv2.Exiv2Error as e:
        raise MetadataError(photo, f"cannot write keywords into this file ({e.message})") from e
    mime = opened.mime
    if opened.xmp_broken:
        raise MetadataError(photo, "its embedded XMP is malformed; left untouched")
    if not opened.can_write(exiv2.MetadataId.Xmp):
        raise MetadataError(photo, f"cannot write keywords into {mime} files; use a sidecar")
    is_jpeg = mime == "image/jpeg"
    if is_jpeg and _is_mpo(original):
        raise MetadataError(photo, "multi-picture JPEG (MPO): keywords go into a sidecar")
    xmp_changed = _edit_xmp(opened, add_list, remove_list, vocabulary_of)
    iptc_changed = False
    if opened.can_write(exiv2.MetadataId.Iptc) and meta.has_iptc(opened):
        old = meta.get_iptc_keywords(opened)
        target = _apply(old, add_list, remove_list)
        if target != old:
            meta.set_iptc_keywords(opened, target)
            iptc_changed = meta.get_iptc_keywords(opened) != old
    if not (xmp_changed or iptc_changed):
        return
    try:
        rewritten = opened.serialize()
    except exiv2.Exiv2Error as e:
        raise MetadataError(photo, f"exiv2 could not write the metadata ({e.message})") from e
    if is_jpeg:
        try:
            data = jpegsegments.transplant(original, rewritten, xmp=xmp_changed, iptc=iptc_changed)
        except jpegsegments.NotAJpeg as e:
            raise MetadataError(photo, f"JPEG structure not understood ({e})") from e
    else:
        data = rewritten
    _check_written(photo, data, opened, iptc=iptc_changed)
    _check_pixels(photo, original, data)
    _replace(photo, data, before)


def _edit_xmp(
    opened: meta.Opened,
    add: list[str],
    remove: list[str],
    vocabulary_of: Mapping[str, str] | None,
) -> bool:
    """Apply the changes to dc:subject and lr:hierarchicalSubject; True if anything changed."""
    changed = False
    old = meta.get_bag(opened, DC_SUBJECT)
    new = _apply(old, add, remove)
    if new != old:
        meta.set_bag(opened, DC_SUBJECT, new)
        changed = True
    old_h = meta.get_bag(opened, LR_HIERARCHY)
    if old_h or vocabulary_of:
        new_h = _apply_hierarchy(old_h, add, remove, vocabulary_of or {})
        if new_h != old_h:
            meta.set_bag(opened, LR_HIERARCHY, new_h)
            changed = True
    return changed


def _apply_hierarchy(
    old: list[str], add: list[str], remove: list[str], vocabulary_of: Mapping[str, str]
) -> list[str]:
    """photosift's own ``photosift|vocabulary|label`` entries follow the labels; entries made by
    other programs are never touched."""
    gone = {meta.nfc(k) for k in remove}

    def ours_and_removed(entry: str) -> bool:
        parts = entry.split("|")
        return len(parts) == 3 and parts[0] == HIERARCHY_ROOT and meta.nfc(parts[2]) in gone

    kept = [e for e in old if not ours_and_removed(e)]
    fresh = []
    for label in add:
        vocab = vocabulary_of.get(label)
        if vocab and "|" not in vocab and "|" not in label:
            fresh.append(f"{HIERARCHY_ROOT}|{vocab.strip()}|{label}")
    return _merge(kept, fresh)


def _check_written(path: Path, data: bytes, intended: meta.Opened, *, iptc: bool) -> None:
    """Read the new bytes back before they replace anything: they must hold the keywords meant.

    exiv2 reports some failures only in its log (an XMP packet it cannot encode is dropped with
    a warning), so the result is checked rather than trusted.
    """
    try:
        back = meta.open_bytes(data)
    except exiv2.Exiv2Error as e:
        reason = f"the new file does not read back ({e.message}); not written"
        raise MetadataError(path, reason) from e
    wrong = [
        key
        for key in (DC_SUBJECT, LR_HIERARCHY)
        if meta.get_bag(back, key) != meta.get_bag(intended, key)
    ]
    if iptc and meta.get_iptc_keywords(back) != meta.get_iptc_keywords(intended):
        wrong.append(meta.IPTC_KEYWORDS)
    if back.xmp_broken or wrong:
        what = ", ".join(wrong) or "XMP"
        raise MetadataError(
            path, f"the new file does not read back as written ({what}); not written"
        )


def _is_mpo(data: bytes) -> bool:
    try:
        return jpegsegments.is_multi_picture(data)
    except jpegsegments.NotAJpeg:
        return False


def _check_pixels(photo: Path, old: bytes, new: bytes) -> None:
    """Refuse a write whose decoded image differs from the original's (or no longer decodes)."""
    if (
        old[: len(jpegsegments.SOI)] == jpegsegments.SOI
        and jpegsegments.split(old)[1] == (jpegsegments.split(new)[1])
    ):
        return  # JPEG: the compressed data is the very same bytes
    try:
        with Image.open(io.BytesIO(old)) as a, Image.open(io.BytesIO(new)) as b:
            same = a.size == b.size and a.mode == b.mode and a.tobytes() == b.tobytes()
    except Exception as e:  # any decoder failure means "cannot prove it"
        raise MetadataError(
            photo, f"cannot verify the image is unchanged ({e}); left untouched"
        ) from e
    if not same:
        raise MetadataError(photo, "writing metadata would change the image; left untouched")


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as e:
        raise MetadataError(path, f"cannot read ({e.strerror or e})") from e


def _replace(path: Path, data: bytes, before: os.stat_result | None) -> None:
    try:
        replace_bytes(path, data, expect=before)
    except FileChanged as e:
        raise MetadataError(path, f"{e}; not overwritten, try again") from e
    except OSError as e:
        reason = e.strerror or str(e)
        raise MetadataError(path, f"cannot write in {path.parent} ({reason})") from e


# ---------------------------------------------------------------------------------- keywords


def _clean_all(path: Path, keywords: Iterable[str]) -> list[str]:
    if isinstance(keywords, str):
        raise TypeError("keywords must be a list of strings, not one string")
    out = []
    for k in keywords:
        k = k.strip()
        if not k:
            continue
        bad = [c for c in k if unicodedata.category(c) in ("Cc", "Cs") or c in "\ufffe\uffff"]
        if bad:
            raise MetadataError(path, f"keyword {k!r} holds control characters {bad!r}")
        out.append(k)
    return out


def _merge(base: list[str], extra: Iterable[str]) -> list[str]:
    """``base`` followed by the items of ``extra`` it does not hold yet (compared in NFC)."""
    seen = {meta.nfc(k) for k in base}
    out = list(base)
    for k in extra:
        key = meta.nfc(k)
        if key not in seen:
            seen.add(key)
            out.append(k)
    return out


def _apply(old: list[str], add: list[str], remove: list[str]) -> list[str]:
    """``old`` minus ``remove``, plus ``add``; existing order, spellings and any duplicates
    another program left are kept. A keyword both added and removed stays (adding wins)."""
    gone = {meta.nfc(k) for k in remove} - {meta.nfc(k) for k in add}
    kept = [k for k in old if meta.nfc(k) not in gone]
    new = _merge(kept, add)
    return old if new == kept and len(kept) == len(old) else new


# ------------------------------------------------------------------------------------- batch


@dataclass
class BatchProgress:
    """Reported after every photo of a batch."""

    done: int
    total: int
    current: Path | None


@dataclass
class ExportReport:
    """What :func:`export_tags_to_sidecars` did: sidecars written (or already up to date) and
    photos that failed, with the reason. One failure never stops the batch."""

    total: int = 0
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled


def export_tags_to_sidecars(
    photo_keywords: Mapping[Path, Iterable[str]],
    progress: Callable[[BatchProgress], None] | None = None,
    *,
    remove: Mapping[Path, Iterable[str]] | None = None,
    vocabulary_of: Mapping[str, str] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ExportReport:
    """Write each photo's keywords into its XMP sidecar (see :func:`write_sidecar_keywords`).

    ``photo_keywords``: photo path -> keywords to have in its sidecar (added; keywords already
    there stay). ``remove``: photo path -> keywords to take out (e.g. tags the user rejected).
    ``progress`` is called after every photo; ``cancel`` is asked before each one and stops the
    batch (``report.cancelled``), every sidecar already written staying written. Per-photo
    errors are collected in the report.
    """
    remove = remove or {}
    paths = list(dict.fromkeys([*photo_keywords, *remove]))
    report = ExportReport(total=len(paths))
    for i, photo in enumerate(paths):
        if cancel is not None and cancel():
            report.cancelled = True
            break
        try:
            written = write_sidecar_keywords(
                Path(photo),
                list(photo_keywords.get(photo, ())),
                list(remove.get(photo, ())),
                vocabulary_of=vocabulary_of,
            )
            report.written.append(written)
        except MetadataError as e:
            report.failed.append((Path(photo), e.reason))
        if progress is not None:
            progress(BatchProgress(i + 1, len(paths), Path(photo)))
    return report


@dataclass
class ImportReport:
    """What :func:`import_keywords` found: keywords per photo (photos without any are left out),
    photos whose sidecar could not be read (``failed``, with the reason), and embedded metadata
    that was skipped (``problems``, one line each). ``hierarchy``: the photos'
    ``lr:hierarchicalSubject`` entries (photos without any are left out)."""

    total: int = 0
    keywords: dict[Path, list[str]] = field(default_factory=dict)
    hierarchy: dict[Path, list[str]] = field(default_factory=dict)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cancelled: bool = False


def import_keywords(
    photos: Iterable[Path],
    progress: Callable[[BatchProgress], None] | None = None,
    *,
    cancel: Callable[[], bool] | None = None,
) -> ImportReport:
    """Read the keywords of many photos (see :func:`read_keywords`), to take in as confirmed
    tags. One unreadable photo or sidecar never stops the batch."""
    paths = [Path(p) for p in dict.fromkeys(photos)]
    report = ImportReport(total=len(paths))
    for i, photo in enumerate(paths):
        if cancel is not None and cancel():
            report.cancelled = True
            break
        try:
            sources = read_keyword_sources(photo)
        except MetadataError as e:
            report.failed.append((photo, e.reason))
        else:
            report.problems += sources.problems
            if found := sources.union():
                report.keywords[photo] = found
            if sources.hierarchy:
                report.hierarchy[photo] = sources.hierarchy
        if progress is not None:
            progress(BatchProgress(i + 1, len(paths), photo))
    return report
