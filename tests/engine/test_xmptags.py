"""photosift's tags <-> XMP/IPTC keywords (engine.xmp.tags), on copies of real photos with the
demo model, through the library, the CLI and the engine process.

Written sidecars are read back with xml.etree, embedded XMP with Pillow: not only with exiv2.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import unicodedata
from pathlib import Path

import pytest

from engine.index.scan import file_hash
from engine.library import DEMO_MODEL, Library
from engine.search import Query
from engine.service import protocol as P
from engine.settings import Settings
from engine.tags import tagstore as S
from engine.tags.vocab import make_vocabulary
from engine.xmp import keywords as xmp
from engine.xmp import tags as xmptags
from tests.conftest import shared
from tests.engine.test_xmp import DARKTABLE_SIDECAR, embedded_xmp, rdf_items

# Real photos with keywords (see ../shared/data/photos): IPTC only; XMP + IPTC; several.
WITH_KEYWORDS = {
    "Nikon_D1X.jpg": ["Woodworking"],
    "Issue_600_(1).jpg": ["Jupiter"],
    "FujiFilm_FinePixS1Pro_(3).jpg": ["Wheat"],
    "Olympus_FE230-X790.jpg": ["2008", "bc", "british columbia", "canada", "december",
                               "powder day", "revelstoke", "rmr", "snow"],
}  # fmt: skip
WITHOUT = ["Canon_IXUS.jpg", "Apple_iPhone_4.jpg"]
MALFORMED_SIDECAR = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"


def copy_photos(folder: Path, names) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    src = shared("photos") / "metadata-extractor-images"
    out = {}
    for n in names:
        shutil.copyfile(src / n, folder / n)
        out[n] = folder / n
    return out


def open_library(root: Path, *, read_keywords: bool = True) -> Library:
    settings = Settings(data_dir=root / "data", read_keywords=read_keywords)
    return Library(settings, model_key=DEMO_MODEL)


def answers_of(lib: Library, path: Path) -> dict[tuple[str, str], int]:
    """(vocabulary, label) -> state of the user's answers for one photo."""
    image_id = lib.db.image_id_for_path(str(path))
    rows = lib.db.conn.execute(
        "SELECT v.name, l.name, a.state FROM tag_answers a JOIN labels l ON l.id=a.label_id "
        "JOIN vocabularies v ON v.id=l.vocab_id JOIN images i ON i.hash=a.image_hash WHERE i.id=?",
        (image_id,),
    ).fetchall()
    return {(v, lab): st for v, lab, st in rows}


def tag_tables(lib: Library) -> list:
    c = lib.db.conn
    return [c.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("vocabularies", "labels", "tag_answers")]  # fmt: skip


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------------------ import


def test_indexing_takes_keywords_in_and_import_is_idempotent(tmp_path):
    photos = copy_photos(tmp_path / "photos", [*WITH_KEYWORDS, *WITHOUT])
    (tmp_path / "photos" / "Canon_IXUS.jpg.xmp").write_bytes(MALFORMED_SIDECAR)
    lib = open_library(tmp_path)
    try:
        lib.add_folder(tmp_path / "photos")
        rep = lib.scan()
        assert rep.embedded == len(photos) and rep.failed == 0  # a bad sidecar never stops indexing
        kw = S.load(lib.db, xmptags.KEYWORDS_VOCAB)
        expected = {k for ks in WITH_KEYWORDS.values() for k in ks}
        assert {sl.label.name for sl in kw.labels} == expected
        for name, keywords in WITH_KEYWORDS.items():
            assert answers_of(lib, photos[name]) == {("Keywords", k): S.CONFIRMED for k in keywords}
        assert answers_of(lib, photos["Apple_iPhone_4.jpg"]) == {}

        # Explicit import: everything is already there; the malformed sidecar is reported.
        before = tag_tables(lib)
        imp = xmptags.import_tags(lib)
        assert (imp.confirmed, imp.labels_created) == (0, {})
        assert imp.already == sum(len(k) for k in WITH_KEYWORDS.values())
        assert [p for p, _ in imp.failed] == [str(photos["Canon_IXUS.jpg"])]
        assert "malformed XMP sidecar" in imp.failed[0][1]
        assert tag_tables(lib) == before
        assert xmptags.import_tags(lib).confirmed == 0 and tag_tables(lib) == before
        assert (tmp_path / "photos" / "Canon_IXUS.jpg.xmp").read_bytes() == MALFORMED_SIDECAR
    finally:
        lib.close()


