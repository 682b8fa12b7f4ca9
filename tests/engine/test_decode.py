"""Tests for engine.photos.decode: hostile files, orientation, draft size, colour modes, metadata.

Real files come from ../shared/data (relative to the project root); tests that need them
skip with a reason when it is absent. The rest build their inputs in tmp_path.
"""

from __future__ import annotations

import csv
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from engine.errors import DecodeError
from engine.photos.decode import (
    DEFAULT_MAX_PIXELS,
    PHOTO_EXTENSIONS,
    Photo,
    PhotoMeta,
    decode_photo,
    read_meta,
)
from engine.photos.photometa import parse_exif_datetime

ROOT = Path(__file__).resolve().parents[2]
DATA = (ROOT / ".." / "shared" / "data").resolve()
ODD = DATA / "odd-files"
PHOTOS = DATA / "photos"
SIDE = 224  # the test target: small enough to use HEIF thumbnails, keeps the run fast


@pytest.fixture(scope="module")
def data() -> Path:
    if not (ODD / "manifest.csv").is_file() or not (PHOTOS / "manifest.csv").is_file():
        pytest.skip(
            f"test data not found at {DATA} (expected ../shared/data from the project root)"
        )
    return DATA


def _manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.float64)


def _upright_size(row: dict[str, str]) -> tuple[int, int]:
    """Manifest size is the decoder's; HEIF decoders already apply rotation themselves."""
    w, h = int(row["width"]), int(row["height"])
    if row["orientation"] in ("5", "6", "7", "8") and row["format"] != "HEIF":
        w, h = h, w
    return w, h


def _assert_reason(exc: DecodeError) -> str:
    reason = str(exc)
    assert reason.strip(), "empty reason"
    assert "\n" not in reason and len(reason) <= 200, reason
    return reason


def _assert_target_size(img: Image.Image, full: tuple[int, int], side: int) -> None:
    """Shorter side >= side (unless the photo is smaller), and not wastefully large."""
    short = min(img.size)
    if min(full) >= side:
        assert side <= short < 2 * side, (img.size, full, side)
    else:
        assert img.size == full, (img.size, full)


# ---------------------------------------------------------------------------------------
# Every hostile file: a valid RGB image or a DecodeError, in line with manifest.csv


# Pillow reports the broken EXIF of some of these files as a UserWarning; that is expected.
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_odd_files_decode_or_refuse_as_manifest_says(data):
    rows = _manifest(ODD)
    assert len(rows) >= 90
    problems: list[str] = []
    slowest = (0.0, "")
    outcomes: dict[str, int] = {}
    for row in rows:
        path = ODD / row["file"]
        must_refuse = bool(row["open_error"] or row["load_error"])
        t0 = time.perf_counter()
        try:
            photo = decode_photo(path, target=(SIDE, SIDE))
        except DecodeError as exc:
            reason = _assert_reason(exc)
            outcomes[reason] = outcomes.get(reason, 0) + 1
            if not must_refuse:
                problems.append(f"{row['file']}: refused ({reason}) but Pillow decodes it")
            elif "DecompressionBomb" in row["open_error"] or "too large" in row["open_error"]:
                if "limit" not in reason and "bomb" not in reason:
                    problems.append(f"{row['file']}: bomb refused with {reason!r}")
            elif "truncated" in row["load_error"] and "truncated" not in reason:
                problems.append(f"{row['file']}: truncated file refused with {reason!r}")
            elif row["bytes"] == "0" and "empty" not in reason:
                problems.append(f"{row['file']}: zero-byte file refused with {reason!r}")
        else:
            outcomes["decoded"] = outcomes.get("decoded", 0) + 1
            if must_refuse:
                problems.append(
                    f"{row['file']}: decoded but Pillow says {row['open_error'] or row['load_error']}"
                )
                continue
            img = photo.image
            if img.mode != "RGB" or min(img.size) < 1:
                problems.append(f"{row['file']}: bad image {img.mode} {img.size}")
            if (photo.width, photo.height) != _upright_size(row):
                problems.append(
                    f"{row['file']}: size {photo.width}x{photo.height} != {_upright_size(row)}"
                )
            if photo.format != row["format"]:
                problems.append(f"{row['file']}: format {photo.format} != {row['format']}")
            _assert_target_size(img, (photo.width, photo.height), SIDE)
        slowest = max(slowest, (time.perf_counter() - t0, row["file"]))
    assert not problems, "\n".join(problems)
    assert outcomes["decoded"] >= 70
    # Nothing hangs: the slowest hostile file (a 20 MP AVIF / 12 MP HEIC) takes well under
    # a second alone; the bound leaves room for a busy shared machine.
    assert slowest[0] < 5.0, slowest


