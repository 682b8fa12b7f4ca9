"""Camera RAW files (CR2, NEF, ARW, DNG ...) through LibRaw, via rawpy.

How a RAW becomes a photo (:func:`decode_raw`)
    1. LibRaw opens the file (headers only). A file LibRaw cannot open, or whose sensor is over
       the pixel limit, is refused here, before any image data is read.
    2. Preview first: most RAW files embed a JPEG preview, often full size. When its shorter
       side is at least the size asked for (the model's input), it is the photo: decoding a
       JPEG is many times cheaper than demosaicing, and a RAW cut off after an intact preview is
       still a photo. A thumbnail is not a preview: the embedded picture must also be at least
       1/:data:`PREVIEW_SHARE` of the sensor's size.
    3. Otherwise the sensor data is unpacked and demosaiced at half size (full size only when
       half would be smaller than asked for), with the camera's white balance.
    Orientation is LibRaw's (``sizes.flip``: the RAW's EXIF or maker-note orientation), for the
    preview exactly as for the demosaiced image.

Garbage is not a photo
    RAW files whose image data was stripped or cut off sometimes "decode" without an error:
    LibRaw stops filling its buffer and returns whatever it held (zeros in a fresh process,
    left-over memory in a busy one). Besides LibRaw's own errors, three checks refuse them,
    each with the reason "no image data: ...":

    * the file is too small for its sensor: under :data:`MIN_BITS_PER_PIXEL` bits of file per
      sensor pixel (checked before the unpacked buffer is looked at). Lossless RAW
      codecs spend at least 1 bit a sample and lossy ones 2-4; ../shared/data/raw's real files
      have 1.9-142, its stripped stubs 0.010-0.013;
    * every pixel of the sensor reads one value (a real sensor has read noise even in the
      dark: the two black frames in ../shared/data/raw/real have 68 and 117 distinct values);
    * at least :data:`MAX_ZERO_SHARE` of the pixels read exactly 0 although the black level is
      above 0: a dark pixel scatters around the black level, so a sensor reading 0 below it
      is a buffer nobody filled (the truncated RW2 stub: 99.8 % zeros under black level 15;
      the real dark frames: 0 % and 0.7 %). With a black level of 0 (cameras that subtract it
      themselves) zeros are what a dark frame holds, and this check does not apply.

    A genuinely dark frame has real sensor data and is indexed like any photo.

Everything that goes wrong is a :class:`~engine.errors.DecodeError` with a one-line reason.
rawpy is imported on first use, not when this module is.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import DecodeError
from .formats import extension
from .photometa import UPRIGHT, PhotoMeta, clean_keywords, gps_position, parse_exif_datetime

#: A RAW file must hold at least this many bits per sensor pixel to carry its image data.
MIN_BITS_PER_PIXEL = 0.1
#: A share of exact zeros (with a black level above 0) at which the data counts as missing.
MAX_ZERO_SHARE = 0.5
#: An embedded picture is a preview (not a thumbnail) when its shorter side is at least
#: 1/PREVIEW_SHARE of the sensor's. Cameras' previews are 1/6 or more: Sony's 1616 x 1080 on
#: 9504 x 6336 is the smallest share seen; the real files here have 31-100 %.
PREVIEW_SHARE = 8

#: LibRaw's ``flip`` (dcraw's numbering) -> the EXIF orientation that describes the same turn.
_FLIP_TO_EXIF = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}

#: Decodes an embedded JPEG preview (bytes) into RGB, draft-scaled towards ``side`` and *not*
#: oriented; raises DecodeError. engine.photos.decode passes its own Pillow path, with its guards.
JpegDecoder = Callable[[bytes, int], Image.Image]


class NotRaw(DecodeError):
    """LibRaw does not recognise the file at all (it may be another kind of image)."""


@dataclass(frozen=True)
class RawPhoto:
    """A decoded RAW: the upright RGB image, its metadata, and where the pixels came from
    (``"preview"``: the embedded JPEG or bitmap; ``"demosaic"``: LibRaw's demosaic of the
    sensor data, ``"half"`` or ``"full"`` size)."""

    image: Image.Image
    meta: PhotoMeta
    source: str


def decode_raw(
    path: str | os.PathLike[str],
    *,
    side: int,
    max_pixels: int,
    decode_jpeg: JpegDecoder,
    use_preview: bool = True,
) -> RawPhoto:
    """Decode a camera RAW file into an upright RGB image (see the module docstring).

    ``side``: the shorter side wanted (0: full resolution). ``use_preview=False`` always
    demosaics (the benchmark compares the two). Raises :class:`NotRaw` when LibRaw does not
    recognise the file, :class:`DecodeError` for everything else that fails.
    """
    path = os.fspath(path)
    file_size = _check_file(path)
    with _Raw(path) as raw:
        s = raw.sizes
        _check_pixels(s, max_pixels)
        orientation = _FLIP_TO_EXIF.get(s.flip, 1)
        meta = _meta(path, s, orientation)
        upright_short = min(s.width, s.height)
        # A preview stands for the photo; an EXIF-size thumbnail (160 x 120 of a 12 MP sensor,
        # all that is left of some cut-off files) does not, even for a model that small.
        wanted = max(side or upright_short, -(-upright_short // PREVIEW_SHARE))
        preview = _preview(raw, decode_jpeg, wanted) if use_preview else None
        if preview is not None:
            return RawPhoto(_orient_preview(preview, orientation, s), meta, "preview")
    half = side > 0 and upright_short // 2 >= side
    with _Raw(path) as raw:
        pixels = _demosaic(raw, half, file_size)
    image = Image.fromarray(pixels, "RGB")
    if side:
        factor = min(image.size) // side
        if factor >= 2:
            image = image.reduce(factor)
    return RawPhoto(image, meta, "demosaic " + ("half" if half else "full"))


def read_raw_meta(path: str | os.PathLike[str], *, max_pixels: int) -> PhotoMeta:
    """A RAW file's metadata from its headers (LibRaw's sizes and orientation, exiv2's EXIF,
    XMP and IPTC); no image data is read. Raises :class:`DecodeError` like :func:`decode_raw`
    for files LibRaw cannot open or whose sensor is over the pixel limit."""
    path = os.fspath(path)
    _check_file(path)
    with _Raw(path) as raw:
        s = raw.sizes
        _check_pixels(s, max_pixels)
        return _meta(path, s, _FLIP_TO_EXIF.get(s.flip, 1), keywords=True)


def libraw_version() -> str:
    """The LibRaw inside rawpy, e.g. "0.22.2"."""
    import rawpy

    return ".".join(str(v) for v in rawpy.libraw_version)


# ---------------------------------------------------------------------------------------
# LibRaw


class _Raw:
    """A LibRaw handle on one file, opened (headers parsed) on entry, released on exit.

    LibRaw allows one of unpack (sensor data) and unpack_thumb (preview) per open, so the
    demosaic path opens the file a second time; a header parse costs well under a millisecond.
    """

    def __init__(self, path: str):
        self.path = path
        self.raw = None

    def __enter__(self):
        import rawpy

        raw = rawpy.RawPy()
        try:
            raw.open_file(self.path)
        except rawpy.LibRawFileUnsupportedError as e:
            raw.close()
            raise NotRaw("not a RAW file LibRaw can read (unsupported format or camera)") from e
        except BaseException as e:
            raw.close()
            raise DecodeError(libraw_reason(e, "open")) from e
        self.raw = raw
        return raw

    def __exit__(self, *exc) -> None:
        self.raw.close()


def libraw_reason(exc: BaseException, stage: str) -> str:
    """A one-line reason for a rawpy/LibRaw exception raised while ``stage`` ("open", "unpack",
    "demosaic")."""
    import rawpy

    text = _text(exc)
    if isinstance(exc, rawpy.LibRawFileUnsupportedError):
        # The header was understood but the image data is in a codec this LibRaw lacks
        # (GoPro's VC-5 GPR, DNG with JPEG XL ...).
        return "unsupported RAW compression: LibRaw cannot decode this file's image data"
    if isinstance(exc, rawpy.LibRawIOError):
        return f"truncated or unreadable RAW file (LibRaw {stage}: {text})"
    if isinstance(exc, rawpy.LibRawDataError):
        return f"corrupt or truncated RAW data (LibRaw {stage}: {text})"
    if isinstance(exc, rawpy.LibRawTooBigError):
        return "RAW image too big for LibRaw to process"
    if isinstance(exc, (MemoryError, rawpy.LibRawUnsufficientMemoryError,
                        rawpy.LibRawMemPoolOverflowError)):  # fmt: skip
        return f"not enough memory to decode this RAW ({stage})"
    if isinstance(exc, OSError):
        return f"cannot read file: {exc.strerror or text}"
    return _one_line(f"cannot read RAW file (LibRaw {stage}: {text})")


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else ""
    if isinstance(arg, bytes):
        arg = arg.decode("utf-8", "replace")
    return str(arg) or type(exc).__name__


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_file(path: str) -> int:
    """The file's size; refuses what LibRaw must not be handed (a FIFO would block it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise DecodeError("file not found") from e
    except PermissionError as e:
        raise DecodeError("permission denied") from e
    except (OSError, ValueError) as e:
        raise DecodeError(_one_line(f"cannot open file: {e}")) from e
    if not stat.S_ISREG(st.st_mode):
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "special file"
        raise DecodeError(f"not a regular file ({kind})")
    if st.st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise DecodeError("permission denied")
    return st.st_size


