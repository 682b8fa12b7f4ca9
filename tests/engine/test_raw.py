"""Camera RAW files through LibRaw (engine.photos.raw): preview first, orientation, garbage refused.

Real files come from ../shared/data/raw (real/: camera files LibRaw decodes, two of them
genuinely black frames, and a GoPro GPR it cannot; stubs/: RAW files with their image data
stripped or cut off). Synthetic DNGs (tests.rawkit) cover what those files do not: a preview and
raw data of the same picture, an orientation, an intact preview before cut-off data.
"""

from __future__ import annotations

import functools
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from engine.index.scan import photo_extensions, walk_photos
from engine.photos import decode, formats, raw
from engine.photos.decode import DecodeError, decode_photo, read_meta
from tests.conftest import shared
from tests.rawkit import write_dng

ISSUE_FORMATS = ("dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "orf", "rw2",
                 "raf", "pef", "srw", "3fr", "erf", "kdc", "mrw", "x3f", "iiq", "rwl", "raw")  # fmt: skip
MP = 200_000_000


def _decode_raw(path, side: int, max_pixels: int = MP) -> raw.RawPhoto:
    jpeg = functools.partial(decode._embedded_jpeg, max_pixels=max_pixels)
    return raw.decode_raw(path, side=side, max_pixels=max_pixels, decode_jpeg=jpeg)


def _reason(path, **kw) -> str:
    with pytest.raises(DecodeError) as info:
        decode_photo(path, **kw)
    text = str(info.value)
    assert text and "\n" not in text and len(text) <= 160, text
    return text