def test_specific_refusal_reasons(data):
    def reason(rel: str) -> str:
        with pytest.raises(DecodeError) as info:
            decode_photo(ODD / rel)
        return _assert_reason(info.value)

    assert "empty" in reason("derived/zero_bytes.jpg")
    assert reason("derived/not_an_image.jpg") == "not an image file"
    assert "truncated" in reason("derived/photo_truncated_60pct.jpg")
    assert "truncated" in reason("derived/photo_header_only.jpg")
    assert "truncated" in reason("pillow/truncated_image.png")
    assert "over the 200 MP limit" in reason("pillow/decompression_bomb.gif")
    assert "decompression bomb" in reason("pillow/png_decompression_dos.png")


def test_only_allow_listed_formats_are_parsed(tmp_path):
    # EPS would run Ghostscript; exotic formats widen the attack surface for no photo.
    eps = tmp_path / "drawing.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(DecodeError, match=r"^unsupported file type \(PostScript/EPS\)$"):
        decode_photo(eps)
    pcx = tmp_path / "old.pcx"
    Image.new("RGB", (8, 8)).save(pcx)
    with pytest.raises(DecodeError, match="^not an image file$"):
        decode_photo(pcx)


def test_content_not_extension(data, tmp_path):
    assert decode_photo(ODD / "derived/png_with_jpg_extension.jpg").format == "PNG"
    fake = tmp_path / "really_a_jpeg.png"
    shutil.copy(PHOTOS / "metadata-extractor-images/Apple_iPhone_4.jpg", fake)
    assert decode_photo(fake, target=(SIDE, SIDE)).format == "JPEG"


# ---------------------------------------------------------------------------------------
# Real photos


def test_every_photo_decodes_upright_with_metadata(data):
    rows = _manifest(PHOTOS)
    assert len(rows) >= 100
    for row in rows:
        photo = decode_photo(PHOTOS / row["file"], target=(SIDE, SIDE))
        assert isinstance(photo, Photo)
        assert photo.image.mode == "RGB"
        assert (photo.width, photo.height) == _upright_size(row), row["file"]
        _assert_target_size(photo.image, (photo.width, photo.height), SIDE)
        # The decoded pixels have the upright aspect ratio (orientation really applied).
        assert photo.image.width / photo.image.height == pytest.approx(
            photo.width / photo.height, rel=0.02
        ), row["file"]
        dto = row["datetime_original"]
        if dto and not dto.startswith("0000"):
            assert photo.taken_at and photo.taken_at.startswith(dto[:10].replace(":", "-")), row[
                "file"
            ]
        make = row["make"].split("\x00")[0].strip()  # NUL-padded in some files
        if make:
            assert photo.camera_make == make, row["file"]


