"""Keywords in XMP sidecars, embedded XMP and IPTC (engine.xmp.keywords), on real photos.

Written files are checked with readers independent of the writer (xml.etree for sidecars,
Pillow for embedded XMP/IPTC and pixels), so a test does not only trust exiv2.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image, IptcImagePlugin

from engine.errors import MetadataError
from engine.photos import exiv2meta
from engine.store import atomicfile
from engine.xmp import jpegsegments
from engine.xmp import keywords as xmp
from tests.conftest import shared

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "darktable": "http://darktable.sf.net/",
}
RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"

# Any text a user may type: CJK, right-to-left, emoji (astral plane, ZWJ sequence), a
# decomposed accent (NFD), XML's special characters, a comma (not a separator in XMP).
UNICODE_KEYWORDS = [
    "猫",
    "قطة",
    "🐈‍⬛",
    unicodedata.normalize("NFD", "café"),
    "a<b & \"c\" 'd'",
    "black, white",
    "Straße",
]

DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="4"
   darktable:xmp_version="5"
   darktable:history_end="2">
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li><rdf:li>Lisboa</rdf:li></rdf:Bag></dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag><rdf:li>places|Portugal|Lisboa</rdf:li></rdf:Bag>
   </lr:hierarchicalSubject>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Tram 28</rdf:li></rdf:Alt></dc:title>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"
      darktable:params="0000000000"/>
     <rdf:li darktable:num="1" darktable:operation="colorin" darktable:enabled="1"
      darktable:params="gz48eJxjZGBgYAQ"/>
    </rdf:Seq>
   </darktable:history>
   <my:note xmlns:my="http://example.com/my/1.0/">kept as is</my:note>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, "PNG")
    return out.getvalue()


def photo_copy(tmp_path: Path, name: str) -> Path:
    """A private copy of one of the shared test photos."""
    src = shared("photos") / "metadata-extractor-images" / name
    dst = tmp_path / name
    shutil.copyfile(src, dst)
    return dst


def rdf_items(xml_bytes: bytes, prop: str) -> list[str]:
    """The rdf:li texts of an array property, parsed with the standard library."""
    root = ET.fromstring(xml_bytes)
    prefix, local = prop.split(":")
    out = []
    for desc in root.iter(f"{{{NS['rdf']}}}Description"):
        for node in desc.findall(f"{prefix}:{local}", NS):
            out += [li.text or "" for li in node.iter(f"{{{NS['rdf']}}}li")]
    return out


def embedded_xmp(path: Path) -> bytes:
    with Image.open(path) as im:
        return im.info["xmp"]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# -------------------------------------------------------------------------- sidecar naming


def test_sidecar_names_follow_digikam_and_lightroom(tmp_path):
    photo = tmp_path / "IMG_1.JPG"
    photo.write_bytes(b"")
    assert xmp.sidecar_path(photo, "appended") == tmp_path / "IMG_1.JPG.xmp"
    assert xmp.sidecar_path(photo, "replaced") == tmp_path / "IMG_1.xmp"
    assert xmp.sidecar_path(photo) == tmp_path / "IMG_1.JPG.xmp"  # nothing there yet
    (tmp_path / "IMG_1.xmp").write_text("")
    assert xmp.sidecar_path(photo) == tmp_path / "IMG_1.xmp"  # the existing one is updated
    with pytest.raises(ValueError, match="sidecar style"):
        xmp.sidecar_path(photo, "sideways")
    # With IMG_1.CR2 beside it, IMG_1.xmp is the raw's (Lightroom): the JPEG gets its own.
    (tmp_path / "IMG_1.CR2").write_bytes(b"")
    assert xmp.sidecar_path(photo) == tmp_path / "IMG_1.JPG.xmp"
    assert xmp.existing_sidecars(photo) == [tmp_path / "IMG_1.xmp"]  # still read


def test_a_raw_takes_the_lightroom_sidecar_of_its_shot(tmp_path):
    """IMG_1.CR2 + IMG_1.JPG (RAW + JPEG) + Lightroom's IMG_1.xmp: that sidecar is the RAW's,
    so keywords for the RAW go there; the JPEG gets one of its own. With no sidecar yet, the RAW
    gets IMG_1.CR2.xmp (digiKam, darktable)."""
    raw, jpeg = tmp_path / "IMG_1.CR2", tmp_path / "IMG_1.JPG"
    raw.write_bytes(b"raw bytes")
    jpeg.write_bytes(b"")
    assert xmp.sidecar_path(raw) == tmp_path / "IMG_1.CR2.xmp"
    (tmp_path / "IMG_1.xmp").write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    assert xmp.sidecar_path(raw) == tmp_path / "IMG_1.xmp"
    assert xmp.sidecar_path(jpeg) == tmp_path / "IMG_1.JPG.xmp"
    written = xmp.write_sidecar_keywords(raw, ["kite"])
    assert written == tmp_path / "IMG_1.xmp"
    root = ET.fromstring((tmp_path / "IMG_1.xmp").read_bytes())
    assert rdf_items(ET.tostring(root), "dc:subject") == ["holiday", "Lisboa", "kite"]
    assert raw.read_bytes() == b"raw bytes"
    # an appended-style sidecar of the RAW, once there, wins (digiKam's and darktable's)
    (tmp_path / "IMG_1.CR2.xmp").write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    assert xmp.sidecar_path(raw) == tmp_path / "IMG_1.CR2.xmp"


def test_keywords_are_never_embedded_into_a_raw(tmp_path):
    from tests.rawkit import write_dng

    dng = write_dng(tmp_path / "IMG_2.dng", Image.new("RGB", (64, 48), (200, 30, 30)))
    before = dng.read_bytes()
    assert exiv2meta.open_bytes(before).can_write(exiv2meta.exiv2.MetadataId.Xmp)  # exiv2 would
    with pytest.raises(MetadataError, match="camera RAW file: keywords go to its XMP sidecar"):
        xmp.embed_keywords(dng, ["kite"])
    assert dng.read_bytes() == before
    assert xmp.write_sidecar_keywords(dng, ["kite"]) == tmp_path / "IMG_2.dng.xmp"
    assert xmp.read_keywords(dng) == ["kite"] and dng.read_bytes() == before


# ------------------------------------------------------------------------- sidecar writing


def test_sidecar_round_trips_any_unicode_keyword(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")  # carries no keywords
    before = photo.read_bytes()

    sidecar = xmp.write_sidecar_keywords(photo, UNICODE_KEYWORDS)

    assert sidecar == tmp_path / "Canon_EOS_1000D.jpg.xmp"
    assert photo.read_bytes() == before  # the photo is never touched
    assert xmp.read_keywords(photo) == UNICODE_KEYWORDS  # exact code points, NFD included
    # An independent reader sees the same rdf:Bag.
    assert rdf_items(sidecar.read_bytes(), "dc:subject") == UNICODE_KEYWORDS
    root = ET.fromstring(sidecar.read_bytes())
    assert root.find("rdf:RDF/rdf:Description/dc:subject/rdf:Bag", NS) is not None
    assert no_temp_files(tmp_path)


def test_sidecar_update_keeps_every_foreign_field(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    sidecar = tmp_path / "Canon_EOS_1000D.jpg.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")

    xmp.write_sidecar_keywords(photo, ["tram", "holiday"], vocabulary_of={"tram": "transport"})

    data = sidecar.read_bytes()
    assert rdf_items(data, "dc:subject") == ["holiday", "Lisboa", "tram"]
    assert rdf_items(data, "lr:hierarchicalSubject") == [
        "places|Portugal|Lisboa",
        "photosift|transport|tram",
    ]
    root = ET.fromstring(data)
    desc = root.find("rdf:RDF/rdf:Description", NS)
    rating = desc.get(f"{{{NS['xmp']}}}Rating") or desc.findtext("xmp:Rating", namespaces=NS)
    assert rating == "4"
    history = root.findall(".//darktable:history/rdf:Seq/rdf:li", NS)
    assert [h.get(f"{{{NS['darktable']}}}params") for h in history] == [
        "0000000000",
        "gz48eJxjZGBgYAQ",
    ]
    assert [h.get(f"{{{NS['darktable']}}}operation") for h in history] == ["exposure", "colorin"]
    assert root.find(".//dc:title/rdf:Alt/rdf:li", NS).text == "Tram 28"
    assert root.find(".//{http://example.com/my/1.0/}note") is not None or (
        desc.get("{http://example.com/my/1.0/}note") == "kept as is"
    )


def test_sidecar_remove_and_hierarchy_follow_the_label(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    sidecar = tmp_path / "Canon_EOS_1000D.jpg.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    xmp.write_sidecar_keywords(photo, ["café", "dog"], vocabulary_of={"café": "places"})

    # Removing by the other normal form removes it too; other programs' entries stay.
    xmp.write_sidecar_keywords(photo, [], [unicodedata.normalize("NFD", "café"), "Lisboa"])

    data = sidecar.read_bytes()
    assert rdf_items(data, "dc:subject") == ["holiday", "dog"]
    assert rdf_items(data, "lr:hierarchicalSubject") == ["places|Portugal|Lisboa"]


def test_unchanged_sidecar_is_not_rewritten(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    sidecar = xmp.write_sidecar_keywords(photo, ["one", "two"])
    before = sidecar.stat()
    os.utime(sidecar, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
    stamp = sidecar.stat().st_mtime_ns

    xmp.write_sidecar_keywords(photo, ["two", " one "])  # same set, white space dropped

    assert sidecar.stat().st_mtime_ns == stamp


def test_empty_sidecar_counts_as_new_and_missing_photo_is_refused(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    sidecar = tmp_path / "Canon_EOS_1000D.jpg.xmp"
    sidecar.write_bytes(b"")  # e.g. left by a program that crashed while creating it
    assert xmp.read_keywords(photo) == []
    assert xmp.write_sidecar_keywords(photo, ["cat"]) == sidecar
    assert rdf_items(sidecar.read_bytes(), "dc:subject") == ["cat"]
    with pytest.raises(MetadataError, match="no such photo"):
        xmp.write_sidecar_keywords(tmp_path / "gone.jpg", ["cat"])
    assert not (tmp_path / "gone.jpg.xmp").exists()


def test_threads_writing_sidecars_at_once_each_get_their_own(tmp_path):
    photos = [photo_copy(tmp_path, "Canon_EOS_1000D.jpg")]
    for i in range(3):
        photos.append(tmp_path / f"copy{i}.jpg")
        shutil.copyfile(photos[0], photos[-1])
        # Foreign namespaces make every parse register them in the XMP Toolkit's registry.
        ns = DARKTABLE_SIDECAR.replace("http://example.com/my/1.0/", f"http://example.com/{i}/")
        photos[-1].with_name(photos[-1].name + ".xmp").write_text(ns, encoding="utf-8")
    errors = []

    def work(photo, n):
        try:
            for k in range(5):
                xmp.write_sidecar_keywords(photo, [f"t{n}-{k}"])
                xmp.read_keywords(photo)
        except Exception as e:  # collected: an exception in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(p, n)) for n, p in enumerate(photos)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for n, photo in enumerate(photos):
        assert [k for k in xmp.read_keywords(photo) if k.startswith("t")] == [
            f"t{n}-{k}" for k in range(5)
        ]


def test_lightroom_sidecar_is_read_and_updated_in_place(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    lr_sidecar = tmp_path / "Canon_EOS_1000D.xmp"
    lr_sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")

    assert xmp.read_keywords(photo) == ["holiday", "Lisboa"]
    assert xmp.write_sidecar_keywords(photo, ["tram"]) == lr_sidecar
    assert not (tmp_path / "Canon_EOS_1000D.jpg.xmp").exists()
    assert rdf_items(lr_sidecar.read_bytes(), "dc:subject") == ["holiday", "Lisboa", "tram"]


# ------------------------------------------------------------------- reading real photos


def test_embedded_xmp_and_iptc_keywords_of_real_photos_are_read(tmp_path):
    folder = shared("photos") / "metadata-extractor-images"
    olympus = folder / "Olympus_FE230-X790.jpg"
    src = xmp.read_keyword_sources(olympus)
    # Pillow's own IPTC parser is the independent witness.
    with Image.open(olympus) as im:
        pillow_iptc = [v.decode() for v in IptcImagePlugin.getiptcinfo(im)[(2, 25)]]
    assert src.iptc == pillow_iptc
    assert src.xmp == rdf_items(embedded_xmp(olympus), "dc:subject")
    assert "powder day" in src.xmp and src.problems == []
    assert xmp.read_keywords(olympus) == src.xmp  # XMP and IPTC agree: no duplicates

    # IPTC only, no XMP; its block also holds a Latin-1 "©" (no charset declared).
    nikon = folder / "Nikon_D1X.jpg"
    assert xmp.read_keywords(nikon) == ["Woodworking"]


def test_sidecar_and_embedded_keywords_are_united(tmp_path):
    photo = photo_copy(tmp_path, "Issue_600_(1).jpg")  # embedded: Jupiter (XMP and IPTC)
    xmp.write_sidecar_keywords(photo, ["planet", "jupiter"])
    assert xmp.read_keywords(photo) == ["planet", "jupiter", "Jupiter"]  # case matters


def test_reading_never_crashes_on_broken_files():
    odd = shared("odd-files")
    seen = 0
    for path in sorted(odd.rglob("*")):
        if path.is_file():
            seen += 1
            src = xmp.read_keyword_sources(path)  # any exception but a result fails the test
            assert isinstance(src.union(), list)
    assert seen > 50
    # Truncated/garbage files are reported as problems, not silently read as "no keywords".
    zero = xmp.read_keyword_sources(odd / "derived" / "zero_bytes.jpg")
    assert zero.problems and "zero_bytes.jpg" in zero.problems[0]


def test_every_shared_photo_is_read():
    found, problems = {}, {}
    for path in sorted(shared("photos").rglob("*")):
        if path.suffix.lower() in (".txt", ".csv") or not path.is_file():
            continue
        src = xmp.read_keyword_sources(path)
        if src.problems:
            problems[path.name] = src.problems
        if src.union():
            found[path.name] = src.union()
    assert found["Nokia_Lumia_800.jpg"] == ["2012", "dublin", "ireland", "june", "lumia"]
    assert found["Issue_258_(dotnet).jpg"] == [f"Keyword{i}ref2019.1" for i in (1, 2, 3)]
    assert len(found) >= 10
    # The two photos whose XMP packets are really broken are reported, not read as "no
    # keywords": a camera-trap tool's unterminated packet (xml.etree rejects it too), and a
    # packet with a property given twice.
    assert sorted(problems) == ["Issue_308.jpg", "Sony_DSC-P12.jpg"]
    assert all("XMP" in p[0] for p in problems.values())


@pytest.mark.parametrize(
    "content, reason",
    [
        (DARKTABLE_SIDECAR[:400].encode(), "XMP Toolkit error"),  # cut off mid-file
        (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF><dc:subject>", "unknown image type"),
        (tiny_png(), "it holds image/png"),  # a picture saved under the sidecar's name
    ],
)
def test_malformed_sidecar_is_a_clear_error_and_is_left_alone(tmp_path, content, reason):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    sidecar = tmp_path / "Canon_EOS_1000D.jpg.xmp"
    sidecar.write_bytes(content)

    with pytest.raises(MetadataError, match=f"malformed XMP sidecar.*{reason}") as err:
        xmp.read_keywords(photo)
    assert err.value.path == sidecar
    with pytest.raises(MetadataError, match="malformed XMP sidecar, left untouched"):
        xmp.write_sidecar_keywords(photo, ["cat"])
    assert sidecar.read_bytes() == content
    assert no_temp_files(tmp_path)


def test_malformed_embedded_xmp_is_skipped_on_read_and_refused_on_write(tmp_path):
    photo = photo_copy(tmp_path, "Olympus_FE230-X790.jpg")
    data = photo.read_bytes()
    start = data.index(b"<x:xmpmeta")
    broken = data[:start] + b"<x:xmpmeta><rdf:RDF".ljust(1020) + data[start + 1020 :]
    assert len(broken) == len(data)  # same segment lengths: only the packet is garbage
    photo.write_bytes(broken)

    src = xmp.read_keyword_sources(photo)
    assert src.xmp == [] and "powder day" in src.iptc  # IPTC still comes through
    assert src.problems and "XMP" in src.problems[0]
    with pytest.raises(MetadataError, match="malformed"):
        xmp.embed_keywords(photo, ["cat"])
    assert photo.read_bytes() == broken
    # Writing would drop the packet exiv2 could not parse: refused for the real one too.
    real = photo_copy(tmp_path, "Issue_308.jpg")
    before = real.read_bytes()
    with pytest.raises(MetadataError, match="embedded XMP is malformed"):
        xmp.embed_keywords(real, ["cat"])
    assert real.read_bytes() == before


# ------------------------------------------------------------------------------ embedding


@pytest.mark.parametrize(
    "name",
    [
        "Olympus_FE230-X790.jpg",  # XMP + IPTC + Exif
        "Nikon_D40.jpg",  # exiv2 alone would rewrite its Exif MakerNote: it must not change
    ],
)
def test_embed_into_jpeg_changes_only_the_xmp_and_iptc_segments(tmp_path, name):
    photo = photo_copy(tmp_path, name)
    before = photo.read_bytes()
    with Image.open(photo) as im:
        pixels = im.tobytes()

    xmp.embed_keywords(photo, UNICODE_KEYWORDS, remove=["snow", "rmr"])

    after = photo.read_bytes()
    old_segments, old_scan = jpegsegments.split(before)
    new_segments, new_scan = jpegsegments.split(after)
    assert new_scan == old_scan  # compressed image data: the very same bytes
    keep = [s.data for s in old_segments if not (s.is_xmp or s.is_photoshop)]
    assert [s.data for s in new_segments if not (s.is_xmp or s.is_photoshop)] == keep
    with Image.open(photo) as im:
        assert im.tobytes() == pixels

    expected = [*(k for k in exiv2_free_list(before) if k not in ("snow", "rmr"))]
    expected += UNICODE_KEYWORDS
    assert rdf_items(embedded_xmp(photo), "dc:subject") == expected  # Pillow + etree
    with Image.open(photo) as im:
        iptc = [v.decode("utf-8") for v in IptcImagePlugin.getiptcinfo(im)[(2, 25)]]
        assert IptcImagePlugin.getiptcinfo(im)[(1, 90)] == b"\x1b%G"  # UTF-8 declared
    assert iptc == expected
    assert xmp.read_keywords(photo) == expected
    assert no_temp_files(tmp_path)


def exiv2_free_list(jpeg: bytes) -> list[str]:
    """dc:subject of a JPEG's embedded XMP, found without exiv2."""
    with Image.open(io.BytesIO(jpeg)) as im:
        return rdf_items(im.info["xmp"], "dc:subject")


