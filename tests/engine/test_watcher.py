"""The folder watcher: file-system changes reach the index within seconds, and it converges.

Real files, real watchdog observers (inotify here, polling for `poll` folders), the real
model. Every wait is a condition polled under a deadline; the assertion is the condition.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.index.watcher import Watcher
from engine.library import Library
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import wait_for

TIMEOUT = 20.0  # generous for a loaded 2-core machine; convergence is usually well under 2 s


def make_photo(path: Path, seed: int) -> Path:
    """A small distinct JPEG (a colour field with a block): distinct seeds, distinct vectors."""
    rng = np.random.default_rng(seed)
    px = np.zeros((48, 64, 3), np.uint8)
    px[:] = rng.integers(0, 255, 3)
    y, x = rng.integers(0, 30), rng.integers(0, 40)
    px[y : y + 16, x : x + 20] = rng.integers(0, 255, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")  # hidden while written, like a careful copier
    Image.fromarray(px).save(tmp, format="JPEG", quality=90)
    os.replace(tmp, path)
    return path



def fs_state(*roots: Path) -> dict[str, tuple[int, int]]:
    """What the index should hold: every non-hidden photo file with its size and mtime."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for n in filenames:
                if not n.startswith(".") and n.lower().endswith((".jpg", ".jpeg", ".png")):
                    p = os.path.join(dirpath, n)
                    st = os.stat(p)
                    out[p] = (st.st_size, st.st_mtime_ns)
    return out


def db_state(lib: Library) -> dict[str, tuple[int, int]]:
    out = {}
    for f in lib.db.folders():
        out.update({p: (r.size, r.mtime_ns) for p, r in lib.db.files_in_folder(f["id"]).items()})
        out.update(lib.db.failures_in_folder(f["id"]))
    return out


def vectors(lib: Library) -> int:
    return sum(lib.db.vectors_per_space().values())