def test_import_matches_labels_and_hierarchy_and_never_overrides_a_rejection(tmp_path):
    photos = copy_photos(tmp_path / "photos", [*WITH_KEYWORDS, "Canon_IXUS.jpg"])
    cafe_nfd = unicodedata.normalize("NFD", "Café")
    xmp.write_sidecar_keywords(photos["Canon_IXUS.jpg"], [cafe_nfd, "holiday"])
    # photosift|b|snow names exactly one of the two "snow" labels.
    xmp.write_sidecar_keywords(photos["Nikon_D1X.jpg"], ["snow"], vocabulary_of={"snow": "b"})
    lib = open_library(tmp_path, read_keywords=False)
    try:
        lib.add_folder(tmp_path / "photos")
        lib.scan()
        assert S.vocab_names(lib.db) == []  # the setting is off: indexing read no keywords
        S.create(lib.db, make_vocabulary("a", ["jupiter", "snow", "café"]))
        S.create(lib.db, make_vocabulary("b", ["Snow", "WHEAT"]))
        tg = lib.tagger()
        tg.answer(
            "a", "jupiter", [lib.db.image_id_for_path(str(photos["Issue_600_(1).jpg"]))], "rejected"
        )

        known = xmptags.import_tags(lib, only_known=True)
        assert known.labels_created == {} and "Keywords" not in S.vocab_names(lib.db)
        assert known.kept_rejections == [(str(photos["Issue_600_(1).jpg"]), "a", "jupiter")]
        assert answers_of(lib, photos["Issue_600_(1).jpg"]) == {("a", "jupiter"): S.REJECTED}
        assert answers_of(lib, photos["Olympus_FE230-X790.jpg"]) == {
            ("a", "snow"): S.CONFIRMED, ("b", "Snow"): S.CONFIRMED,
        }  # fmt: skip
        assert answers_of(lib, photos["Nikon_D1X.jpg"]) == {("b", "Snow"): S.CONFIRMED}
        assert answers_of(lib, photos["FujiFilm_FinePixS1Pro_(3).jpg"]) == {
            ("b", "WHEAT"): S.CONFIRMED
        }
        assert answers_of(lib, photos["Canon_IXUS.jpg"]) == {("a", "café"): S.CONFIRMED}
        assert known.confirmed == 5 and known.retag_error is None
        assert (
            tg.photo_tags(lib.db.image_id_for_path(str(photos["Nikon_D1X.jpg"])), "b")[0]["state"]
            == "confirmed"
        )

        # The rest go to "Keywords"; the Nikon's IPTC keyword is one of them.
        rest = xmptags.import_tags(lib)
        created = set(rest.labels_created["Keywords"])
        assert S.load(lib.db, "Keywords").vocab.auto is False  # keywords never spread by themselves
        assert all(c["auto"] == 0 for c in lib.tagger().counts("Keywords"))
        assert created == {"Woodworking", "holiday", "2008", "bc", "british columbia", "canada",
                           "december", "powder day", "revelstoke", "rmr"}  # fmt: skip
        assert rest.confirmed == len(created) and rest.already == 5
        assert answers_of(lib, photos["Nikon_D1X.jpg"]) == {
            ("b", "Snow"): S.CONFIRMED, ("Keywords", "Woodworking"): S.CONFIRMED,
        }  # fmt: skip
        # The user's answer still wins, and a third run changes nothing.
        before = tag_tables(lib)
        again = xmptags.import_tags(lib)
        assert again.confirmed == 0 and again.labels_created == {} and tag_tables(lib) == before
        assert again.kept_rejections == known.kept_rejections
    finally:
        lib.close()


