"""RAW files in a library: indexed, searched, failed with reasons, paired with their JPEGs,
picked up by the watcher; the database migration that pairs them. Real model (the demo), real
files (../shared/data/raw and DNGs written by tests.rawkit)."""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from engine.index.watcher import Watcher
from engine.library import Library
from engine.photos.decode import decode_photo
from engine.search import Filters, Query
from engine.settings import Settings
from engine.store.db import _SCHEMA_V1, MIGRATIONS, SCHEMA_VERSION, LibraryDB, _statements
from tests.conftest import shared
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import make_photos, wait_for
from tests.rawkit import write_dng

TIMEOUT = 20.0


@pytest.fixture
def settings(tmp_path):
    s = Settings(data_dir=tmp_path / "data", batch_size=4, workers=1)
    install_test_model(s)
    return s


@pytest.fixture
def lib(settings):
    lib = Library(settings, model_key=MODEL_KEY)
    yield lib
    lib.close()


def scene(seed: int, w: int = 160, h: int = 120) -> Image.Image:
    rng = np.random.default_rng(seed)
    px = np.zeros((h, w, 3), np.uint8)
    px[:] = rng.integers(0, 255, 3)
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    px[y : y + h // 3, x : x + w // 3] = rng.integers(0, 255, 3)
    return Image.fromarray(px)


def shot(folder, stem: str, seed: int, *, jpeg: bool = True, raw: bool = True) -> dict:
    """What a camera in RAW + JPEG mode writes for one shot: IMG.dng (with its preview) and IMG.JPG."""
    folder.mkdir(parents=True, exist_ok=True)
    pic = scene(seed)
    out = {}
    if raw:
        out["raw"] = str(write_dng(folder / f"{stem}.dng", pic, preview=pic))
    if jpeg:
        pic.save(folder / f"{stem}.JPG", quality=90)
        out["jpeg"] = str(folder / f"{stem}.JPG")
    return out


# ------------------------------------------------------------------------------ real files


def test_real_raws_are_indexed_and_found_by_their_own_preview(lib, tmp_path):
    real, stubs = shared("raw/real"), shared("raw/stubs")
    folder = tmp_path / "raw"
    shutil.copytree(real, folder / "real")
    shutil.copytree(stubs, folder / "stubs")
    (folder / "stubs" / "README.txt").unlink(missing_ok=True)
    lib.add_folder(folder)
    rep = lib.scan()
    n_real = len([p for p in real.iterdir() if p.suffix.lower() != ".gpr"])
    n_bad = len([p for p in stubs.iterdir() if p.suffix.lower() != ".txt"]) + 1  # + the GPR
    assert (rep.embedded, rep.failed) == (n_real, n_bad), rep.failures
    st = lib.status()
    failed = {os.path.basename(f["path"]): f["reason"] for f in st["failures_detail"]}
    assert len(failed) == n_bad and all(r and "\n" not in r for r in failed.values())
    assert failed["GOPR0024.GPR"].startswith("unsupported RAW compression")
    assert failed["exiftool_DNG.dng"].startswith("no image data")
    assert failed["exiftool_Panasonic.rw2"].startswith("no image data")
    # a second scan retries none of them (they are unchanged), and indexes nothing again
    again = lib.scan()
    assert (again.embedded, again.failed, again.total) == (0, 0, 0)
    # each RAW is found by its own picture saved as a JPEG (the two black frames look alike
    # to any model: for them, a tie at the top counts)
    for p in sorted((folder / "real").iterdir()):
        if p.suffix.lower() == ".gpr":
            continue
        probe = tmp_path / "probe" / (p.name + ".jpg")
        probe.parent.mkdir(exist_ok=True)
        decode_photo(p, target=(256, 256)).image.save(probe, quality=92)
        hits = lib.search(Query(like=[str(probe)], k=3))
        top = [h for h in hits if h.score >= hits[0].score - 1e-4]
        assert str(p) in [h.path for h in top], (p.name, [(h.path, h.score) for h in hits])
    info = {h.path: h.info for h in lib.search(Query(text="a photo", k=20))}
    d30 = info[str(folder / "real" / "RAW_CANON_D30_SRGB.CRW")]
    assert (d30["camera_model"], d30["taken_at"], d30["format"]) == (
        "Canon EOS D30", "2002-11-24T15:11:22", "CRW"
    )  # fmt: skip
    kinds = lib.db.filtered_image_ids(exts=["crw"])
    assert len(kinds) == 2


# ------------------------------------------------------------------------------ RAW + JPEG pairs


def test_raw_and_jpeg_of_one_shot_are_one_photo(settings, tmp_path):
    folder = tmp_path / "card"
    pair = shot(folder, "IMG_0001", 1)
    lone_raw = shot(folder, "IMG_0002", 2, jpeg=False)["raw"]
    make_photos(folder, 4, seed=7, prefix="DSC_")
    lib = Library(settings, model_key=MODEL_KEY)
    try:
        lib.add_folder(folder)
        assert lib.scan().embedded == 7  # both halves of the pair are indexed
        raw_id = lib.db.image_id_for_path(pair["raw"])
        jpeg_id = lib.db.image_id_for_path(pair["jpeg"])
        assert raw_id != jpeg_id

        hits = lib.search(Query(text="a photo", k=50))
        paths = [h.path for h in hits]
        assert pair["raw"] not in paths and pair["jpeg"] in paths and lone_raw in paths
        assert len(hits) == 6
        jpeg_hit = hits[paths.index(pair["jpeg"])]
        assert jpeg_hit.info["twins"] == [pair["raw"]]
        # by example: the RAW's own picture finds the pair, shown as its JPEG
        like = lib.search(Query(like=[pair["raw"]], k=2))
        assert like[0].path == pair["jpeg"]
        # a type filter for RAW files shows the RAW: its JPEG is not in that list
        dng = lib.search(Query(text="a photo", filters=Filters(exts=["dng"]), k=10))
        assert sorted(h.path for h in dng) == sorted([pair["raw"], lone_raw])
        assert dng[[h.path for h in dng].index(pair["raw"])].info["twins"] == [pair["jpeg"]]

        # tag lists: the pair is one photo there too
        from engine.tags import tagstore as S
        from engine.tags.vocab import make_vocabulary

        S.create(lib.db, make_vocabulary("trip", ["card"], auto=False))
        tg = lib.tagger()
        tg.answer(
            "trip", "card", [raw_id, jpeg_id, lib.db.image_id_for_path(lone_raw)], "confirmed"
        )
        listed, total = tg.photos("trip", "card", "tagged")
        assert {h["path"] for h in listed} == {pair["jpeg"], lone_raw} and total == 2
        (count,) = [c for c in tg.counts("trip") if c["label"] == "card"]
        assert count["tagged"] == 2
        browse = lib.search(Query(filters=Filters(tags=[("trip", "card")]), k=10))
        assert sorted(h.path for h in browse) == sorted([pair["jpeg"], lone_raw])
    finally:
        lib.close()

    # the setting: treat them as two photos
    settings.raw_jpeg_pairs = False
    lib = Library(settings, model_key=MODEL_KEY)
    try:
        paths = [h.path for h in lib.search(Query(text="a photo", k=50))]
        assert pair["raw"] in paths and pair["jpeg"] in paths and len(paths) == 7
        listed, total = lib.tagger().photos("trip", "card", "tagged")
        assert total == 3
    finally:
        lib.close()


def test_a_raw_whose_jpeg_is_gone_is_shown_again(lib, tmp_path):
    folder = tmp_path / "card"
    pair = shot(folder, "IMG_0009", 9)
    make_photos(folder, 2, seed=3)
    lib.add_folder(folder)
    lib.scan()
    assert pair["raw"] not in [h.path for h in lib.search(Query(text="a photo", k=10))]
    os.unlink(pair["jpeg"])
    lib.scan()
    hits = lib.search(Query(text="a photo", k=10))
    assert pair["raw"] in [h.path for h in hits]
    assert hits[[h.path for h in hits].index(pair["raw"])].info["twins"] == []


def test_pairs_need_the_same_folder_and_name(lib, tmp_path):
    a = shot(tmp_path / "a", "IMG_0001", 1, jpeg=False)["raw"]
    b = shot(tmp_path / "b", "IMG_0001", 2, raw=False)["jpeg"]  # same name, other folder
    c = shot(tmp_path / "a", "IMG_00010", 3, raw=False)["jpeg"]  # a longer name
    for f in ("a", "b"):
        lib.add_folder(tmp_path / f)
    lib.scan()
    paths = [h.path for h in lib.search(Query(text="a photo", k=10))]
    assert sorted(paths) == sorted([a, b, c])


# ------------------------------------------------------------------------------ watcher


def test_the_watcher_picks_up_new_raw_files(lib, tmp_path):
    folder = tmp_path / "photos"
    make_photos(folder, 2)
    lib.add_folder(folder)
    lib.scan()
    w = Watcher(lib, quiet_s=0.2, max_wait_s=1.0, grace_s=30.0).start()
    try:
        w.watch_all()
        staging = tmp_path / "staging"
        new = shot(staging, "IMG_0100", 100, jpeg=False)["raw"]
        bad = staging / "broken.nef"
        bad.write_bytes(b"not a raw file at all" * 10)
        os.rename(new, folder / "IMG_0100.dng")
        os.rename(bad, folder / "broken.nef")
        wait_for(
            lambda: lib.db.image_id_for_path(str(folder / "IMG_0100.dng")), "a new RAW is indexed"
        )
        wait_for(lambda: lib.db.failures(), "a broken RAW is recorded with its reason", TIMEOUT)
        (failure,) = lib.db.failures()
        assert (
            failure["path"] == str(folder / "broken.nef") and "not a RAW file" in failure["reason"]
        )
    finally:
        w.stop()


# ------------------------------------------------------------------------------ migration


def test_a_v3_library_migrates_and_finds_its_pairs(tmp_path):
    path = tmp_path / "v3.db"
    c = sqlite3.connect(path)
    c.executescript(_SCHEMA_V1)
    for v in (1, 2):
        for stmt in _statements(MIGRATIONS[v]):
            c.execute(stmt)
    c.execute("INSERT INTO meta VALUES('schema_version', '3')")
    c.execute("INSERT INTO folders(id, path, added_at) VALUES(1, '/p', 1.0)")
    for i, name in enumerate(("IMG_1.CR2", "IMG_1.JPG", "IMG_2.NEF", "IMG_3.jpg"), 1):
        c.execute("INSERT INTO images(id, hash, added_at) VALUES(?, ?, 1.0)", (i, f"h{i}"))
        ext = name.rsplit(".", 1)[1].lower()
        c.execute("INSERT INTO files(path, folder_id, image_id, size, mtime_ns, ext) "
                  "VALUES(?, 1, ?, 1, 1, ?)", (f"/p/{name}", i, ext))  # fmt: skip
    c.commit()
    c.close()
    db = LibraryDB(path)
    assert db._version() == SCHEMA_VERSION == 4
    assert db.counts()["files"] == 4
    assert db.raw_jpeg_pairs() == [(1, 2)]
    assert db.twin_paths([1, 2, 3]) == {1: ["/p/IMG_1.JPG"], 2: ["/p/IMG_1.CR2"]}
    plan = " ".join(
        r[-1] for r in db.conn.execute("EXPLAIN QUERY PLAN SELECT 1 FROM files WHERE stem = 'x'")
    )
    assert "files_stem" in plan  # one index probe per RAW file, not a scan
    db.close()
