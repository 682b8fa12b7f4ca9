"""Turn any file into an upright RGB photo, or refuse it with a one-line reason.

This is the only place the engine opens image files. It is Qt-free and torch-free and
runs in the decode pool, so it is built to be hostile-input safe and cheap per image:

* The format is decided by content, never by extension, and only from an allow-list of
  Pillow/pillow-heif decoders (no EPS/Ghostscript or other exotic plugins).
* Special files (FIFOs, devices) are refused before any read, so nothing can block.
* A pixel-count limit is checked on the header size before any pixel is decoded;
  Pillow's own DecompressionBomb error/warning are turned into the same refusal.
* Truncated data is refused, not padded with grey: a half-grey photo gives a
  misleading embedding, and a file that is still being copied will be seen again by
  the watcher once it is complete.
* Every failure is :class:`~engine.errors.DecodeError` with a short human reason.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import re
import stat
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFile

from engine.errors import DecodeError
from engine.photos import formats, raw
from engine.photos.photometa import UPRIGHT, PhotoMeta, extract_meta, orientation_of, safe_exif

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "PHOTO_EXTENSIONS",
    "DecodeError",
    "Photo",
    "PhotoMeta",
    "decode_photo",
    "read_meta",
]

#: Images with more pixels than this are refused before decoding (200 megapixels is
#: larger than any camera sensor or stitched phone panorama, and its RGB buffer is 600 MB).
DEFAULT_MAX_PIXELS = 200_000_000

#: Lower-case file extensions (with the dot) that the folder scanner treats as photos
#: (engine.photos.formats lists them). Decoding itself goes by content, so a mislabelled file still
#: decodes or is refused; camera RAW extensions go to LibRaw (engine.photos.raw).
PHOTO_EXTENSIONS: frozenset[str] = frozenset("." + e for e in formats.PHOTO_EXTENSIONS)

# Pillow format ids we are willing to parse, most common first (this is also the probe
# order). Anything else is "not a supported image file", even if Pillow has a plugin.
# (MPO has no id of its own: the JPEG opener returns an MpoImageFile when it sees MPF.)
_FORMATS = (
    "JPEG", "PNG", "HEIF", "AVIF", "WEBP", "GIF", "TIFF",
    "BMP", "DIB", "JPEG2000", "QOI", "PSD", "ICO", "PPM",
)  # fmt: skip

_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_HIGH_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG", True),
    (b"\x89PNG", "PNG", True),
    (b"GIF8", "GIF", True),
    (b"II*\x00", "TIFF", True),
    (b"MM\x00*", "TIFF", True),
    (b"BM", "BMP", True),
    (b"%!PS", "PostScript/EPS", False),
    (b"%PDF", "PDF", False),
)
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
_BOMB_PIXELS_RE = re.compile(r"\((\d+) pixels\)")

_init_lock = threading.Lock()
_formats: tuple[str, ...] | None = None  # _FORMATS that this Pillow build can open
# warnings.catch_warnings() swaps process-wide state; serialising our own use of it keeps
# concurrent decode threads from restoring each other's filters. Only Image.open (a header
# parse, well under a millisecond for most files) runs under it.
_open_lock = threading.Lock()


@dataclass(frozen=True, slots=True, kw_only=True)
class Photo(PhotoMeta):
    """A decoded photo: ``image`` is an upright 8-bit RGB PIL image plus its metadata.

    With a ``target`` the image may be smaller than ``width`` x ``height`` (which are
    always the full-resolution upright size), but its shorter side is at least
    ``max(target)`` unless the photo itself is smaller.
    """

    image: Image.Image = field(compare=False)


def decode_photo(
    path: str | os.PathLike[str],
    *,
    target: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Photo:
    """Decode ``path`` into an upright RGB :class:`Photo`.

    ``target`` is the model input size (h, w). When given, JPEGs are decoded with DCT
    scaling (``Image.draft``), HEIF may use an embedded thumbnail, and other formats are
    box-reduced by an integer factor, always keeping the shorter side >= max(target) so
    the model's own resize never upsamples. EXIF orientation is applied, alpha is
    composited on white, CMYK/16-bit/palette/float images become 8-bit RGB, and animated
    or multi-image files give their first frame.

    Raises :class:`DecodeError` (one-line reason) for every file that cannot be decoded:
    missing, unreadable, not an image, unsupported, truncated, corrupt, or over
    ``max_pixels``. ``ValueError`` only for a malformed ``target`` (a caller bug).
    """
    side = _target_side(target)
    if formats.is_raw(os.fspath(path)):
        try:
            got = raw.decode_raw(path, side=side, max_pixels=max_pixels,
                                 decode_jpeg=functools.partial(_embedded_jpeg, max_pixels=max_pixels))  # fmt: skip
            return Photo(**_fields(got.meta), image=got.image)
        except raw.NotRaw:
            _not_raw_after_all(path)  # a JPEG named .raw decodes below; anything else is refused
    with _open_file(path) as fp:
        im, exif = _open_image(fp, max_pixels)
        try:
            fmt = im.format or "image"
            full_size = im.size
            orientation = orientation_of(exif)
            try:
                if side:
                    # A square request makes both sides >= side, so the result is big
                    # enough whatever the orientation turns out to be.
                    im.draft("RGB", (side, side))
                im.load()
                if not exif and "exif" in im.info:
                    # PNG may carry eXIf after the pixel data: only visible after load().
                    exif = _parse_exif(im.info["exif"])
                    orientation = orientation_of(exif)
                meta = extract_meta(im, exif, size=full_size, applied_orientation=orientation)
                rgb = _to_rgb(im)
                if side:
                    factor = min(rgb.size) // side
                    if factor >= 2:
                        rgb = rgb.reduce(factor)
                method = UPRIGHT.get(orientation or 1)
                if method is not None:
                    rgb = rgb.transpose(method)
                elif rgb is im:
                    # Detach the pixels from the file object that is closed below.
                    rgb = im.copy()
            except DecodeError:
                raise
            except Exception as exc:
                raise DecodeError(_load_reason(exc, fmt, full_size)) from exc
        finally:
            im.close()
    return Photo(**_fields(meta), image=rgb)


def _fields(meta: PhotoMeta) -> dict:
    return {f.name: getattr(meta, f.name) for f in dataclasses.fields(PhotoMeta)}


def read_meta(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> PhotoMeta:
    """Read a photo's metadata from its headers only (no pixel decoding).

    Cheap enough for a preview pane. Raises :class:`DecodeError` for the same files that
    :func:`decode_photo` refuses before decoding (missing, not an image, over the pixel
    limit); truncated pixel data is not noticed here.
    """
    if formats.is_raw(os.fspath(path)):
        try:
            return raw.read_raw_meta(path, max_pixels=max_pixels)
        except raw.NotRaw:
            _not_raw_after_all(path)
    with _open_file(path) as fp:
        im, exif = _open_image(fp, max_pixels)
        try:
            return extract_meta(im, exif, size=im.size, applied_orientation=orientation_of(exif))
        except Exception as exc:
            raise DecodeError(_one_line(f"unreadable metadata: {exc}")) from exc
        finally:
            im.close()


# ---------------------------------------------------------------------------------------
# RAW files (engine.photos.raw does the work; these are the Pillow parts it borrows)


def _not_raw_after_all(path: str | os.PathLike[str]) -> None:
    """LibRaw did not recognise a file named like a RAW. An ordinary image under a RAW name
    (a JPEG saved as .raw) goes on to Pillow; a TIFF-like or unknown file is refused here, since
    Pillow would only find the small thumbnail at the front of a RAW it cannot read."""
    with _open_file(path) as fp:
        sniffed = _sniff(fp)
    if sniffed is None or not sniffed[1] or sniffed[0] == "TIFF":
        raise DecodeError("not a RAW file LibRaw can read (unsupported format or camera)")


def _embedded_jpeg(data: bytes, side: int, *, max_pixels: int) -> Image.Image:
    """A JPEG preview embedded in a RAW, as RGB, draft-scaled towards ``side``. Not oriented:
    the RAW's own orientation applies (engine.photos.raw). Same guards as any photo: pixel limit,
    truncated data refused."""
    im, _ = _open_image(io.BytesIO(data), max_pixels)
    try:
        fmt, full_size = im.format or "image", im.size
        try:
            if side:
                im.draft("RGB", (side, side))
            im.load()
            rgb = _to_rgb(im)
            return im.copy() if rgb is im else rgb
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(_load_reason(exc, fmt, full_size)) from exc
    finally:
        im.close()


# ---------------------------------------------------------------------------------------
# Opening


def _target_side(target: tuple[int, int] | None) -> int:
    if target is None:
        return 0
    try:
        h, w = (int(v) for v in target)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"target must be (height, width), got {target!r}") from exc
    if h <= 0 or w <= 0:
        raise ValueError(f"target must be positive, got {target!r}")
    return max(h, w)


def _open_file(path: str | os.PathLike[str]) -> io.BufferedReader:
    """Open a regular file for reading without ever blocking on a FIFO or device."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise DecodeError("file not found") from exc
    except PermissionError as exc:
        raise DecodeError("permission denied") from exc
    except IsADirectoryError as exc:
        raise DecodeError("not a regular file (directory)") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise DecodeError(_one_line(f"cannot open file: {_exc_text(exc)}")) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "directory" if stat.S_ISDIR(st.st_mode) else "special file"
            raise DecodeError(f"not a regular file ({kind})")
        if st.st_size == 0:
            raise DecodeError("empty file (0 bytes)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except DecodeError:
        os.close(fd)
        raise
    except Exception as exc:
        os.close(fd)
        raise DecodeError(_one_line(f"cannot read file: {_exc_text(exc)}")) from exc


def _allowed_formats() -> tuple[str, ...]:
    """Register pillow-heif once, on first use (not at import), and list usable formats."""
    global _formats
    if _formats is not None:
        return _formats
    with _init_lock:
        if _formats is None:
            Image.init()
            try:
                import pillow_heif

                pillow_heif.register_heif_opener()
            except Exception:  # without it HEIF files are refused as unsupported
                pass
            # Image.open raises KeyError for a requested format that is not registered.
            _formats = tuple(f for f in _FORMATS if f in Image.OPEN)
    return _formats


def _open_image(
    fp: io.BufferedReader, max_pixels: int
) -> tuple[ImageFile.ImageFile, Image.Exif | None]:
    """Identify and open (headers only) with the pixel limit enforced before any decoding."""
    try:
        im = _pillow_open(fp, max_pixels)
    except DecodeError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise DecodeError(_unidentified_reason(fp)) from exc
    except Image.DecompressionBombError as exc:
        raise DecodeError(_limit_reason(None, _bomb_pixels(exc), max_pixels)) from exc
    except MemoryError as exc:
        raise DecodeError("not enough memory to read the image header") from exc
    except ValueError as exc:
        text = str(exc)
        if "too large" in text or "MAX_TEXT" in text:
            # PNG zTXt/iCCP chunks that inflate to gigabytes: a metadata decompression bomb.
            raise DecodeError("oversized compressed metadata chunk (decompression bomb)") from exc
        raise DecodeError(_header_reason(exc, fp)) from exc
    except Exception as exc:
        raise DecodeError(_header_reason(exc, fp)) from exc

    try:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise DecodeError(f"invalid image size {w}x{h}")
        if w * h > max_pixels:
            raise DecodeError(_limit_reason((w, h), w * h, max_pixels))
        exif = safe_exif(im)
    except BaseException:
        im.close()
        raise
    return im, exif


def _pillow_open(fp: io.BufferedReader, max_pixels: int) -> ImageFile.ImageFile:
    """``Image.open`` with Pillow's decompression-bomb checks deferred to our own limit.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (89 MP in Pillow 13) and raises above
    twice that, both from inside ``Image.open``. The warning is turned into an exception
    here (a local warnings filter, not a Pillow setting) so it never reaches stderr, and
    the file is reopened with it silenced; our size check on the header then decides.
    Pillow's error is final unless the image is within ``max_pixels`` (a 200 MP phone
    photo is over Pillow's 179 MP hard limit): only then is Pillow's limit lifted, for
    this one header parse, under the lock, and restored before the lock is released.
    """
    formats = _allowed_formats()
    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(fp, formats=formats)
        except Image.DecompressionBombWarning:
            pass  # over Pillow's soft limit: reopen below and apply ours
        except Image.DecompressionBombError as exc:
            pixels = _bomb_pixels(exc)
            if pixels is None or pixels > max_pixels:
                raise DecodeError(_limit_reason(None, pixels, max_pixels)) from exc
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max(saved or 0, max_pixels)
            try:
                fp.seek(0)
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return Image.open(fp, formats=formats)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        fp.seek(0)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(fp, formats=formats)


def _parse_exif(data: object) -> Image.Exif | None:
    try:
        exif = Image.Exif()
        exif.load(data)
        return exif
    except Exception:  # corrupt EXIF only loses the metadata
        return None


# ---------------------------------------------------------------------------------------
# Pixels


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode: alpha on white, 16-bit scaled, CMYK via ICC."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in _HIGH_BIT_MODES:
        return _high_bit_to_rgb(im)
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    if mode == "P":
        # Palette images may have transparent entries (tRNS/GIF transparency) or an
        # RGBA palette; going through RGBA covers both.
        if "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA":
            return _on_white(im.convert("RGBA"))
        return im.convert("RGB")
    if mode in ("1", "L", "RGB") and "transparency" in im.info:
        # A colour-key transparency (tRNS for grey/RGB PNG): convert() applies the key.
        return _on_white(im.convert("RGBA"))
    try:
        if mode in _ALPHA_MODES:
            return _on_white(im if mode == "RGBA" else im.convert("RGBA"))
        return im.convert("RGB")
    except ValueError as exc:  # e.g. LAB or HSV, which Pillow cannot convert directly
        raise DecodeError(f"unsupported colour mode {mode}") from exc


def _on_white(rgba: Image.Image) -> Image.Image:
    """Composite an RGBA image over white (transparent areas become white, not black)."""
    alpha = rgba.getchannel("A")
    lo, hi = alpha.getextrema()
    if lo == 255:  # fully opaque: skip the blend
        return rgba.convert("RGB")
    out = Image.new("RGB", rgba.size, _WHITE)
    out.paste(rgba.convert("RGB"), mask=alpha)
    return out


def _high_bit_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit int and float greyscale to 8-bit by scaling, never by clipping.

    Pillow's own convert("L") clips these modes at 255, which turns a normal 16-bit
    photo almost white.
    """
    arr = np.asarray(im)
    key = im.info.get("transparency") if im.mode.startswith("I") else None
    if im.mode.startswith("I;16"):
        grey = (arr.astype(np.uint32) * 255 + 32767) // 65535
    elif im.mode == "I":
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 255:
            grey = arr
        elif lo >= 0 and hi <= 65535:
            grey = (arr.astype(np.int64) * 255 + 32767) // 65535
        else:
            grey = _stretch(arr.astype(np.float64), lo, hi)
    else:  # "F"
        data = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(data.min()), float(data.max())
        if lo >= 0.0 and hi <= 1.0:
            grey = np.rint(data * 255.0)
        else:
            grey = _stretch(data, lo, hi)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    if isinstance(key, int):
        rgb[arr == key] = 255  # tRNS colour key: transparent -> white
    return Image.fromarray(rgb, "RGB")


def _stretch(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros_like(data)
    return np.rint((data - lo) * (255.0 / (hi - lo)))


@functools.lru_cache(maxsize=8)
def _cmyk_transform(icc: bytes):
    """A cached CMYK(ICC) -> sRGB transform; building one costs milliseconds."""
    from PIL import ImageCms

    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    dst = ImageCms.createProfile("sRGB")
    return ImageCms.buildTransform(
        src, dst, "CMYK", "RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL
    )


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """CMYK to RGB through the embedded ICC profile when there is one.

    Adobe's inverted CMYK JPEGs are already un-inverted by Pillow's decoder. Without a
    profile, Pillow's naive formula is the only option and is close enough for search.
    """
    icc = im.info.get("icc_profile")
    if icc:
        try:
            return _cmyk_transform(bytes(icc)).apply(im)
        except Exception:  # a broken or non-CMYK profile: fall back
            pass
    return im.convert("RGB")


# ---------------------------------------------------------------------------------------
# Reasons


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _exc_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # Pillow puts the file object's repr in some messages; it only adds noise.
    return re.sub(r"<_io\.\w+ [^>]*>|'<[^>]*>'", "file", text)


def _bomb_pixels(exc: BaseException) -> int | None:
    m = _BOMB_PIXELS_RE.search(str(exc))
    return int(m[1]) if m else None


def _limit_reason(size: tuple[int, int] | None, pixels: int | None, max_pixels: int) -> str:
    limit = f"{max_pixels / 1e6:g} MP limit"
    if size:
        return f"image is {size[0]}x{size[1]} pixels, over the {limit}"
    if pixels:
        return f"image is {pixels / 1e6:,.4g} megapixels, over the {limit}"
    return f"image is over the {limit} (possible decompression bomb)"


def _sniff(fp: io.BufferedReader) -> tuple[str, bool] | None:
    """(format name, supported) from the first bytes, to word a refusal; None if unknown."""
    try:
        fp.seek(0)
        head = fp.read(32)
    except Exception:  # only used for wording
        return None
    for magic, name, supported in _MAGIC:
        if head.startswith(magic):
            return name, supported
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP", True
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIF/AVIF", True
        return f"ISO media ({brand.decode('latin-1')!r} brand)", False
    return None


def _unidentified_reason(fp: io.BufferedReader) -> str:
    """Tell "not an image at all" from "a damaged or unsupported image"."""
    sniffed = _sniff(fp)
    if sniffed is None:
        return "not an image file"
    name, supported = sniffed
    if supported:
        return f"corrupt {name} file (header unreadable)"
    return f"unsupported file type ({name})"


def _header_reason(exc: BaseException, fp: io.BufferedReader) -> str:
    """A short reason for a failure while parsing headers (before pixel data)."""
    text = _exc_text(exc)
    sniffed = _sniff(fp)
    name = sniffed[0] if sniffed else "image"
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return f"truncated {name} file (header incomplete)"
    return _one_line(f"corrupt {name} header: {text}")


def _load_reason(exc: BaseException, fmt: str, size: tuple[int, int]) -> str:
    """A short reason for a failure while decoding pixel data."""
    text = _exc_text(exc)
    low = text.lower()
    if isinstance(exc, MemoryError):
        return f"not enough memory to decode a {size[0]}x{size[1]} image"
    if isinstance(exc, Image.DecompressionBombError):
        return _one_line(f"frame too large: {text}")
    if "truncated" in low or "unexpected end" in low or isinstance(exc, EOFError):
        return f"truncated {fmt} data"
    if "cannot load this image" in low:
        return f"{fmt} file has no image data"
    if "broken data stream" in low or "decoder error" in low:
        return f"corrupt {fmt} data (broken data stream)"
    return _one_line(f"corrupt {fmt} data: {text}")