def test_import_into_a_named_vocabulary_and_only_some_folders(tmp_path):
    a = copy_photos(tmp_path / "a", ["Nikon_D1X.jpg"])
    b = copy_photos(tmp_path / "b", ["Issue_600_(1).jpg"])
    lib = open_library(tmp_path, read_keywords=False)
    try:
        lib.add_folder(tmp_path / "a")
        lib.add_folder(tmp_path / "b")
        lib.scan()
        rep = xmptags.import_tags(lib, [str(tmp_path / "b")], vocab="planets", retag=False)
        assert rep.total == 1 and rep.labels_created == {"planets": ["Jupiter"]}
        assert answers_of(lib, b["Issue_600_(1).jpg"]) == {("planets", "Jupiter"): S.CONFIRMED}
        assert answers_of(lib, a["Nikon_D1X.jpg"]) == {}
    finally:
        lib.close()


# ------------------------------------------------------------------------------------ export


def test_export_writes_tags_removes_rejected_ones_and_keeps_the_users_keywords(tmp_path):
    photos = copy_photos(
        tmp_path / "photos", ["Issue_600_(1).jpg", "Nikon_D1X.jpg", "Canon_IXUS.jpg"]
    )
    darktable = tmp_path / "photos" / "Canon_IXUS.jpg.xmp"
    darktable.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    lib = open_library(tmp_path, read_keywords=False)
    try:
        lib.add_folder(tmp_path / "photos")
        lib.scan()
        S.create(lib.db, make_vocabulary("mine", ["sky", "jupiter", "tool"]))
        tg = lib.tagger()
        tg.run("mine")
        ids = {n: lib.db.image_id_for_path(str(p)) for n, p in photos.items()}
        tg.answer("mine", "sky", [ids["Canon_IXUS.jpg"]], "confirmed")
        tg.answer("mine", "jupiter", [ids["Issue_600_(1).jpg"]], "confirmed")
        tg.answer("mine", "tool", [ids["Nikon_D1X.jpg"]], "confirmed")
        originals = digests(tmp_path / "photos")

        rep = xmptags.export_tags(lib, confirmed_only=True)
        assert (
            rep.failed == [] and not rep.cancelled and rep.embedded == [] and len(rep.sidecars) == 3
        )
        canon = darktable.read_bytes()
        assert rdf_items(canon, "dc:subject") == ["holiday", "Lisboa", "sky"]
        assert rdf_items(canon, "lr:hierarchicalSubject") == [
            "places|Portugal|Lisboa",
            "photosift|mine|sky",
        ]
        assert b"darktable:history" in canon and b"kept as is" in canon
        # "Jupiter" is already in the photo: the label keeps that spelling, not a second keyword.
        jup = (tmp_path / "photos" / "Issue_600_(1).jpg.xmp").read_bytes()
        assert rdf_items(jup, "dc:subject") == ["Jupiter"]
        assert rdf_items(jup, "lr:hierarchicalSubject") == ["photosift|mine|Jupiter"]
        nikon = tmp_path / "photos" / "Nikon_D1X.jpg.xmp"
        assert rdf_items(nikon.read_bytes(), "dc:subject") == ["tool"]

        # The user rejects tags in photosift: exactly those keywords leave the sidecars.
        tg.answer("mine", "sky", [ids["Canon_IXUS.jpg"]], "rejected")
        tg.answer("mine", "tool", [ids["Nikon_D1X.jpg"]], "rejected")
        rep = xmptags.export_tags(lib, "mine", confirmed_only=True)
        assert rep.failed == [] and len(rep.sidecars) == 3
        canon = darktable.read_bytes()
        assert rdf_items(canon, "dc:subject") == ["holiday", "Lisboa"]
        assert rdf_items(canon, "lr:hierarchicalSubject") == ["places|Portugal|Lisboa"]
        assert b"darktable:history" in canon
        assert rdf_items(nikon.read_bytes(), "dc:subject") == []
        assert rdf_items(jup, "dc:subject") == ["Jupiter"]
        photos_only = lambda d: {k: v for k, v in d.items() if not k.endswith(".xmp")}  # noqa: E731
        assert photos_only(digests(tmp_path / "photos")) == photos_only(originals)  # none rewritten

        # Without confirmed_only, automatic tags above the threshold go out too.
        plan = xmptags.plan_export(tg, "mine")
        assert plan.add and plan.remove[photos["Canon_IXUS.jpg"]] == ["sky"]
        for path in photos.values():
            tagged = [t["label"] for t in tg.photo_tags(lib.db.image_id_for_path(str(path)), "mine")
                      if t["tagged"]]  # fmt: skip
            assert sorted(plan.add.get(path, [])) == sorted(tagged)
    finally:
        lib.close()