@pytest.fixture
def lib(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", batch_size=4, workers=1)
    install_test_model(settings)
    lib = Library(settings, model_key=MODEL_KEY)
    yield lib
    lib.close()


@pytest.fixture
def watch(lib):
    made = []

    def start(**kw) -> Watcher:
        opts = dict(quiet_s=0.2, max_wait_s=1.0, grace_s=30.0, offline_check_s=0.3, poll_interval_s=0.3)
        opts.update(kw)
        w = Watcher(lib, **opts).start()
        w.watch_all()
        made.append(w)
        return w

    yield start
    for w in made:
        w.stop()


def indexed_folder(lib, root: Path, n: int, seed: int = 0) -> list[Path]:
    paths = [make_photo(root / f"p{i:03d}.jpg", seed + i) for i in range(n)]
    lib.add_folder(root)
    rep = lib.scan()
    assert rep.embedded == n
    return paths


def test_create_modify_delete_converge(lib, watch, tmp_path):
    root = tmp_path / "photos"
    paths = indexed_folder(lib, root, 4)
    w = watch()
    assert w.watched() == {str(root): "native"}

    new = make_photo(root / "new.jpg", 100)
    wait_for(lambda: lib.db.image_id_for_path(str(new)), "a created photo is indexed")

    old_id = lib.db.image_id_for_path(str(paths[0]))
    make_photo(paths[0], 200)  # new content under the same name
    wait_for(lambda: lib.db.image_id_for_path(str(paths[0])) not in (None, old_id), "a modified photo is re-indexed")

    paths[1].unlink()
    wait_for(lambda: lib.db.image_id_for_path(str(paths[1])) is None, "a deleted photo leaves the index")

    outside = tmp_path / "outside"
    moved_in = make_photo(outside / "in.jpg", 400)
    os.rename(moved_in, root / "in.jpg")  # from a folder nobody watches
    os.rename(paths[2], outside / "out.jpg")  # and out to one
    wait_for(lambda: db_state(lib) == fs_state(root), "index == file system")
    assert w.wait_idle(TIMEOUT)  # the last batch's counts are recorded
    assert w.totals.embedded == 3  # the new photos and the new content, nothing else


def test_move_and_rename_do_not_reembed(lib, watch, tmp_path):
    root = tmp_path / "photos"
    (root / "album").mkdir(parents=True)
    paths = indexed_folder(lib, root, 5)
    ids = {p.name: lib.db.image_id_for_path(str(p)) for p in paths}
    before = vectors(lib)
    w = watch()

    renamed = root / "renamed.jpg"
    moved = root / "album" / "moved.jpg"
    os.rename(paths[0], renamed)
    os.rename(paths[1], moved)
    wait_for(lambda: db_state(lib) == fs_state(root), "moves are applied")
    assert lib.db.image_id_for_path(str(renamed)) == ids[paths[0].name]
    assert lib.db.image_id_for_path(str(moved)) == ids[paths[1].name]
    assert vectors(lib) == before
    assert w.wait_idle(TIMEOUT)  # the last batch's counts are recorded
    assert w.totals.embedded == 0 and w.totals.reused == 0  # re-pointed, not even re-read
    assert w.totals.moved == 2


def test_move_between_watched_folders_reuses_the_vector(lib, watch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    paths = indexed_folder(lib, a, 3)
    b.mkdir()
    lib.add_folder(b)
    photo_id = lib.db.image_id_for_path(str(paths[0]))
    before = vectors(lib)
    w = watch()
    assert set(w.watched()) == {str(a), str(b)}

    dest = b / "from-a.jpg"
    shutil.move(paths[0], dest)  # a delete in one watch, a create in the other
    wait_for(lambda: db_state(lib) == fs_state(a, b), "the cross-folder move is applied")
    assert lib.db.image_id_for_path(str(dest)) == photo_id
    assert vectors(lib) == before
    assert w.wait_idle(TIMEOUT)  # the last batch's counts are recorded
    assert w.totals.embedded == 0


def test_atomic_save_reindexes_and_old_content_is_collected(lib, watch, tmp_path):
    root = tmp_path / "photos"
    paths = indexed_folder(lib, root, 3)
    before = vectors(lib)
    old_id = lib.db.image_id_for_path(str(paths[0]))
    w = watch(grace_s=0.5)

    tmp = root / ".p000.jpg.tmp"  # an editor writes a hidden temp file, then renames it over
    make_photo(tmp, 300)
    os.replace(tmp, paths[0])
    wait_for(lambda: lib.db.image_id_for_path(str(paths[0])) not in (None, old_id), "the saved content is indexed")
    # The old content has no file any more; after the grace period it is forgotten.
    wait_for(lambda: vectors(lib) == before, "the replaced photo's vector is collected")
    assert w.wait_idle(TIMEOUT)  # the last batch's counts are recorded
    assert w.totals.embedded == 1


def test_hidden_and_non_photo_files_are_ignored(lib, watch, tmp_path):
    root = tmp_path / "photos"
    indexed_folder(lib, root, 2)
    w = watch()
    make_photo(root / ".hidden.jpg", 1)
    make_photo(root / ".cache" / "x.jpg", 2)
    (root / "notes.txt").write_text("not a photo")
    make_photo(root / "seen.jpg", 3)  # a real change, so we know the batch was applied
    wait_for(lambda: lib.db.image_id_for_path(str(root / "seen.jpg")), "the visible photo is indexed")
    assert w.wait_idle(TIMEOUT)
    assert db_state(lib) == fs_state(root)
    assert len(db_state(lib)) == 3


def test_deleted_folder_goes_offline_not_empty_and_comes_back(lib, watch, tmp_path):
    root = tmp_path / "photos"
    indexed_folder(lib, root, 3)
    w = watch()
    keep = tmp_path / "keep"
    shutil.copytree(root, keep)

    shutil.rmtree(root)
    wait_for(lambda: not lib.db.folders()[0]["online"], "the folder goes offline")
    assert w.wait_idle(TIMEOUT)
    assert lib.db.folders()[0]["files"] == 3  # kept: an unplugged drive is not an empty one
    assert lib.status()["images"] == 3

    shutil.copytree(keep, root)  # plugged back in
    wait_for(lambda: lib.db.folders()[0]["online"], "the folder comes back online")
    make_photo(root / "after.jpg", 50)
    wait_for(lambda: db_state(lib) == fs_state(root), "changes after the return are watched again")
    assert w.watched() == {str(root): "native"}


def test_polling_folder(lib, watch, tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    make_photo(root / "a.jpg", 1)
    lib.add_folder(root, poll=True)
    lib.scan()
    w = watch()
    assert w.watched() == {str(root): "polling"}
    make_photo(root / "b.jpg", 2)
    os.rename(root / "a.jpg", root / "c.jpg")
    wait_for(lambda: db_state(lib) == fs_state(root), "polled changes converge")
    assert w.wait_idle(TIMEOUT)  # the last batch's counts are recorded
    assert w.totals.embedded == 1


def _burst(root: Path, n_events: int, seed: int) -> int:
    """Create, overwrite, rename, move, delete photos in a tight loop; returns events made."""
    rnd = random.Random(seed)
    subdir = root / "sub"  # made before the watcher starts: no directory events in the burst
    live: list[Path] = sorted(root.glob("*.jpg"))
    events = 0
    n = 0
    while events < n_events:
        op = rnd.random()
        if op < 0.35 or len(live) < 5:
            p = (subdir if rnd.random() < 0.3 else root) / f"b{n:05d}.jpg"
            n += 1
            # Few distinct contents: the burst is about events, not about embedding speed.
            make_photo(p, 1000 + rnd.randrange(40))
            live.append(p)
        elif op < 0.55:
            p = live.pop(rnd.randrange(len(live)))
            q = (subdir if rnd.random() < 0.5 else root) / f"m{n:05d}.jpg"
            n += 1
            os.rename(p, q)
            live.append(q)
        elif op < 0.75:
            live.pop(rnd.randrange(len(live))).unlink()
        elif op < 0.9:
            make_photo(rnd.choice(live), 1000 + rnd.randrange(40))
        else:
            p = root / f"t{n:05d}.jpg"  # born and gone within the burst
            n += 1
            make_photo(p, 2000 + rnd.randrange(5))
            p.unlink()
            events += 1
        events += 1
    return events


@pytest.mark.parametrize("max_paths", [5000, 25], ids=["events", "rescan-fallback"])
def test_burst_converges_to_exactly_the_file_system(lib, watch, tmp_path, max_paths):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    indexed_folder(lib, root, 10)
    w = watch(max_paths=max_paths)
    _burst(root, 400, seed=max_paths)
    wait_for(lambda: w.idle() and db_state(lib) == fs_state(root), "index == file system after the burst", 60)
    time.sleep(1.0)  # anything still arriving would break equality
    assert w.wait_idle(TIMEOUT)
    assert db_state(lib) == fs_state(root)
    if max_paths == 25:
        assert w.totals.rescanned, "the rescan fallback was not exercised"
    else:
        assert not w.totals.rescanned, "events alone should have done it"


@pytest.mark.slow
def test_burst_of_ten_thousand_events(lib, watch, tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    indexed_folder(lib, root, 10)
    w = watch()
    _burst(root, 10_000, seed=7)
    wait_for(lambda: w.idle() and db_state(lib) == fs_state(root), "index == file system after 10k events", 300)
    time.sleep(2.0)
    assert w.wait_idle(60)
    assert db_state(lib) == fs_state(root)
