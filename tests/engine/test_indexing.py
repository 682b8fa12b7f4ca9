"""Indexing and searching real files with a real model, through the Library the CLI uses."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from PIL import Image

from engine.errors import QueryError
from engine.library import Library
from engine.search import Filters, Query
from engine.settings import Settings
from tests.conftest import shared
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import make_photos


@pytest.fixture
def settings(tmp_path):
    s = Settings(data_dir=tmp_path / "data", batch_size=4)
    install_test_model(s)
    return s



def lib_for(settings):
    return Library(settings, model_key=MODEL_KEY)


def test_index_then_rescan_does_nothing(settings, tmp_path):
    make_photos(tmp_path / "photos", 12)
    lib = lib_for(settings)
    lib.add_folder(tmp_path / "photos")
    rep = lib.scan()
    assert (rep.embedded, rep.failed, rep.total) == (12, 0, 12)
    again = lib.scan()
    assert (again.embedded, again.total, again.unchanged) == (0, 0, 12)
    assert lib.status()["images"] == 12


def test_move_copy_rename_reuse_vectors(settings, tmp_path):
    paths = make_photos(tmp_path / "photos", 6)
    lib = lib_for(settings)
    lib.add_folder(tmp_path / "photos")
    lib.scan()
    before = lib.db.vectors_for(lib.space_id, [lib.db.image_id_for_path(str(paths[0]))])
    (tmp_path / "photos" / "sub").mkdir()
    os.rename(paths[0], tmp_path / "photos" / "sub" / "moved.jpg")
    shutil.copy(paths[1], tmp_path / "photos" / "copy.jpg")
    rep = lib.scan()
    assert rep.embedded == 0 and rep.reused == 2 and rep.removed == 0
    moved = lib.db.image_id_for_path(str(tmp_path / "photos" / "sub" / "moved.jpg"))
    after = lib.db.vectors_for(lib.space_id, [moved])
    assert list(before.values())[0].tobytes() == after[moved].tobytes()
    assert lib.db.image_id_for_path(str(paths[0])) is None
    assert lib.status()["images"] == 6 and lib.status()["files"] == 7


def test_delete_and_modify(settings, tmp_path):
    paths = make_photos(tmp_path / "photos", 6)
    lib = lib_for(settings)
    lib.add_folder(tmp_path / "photos")
    lib.scan()
    paths[2].unlink()
    make_photos(tmp_path / "other", 1, seed=42)
    shutil.copy(tmp_path / "other" / "p000.jpg", paths[3])  # same path, new content
    rep = lib.scan()
    assert rep.embedded == 1 and rep.removed == 2  # deleted photo + the old content of p003
    hits = lib.search(Query(like=[str(paths[3])], k=10))
    assert str(paths[2]) not in {h.path for h in hits}
    assert hits[0].path == str(paths[3]) and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert len(hits) == 5


def test_offline_folder_is_kept(settings, tmp_path):
    make_photos(tmp_path / "drive" / "photos", 5)
    lib = lib_for(settings)
    lib.add_folder(tmp_path / "drive" / "photos")
    lib.scan()
    os.rename(tmp_path / "drive", tmp_path / "unplugged")
    rep = lib.scan()
    assert rep.offline == [str(tmp_path / "drive" / "photos")]
    assert rep.removed == 0
    st = lib.status()
    assert st["images"] == 5 and st["offline_folders"] == 1
    hits = lib.search("a photo", k=3)
    assert len(hits) == 3 and not any(h.online for h in hits)


def test_cancel_keeps_committed_batches_and_resumes(settings, tmp_path):
    make_photos(tmp_path / "photos", 40)
    lib = lib_for(settings)
    lib.add_folder(tmp_path / "photos")
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.done)
        if p.embedded >= 8:
            cancel.set()

    first = lib.scan(progress=progress, cancel=cancel)
    assert first.cancelled and 8 <= first.embedded < 40
    assert lib.db.vector_count(lib.space_id) == first.embedded
    second = lib.scan()
    assert second.embedded == 40 - first.embedded  # nothing redone
    assert lib.db.vector_count(lib.space_id) == 40
    assert seen == sorted(seen)


def test_odd_files_recorded_not_fatal(settings, tmp_path):
    src = shared("odd-files")
    dest = tmp_path / "odd"
    shutil.copytree(src, dest)
    lib = lib_for(settings)
    lib.add_folder(dest)
    rep = lib.scan()
    assert rep.total > 50
    assert rep.failed > 0 and rep.embedded > 0
    assert all(r and "\n" not in r for _, r in rep.failures)
    st = lib.status()
    assert st["failures"] == rep.failed
    # Failed files are not retried until they change.
    assert lib.scan().total == 0


def test_search_filters_negatives_and_bad_queries(settings, tmp_path):
    make_photos(tmp_path / "a", 8, seed=1)
    make_photos(tmp_path / "b", 8, seed=2)
    Image.new("RGB", (40, 40), "red").save(tmp_path / "b" / "red.png")
    lib = lib_for(settings)
    lib.add_folder(tmp_path / "a")
    lib.add_folder(tmp_path / "b")
    lib.scan()
    hits = lib.search("a red square", k=50)
    assert len(hits) == 17
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    only_a = lib.search(Query(text="a red square", filters=Filters(folders=[str(tmp_path / "a")])))
    assert {os.path.dirname(h.path) for h in only_a} == {str(tmp_path / "a")}
    pngs = lib.search(Query(text="red", filters=Filters(exts=["png"])))
    assert [os.path.basename(h.path) for h in pngs] == ["red.png"]
    plain = lib.search("a photo", k=17)
    negated = lib.search("a photo -red", k=17)
    rank = lambda hs: [os.path.basename(h.path) for h in hs].index("red.png")  # noqa: E731
    assert rank(negated) >= rank(plain)
    for bad, msg in [("", "type something"), ("   ", "type something"), ("?!", "no words"),
                     ("x" * 5000, "characters long"), ("-cats", "only things to avoid")]:  # fmt: skip
        with pytest.raises(QueryError, match=msg):
            lib.search(bad)
    for text in ["ROTE Äpfel", "红色的汽车", "سيارة حمراء", "🐱 cat", "e\u0301te\u0301"]:
        assert len(lib.search(text, k=3)) == 3


def test_switching_image_space_embeds_the_library_again(settings, tmp_path):
    """A model with another image tower needs its own vectors; switching back needs none."""
    import json

    make_photos(tmp_path / "photos", 6)
    lib = lib_for(settings)
    lib.add_folder(tmp_path / "photos")
    assert lib.scan().embedded == 6
    lib.close()
    other = settings.models_dir / "demo-other-tower"
    shutil.copytree(lib.model().folder, other, ignore=shutil.ignore_patterns("*.safetensors"))
    meta = json.loads((other / "model.json").read_text())
    meta.update(key="demo-other-tower", image_space="another-image-tower")
    meta.pop("source", None)
    (other / "model.json").write_text(json.dumps(meta))
    lib2 = Library(settings, model_key="demo-other-tower")
    rep = lib2.scan()
    assert rep.embedded == 6 and rep.reused == 0
    assert lib2.db.vectors_per_space() == {"another-image-tower": 6, MODEL_KEY: 6}
    lib2.close()
    assert lib_for(settings).scan().embedded == 0
