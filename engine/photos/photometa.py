"""Photo metadata read from an opened Pillow image's headers: dates, camera, GPS, keywords.

Everything here works on what ``Image.open`` already parsed (EXIF, XMP, IPTC blocks in
``image.info``); nothing decodes pixels. Metadata in the wild is full of garbage (zero
dates, NUL-padded strings, GPS rationals with zero denominators), so every reader returns
None rather than raising: bad metadata never makes a good photo fail to decode.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from PIL import ExifTags, Image

# EXIF tag numbers (ExifTags.Base names them; spelled out here for readability).
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_ORIENTATION = 0x0112
_TAG_DATETIME = 0x0132
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME_DIGITIZED = 0x9004
_TAG_OFFSET_TIME = 0x9010
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_OFFSET_TIME_DIGITIZED = 0x9012
_TAG_SUBSEC_TIME = 0x9290
_TAG_SUBSEC_TIME_ORIGINAL = 0x9291
_TAG_SUBSEC_TIME_DIGITIZED = 0x9292

_DATE_RE = re.compile(
    r"^\s*(\d{4})[:\-/](\d{1,2})[:\-/](\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")
# XMP dc:subject is an rdf:Bag of rdf:li; a regex is enough and avoids an XML parser
# (Pillow's getxmp() needs defusedxml and warns without it).
_XMP_SUBJECT_RE = re.compile(rb"<dc:subject\b[^>]*>(.*?)</dc:subject>", re.S)
_XMP_LI_RE = re.compile(rb"<rdf:li\b[^>]*>(.*?)</rdf:li>", re.S)
_MAX_KEYWORDS = 200
_MAX_TEXT = 200


@dataclass(frozen=True, slots=True)
class PhotoMeta:
    """Header metadata of a photo.

    ``width``/``height`` are the full-resolution size as the photo is shown (upright,
    i.e. after the EXIF orientation is applied). ``orientation`` is the orientation tag
    the file carries (1-8) or None; for HEIF, whose decoder applies rotation itself, it is
    the value the file declared. ``taken_at`` is ISO 8601 (with a UTC offset when the
    file records one). ``gps`` is (latitude, longitude) in decimal degrees.
    """

    width: int
    height: int
    format: str
    taken_at: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    orientation: int | None = None
    gps: tuple[float, float] | None = None
    keywords: tuple[str, ...] = ()


# EXIF orientation (2-8) -> the transpose that makes the picture upright (1: none needed)
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orientation_of(exif: Image.Exif | None) -> int | None:
    """The EXIF orientation value (1-8), or None when absent or not a valid value."""
    if exif is None:
        return None
    try:
        value = int(exif.get(_TAG_ORIENTATION))
    except (TypeError, ValueError):
        return None
    return value if 1 <= value <= 8 else None


def safe_exif(image: Image.Image) -> Image.Exif | None:
    """``image.getexif()`` without the risks: None when the EXIF block is unreadable.

    PNG's own getexif() loads the whole image when the eXIf chunk was not seen before
    the pixel data; calling the base implementation keeps this a header-only read.
    """
    try:
        return Image.Image.getexif(image)
    except Exception:  # corrupt EXIF must not fail the photo
        return None


def extract_meta(
    image: Image.Image,
    exif: Image.Exif | None,
    *,
    size: tuple[int, int],
    applied_orientation: int | None,
) -> PhotoMeta:
    """Collect :class:`PhotoMeta` from an opened image.

    ``size`` is the decoder's full-resolution (width, height) before any draft scaling;
    ``applied_orientation`` is the orientation decode applies to the pixels (it decides
    whether width and height swap). Never raises for bad metadata.
    """
    width, height = size
    if applied_orientation in (5, 6, 7, 8):
        width, height = height, width

    orientation = orientation_of(exif)
    original = image.info.get("original_orientation")  # pillow-heif moves it here
    if isinstance(original, int) and 1 <= original <= 8:
        orientation = original

    ifd0: Mapping | _SafeTags = {}
    exif_ifd: dict = {}
    gps_ifd: dict = {}
    if exif is not None:
        ifd0 = _SafeTags(exif)  # looked up tag by tag: dict(exif) would parse every tag
        exif_ifd = _get_ifd(exif, ExifTags.IFD.Exif)
        gps_ifd = _get_ifd(exif, ExifTags.IFD.GPSInfo)

    return PhotoMeta(
        width=int(width),
        height=int(height),
        format=image.format or "unknown",
        taken_at=_taken_at(ifd0, exif_ifd),
        camera_make=_text(ifd0.get(_TAG_MAKE)),
        camera_model=_text(ifd0.get(_TAG_MODEL)),
        orientation=orientation,
        gps=_gps(gps_ifd),
        keywords=_keywords(image),
    )


class _SafeTags:
    """Read-only ``.get`` over an Exif whose lazily parsed values may be corrupt."""

    __slots__ = ("_exif",)

    def __init__(self, exif: Image.Exif) -> None:
        self._exif = exif

    def get(self, tag: int, default: object = None) -> object:
        try:
            return self._exif.get(tag, default)
        except Exception:  # a corrupt entry reads as missing
            return default


def _get_ifd(exif: Image.Exif, tag: int) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # a broken sub-IFD only loses that part
        return {}


def _text(value: object) -> str | None:
    """A printable, trimmed string from an EXIF ASCII value, or None when empty/garbage."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.split("\x00", 1)[0]
    value = "".join(ch for ch in value if ch.isprintable()).strip()
    return value[:_MAX_TEXT] or None