def test_embed_adds_xmp_to_a_photo_without_any(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")  # Exif, no XMP, no IPTC
    before = photo.read_bytes()
    xmp.embed_keywords(photo, ["kitchen"])
    after = photo.read_bytes()
    assert jpegsegments.split(after)[1] == jpegsegments.split(before)[1]
    assert rdf_items(embedded_xmp(photo), "dc:subject") == ["kitchen"]
    with Image.open(photo) as im:
        assert IptcImagePlugin.getiptcinfo(im) is None  # no IPTC block is invented
    # The new segment sits after Exif: Exif stays first, where readers expect it.
    segs = jpegsegments.split(after)[0]
    assert segs[[s.is_xmp for s in segs].index(True) - 1].payload.startswith(b"Exif\0\0")


def test_embed_keeps_legacy_latin1_iptc_readable(tmp_path):
    photo = photo_copy(tmp_path, "Nikon_D1X.jpg")
    xmp.embed_keywords(photo, ["wood", "Holzwerkstatt für Möbel"])
    with Image.open(photo) as im:
        info = IptcImagePlugin.getiptcinfo(im)
    # ASCII keywords join IPTC; non-ASCII ones stay in XMP rather than declare UTF-8 over
    # the block's Latin-1 copyright line (which would garble it).
    assert info[(2, 25)] == [b"Woodworking", b"wood"]
    assert (1, 90) not in info
    assert info[(2, 116)].startswith(b"\xa9 2003")
    assert xmp.read_keywords(photo) == ["wood", "Holzwerkstatt für Möbel", "Woodworking"]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_embed_into_other_formats_keeps_pixels(tmp_path, fmt):
    src = shared("photos") / "metadata-extractor-images" / "Canon_EOS_1000D.jpg"
    photo = tmp_path / f"photo.{fmt.lower()}"
    with Image.open(src) as im:
        im.reduce(16).save(photo, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    with Image.open(photo) as im:
        pixels = im.tobytes()

    xmp.embed_keywords(photo, ["猫", "garden"])

    assert xmp.read_keyword_sources(photo).xmp == ["猫", "garden"]
    with Image.open(photo) as im:
        assert im.tobytes() == pixels
    assert no_temp_files(tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links need privileges on Windows")
def test_embed_through_a_symlink_updates_the_photo_and_keeps_the_link(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    link = tmp_path / "album" / "link.jpg"
    link.parent.mkdir()
    link.symlink_to(photo)
    xmp.embed_keywords(link, ["linked"])
    assert link.is_symlink() and link.resolve() == photo
    assert rdf_items(embedded_xmp(photo), "dc:subject") == ["linked"]
    assert no_temp_files(tmp_path) and no_temp_files(link.parent)


@pytest.mark.parametrize(
    "sub, reason",
    [
        ("metadata-extractor-images-other/IMG_2929.HEIC", "image/heic"),
        ("stereo-img/Panasonic-DMC-GX8.mpo", "MPO"),
    ],
)
def test_embed_refuses_formats_it_cannot_write_safely(tmp_path, sub, reason):
    photo = tmp_path / Path(sub).name
    shutil.copyfile(shared("photos") / sub, photo)
    before = photo.read_bytes()
    with pytest.raises(MetadataError, match=reason):
        xmp.embed_keywords(photo, ["cat"])
    assert photo.read_bytes() == before


# ------------------------------------------------------------------------------- failures


def test_failure_mid_write_leaves_sidecar_intact_and_no_temp_file(tmp_path, monkeypatch):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    sidecar = xmp.write_sidecar_keywords(photo, ["before"])
    old = sidecar.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomicfile.os, "fsync", disk_full)  # after the bytes went to the temp
    with pytest.raises(MetadataError, match="No space left"):
        xmp.write_sidecar_keywords(photo, ["after"])

    assert sidecar.read_bytes() == old
    assert no_temp_files(tmp_path)


def test_failure_mid_embed_leaves_photo_intact_and_no_temp_file(tmp_path, monkeypatch):
    photo = photo_copy(tmp_path, "Olympus_FE230-X790.jpg")
    old = photo.read_bytes()

    def crash(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomicfile.os, "replace", crash)
    with pytest.raises(MetadataError, match="Input/output error"):
        xmp.embed_keywords(photo, ["cat"])

    assert photo.read_bytes() == old
    assert no_temp_files(tmp_path)


def test_write_refused_when_the_file_changed_meanwhile(tmp_path, monkeypatch):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    sidecar = xmp.write_sidecar_keywords(photo, ["mine"])
    serialize = exiv2meta.Opened.serialize

    def someone_else_writes(self):
        out = serialize(self)
        sidecar.write_text(DARKTABLE_SIDECAR + "\n", encoding="utf-8")  # e.g. darktable
        return out

    monkeypatch.setattr(exiv2meta.Opened, "serialize", someone_else_writes)
    with pytest.raises(MetadataError, match="changed by another program"):
        xmp.write_sidecar_keywords(photo, ["ours"])
    assert sidecar.read_text(encoding="utf-8") == DARKTABLE_SIDECAR + "\n"  # theirs is kept
    assert no_temp_files(tmp_path)


def test_write_that_does_not_read_back_is_not_written(tmp_path, monkeypatch):
    photo = photo_copy(tmp_path, "Olympus_FE230-X790.jpg")
    sidecar = xmp.write_sidecar_keywords(photo, ["before"])
    old_sidecar, old_photo = sidecar.read_bytes(), photo.read_bytes()

    # As if exiv2 had skipped the change (it drops an XMP packet it cannot encode with no more
    # than a log warning): "serialising" hands back the unchanged bytes.
    monkeypatch.setattr(exiv2meta.Opened, "serialize", lambda self: bytes(self.image.data()))
    with pytest.raises(MetadataError, match=r"does not read back as written \(Xmp.dc.subject"):
        xmp.write_sidecar_keywords(photo, ["after"])
    with pytest.raises(MetadataError, match=r"does not read back as written \(Xmp.dc.subject"):
        xmp.embed_keywords(photo, ["after"])
    assert sidecar.read_bytes() == old_sidecar and photo.read_bytes() == old_photo
    assert no_temp_files(tmp_path)


def test_read_only_folder_is_a_clear_error(tmp_path, monkeypatch):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # What the OS answers for a folder without write permission (simulated: tests may run as
    # root, whom permission bits do not stop; test_read_only_folder_for_real covers the rest).
    monkeypatch.setattr(atomicfile.os, "open", denied)
    with pytest.raises(MetadataError, match="cannot write in .*Permission denied") as err:
        xmp.write_sidecar_keywords(photo, ["cat"])
    assert err.value.path == tmp_path / "Canon_EOS_1000D.jpg.xmp"
    assert not err.value.path.exists()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root ignores permission bits; the simulated test above covers this path",
)
def test_read_only_folder_for_real(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(MetadataError, match="cannot write in"):
            xmp.write_sidecar_keywords(photo, ["cat"])
        with pytest.raises(MetadataError, match="cannot write in"):
            xmp.embed_keywords(photo, ["cat"])
    finally:
        tmp_path.chmod(0o755)


def test_bad_keywords_are_refused(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    with pytest.raises(MetadataError, match="control characters"):
        xmp.write_sidecar_keywords(photo, ["bell\x07"])
    with pytest.raises(TypeError, match="list of strings"):
        xmp.write_sidecar_keywords(photo, "cat")
    assert not xmp.existing_sidecars(photo)


def test_new_sidecar_gets_ordinary_permissions(tmp_path):
    photo = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    umask = os.umask(0o022)
    try:
        sidecar = xmp.write_sidecar_keywords(photo, ["cat"])
    finally:
        os.umask(umask)
    if os.name == "posix":
        assert sidecar.stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------------ batch export


def test_export_collects_errors_and_never_aborts(tmp_path):
    good = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    bad_sidecar = photo_copy(tmp_path, "Nikon_D40.jpg")
    (tmp_path / "Nikon_D40.jpg.xmp").write_text("<x:xmpmeta", encoding="utf-8")
    missing = tmp_path / "gone.jpg"
    last = photo_copy(tmp_path, "Issue_600_(1).jpg")
    seen = []

    report = xmp.export_tags_to_sidecars(
        {good: ["cat"], bad_sidecar: ["dog"], missing: ["x"], last: ["planet"]},
        progress=seen.append,
        remove={last: ["Jupiter"]},
        vocabulary_of={"cat": "pets"},
    )

    assert report.total == 4 and not report.ok
    assert report.written == [
        good.with_name(good.name + ".xmp"),
        last.with_name(last.name + ".xmp"),
    ]
    assert [p for p, _ in report.failed] == [bad_sidecar, missing]
    assert "malformed XMP" in report.failed[0][1] and "no such photo" in report.failed[1][1]
    assert [(p.done, p.total, p.current) for p in seen] == [
        (1, 4, good),
        (2, 4, bad_sidecar),
        (3, 4, missing),
        (4, 4, last),
    ]
    assert rdf_items(report.written[0].read_bytes(), "lr:hierarchicalSubject") == [
        "photosift|pets|cat"
    ]
    # The sidecar cannot remove what is embedded in the photo; the union still has it.
    assert xmp.read_keywords(last) == ["planet", "Jupiter"]


def test_export_stops_when_cancelled_and_keeps_what_it_wrote(tmp_path):
    photos = [photo_copy(tmp_path, "Canon_EOS_1000D.jpg"), photo_copy(tmp_path, "Nikon_D40.jpg")]
    seen = []
    report = xmp.export_tags_to_sidecars(
        {p: ["cat"] for p in photos}, progress=seen.append, cancel=lambda: len(seen) >= 1
    )
    assert report.cancelled and not report.ok
    assert report.written == [xmp.sidecar_path(photos[0])]
    assert not xmp.existing_sidecars(photos[1])


def test_import_reads_many_photos_and_collects_failures(tmp_path):
    tagged = photo_copy(tmp_path, "Nokia_Lumia_800.jpg")
    plain = photo_copy(tmp_path, "Canon_EOS_1000D.jpg")
    broken = photo_copy(tmp_path, "Issue_308.jpg")  # malformed embedded XMP: skipped, noted
    bad_sidecar = photo_copy(tmp_path, "Nikon_D40.jpg")
    (tmp_path / "Nikon_D40.jpg.xmp").write_text("<x:xmpmeta", encoding="utf-8")
    xmp.write_sidecar_keywords(plain, ["kitchen"])
    seen = []

    report = xmp.import_keywords(
        [tagged, plain, broken, bad_sidecar, tmp_path / "gone.jpg"], progress=seen.append
    )

    assert report.keywords == {
        tagged: ["2012", "dublin", "ireland", "june", "lumia"],
        plain: ["kitchen"],
    }
    assert [p for p, _ in report.failed] == [bad_sidecar, tmp_path / "gone.jpg"]
    assert len(report.problems) == 1 and "Issue_308.jpg" in report.problems[0]
    assert [p.done for p in seen] == [1, 2, 3, 4, 5] and not report.cancelled


def test_removing_the_last_keyword_empties_the_sidecar(tmp_path):
    """exiv2 keeps the old packet when no XMP is left: the keyword must still go."""
    photo = photo_copy(tmp_path, "Nikon_D1X.jpg")
    sidecar = xmp.write_sidecar_keywords(photo, ["tool"], vocabulary_of={"tool": "mine"})
    xmp.write_sidecar_keywords(photo, [], ["tool"])
    assert rdf_items(sidecar.read_bytes(), "dc:subject") == []
    assert rdf_items(sidecar.read_bytes(), "lr:hierarchicalSubject") == []
    assert xmp.read_keyword_sources(photo).sidecar == []
    assert xmp.read_keywords(photo) == ["Woodworking"]  # the photo's own IPTC keyword is untouched