def test_read_meta_matches_decode_without_decoding_pixels(data, monkeypatch):
    files = [
        "metadata-extractor-images/Apple_iPhone_4S.jpg",  # orientation 6
        "metadata-extractor-images/Nikon_D5000.jpg",
        "metadata-extractor-images-other/IMG_1034.heic",
        "metadata-extractor-images-other/Nikon_Coolpix_P7000.webp",
        "stereo-img/Panasonic-DMC-GX8.mpo",
    ]
    decoded = {f: decode_photo(PHOTOS / f, target=(SIDE, SIDE)) for f in files}

    def no_pixels(self, *args, **kwargs):
        raise AssertionError("read_meta decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_pixels)
    for f, photo in decoded.items():
        meta = read_meta(PHOTOS / f)
        assert isinstance(meta, PhotoMeta)
        expected = {k: getattr(photo, k) for k in PhotoMeta.__dataclass_fields__}
        assert {k: getattr(meta, k) for k in expected} == expected, f


def test_metadata_values(data):
    p = decode_photo(PHOTOS / "metadata-extractor-images/Apple_iPhone_4.jpg", target=(SIDE, SIDE))
    assert p.taken_at == "2011-01-13T14:33:39"
    assert (p.camera_make, p.camera_model) == ("Apple", "iPhone 4")
    assert p.gps == pytest.approx((41.853, 12.4888333), abs=1e-5)
    # GPS written as decimal minutes with a 0/0 seconds field.
    nikon = read_meta(PHOTOS / "metadata-extractor-images/Nikon_D5000.jpg")
    assert nikon.gps == pytest.approx((48.0 + 53.32358 / 60, 21.0 + 2.59507 / 60), abs=1e-5)
    # Zero coordinates and NaN rationals are "no position", not (0, 0).
    assert (
        read_meta(PHOTOS / "metadata-extractor-images/Samsung_GT-I9000_(Galaxy_S).jpg").gps is None
    )
    assert read_meta(PHOTOS / "metadata-extractor-images/Leica_T_(Typ_701).jpg").gps is None
    # OffsetTimeOriginal and SubSecTimeOriginal.
    heic = read_meta(ODD / "metadata-extractor-images/heic/IMG_2927.HEIC")
    assert heic.taken_at == "2020-05-04T18:39:11.644-04:00"
    assert read_meta(PHOTOS / "metadata-extractor-images/Nikon_E900_(1).jpg").taken_at is None
    assert read_meta(PHOTOS / "metadata-extractor-images/Nikon_D1X.jpg").keywords == (
        "Woodworking",
    )
    assert read_meta(PHOTOS / "metadata-extractor-images/Apple_iPhone_4S.jpg").orientation == 6


@pytest.mark.parametrize(
    ("value", "offset", "subsec", "expected"),
    [
        ("2011:01:13 14:33:39", None, None, "2011-01-13T14:33:39"),
        ("2011:01:13 14:33:39\x00", "+02:00", None, "2011-01-13T14:33:39+02:00"),
        (b"2020:05:04 18:39:11", "-04:00", "644", "2020-05-04T18:39:11.644-04:00"),
        ("2020-05-04T18:39:11", "garbage", "xx", "2020-05-04T18:39:11"),
        ("2011:01:13", None, None, "2011-01-13T00:00:00"),
        ("0000:00:00 00:00:00", None, None, None),
        ("2011:13:45 25:61:00", None, None, None),
        ("    :  :     :  :  ", None, None, None),
        ("", None, None, None),
        (None, None, None, None),
        (12345, None, None, None),
    ],
)
def test_parse_exif_datetime(value, offset, subsec, expected):
    assert parse_exif_datetime(value, offset, subsec) == expected


# ---------------------------------------------------------------------------------------
# Orientation and draft size


def test_exif_orientation_really_applied(data):
    # Same pixels, stored unrotated with orientation 6: upright means rotated 90° clockwise.
    tagged = decode_photo(ODD / "derived/photo_exif_orientation6.jpg")
    plain = decode_photo(ODD / "derived/png_with_jpg_extension.jpg")
    assert tagged.orientation == 6
    assert (tagged.width, tagged.height) == (plain.height, plain.width) == tagged.image.size
    cw = np.rot90(_arr(plain.image), k=-1)
    assert np.abs(_arr(tagged.image) - cw).mean() < 4
    assert np.abs(_arr(tagged.image) - np.rot90(_arr(plain.image), k=1)).mean() > 20

    # Pillow's orientation 2..8 test files all show the same upright picture.
    upright = _arr(decode_photo(ODD / "pillow/hopper.bmp").image)
    for n in range(2, 9):
        got = _arr(decode_photo(ODD / f"pillow/hopper_orientation_{n}.jpg").image)
        assert np.abs(got - upright).mean() < 8, n
        with Image.open(ODD / f"pillow/hopper_orientation_{n}.jpg") as raw:
            assert np.abs(_arr(raw.convert("RGB")) - upright).mean() > 30, n
    webp = _arr(decode_photo(ODD / "pillow/hopper_orientation_6.webp").image)
    assert np.abs(webp - upright).mean() < 8


@pytest.mark.parametrize("target", [(224, 224), (256, 384), (384, 256), (1000, 50)])
def test_draft_keeps_shorter_side(data, target):
    side = max(target)
    for rel in [
        "metadata-extractor-images/Apple_iPhone_4S.jpg",  # orientation 6, 3264x2448
        "metadata-extractor-images/Canon_PowerShot_A85.jpg",  # orientation 8
        "metadata-extractor-images/Leica_T_(Typ_701).jpg",  # orientation 8, 4928x3264
        "pannellum/examplepano_equirect_4096x2048.jpg",
        "stereo-img/Panasonic-DMC-GX8.mpo",
        "metadata-extractor-images/Sony_Cybershot_(3).jpg",  # 311x450, smaller than some targets
    ]:
        photo = decode_photo(PHOTOS / rel, target=target)
        _assert_target_size(photo.image, (photo.width, photo.height), side)


def test_draft_really_downsamples_jpeg(data, monkeypatch):
    from PIL import JpegImagePlugin

    seen: list[tuple] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = real_draft(self, mode, size)
        seen.append((self.format, size, result))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    photo = decode_photo(
        PHOTOS / "metadata-extractor-images/Apple_iPhone_4S.jpg", target=(256, 256)
    )
    assert seen and seen[0][2] is not None, "JPEG draft mode not used"
    assert photo.image.size == (306, 408)  # 1/8 DCT scaling of 2448x3264, upright


def test_full_decode_returns_full_size_open_image(data):
    photo = decode_photo(PHOTOS / "metadata-extractor-images/Canon_IXUS.jpg")
    assert photo.image.size == (photo.width, photo.height) == (640, 480)
    # The image must not be tied to the (closed) file.
    assert _arr(photo.image).shape == (480, 640, 3)


def test_bad_target_is_a_caller_error(data):
    with pytest.raises(ValueError):
        decode_photo(PHOTOS / "metadata-extractor-images/Canon_IXUS.jpg", target=(0, 10))


# ---------------------------------------------------------------------------------------
# Colour modes


def _white_on_transparent(rel: str) -> None:
    with Image.open(ODD / rel) as raw:
        rgba = _arr(raw.convert("RGBA"))
    got = _arr(decode_photo(ODD / rel).image)
    clear = rgba[..., 3] == 0
    opaque = rgba[..., 3] == 255
    assert clear.any() and opaque.any(), rel
    assert (got[clear] == 255).all(), f"{rel}: transparent pixels are not white"
    assert np.abs(got[opaque] - rgba[opaque][:, :3]).max() <= 1, rel


@pytest.mark.parametrize(
    "rel",
    [
        "derived/photo_rgba_alpha.png",
        "derived/photo_rgba_alpha.webp",
        "pillow/transparent.png",
        "pillow/transparent.gif",  # palette + transparency index
        "pillow/p_trns_single.png",  # palette + tRNS
        "pillow/rgb_trns.png",  # RGB colour key
        "pillow/avif/transparency.avif",
    ],
)
def test_alpha_composited_on_white(data, rel):
    _white_on_transparent(rel)


def test_16bit_grey_with_transparency_key(data):
    with Image.open(ODD / "pillow/i_trns.png") as raw:
        key = raw.info["transparency"]
        values = np.asarray(raw)
    got = _arr(decode_photo(ODD / "pillow/i_trns.png").image)
    assert (values == key).any()
    assert (got[values == key] == 255).all()


def test_16bit_scaled_not_clipped(data):
    rel = "derived/photo_16bit_gray.png"
    with Image.open(ODD / rel) as raw:
        values = np.asarray(raw).astype(np.float64)
    grey = _arr(decode_photo(ODD / rel).image)[..., 0]
    assert np.abs(grey - values / 257).max() <= 0.5 + 1e-9  # scaled: 65535 -> 255
    assert (grey >= 254).mean() < 0.05  # clipping at 255 would make most of it white
    # Same picture as the 16-bit RGB twin (which has a darker tone curve, hence corr).
    luma = _arr(decode_photo(ODD / "derived/photo_16bit_rgb.png").image.convert("L"))
    assert np.corrcoef(grey.ravel(), luma.ravel())[0, 1] > 0.99
    rel = "metadata-extractor-images/png/PngSuite/basn0g16.png"
    with Image.open(ODD / rel) as raw:
        expected = np.asarray(raw).astype(np.float64) / 257
    got = _arr(decode_photo(ODD / rel).image)
    assert np.abs(got[..., 0] - expected).max() <= 0.5 + 1e-9


def test_high_bit_modes_synthetic(tmp_path):
    ramp16 = (np.arange(256 * 16, dtype=np.uint32).reshape(16, 256) * 16).astype(np.uint16)
    Image.fromarray(ramp16).save(tmp_path / "g16.png")
    got = _arr(decode_photo(tmp_path / "g16.png").image)[..., 0]
    assert np.abs(got - ramp16 / 257.0).max() <= 0.5 + 1e-9

    ramp_f = np.linspace(0.0, 1.0, 256, dtype=np.float32).reshape(1, 256).repeat(4, axis=0)
    Image.fromarray(ramp_f).save(tmp_path / "f.tif")
    got = _arr(decode_photo(tmp_path / "f.tif").image)[..., 0]
    assert np.abs(got - ramp_f * 255).max() <= 0.5 + 1e-6

    Image.new("1", (8, 8), 1).save(tmp_path / "bw.png")
    assert _arr(decode_photo(tmp_path / "bw.png").image).min() == 255

    la = Image.new("LA", (4, 4), (0, 0))  # black, fully transparent
    la.save(tmp_path / "la.png")
    assert _arr(decode_photo(tmp_path / "la.png").image).min() == 255


def test_cmyk_colours_sane(data):
    # Adobe (inverted) CMYK JPEG vs its RGB twin; a missed inversion gives a negative.
    cmyk = _arr(decode_photo(ODD / "pillow/pil_sample_cmyk.jpg").image)
    rgb = _arr(decode_photo(ODD / "pillow/pil_sample_rgb.jpg").image)
    assert np.abs(cmyk - rgb).mean() < 10
    tiff = _arr(decode_photo(ODD / "pillow/tiff_strip_cmyk_jpeg.tif").image)
    assert np.abs(tiff - rgb).mean() < 10
    photo_cmyk = _arr(decode_photo(ODD / "derived/cmyk_from_photo.jpg").image)
    photo_rgb = _arr(decode_photo(ODD / "derived/png_with_jpg_extension.jpg").image)
    assert np.abs(photo_cmyk - photo_rgb).mean() < 5


def test_cmyk_with_broken_profile_falls_back(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, icc_profile=b"not a profile")
    red = decode_photo(path).image.getpixel((8, 8))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def _on_white(frame: Image.Image) -> np.ndarray:
    rgba = frame.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return _arr(Image.alpha_composite(white, rgba).convert("RGB"))


@pytest.mark.parametrize(
    "rel",
    [
        "derived/photo_animated.gif",
        "pillow/iss634.gif",
        "pillow/iss634.webp",
        "pillow/iss634.apng",
        "pillow/frozenpond.mpo",
        "metadata-extractor-images/webp/Animation_Lossy.webp",
    ],
)
def test_first_frame_of_animated(data, rel):
    got = _arr(decode_photo(ODD / rel).image)
    with Image.open(ODD / rel) as im:
        assert im.n_frames > 1
        first = _on_white(im)
        im.seek(im.n_frames // 2)
        later = _on_white(im)
    assert np.abs(got - first).mean() < 1
    if np.abs(first - later).mean() > 2:  # only meaningful when the frames differ
        assert np.abs(got - later).mean() > 2


# ---------------------------------------------------------------------------------------
# The pixel limit (decompression bombs)


def _png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_pixel_limit_refuses_before_decoding(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    _png_header_only(big, 40000, 40000)  # 1.6 GP declared, 100 bytes on disk
    before = (list(warnings.filters), Image.MAX_IMAGE_PIXELS)
    from PIL import ImageFile

    def no_pixels(self):
        raise AssertionError("the pixels of a 1.6 GP image were being decoded")

    with monkeypatch.context() as m, pytest.raises(DecodeError) as info:
        m.setattr(ImageFile.ImageFile, "load", no_pixels)  # refused from the header alone
        decode_photo(big)
    assert "over the 200 MP limit" in _assert_reason(info.value)
    with pytest.raises(DecodeError):
        read_meta(big)

    medium = tmp_path / "medium.png"
    _png_header_only(medium, 12000, 10000)  # 120 MP: over Pillow's soft limit, not its hard one
    with pytest.raises(DecodeError) as info:
        decode_photo(medium, max_pixels=100_000_000)
    assert str(info.value) == "image is 12000x10000 pixels, over the 100 MP limit"
    # Within our limit: opened (Pillow's warning silenced), then refused for its missing data.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DecodeError) as info:
            decode_photo(medium)
    assert "limit" not in str(info.value)
    assert read_meta(medium).width == 12000

    huge = tmp_path / "huge.png"
    _png_header_only(huge, 16320, 12240)  # a 200 MP phone photo: over Pillow's hard limit
    meta = read_meta(huge)
    assert (meta.width, meta.height) == (16320, 12240)
    with pytest.raises(DecodeError) as info:
        read_meta(huge, max_pixels=190_000_000)
    assert "over the 190 MP limit" in str(info.value)
    # No global state leaks: warning filters and Pillow's limit are untouched.
    assert (list(warnings.filters), Image.MAX_IMAGE_PIXELS) == before
    assert DEFAULT_MAX_PIXELS == 200_000_000


def test_pillow_bomb_warning_and_error_become_our_limit(tmp_path, monkeypatch):
    # Shrink Pillow's own limit (restored by monkeypatch) to exercise both of its paths
    # with small files: warning above MAX_IMAGE_PIXELS, error above twice that.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 40), (10, 200, 30)).save(small)  # 1600 px: Pillow warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping decode_photo fails the test
        photo = decode_photo(small)  # within our limit: decoded, warning swallowed
        assert photo.image.getpixel((0, 0)) == (10, 200, 30)
        with pytest.raises(DecodeError) as info:
            decode_photo(small, max_pixels=1500)
        assert "over the 0.0015 MP limit" in str(info.value)
    Image.new("RGB", (60, 60), (1, 2, 3)).save(small)  # 3600 px: Pillow raises
    with pytest.raises(DecodeError) as info:
        decode_photo(small, max_pixels=3000)
    assert str(info.value) == "image is 0.0036 megapixels, over the 0.003 MP limit"
    # Within our limit, Pillow's hard limit is lifted for that one open and put back.
    assert decode_photo(small).image.getpixel((59, 59)) == (1, 2, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


# ---------------------------------------------------------------------------------------
# Files that are not there, change under us, or are not files


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="file not found"):
        decode_photo(tmp_path / "gone.jpg")
    with pytest.raises(DecodeError, match="file not found"):
        read_meta(tmp_path / "gone.jpg")


def test_directory_and_fifo_are_refused_without_hanging(tmp_path):
    with pytest.raises(DecodeError, match="not a regular file"):
        decode_photo(tmp_path)
    if not hasattr(os, "mkfifo"):
        return
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def run():
        try:
            decode_photo(fifo)
            result.append(None)
        except BaseException as exc:  # recorded for the assertion below
            result.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "decode_photo blocked on a FIFO"
    assert isinstance(result[0], DecodeError) and "not a regular file" in str(result[0])


def test_file_vanishes_between_scan_and_read(data, tmp_path):
    path = tmp_path / "photo.jpg"
    shutil.copy(PHOTOS / "metadata-extractor-images/Apple_iPhone_4.jpg", path)
    os.stat(path)  # the scanner saw it ...
    path.unlink()  # ... and it was deleted before the decoder got to it
    with pytest.raises(DecodeError, match="file not found"):
        decode_photo(path, target=(SIDE, SIDE))
    path.mkdir()  # ... or replaced by something else
    with pytest.raises(DecodeError, match="not a regular file"):
        decode_photo(path, target=(SIDE, SIDE))


def test_file_truncated_while_being_read(data, tmp_path, monkeypatch):
    path = tmp_path / "photo.jpg"
    shutil.copy(PHOTOS / "metadata-extractor-images/Apple_iPhone_4.jpg", path)
    real_load = ImageFile.ImageFile.load

    def truncate_then_load(self, *args, **kwargs):
        # Another program rewrites the file after the header was parsed.
        os.truncate(path, 20_000)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", truncate_then_load)
    with pytest.raises(DecodeError, match="truncated"):
        decode_photo(path, target=(SIDE, SIDE))


def test_file_replaced_with_garbage(data, tmp_path):
    path = tmp_path / "photo.jpg"
    data_bytes = (PHOTOS / "metadata-extractor-images/Apple_iPhone_4.jpg").read_bytes()
    path.write_bytes(data_bytes[:4096] + os.urandom(60_000))
    try:
        decode_photo(path, target=(SIDE, SIDE))
    except DecodeError as exc:
        _assert_reason(exc)


def test_unexpected_library_errors_become_decode_errors(data, monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("simulated decoder crash\nwith two lines")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    with pytest.raises(DecodeError) as info:
        decode_photo(PHOTOS / "metadata-extractor-images/Apple_iPhone_4.jpg")
    assert "simulated decoder crash" in _assert_reason(info.value)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="needs POSIX non-root")
def test_permission_denied(tmp_path):
    path = tmp_path / "locked.jpg"
    Image.new("RGB", (8, 8)).save(path)
    path.chmod(0)
    try:
        with pytest.raises(DecodeError, match="permission denied"):
            decode_photo(path)
    finally:
        path.chmod(0o600)


# ---------------------------------------------------------------------------------------
# Odds and ends


def test_photo_extensions(data):
    required = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".heic", ".heif", ".avif"}
    assert required | {".tif", ".tiff", ".bmp", ".mpo"} <= PHOTO_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in PHOTO_EXTENSIONS)
    for row in _manifest(PHOTOS):
        assert Path(row["file"]).suffix.lower() in PHOTO_EXTENSIONS, row["file"]


def test_concurrent_decoding_is_consistent(data):
    files = [
        PHOTOS / "metadata-extractor-images/Canon_IXUS.jpg",
        ODD / "derived/photo_rgba_alpha.webp",
        ODD / "pillow/decompression_bomb.gif",
        ODD / "pillow/p_trns_single.png",
    ] * 4
    expected = {}
    for f in files[:4]:
        try:
            expected[f] = _arr(decode_photo(f, target=(SIDE, SIDE)).image).sum()
        except DecodeError as exc:
            expected[f] = str(exc)
    results: dict[int, object] = {}

    def work(i: int, f: Path) -> None:
        try:
            results[i] = _arr(decode_photo(f, target=(SIDE, SIDE)).image).sum()
        except DecodeError as exc:
            results[i] = str(exc)

    threads = [threading.Thread(target=work, args=(i, f)) for i, f in enumerate(files)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(results[i] == expected[f] for i, f in enumerate(files))


def test_import_is_light():
    # Importing decode pulls in neither Qt nor torch, and registers no plugin yet.
    code = (
        "import sys, engine.photos.decode; "
        "bad = [m for m in ('torch', 'PySide6', 'pillow_heif') if m in sys.modules]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
