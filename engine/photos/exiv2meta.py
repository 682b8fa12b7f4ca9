"""A thin layer over python-exiv2 (the ``exiv2`` package): open metadata from bytes, and read
and write the keyword properties photosift cares about.

exiv2 is the metadata library behind digiKam, darktable and gThumb; its XMP side is Adobe's
XMP Toolkit, so packets it writes are what those programs expect. Everything here works on
bytes in memory: the caller reads the file, and writes the result back atomically itself.

exiv2 reports problems through a log, not through exceptions (a broken XMP packet is logged as
"XMP Toolkit error ..." and then skipped). :func:`open_bytes` collects the errors logged while
parsing, for this thread only, so callers can tell "no keywords" from "keywords we could not read".
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import exiv2

IPTC_KEYWORDS = "Iptc.Application2.Keywords"
IPTC_CHARSET = "Iptc.Envelope.CharacterSet"
# ISO 2022 escape sequence that declares UTF-8 in IPTC-IIM (dataset 1:90).
IPTC_UTF8 = "\x1b%G"
# IPTC-IIM 2:25 holds at most 64 octets; longer keywords live in XMP only.
IPTC_KEYWORD_MAX_BYTES = 64

XMP_MIME = "application/rdf+xml"

_log = logging.getLogger("exiv2")  # python-exiv2 routes libexiv2's log here
_local = threading.local()
# The XMP Toolkit inside exiv2 keeps one process-wide namespace registry, which parsing a packet
# with an unknown namespace writes to; python-exiv2 cannot hand it a lock. Keyword I/O is not a
# hot path, so callers hold this lock around all exiv2 work instead.
LOCK = threading.RLock()
_setup_lock = threading.Lock()
_set_up = False


class _Collector(logging.Handler):
    """Hands each exiv2 log record to the capture open in the thread that logged it."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(_local, "sink", None)
        if sink is not None and record.levelno >= logging.ERROR:
            sink.append(record.getMessage())


def _setup() -> None:
    """Once per process, on first use (nothing happens at import): log only errors, collect them.

    With a handler on the "exiv2" logger, Python's last-resort handler no longer prints exiv2's
    messages to stderr; they still propagate to whatever logging the application configured.
    """
    global _set_up
    with _setup_lock:
        if _set_up:
            return
        exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.error)
        _log.addHandler(_Collector())
        exiv2.XmpParser.initialize()  # not thread-safe itself: done once, under the lock
        _set_up = True


@contextmanager
def _collect_errors() -> Iterator[list[str]]:
    _setup()
    outer = getattr(_local, "sink", None)
    sink: list[str] = []
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = outer


@dataclass
class Opened:
    """An image (or XMP sidecar) parsed from bytes.

    ``errors``: what exiv2 logged as errors while parsing (e.g. a malformed XMP packet, which
    it then drops: ``xmp_broken`` says so).
    """

    image: exiv2.Image
    errors: list[str]

    @property
    def mime(self) -> str:
        return self.image.mimeType()

    @property
    def xmp_broken(self) -> bool:
        return any("XMP" in e for e in self.errors)

    def can_write(self, what: exiv2.MetadataId) -> bool:
        mode = self.image.checkMode(what)
        return mode in (exiv2.AccessMode.Write, exiv2.AccessMode.ReadWrite)

    def serialize(self) -> bytes:
        """Write the metadata back (in memory) and return the whole file's new bytes."""
        with _collect_errors():
            self.image.writeMetadata()
        return bytes(self.image.data())


def open_bytes(data: bytes) -> Opened:
    """Parse an image or XMP sidecar from bytes. Raises ``exiv2.Exiv2Error`` for data exiv2
    does not recognise as any image type (e.g. zero bytes, random text)."""
    with _collect_errors() as errors:
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
    return Opened(image, errors)


def open_path(path: str) -> Opened:
    """Parse a file's metadata where it lies, reading only what exiv2 needs (a 50 MB RAW is not
    read whole). Raises ``exiv2.Exiv2Error`` for files exiv2 does not recognise."""
    with _collect_errors() as errors:
        image = exiv2.ImageFactory.open(path)
        image.readMetadata()
    return Opened(image, errors)


def exif_text(opened: Opened, key: str) -> str | None:
    """An EXIF tag as exiv2 prints it (``"Exif.Image.Make"`` -> ``"Canon"``), or None if absent."""
    exif = opened.image.exifData()
    pos = exif.findKey(exiv2.ExifKey(key))
    return None if pos == exif.end() else pos.toString()