def test_cancelled_export_leaves_every_sidecar_whole(tmp_path):
    names = [*WITH_KEYWORDS, *WITHOUT]
    copy_photos(tmp_path / "photos", names)
    lib = open_library(tmp_path)
    try:
        lib.add_folder(tmp_path / "photos")
        lib.scan()
        seen = []
        rep = xmptags.export_tags(lib, confirmed_only=True, progress=seen.append,
                                  cancel=lambda: len(seen) >= 2)  # fmt: skip
        assert rep.cancelled and len(rep.sidecars) == 2 and [p.done for p in seen] == [1, 2]
        assert seen[-1].total == len(WITH_KEYWORDS)
        for sidecar in (tmp_path / "photos").glob("*.xmp"):
            assert rdf_items(sidecar.read_bytes(), "dc:subject")  # parses, and holds the keywords
        assert not list((tmp_path / "photos").glob("*.tmp"))
    finally:
        lib.close()


def test_embedding_rehashes_the_photo_in_place(tmp_path):
    photos = copy_photos(
        tmp_path / "photos", ["Nikon_D1X.jpg", "Apple_iPhone_4.jpg", "Canon_IXUS.jpg"]
    )
    shutil.copyfile(photos["Canon_IXUS.jpg"], tmp_path / "photos" / "copy of Canon_IXUS.jpg")
    lib = open_library(tmp_path)
    try:
        lib.add_folder(tmp_path / "photos")
        lib.scan()
        S.create(lib.db, make_vocabulary("mine", ["sky"]))
        tg = lib.tagger()
        ids = {n: lib.db.image_id_for_path(str(p)) for n, p in photos.items()}
        tg.answer("mine", "sky", list(ids.values()), "confirmed")
        old_hash = file_hash(str(photos["Nikon_D1X.jpg"]))
        seen = []

        rep = xmptags.export_tags(lib, confirmed_only=True, embed=True, progress=seen.append)
        assert sorted(rep.embedded) == sorted(
            str(photos[n]) for n in ("Nikon_D1X.jpg", "Apple_iPhone_4.jpg")
        )
        # The copy is one photo at two paths: it keeps its bytes, keywords went to its sidecars.
        assert [(Path(p).name, "same photo is indexed at 2 paths" in r) for p, r in rep.failed] == [
            ("Canon_IXUS.jpg", True), ("copy of Canon_IXUS.jpg", True),
        ]  # fmt: skip
        assert seen[-1].done == seen[-1].total == 8
        nikon = photos["Nikon_D1X.jpg"]
        assert rdf_items(embedded_xmp(nikon), "dc:subject") == ["Woodworking", "sky"]
        new_hash = file_hash(str(nikon))
        assert new_hash != old_hash
        row = lib.db.conn.execute(
            "SELECT i.id, i.hash, f.size, f.mtime_ns FROM files f JOIN images i ON i.id=f.image_id "
            "WHERE f.path=?", (str(nikon),)
        ).fetchone()  # fmt: skip
        st = nikon.stat()
        assert row == (ids["Nikon_D1X.jpg"], new_hash, st.st_size, st.st_mtime_ns)
        assert answers_of(lib, nikon) == {
            ("Keywords", "Woodworking"): S.CONFIRMED,
            ("mine", "sky"): S.CONFIRMED,
        }

        again = lib.scan()
        assert (again.embedded, again.reused, again.total, again.removed) == (0, 0, 0, 0)
        assert answers_of(lib, nikon)[("mine", "sky")] == S.CONFIRMED
        hits = lib.search(Query(like=[str(nikon)], k=3))
        assert hits[0].image_id == ids["Nikon_D1X.jpg"] and hits[0].path == str(nikon)
        assert ids["Nikon_D1X.jpg"] in {
            h["image_id"] for h in tg.photos("mine", "sky", "confirmed")[0]
        }
        # Embedding again changes nothing: the keywords are there.
        assert xmptags.export_tags(lib, confirmed_only=True, embed=True).embedded == []
        assert file_hash(str(nikon)) == new_hash
    finally:
        lib.close()