def _check_pixels(s, max_pixels: int) -> None:
    """The decompression-bomb guard, on the header's sizes, before any data is unpacked."""
    w, h = max(s.raw_width, s.width), max(s.raw_height, s.height)
    if w <= 0 or h <= 0:
        raise DecodeError(f"invalid RAW sensor size {w}x{h}")
    if w * h > max_pixels:
        raise DecodeError(f"RAW sensor is {w}x{h} pixels, over the {max_pixels / 1e6:g} MP limit")


def _check_payload(file_size: int, s) -> None:
    pixels = s.raw_width * s.raw_height
    if file_size * 8 < MIN_BITS_PER_PIXEL * pixels:
        raise DecodeError(
            f"no image data: a {_kb(file_size)} file cannot hold a {s.raw_width}x{s.raw_height} "
            "sensor (data stripped or cut off)"
        )


def _kb(n: int) -> str:
    return f"{n:,} byte" if n < 10_000 else f"{n / 1024:,.0f} KB"


def missing_data_reason(visible: np.ndarray, black: int) -> str | None:
    """Why unpacked sensor data is not a picture (see the module docstring), or None.

    ``visible``: the sensor's visible area, one channel per colour (LibRaw's
    ``raw_image_visible`` without blank planes); ``black``: the lowest per-channel black level.
    """
    if visible.size == 0:
        return "no image data: the sensor area is empty"
    # Every third row and column: all colours of a Bayer or X-Trans mosaic, a ninth of the work.
    sample = visible[::3, ::3] if visible.ndim >= 2 and min(visible.shape[:2]) >= 3 else visible
    lo, hi = int(sample.min()), int(sample.max())
    if lo == hi and int(visible.min()) == int(visible.max()):
        return f"no image data: every pixel of the sensor reads {lo}"
    if black > 0:
        zeros = float(np.count_nonzero(sample == 0)) / sample.size
        if zeros >= MAX_ZERO_SHARE:
            return (
                f"no image data: {zeros:.1%} of the sensor reads 0, below its black level "
                f"{black} (data missing)"
            )
    return None