def parse_exif_datetime(value: object, offset: object = None, subsec: object = None) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (+ OffsetTime, SubSecTime) to ISO 8601, or None.

    Tolerates NUL padding, '-' or '/' separators, a missing time, and returns None for
    placeholders such as "0000:00:00 00:00:00" and impossible dates.
    """
    text = _text(value)
    if not text:
        return None
    m = _DATE_RE.match(text)
    if not m:
        return None
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    hour, minute, second = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
    if year < 1800:  # "0000:00:00", "1000:..." and the like are placeholders
        return None
    if second == 60:  # leap second written by some cameras
        second = 59
    try:
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None

    timespec = "seconds"
    frac = _text(subsec)
    if frac and frac.isdigit():
        moment = moment.replace(microsecond=int((frac + "000000")[:6]))
        if moment.microsecond:
            timespec = "milliseconds"

    off = _text(offset)
    if off:
        mo = _OFFSET_RE.match(off)
        if mo:
            delta = timedelta(hours=int(mo[2]), minutes=int(mo[3]))
            if delta <= timedelta(hours=14):
                sign = -1 if mo[1] == "-" else 1
                moment = moment.replace(tzinfo=timezone(sign * delta))
    return moment.isoformat(timespec=timespec)


def _taken_at(ifd0: Mapping | _SafeTags, exif_ifd: dict) -> str | None:
    candidates = (
        (
            exif_ifd.get(_TAG_DATETIME_ORIGINAL),
            _TAG_OFFSET_TIME_ORIGINAL,
            _TAG_SUBSEC_TIME_ORIGINAL,
        ),
        (
            exif_ifd.get(_TAG_DATETIME_DIGITIZED),
            _TAG_OFFSET_TIME_DIGITIZED,
            _TAG_SUBSEC_TIME_DIGITIZED,
        ),
        (ifd0.get(_TAG_DATETIME), _TAG_OFFSET_TIME, _TAG_SUBSEC_TIME),
    )
    for value, offset_tag, subsec_tag in candidates:
        result = parse_exif_datetime(value, exif_ifd.get(offset_tag), exif_ifd.get(subsec_tag))
        if result:
            return result
    return None


def _rational(value: object) -> float:
    try:
        result = float(value)  # IFDRational, int, float; zero denominators give nan
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan
    return result


def _degrees(value: object) -> float:
    if isinstance(value, (tuple, list)):
        parts = [_rational(v) for v in value[:3]]
        if not parts:
            return math.nan
        # Writers that store decimal minutes put 0/0 in the seconds slot: read it as 0.
        rest = [p if math.isfinite(p) else 0.0 for p in parts[1:]] + [0.0, 0.0]
        return parts[0] + rest[0] / 60.0 + rest[1] / 3600.0
    return _rational(value)


def gps_position(gps: Mapping) -> tuple[float, float] | None:
    """(lat, lon) from GPS tags by EXIF tag number (1 latitude ref, 2 latitude, 3 longitude ref,
    4 longitude; coordinates as numbers or (degrees, minutes, seconds)), or None when missing,
    malformed or exactly (0, 0). For readers other than Pillow (exiv2 for RAW files)."""
    return _gps(dict(gps))


def _gps(gps: dict) -> tuple[float, float] | None:
    """(lat, lon) from the GPS IFD, or None when missing, malformed or exactly (0, 0)."""
    if not gps:
        return None
    lat, lon = _degrees(gps.get(2)), _degrees(gps.get(4))
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    lat_ref = (_text(gps.get(1)) or "N").upper()[:1]
    lon_ref = (_text(gps.get(3)) or "E").upper()[:1]
    if lat_ref == "S":
        lat = -abs(lat)
    if lon_ref == "W":
        lon = -abs(lon)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    # Cameras without a fix often write zeros; "Null Island" is never a real photo spot.
    if lat == 0.0 and lon == 0.0:
        return None
    return (round(lat, 7), round(lon, 7))


def _keywords(image: Image.Image) -> tuple[str, ...]:
    """Keywords from XMP dc:subject and IPTC 2:25, de-duplicated in order; () if none."""
    found: list[str] = []
    try:
        xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8", "replace")
        if isinstance(xmp, bytes):
            for subject in _XMP_SUBJECT_RE.findall(xmp):
                for li in _XMP_LI_RE.findall(subject):
                    found.append(html.unescape(li.decode("utf-8", "replace")))
    except Exception:  # keywords are a bonus, never a failure
        pass
    try:
        if image.format in ("JPEG", "MPO", "TIFF"):
            from PIL import IptcImagePlugin

            iptc = IptcImagePlugin.getiptcinfo(image) or {}
            values = iptc.get((2, 25)) or []
            if isinstance(values, bytes):
                values = [values]
            for v in values:
                if isinstance(v, bytes):
                    # IPTC has no reliable charset marker in practice; UTF-8, else Latin-1.
                    try:
                        found.append(v.decode("utf-8"))
                    except UnicodeDecodeError:
                        found.append(v.decode("latin-1"))
    except Exception:
        pass
    return clean_keywords(found)


def clean_keywords(found: Iterable[object]) -> tuple[str, ...]:
    """Keywords as PhotoMeta holds them: printable, trimmed, each once in order, at most 200."""
    out: list[str] = []
    seen: set[str] = set()
    for k in found:
        k = _text(k)
        if k and k not in seen:
            seen.add(k)
            out.append(k)
            if len(out) >= _MAX_KEYWORDS:
                break
    return tuple(out)
