"""Camera RAW files made for benchmarks and tests: DNGs that LibRaw decodes like a camera's.

A DNG is a TIFF: a CFA (Bayer RGGB) image of 16-bit samples, with the tags LibRaw needs to
demosaic it (DNG version, CFA pattern, black and white level, an identity colour matrix, a
neutral white balance), the camera's make, model, date and orientation, and optionally an
embedded JPEG preview (IFD0, the raw data in a SubIFD, as Adobe's converter writes them).
Only `photosift bench raw` (a 24 MP DNG, the size of today's cameras) and the tests use this;
photosift never writes a RAW file into a library.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10
_SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, SRATIONAL: 8}


def mosaic(rgb: np.ndarray, *, black: int = 512, white: int = 65535, seed: int = 0) -> np.ndarray:
    """An RGGB sensor reading of an sRGB picture: linear light, a black level, read noise."""
    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    lin = (rgb[:h, :w].astype(np.float64) / 255.0) ** 2.2 * (white - black - 400)
    cfa = np.empty((h, w), np.float64)
    cfa[0::2, 0::2] = lin[0::2, 0::2, 0]
    cfa[0::2, 1::2] = lin[0::2, 1::2, 1]
    cfa[1::2, 0::2] = lin[1::2, 0::2, 1]
    cfa[1::2, 1::2] = lin[1::2, 1::2, 2]
    noise = np.random.default_rng(seed).normal(0.0, 4.0, cfa.shape)
    return np.clip(np.rint(cfa + black + noise), 0, white).astype("<u2")


def write_dng(
    path: Path,
    rgb: np.ndarray | Image.Image,
    *,
    orientation: int = 1,
    preview: Image.Image | None = None,
    make: str = "photosift",
    model: str = "Test DNG",
    taken: str = "2024:05:01 12:30:00",
    black: int = 512,
    sensor: np.ndarray | None = None,
) -> Path:
    """Write ``rgb`` (as the sensor saw it, before ``orientation``) as a DNG at ``path``.

    ``preview``: an image to embed as the JPEG preview (sensor orientation, like a camera's).
    ``sensor``: raw CFA samples to store instead of the mosaic of ``rgb`` (e.g. all zeros).
    """
    rgb = np.asarray(rgb.convert("RGB") if isinstance(rgb, Image.Image) else rgb, np.uint8)
    cfa = mosaic(rgb, black=black) if sensor is None else np.asarray(sensor, "<u2")
    h, w = cfa.shape
    raw_ifd = [
        (254, LONG, [0]),  # NewSubfileType: the main image
        (256, LONG, [w]),
        (257, LONG, [h]),
        (258, SHORT, [16]),
        (259, SHORT, [1]),  # uncompressed
        (262, SHORT, [32803]),  # CFA
        (273, LONG, ["raw"]),  # StripOffsets: filled in below
        (277, SHORT, [1]),
        (278, LONG, [h]),
        (279, LONG, [cfa.nbytes]),
        (33421, SHORT, [2, 2]),  # CFARepeatPatternDim
        (33422, BYTE, [0, 1, 1, 2]),  # CFAPattern: RGGB
        (50714, LONG, [black]),  # BlackLevel
        (50717, LONG, [65535]),  # WhiteLevel
    ]
    common = [
        (271, ASCII, make),
        (272, ASCII, model),
        (274, SHORT, [orientation]),
        (306, ASCII, taken),
        (50706, BYTE, [1, 4, 0, 0]),  # DNGVersion
        (50708, ASCII, f"{make} {model}"),  # UniqueCameraModel
        (
            50721,
            SRATIONAL,
            [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)],
        ),
        (50728, RATIONAL, [(1, 1), (1, 1), (1, 1)]),  # AsShotNeutral
        (50778, SHORT, [21]),  # CalibrationIlluminant1: D65
    ]
    blobs: dict[str, bytes] = {}  # the preview before the raw data, as cameras write them
    if preview is None:
        ifds = [sorted(raw_ifd + common, key=lambda e: e[0])]
    else:
        buf = io.BytesIO()
        preview.convert("RGB").save(buf, "JPEG", quality=92)
        blobs["preview"] = buf.getvalue()
        ifd0 = common + [
            (254, LONG, [1]),  # a reduced-resolution copy: the preview
            (256, LONG, [preview.width]),
            (257, LONG, [preview.height]),
            (258, SHORT, [8, 8, 8]),
            (259, SHORT, [7]),  # JPEG
            (262, SHORT, [6]),  # YCbCr
            (273, LONG, ["preview"]),
            (277, SHORT, [3]),
            (278, LONG, [preview.height]),
            (279, LONG, [len(blobs["preview"])]),
            (330, LONG, ["ifd1"]),  # SubIFDs: the raw data
        ]
        ifds = [sorted(ifd0, key=lambda e: e[0]), sorted(raw_ifd, key=lambda e: e[0])]
    blobs["raw"] = cfa.tobytes()
    Path(path).write_bytes(_tiff(ifds, blobs))
    return Path(path)


def _tiff(ifds: list[list[tuple]], blobs: dict[str, bytes]) -> bytes:
    """Little-endian TIFF bytes: the IFDs one after another, then their long values and blobs.
    A value "raw"/"preview" is the offset of that blob, "ifd1" the offset of the second IFD."""
    offsets: dict[str, int] = {}
    pos = 8
    for n, entries in enumerate(ifds):
        offsets[f"ifd{n}"] = pos
        pos += 2 + 12 * len(entries) + 4
    extra = bytearray()
    extra_at = pos
    packed_ifds = []
    for entries in ifds:
        out = bytearray(struct.pack("<H", len(entries)))
        for tag, typ, values in entries:
            data = _pack(typ, values, offsets, blobs, extra_at, extra)
            count = len(values) + 1 if typ == ASCII else len(values)
            if len(data) <= 4:
                out += struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\0")
            else:
                out += struct.pack("<HHII", tag, typ, count, extra_at + len(extra))
                extra += data
                if len(extra) % 2:
                    extra += b"\0"
        nxt = 0  # SubIFDs are reached through tag 330, not the IFD chain
        out += struct.pack("<I", nxt)
        packed_ifds.append(bytes(out))
    head = b"II*\0" + struct.pack("<I", 8) + b"".join(packed_ifds)
    body = bytes(extra)
    blob_at = len(head) + len(body)
    tail = bytearray()
    for name, data in blobs.items():
        offsets[name] = blob_at + len(tail)
        tail += data
    # second pass, now that blob offsets are known
    return _fill(head + body, offsets) + bytes(tail)


_MARK = 0xFEED0000


def _pack(typ, values, offsets, blobs, extra_at, extra) -> bytes:
    if typ == ASCII:
        return values.encode("ascii") + b"\0"
    if typ in (RATIONAL, SRATIONAL):
        fmt = "<II" if typ == RATIONAL else "<ii"
        return b"".join(struct.pack(fmt, a, b) for a, b in values)
    fmt = {BYTE: "<B", SHORT: "<H", LONG: "<I"}[typ]
    out = b""
    for v in values:
        if isinstance(v, str):  # a placeholder for an offset known only later
            out += struct.pack("<I", _MARK + list(_NAMES).index(v))
        else:
            out += struct.pack(fmt, v)
    return out


_NAMES = ("raw", "preview", "ifd1")


def _fill(data: bytes, offsets: dict[str, int]) -> bytes:
    for n, name in enumerate(_NAMES):
        if name in offsets:
            data = data.replace(struct.pack("<I", _MARK + n), struct.pack("<I", offsets[name]))
    return data