def _demosaic(raw, half: bool, file_size: int) -> np.ndarray:
    """Unpack and demosaic. LibRaw's own verdict on the data comes first (its errors name
    what it found); then the checks for data it "read" without complaint but never had."""
    import rawpy

    try:
        raw.unpack()
        _check_payload(file_size, raw.sizes)
        colors = raw.num_colors
        visible = raw.raw_image_visible
        if visible.ndim == 3:  # sRAW, LinearRaw DNG, Foveon: a plane per colour (+ blank ones)
            visible = visible[..., : max(1, min(colors, visible.shape[2]))]
        black = min(raw.black_level_per_channel[: max(1, min(colors, 4))])
        reason = missing_data_reason(visible, black)
        if reason:
            raise DecodeError(reason)
        return raw.postprocess(
            half_size=half,
            use_camera_wb=True,
            output_bps=8,
            demosaic_algorithm=None if half else rawpy.DemosaicAlgorithm.LINEAR,
        )
    except DecodeError:
        raise
    except Exception as e:
        raise DecodeError(libraw_reason(e, "unpack")) from e


def _preview(raw, decode_jpeg: JpegDecoder, wanted: int) -> Image.Image | None:
    """The embedded preview as RGB when it is big enough (shorter side >= ``wanted``), else None.

    A preview that is missing, unsupported, damaged or too small is not an error: the sensor
    data is the photo then."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, MemoryError, OSError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            image = decode_jpeg(bytes(thumb.data), wanted)
        except DecodeError:
            return None
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        data = np.asarray(thumb.data)
        if data.ndim != 3 or data.shape[2] != 3 or data.dtype != np.uint8:
            return None
        image = Image.fromarray(data, "RGB")
    else:
        return None
    if min(image.size) < wanted:
        return None
    return image


def _orient_preview(image: Image.Image, orientation: int, s) -> Image.Image:
    """Turn a preview upright with the RAW's orientation.

    Previews are stored as the sensor sees the scene, like the raw data. One whose aspect is
    already the upright frame's (a converter that stored it turned) is not turned again."""
    method = UPRIGHT.get(orientation)
    if method is None:
        return image
    if orientation >= 5:  # a quarter turn: width and height swap
        sensor_landscape = s.width >= s.height
        preview_landscape = image.width >= image.height
        if s.width != s.height and sensor_landscape != preview_landscape:
            return image
    return image.transpose(method)


