"""The thumbnail cache stays within its byte budget, dropping the least recently used first:
on its own, and in a real engine process (at start, and as thumbnails are used)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.service.client import EngineClient
from engine.settings import Settings
from engine.store import thumbcache
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import make_photos, wait_for

KB = 1024


def _thumb(data_dir: Path, name: str, size: int, age_s: int) -> Path:
    p = thumbcache.thumbs_dir(data_dir) / name[:2] / f"{name}.jpg"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\xff" * size)
    t = 1_700_000_000 - age_s
    os.utime(p, (t, t))
    return p


def test_prune_drops_the_least_recently_used_down_below_the_budget(tmp_path):
    old = [_thumb(tmp_path, f"a{i:03d}", 10 * KB, age_s=1000 + i) for i in range(10)]
    new = [_thumb(tmp_path, f"b{i:03d}", 10 * KB, age_s=i) for i in range(10)]
    assert thumbcache.usage(tmp_path) == (20, 200 * KB)
    assert thumbcache.prune(tmp_path, 250 * KB) == (0, 0)  # within budget: nothing goes
    removed, freed = thumbcache.prune(tmp_path, 150 * KB)
    files, used = thumbcache.usage(tmp_path)
    assert used <= 0.8 * 150 * KB and freed == removed * 10 * KB and files == 20 - removed
    assert all(p.exists() for p in new)  # only the oldest went
    assert sum(p.exists() for p in old) == 10 - removed


def test_prune_of_a_missing_cache_is_nothing(tmp_path):
    assert thumbcache.prune(tmp_path / "nowhere", 0) == (0, 0)


def test_the_engine_prunes_at_start_and_marks_thumbnails_it_serves(tmp_path):
    data = tmp_path / "data"
    settings = Settings(data_dir=data, thumb_cache_mb=1)
    install_test_model(settings)
    settings.save()
    stale = [_thumb(data, f"c{i:03d}", 100 * KB, age_s=10_000 + i) for i in range(15)]  # 1.5 MB
    make_photos(tmp_path / "photos", 1)
    photo = str(next((tmp_path / "photos").iterdir()))
    c = EngineClient(data_dir=data, model=MODEL_KEY)
    c.start(timeout=60)
    try:
        wait_for(lambda: thumbcache.usage(data)[1] <= 0.8 * 1024 * KB, "a prune at engine start")
        assert sum(p.exists() for p in stale) == 8  # 800 KB of the newest stay

        th = Path(c.request("thumbnail", {"path": photo, "size": 32})["path"])
        os.utime(th, (1_600_000_000, 1_600_000_000))  # as if last used long ago
        assert Path(c.request("thumbnail", {"path": photo, "size": 32})["path"]) == th
        assert th.stat().st_mtime > 1_600_000_000  # the hit counted as a use
    finally:
        c.close()