def exif_numbers(opened: Opened, key: str) -> tuple[float, ...] | None:
    """An EXIF tag's numeric components (a GPS coordinate's degrees, minutes, seconds), or None."""
    exif = opened.image.exifData()
    pos = exif.findKey(exiv2.ExifKey(key))
    if pos == exif.end():
        return None
    return tuple(pos.toFloat(i) for i in range(pos.count()))


def new_sidecar() -> Opened:
    """An empty XMP sidecar, in memory."""
    _setup()
    image = exiv2.ImageFactory.create(exiv2.ImageType.xmp)
    return Opened(image, [])


# ---------------------------------------------------------------------------------------- XMP


def get_bag(opened: Opened, key: str) -> list[str]:
    """The items of an XMP array property (``Xmp.dc.subject``), or [] when it is absent.

    A plain text value where an array belongs (some writers do that) counts as one item.
    """
    xmp = opened.image.xmpData()
    pos = xmp.findKey(exiv2.XmpKey(key))
    if pos == xmp.end():
        return []
    value = pos.value()
    if pos.typeId() in (exiv2.TypeId.xmpBag, exiv2.TypeId.xmpSeq, exiv2.TypeId.xmpAlt):
        return [value.toString(i) for i in range(value.count())]
    text = value.toString()
    return [text] if text else []


def set_bag(opened: Opened, key: str, items: Iterable[str]) -> None:
    """Replace an XMP array property with an unordered array (rdf:Bag) of ``items``;
    an empty list removes the property."""
    xmp = opened.image.xmpData()
    xkey = exiv2.XmpKey(key)
    pos = xmp.findKey(xkey)
    if pos != xmp.end():
        xmp.erase(pos)
    items = list(items)
    if not items:
        return
    bag = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag)
    for item in items:
        bag.read(item)  # read() appends one item, commas and all
    xmp.add(xkey, bag)


# --------------------------------------------------------------------------------------- IPTC


def has_iptc(opened: Opened) -> bool:
    return opened.image.iptcData().count() > 0


def _iptc_values(opened: Opened) -> list[tuple[str, bytes]]:
    """(key, raw bytes) of the text datasets: the character set applies to these only."""
    return [
        (d.key(), bytes(d.value().data()))
        for d in opened.image.iptcData()
        if d.typeId() == exiv2.TypeId.string
    ]


def _iptc_is_utf8(values: list[tuple[str, bytes]]) -> bool:
    return any(k == IPTC_CHARSET and v == IPTC_UTF8.encode() for k, v in values)


def _decode_iptc(raw: bytes, utf8: bool) -> str:
    if utf8:
        return raw.decode("utf-8", "replace")
    # Files that do not declare a character set are UTF-8 (most modern writers) or Latin-1
    # (older cameras and Photoshop): a byte string that is valid UTF-8 is almost never Latin-1.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def get_iptc_keywords(opened: Opened) -> list[str]:
    """IPTC-IIM Keywords (2:25), decoded per the file's declared character set (1:90)."""
    values = _iptc_values(opened)
    utf8 = _iptc_is_utf8(values)
    return [_decode_iptc(v, utf8) for k, v in values if k == IPTC_KEYWORDS]


def set_iptc_keywords(opened: Opened, keywords: list[str]) -> list[str]:
    """Replace the IPTC Keywords with ``keywords`` as far as IPTC-IIM can hold them; returns
    the ones it cannot (they stay in XMP, which is the authoritative copy).

    IPTC cannot hold a keyword longer than 64 bytes. Non-ASCII text needs UTF-8 declared in
    1:90; that declaration is added only when every text already in the IPTC block is valid
    UTF-8, because declaring it over Latin-1 text (older cameras) would garble that text.
    """
    iptc = opened.image.iptcData()
    values = _iptc_values(opened)
    utf8 = _iptc_is_utf8(values)
    legacy = not utf8 and not all(_valid_utf8(v) for _, v in values)
    key = exiv2.IptcKey(IPTC_KEYWORDS)
    pos = iptc.findKey(key)
    while pos != iptc.end():
        iptc.erase(pos)
        pos = iptc.findKey(key)
    left_out: list[str] = []
    need_utf8 = False
    for kw in keywords:
        raw = kw.encode("utf-8")
        if len(raw) > IPTC_KEYWORD_MAX_BYTES or (legacy and not kw.isascii()):
            left_out.append(kw)
            continue
        need_utf8 |= not kw.isascii()
        iptc.add(key, exiv2.StringValue(kw))
    if need_utf8 and not utf8:
        iptc[IPTC_CHARSET] = IPTC_UTF8
    return left_out


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def nfc(text: str) -> str:
    """The comparison key of a keyword: "é" typed precomposed or decomposed is one keyword."""
    return unicodedata.normalize("NFC", text)