# ---------------------------------------------------------------------------------------
# Metadata


def _meta(path: str, s, orientation: int, *, keywords: bool = False) -> PhotoMeta:
    width, height = s.width, s.height
    if orientation >= 5:
        width, height = height, width
    tags = _exif(path, keywords)
    return PhotoMeta(
        width=int(width),
        height=int(height),
        format=extension(path).upper() or "RAW",
        taken_at=tags.get("taken_at"),
        camera_make=tags.get("make"),
        camera_model=tags.get("model"),
        orientation=orientation,
        gps=tags.get("gps"),
        keywords=tags.get("keywords", ()),
    )


def _exif(path: str, keywords: bool) -> dict:
    """Date, camera, GPS (and keywords) through exiv2, which reads every RAW container LibRaw
    does (CR3 included). Bad or missing metadata leaves the fields empty; it never fails a photo."""
    import exiv2

    from . import exiv2meta as x

    out: dict = {}
    try:
        with x.LOCK:
            opened = x.open_path(path)
            get = lambda key: x.exif_text(opened, key)  # noqa: E731
            out["make"] = _clean(get("Exif.Image.Make"))
            out["model"] = _clean(get("Exif.Image.Model"))
            for date, offset, subsec in (
                ("Exif.Photo.DateTimeOriginal", "Exif.Photo.OffsetTimeOriginal",
                 "Exif.Photo.SubSecTimeOriginal"),
                ("Exif.Photo.DateTimeDigitized", "Exif.Photo.OffsetTimeDigitized",
                 "Exif.Photo.SubSecTimeDigitized"),
                ("Exif.Image.DateTime", "Exif.Photo.OffsetTime", "Exif.Photo.SubSecTime"),
            ):  # fmt: skip
                taken = parse_exif_datetime(get(date), get(offset), get(subsec))
                if taken:
                    out["taken_at"] = taken
                    break
            out["gps"] = gps_position({
                1: get("Exif.GPSInfo.GPSLatitudeRef"),
                2: x.exif_numbers(opened, "Exif.GPSInfo.GPSLatitude"),
                3: get("Exif.GPSInfo.GPSLongitudeRef"),
                4: x.exif_numbers(opened, "Exif.GPSInfo.GPSLongitude"),
            })  # fmt: skip
            if keywords:
                found = x.get_bag(opened, "Xmp.dc.subject") + x.get_iptc_keywords(opened)
                out["keywords"] = clean_keywords(found)
    except (exiv2.Exiv2Error, ValueError, TypeError, OverflowError, UnicodeError):
        pass
    return out


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    value = "".join(ch for ch in value.split("\x00", 1)[0] if ch.isprintable()).strip()
    return value[:200] or None