def _scene(w: int = 240, h: int = 160, seed: int = 0) -> Image.Image:
    """A picture with a few coloured blocks: orientation and content are easy to compare."""
    rng = np.random.default_rng(seed)
    px = np.zeros((h, w, 3), np.uint8)
    px[:] = (40, 90, 200)
    px[: h // 3, : w // 2] = (220, 40, 30)
    px[h // 2 :, w // 2 :] = (30, 200, 60)
    px += rng.integers(0, 12, px.shape, dtype=np.uint8)
    return Image.fromarray(px)


def _similar(a: Image.Image, b: Image.Image) -> float:
    """Correlation of two pictures at a common small size (1: the same picture)."""
    x = np.asarray(a.convert("L").resize((48, 48)), np.float64).ravel()
    y = np.asarray(b.convert("L").resize((48, 48)), np.float64).ravel()
    return float(np.corrcoef(x, y)[0, 1])


# ------------------------------------------------------------------------------ formats


def test_libraw_is_bundled_and_every_listed_format_is_scanned(tmp_path):
    import rawpy

    assert rawpy.libraw_version >= (0, 21, 0)
    assert raw.libraw_version().count(".") == 2
    assert set(ISSUE_FORMATS) <= formats.RAW_EXTENSIONS
    readable = {"pnm", "pbm", "pgm", "ppm", "psd", "jpg", "heic", "avif", "webp", "tif", "png"}
    assert readable <= formats.PILLOW_EXTENSIONS
    for ext in [*ISSUE_FORMATS, "GPR", "CR2", *readable]:
        (tmp_path / f"photo.{ext}").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    found = {os.path.basename(p) for p, _ in walk_photos(str(tmp_path), photo_extensions())}
    assert "notes.txt" not in found and len(found) == len(ISSUE_FORMATS) + 2 + len(readable)


def test_netpbm_family_decodes(tmp_path):
    for ext, mode in (("ppm", "RGB"), ("pgm", "L"), ("pbm", "1"), ("pnm", "RGB")):
        p = tmp_path / f"x.{ext}"
        Image.new(mode, (40, 30), 1 if mode == "1" else 200).save(p, format="PPM")
        photo = decode_photo(p)
        assert (photo.format, photo.image.size, photo.image.mode) == ("PPM", (40, 30), "RGB")


# ------------------------------------------------------------------------------ synthetic DNGs


def test_preview_first_when_it_is_big_enough(tmp_path):
    scene = _scene()  # 240 x 160: any preview of 20 px or more is a preview, not a thumbnail
    p = write_dng(tmp_path / "IMG_1.dng", scene, preview=scene.resize((120, 80)))
    small = _decode_raw(p, side=64)
    assert small.source == "preview" and min(small.image.size) >= 64
    big = _decode_raw(p, side=100)  # the preview's short side is 80: demosaic instead
    assert big.source == "demosaic full" and big.image.size == (240, 160)
    half = _decode_raw(p, side=40)  # no preview would do as well at half size
    assert half.source == "preview"
    bare = write_dng(tmp_path / "IMG_2.dng", scene)
    halved = _decode_raw(bare, side=40)  # half size (120 x 80), then box-reduced towards 40
    assert halved.source == "demosaic half" and halved.image.size == (60, 40)
    for got in (small, big, half, halved):
        assert _similar(got.image, scene) > 0.9
    # a thumbnail is not a preview: 20 x 13 of a 240 x 160 sensor is under 1/8 of it
    thumb = write_dng(tmp_path / "IMG_3.dng", scene, preview=scene.resize((20, 13)))
    assert _decode_raw(thumb, side=8).source.startswith("demosaic")


def test_a_cut_off_raw_with_an_intact_preview_is_still_a_photo(tmp_path):
    scene = _scene(seed=1)
    whole = write_dng(tmp_path / "whole.dng", scene, preview=scene)
    data = whole.read_bytes()
    cut = tmp_path / "cut.dng"
    cut.write_bytes(data[: len(data) // 2])  # the raw data (after the preview) is half gone
    photo = decode_photo(cut, target=(96, 96))
    assert _similar(photo.image, scene) > 0.9
    # asked for more than the preview holds, the cut-off sensor data is what remains: refused
    assert "truncated" in _reason(cut, target=(400, 400))


def test_orientation_comes_from_the_raw_on_both_paths(tmp_path):
    scene = _scene(seed=2)  # as the sensor saw it; EXIF 6: turn 90 degrees clockwise to view
    upright = scene.transpose(Image.Transpose.ROTATE_270)
    p = write_dng(tmp_path / "turned.dng", scene, orientation=6, preview=scene)
    from_preview = _decode_raw(p, side=64)
    from_sensor = _decode_raw(p, side=1000)
    assert from_preview.source == "preview" and from_sensor.source.startswith("demosaic")
    for got in (from_preview, from_sensor):
        w, h = got.image.size
        assert h > w, got.source  # portrait, as the camera was held
        assert _similar(got.image, upright) > 0.9, got.source
        assert _similar(got.image, scene.transpose(Image.Transpose.ROTATE_90)) < 0.5
    meta = read_meta(p)
    assert (meta.width, meta.height, meta.orientation) == (160, 240, 6)
    photo = decode_photo(p, target=(64, 64))
    assert (photo.width, photo.height) == (160, 240)


def test_metadata_comes_from_the_raw(tmp_path):
    p = write_dng(
        tmp_path / "m.dng", _scene(), make="Nikon", model="Z 9", taken="2023:08:09 07:06:05"
    )
    meta = read_meta(p)
    assert (meta.camera_make, meta.camera_model, meta.taken_at, meta.format) == (
        "Nikon", "Z 9", "2023-08-09T07:06:05", "DNG"
    )  # fmt: skip
    photo = decode_photo(p, target=(32, 32))
    assert (photo.camera_make, photo.taken_at) == ("Nikon", "2023-08-09T07:06:05")


# ------------------------------------------------------------------------------ garbage


def test_sensor_data_rules_on_arrays():
    rng = np.random.default_rng(0)
    dark = rng.normal(1024, 8, (60, 90)).round().astype(np.uint16)  # a lens-cap frame
    assert raw.missing_data_reason(dark, black=1024) is None
    # a camera that subtracts the black level itself: zeros are what a dark frame holds
    clipped = np.clip(rng.normal(0, 2, (60, 90)), 0, None).round().astype(np.uint16)
    assert (clipped == 0).mean() > 0.5
    assert raw.missing_data_reason(clipped, black=0) is None
    # nobody filled the buffer: zeros below a black level above 0
    unfilled = dark.copy()
    unfilled[20:] = 0
    assert "reads 0, below its black level 1024" in raw.missing_data_reason(unfilled, black=1024)
    assert "every pixel of the sensor reads 0" in raw.missing_data_reason(dark * 0, black=0)
    flat = np.full((60, 90, 3), 700, np.uint16)
    assert "every pixel of the sensor reads 700" in raw.missing_data_reason(flat, black=0)


def test_unfilled_sensor_data_is_not_a_photo(tmp_path):
    scene = _scene(seed=3)
    good = np.asarray(raw_mosaic(scene))
    half_missing = good.copy()
    half_missing[good.shape[0] // 3 :] = 0
    p = write_dng(tmp_path / "half.dng", scene, sensor=half_missing)
    assert _reason(p, target=(32, 32)).startswith("no image data: 6")  # 66.7 % of the sensor
    q = write_dng(tmp_path / "zeros.dng", scene, sensor=good * 0)
    assert _reason(q, target=(32, 32)) == "no image data: every pixel of the sensor reads 0"
    assert decode_photo(write_dng(tmp_path / "ok.dng", scene, sensor=good), target=(32, 32))


def raw_mosaic(scene: Image.Image) -> np.ndarray:
    from tests.rawkit import mosaic

    return mosaic(np.asarray(scene))


def test_decompression_bomb_sized_sensor_is_refused_before_unpacking(tmp_path):
    p = write_dng(tmp_path / "bomb.dng", _scene(), sensor=np.zeros((2, 2)))
    data = bytearray(p.read_bytes())
    # ImageWidth/ImageLength of the raw IFD say 20000 x 15000 (300 MP) for a 2x2 sensor
    for tag, value in ((256, 20000), (257, 15000)):
        entry = tag.to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little")
        at = data.index(entry)
        data[at + 8 : at + 12] = value.to_bytes(4, "little")
    p.write_bytes(bytes(data))
    assert _reason(p) == "RAW sensor is 20000x15000 pixels, over the 200 MP limit"
    with pytest.raises(DecodeError, match="over the 200 MP limit"):
        read_meta(p)
    small = write_dng(tmp_path / "small.dng", _scene())
    assert "over the 0.01 MP limit" in _reason(small, max_pixels=10_000)


def test_files_named_like_raws(tmp_path):
    jpeg = tmp_path / "really_a_jpeg.raw"
    _scene().save(jpeg, "JPEG")
    assert decode_photo(jpeg, target=(32, 32)).format == "JPEG"
    junk = tmp_path / "junk.nef"
    junk.write_bytes(os.urandom(4096))
    assert _reason(junk) == "not a RAW file LibRaw can read (unsupported format or camera)"
    tiff = tmp_path / "a_tiff.cr2"  # TIFF inside, but not a RAW: Pillow would show its thumbnail
    _scene().save(tiff, "TIFF")
    assert "not a RAW file" in _reason(tiff)
    assert _reason(tmp_path / "missing.dng") == "file not found"
    (tmp_path / "empty.arw").write_bytes(b"")
    assert _reason(tmp_path / "empty.arw") == "empty file (0 bytes)"
    (tmp_path / "folder.cr3").mkdir()
    assert _reason(tmp_path / "folder.cr3") == "not a regular file (directory)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_named_like_a_raw_does_not_block(tmp_path):
    fifo = tmp_path / "pipe.cr2"
    os.mkfifo(fifo)
    assert _reason(fifo) == "not a regular file (special file)"


# ------------------------------------------------------------------------------ real files


REAL_OK = (
    "RAW_CANON_D30_SRGB.CRW", "RAW_CANON_G1.CRW", "RAW_KODAK_DC50_é.KDC",
    "blackmagic_pocket_cinema.dng", "canon_550d_magiclantern_colorchart.dng",
    "lg_g4_linear_1mp.dng", "nikon_d500_black_frame.dng", "pixel7_dark_frame.dng",
)  # fmt: skip


def _preview_and_sensor(path) -> tuple[int, int]:
    """What LibRaw itself says: the shorter side of the embedded preview (0: none) and of the
    sensor's picture."""
    import io

    import rawpy

    r = rawpy.RawPy()
    try:
        r.open_file(str(path))
        sensor = min(r.sizes.width, r.sizes.height)
        t = r.extract_thumb()
    except rawpy.LibRawError:
        return 0, sensor
    finally:
        r.close()
    if t.format == rawpy.ThumbFormat.JPEG:
        return min(Image.open(io.BytesIO(t.data)).size), sensor
    return min(t.data.shape[:2]), sensor


@pytest.mark.parametrize("name", REAL_OK)
def test_real_raws_decode_preview_first(name):
    path = shared("raw/real") / name
    got = _decode_raw(path, side=96)
    assert min(got.image.size) >= 96 and got.image.mode == "RGB"
    preview, sensor = _preview_and_sensor(path)
    big_enough = preview >= 96 and preview * raw.PREVIEW_SHARE >= sensor
    assert got.source.startswith("preview" if big_enough else "demosaic"), (got.source, preview)
    meta = read_meta(path)
    assert meta.format == os.path.splitext(name)[1][1:].upper()
    assert (meta.width >= meta.height) == (got.image.width >= got.image.height)


def test_real_metadata_date_and_camera():
    real = shared("raw/real")
    d30 = read_meta(real / "RAW_CANON_D30_SRGB.CRW")
    assert (d30.camera_make, d30.camera_model, d30.taken_at) == (
        "Canon", "Canon EOS D30", "2002-11-24T15:11:22"
    )  # fmt: skip
    pixel = read_meta(real / "pixel7_dark_frame.dng")
    assert pixel.camera_model == "Pixel 7" and pixel.taken_at.endswith("+02:00")
    assert pixel.orientation == 8 and pixel.height > pixel.width  # LibRaw's flip 5


@pytest.mark.parametrize("name", ["pixel7_dark_frame.dng", "nikon_d500_black_frame.dng"])
def test_genuinely_dark_frames_are_photos_on_both_paths(name):
    path = shared("raw/real") / name
    assert _decode_raw(path, side=96).source == "preview"
    sensor = _decode_raw(path, side=5000)  # bigger than any preview: the sensor data
    assert sensor.source == "demosaic full"
    assert np.asarray(sensor.image).mean() < 60  # it is dark, and it is a photo all the same


def test_stubs_and_the_gpr_are_refused_with_a_reason(tmp_path):
    stubs = shared("raw/stubs")
    reasons = {}
    for p in sorted(stubs.iterdir()):
        if p.suffix.lower() == ".txt":
            continue
        reasons[p.name] = _reason(p, target=(96, 96))
    assert len(reasons) >= 19  # every stub in the folder: all refused, none crashed
    # the two that LibRaw "decodes" without an error (into zeros, or left-over memory)
    for name in ("exiftool_DNG.dng", "exiftool_Panasonic.rw2"):
        assert reasons[name].startswith("no image data: a ") and "cannot hold" in reasons[name]
    # the RAF stub's 160 x 120 EXIF thumbnail survived: a thumbnail, not the photo
    assert "truncated" in reasons["exiftool_FujiFilm.raf"]
    assert _reason(shared("raw/real") / "GOPR0024.GPR") == (
        "unsupported RAW compression: LibRaw cannot decode this file's image data"
    )


def test_the_payload_rule_is_what_catches_the_silent_stubs(monkeypatch):
    """Without the file-size rule the RW2 stub still fails, on its data (99.8 % zeros under
    black level 15); the rule exists because the DNG stub's data can be left-over memory."""
    stubs = shared("raw/stubs")
    monkeypatch.setattr(raw, "MIN_BITS_PER_PIXEL", 0.0)
    reason = _reason(stubs / "exiftool_Panasonic.rw2", target=(96, 96))
    assert reason.startswith("no image data: 99.8% of the sensor reads 0, below its black level 15")


def test_non_ascii_raw_path(tmp_path):
    src = shared("raw/real") / "RAW_KODAK_DC50_é.KDC"
    dst = tmp_path / "café ☕" / "Kodak_é.KDC"
    dst.parent.mkdir()
    shutil.copy(src, dst)
    assert decode_photo(dst, target=(64, 64)).camera_model.startswith("Kodak")


def test_bench_raw_reports_both_paths_and_the_jpeg(tmp_path):
    import argparse

    from engine.bench import raw as bench

    scene = _scene(seed=5).resize((960, 640))
    write_dng(tmp_path / "with_preview.dng", scene, preview=scene)
    write_dng(tmp_path / "without.dng", scene)
    args = argparse.Namespace(photos=str(tmp_path), quick=True)
    res = bench.run(args)
    rows = {r["file"]: r for r in res["files"]}
    assert (
        rows["with_preview.dng"]["source"] == "preview" and "preview_ms" in rows["with_preview.dng"]
    )
    assert (
        rows["without.dng"]["source"] == "demosaic half" and "preview_ms" not in rows["without.dng"]
    )
    for r in rows.values():
        assert (
            r["demosaic"] == "half" and r["jpeg_ms"] > 0 and (r["width"], r["height"]) == (960, 640)
        )
    assert res["preview_over_jpeg"] > 0 and res["demosaic_over_jpeg"] > 0 and res["cpu_flags"]