def test_embed_leaves_raw_files_alone_and_gives_them_sidecars(tmp_path, capsys):
    from PIL import Image

    from engine.cli import commands as cli
    from tests.rawkit import write_dng

    folder = tmp_path / "photos"
    photos = copy_photos(folder, ["Apple_iPhone_4.jpg"])
    dng = write_dng(folder / "IMG_7.dng", Image.new("RGB", (64, 48), (20, 90, 200)))
    raw_bytes = dng.read_bytes()
    lib = open_library(tmp_path, read_keywords=False)
    try:
        lib.add_folder(folder)
        assert lib.scan().embedded == 2
        S.create(lib.db, make_vocabulary("mine", ["sky"]))
        ids = [lib.db.image_id_for_path(str(p)) for p in (photos["Apple_iPhone_4.jpg"], dng)]
        lib.tagger().answer("mine", "sky", ids, "confirmed")
        rep = xmptags.export_tags(lib, confirmed_only=True, embed=True)
        assert rep.embedded == [str(photos["Apple_iPhone_4.jpg"])] and not rep.failed
        assert rep.raw_not_embedded == [str(dng)] and rep.as_dict()["raw_not_embedded"] == 1
        assert dng.read_bytes() == raw_bytes
        assert xmp.read_keywords(dng) == ["sky"]  # from IMG_7.dng.xmp
        assert (folder / "IMG_7.dng.xmp").is_file()
        # RAW + JPEG: the pair is one photo, answered on its JPEG; the RAW's sidecar follows it
        Image.new("RGB", (64, 48), (200, 200, 20)).save(folder / "IMG_8.jpg")
        pair_raw = write_dng(folder / "IMG_8.dng", Image.new("RGB", (64, 48), (200, 200, 20)))
        lib.scan()
        S.update(lib.db, "mine", add=[make_vocabulary("x", ["lemon"]).labels[0]])
        lib.tagger().answer("mine", "lemon", [lib.db.image_id_for_path(str(folder / "IMG_8.jpg"))],
                            "confirmed")  # fmt: skip
        xmptags.export_tags(lib, confirmed_only=True)
        assert xmp.read_keywords(pair_raw) == ["lemon"]
        assert pair_raw.read_bytes() != b"" and not (folder / "IMG_8.xmp").exists()
    finally:
        lib.close()
    code = cli.main(["--data-dir", str(tmp_path / "data"), "--model", DEMO_MODEL,
                     "tag", "export-xmp", "--embed", "--confirmed-only"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "2 camera RAW files: keywords went to their XMP sidecars only" in out
    assert dng.read_bytes() == raw_bytes


def test_rehash_joins_a_photo_that_already_has_the_new_content(tmp_path):
    photos = copy_photos(tmp_path / "photos", ["Nikon_D1X.jpg", "Canon_IXUS.jpg"])
    lib = open_library(tmp_path, read_keywords=False)
    try:
        lib.add_folder(tmp_path / "photos")
        lib.scan()
        # The Nikon's file now holds the Canon's bytes (as if an edit made them equal).
        shutil.copyfile(photos["Canon_IXUS.jpg"], photos["Nikon_D1X.jpg"])
        canon_id = lib.db.image_id_for_path(str(photos["Canon_IXUS.jpg"]))
        xmptags.rehash_after_edit(lib.db, photos["Nikon_D1X.jpg"])
        assert lib.db.image_id_for_path(str(photos["Nikon_D1X.jpg"])) == canon_id
        assert lib.scan().total == 0
    finally:
        lib.close()


# ------------------------------------------------------------------------ CLI and protocol


def test_cli_import_and_export(tmp_path, capsys):
    from engine.cli import main

    photos = copy_photos(tmp_path / "photos", ["Issue_600_(1).jpg", "Nikon_D1X.jpg"])
    (tmp_path / "photos" / "Nikon_D1X.jpg.xmp").write_bytes(MALFORMED_SIDECAR)
    base = ["--data-dir", str(tmp_path / "data"), "--model", "photosift-demo"]
    assert main([*base, "index", str(tmp_path / "photos")]) == 0
    assert main([*base, "vocab", "create", "space", "jupiter", "saturn"]) == 0
    capsys.readouterr()
    assert main([*base, "tag", "import-xmp", str(tmp_path / "photos"), "--only-known"]) == 1
    out = capsys.readouterr().out
    assert "1 tags confirmed" in out and "0 new labels" in out
    assert f"could not read {photos['Nikon_D1X.jpg']}: malformed XMP sidecar" in out
    (tmp_path / "photos" / "Nikon_D1X.jpg.xmp").unlink()
    assert main([*base, "tag", "import-xmp", "--vocab", "space"]) == 0
    assert "1 new labels (space: Woodworking)" in capsys.readouterr().out

    assert (
        main([*base, "tag", "export-xmp", "space", "--confirmed-only", "--dry-run", "--json"]) == 0
    )
    plan = __import__("json").loads(capsys.readouterr().out)
    assert plan == {str(photos["Issue_600_(1).jpg"]): {"add": ["jupiter"], "remove": []},
                    str(photos["Nikon_D1X.jpg"]): {"add": ["Woodworking"], "remove": []}}  # fmt: skip
    assert not list((tmp_path / "photos").glob("*.xmp"))
    assert main([*base, "tag", "export-xmp", "space", "--confirmed-only", "--embed"]) == 0
    assert (
        "wrote keywords for 2 photos to XMP sidecars, into 2 photo files" in capsys.readouterr().out
    )
    assert rdf_items(embedded_xmp(photos["Issue_600_(1).jpg"]), "lr:hierarchicalSubject") == [
        "photosift|space|Jupiter"
    ]
    assert main([*base, "index", str(tmp_path / "photos"), "--json"]) == 0
    assert '"embedded": 0' in capsys.readouterr().out


def test_protocol_jobs(tmp_path):
    from engine.service.client import EngineClient
    from tests.helpers import Events

    photos = copy_photos(tmp_path / "photos", ["Issue_600_(1).jpg", "Apple_iPhone_4.jpg"])
    events = Events()
    c = EngineClient(data_dir=tmp_path / "data", model=DEMO_MODEL, on_event=events,
                     extra_args=["--watch-quiet", "0.2"])  # fmt: skip
    c.start(timeout=60)
    try:
        job = c.request("add_folder", {"path": str(tmp_path / "photos")})["job"]
        events.wait("job_done", job, "the scan finishes")
        c.request("vocab_create", {"name": "space", "labels": ["saturn"]})
        c.request("tag_answer", {"vocab": "space", "label": "saturn", "state": "confirmed",
                                 "photos": [str(photos["Apple_iPhone_4.jpg"])]})  # fmt: skip
        job = c.request("tag_import_xmp", {"only_known": True})["job"]
        done = events.wait("job_done", job, "the import finishes")["data"]
        P.check(done, P.JobReport, "job_done")
        assert done["kind"] == "tag_import_xmp" and done["already"] == 1 and done["confirmed"] == 0
        assert events.of("job_started", job)[0]["data"]["kind"] == "tag_import_xmp"

        job = c.request("tag_export_xmp", {"confirmed_only": True, "embed": True})["job"]
        done = events.wait("job_done", job, "the export finishes")["data"]
        P.check(done, P.JobReport, "job_done")
        assert (done["sidecars"], done["embedded"], done["failed"]) == (2, 2, 0)
        assert events.of("progress", job)[-1]["data"]["done"] == 4
        assert rdf_items(embedded_xmp(photos["Apple_iPhone_4.jpg"]), "dc:subject") == ["saturn"]
        status = c.request("status")
        assert status["images"] == 2
        hits = c.request("tag_photos", {"vocab": "space", "label": "saturn", "state": "confirmed"})
        assert [h["path"] for h in hits["hits"]] == [str(photos["Apple_iPhone_4.jpg"])]
        with pytest.raises(Exception, match="no vocabulary named"):
            c.request("tag_export_xmp", {"vocab": "nope"})
    finally:
        c.close()
    with sqlite3.connect(tmp_path / "data" / "library.db") as db:
        assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 2  # nothing re-embedded
