"""Re-scanning an unchanged library: 10,000 files must take at most 2 s (stat only, no hashing)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..index.scan import plan_scan
from ..library import DEMO_MODEL
from ..settings import Settings
from .common import bench_log


def make_tree(root: Path, n: int, per_dir: int = 250) -> None:
    """n small distinct JPEGs in folders of `per_dir`, like a camera's DCIM tree."""
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"{i // per_dir:03d}"
        d.mkdir(parents=True, exist_ok=True)
        px = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(px).save(d / f"IMG_{i:05d}.jpg", quality=80)


def run(args, out=None) -> dict:
    from ..library import Library

    log = bench_log(out)
    n = 1000 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "photos"
        log(f"rescan bench: writing {n} photos")
        make_tree(root, n)
        lib = Library(Settings(data_dir=Path(d) / "data"), model_key=DEMO_MODEL)
        lib.add_folder(root)
        t = time.perf_counter()
        first = lib.scan()
        index_s = time.perf_counter() - t
        log(f"  first index: {first.embedded} embedded in {index_s:.1f} s")
        times = []
        for _ in range(3):
            t = time.perf_counter()
            plan = plan_scan(lib.db)
            times.append(time.perf_counter() - t)
            assert not plan.todo and not plan.missing, "an unchanged tree must need no work"
        t = time.perf_counter()
        again = lib.scan()  # the full command path, including the (empty) indexer run
        full_s = time.perf_counter() - t
        lib.close()
    res = dict(files=n, first_index_s=round(index_s, 1), rescan_plan_s=round(min(times), 3),
               rescan_full_s=round(full_s, 3), reembedded=again.embedded, unchanged=again.unchanged)  # fmt: skip
    if out:
        print(f"\nre-scan of {n} unchanged files: {res['rescan_plan_s']} s (stat check), "
              f"{res['rescan_full_s']} s (whole scan command); re-embedded {again.embedded} (target <= 2 s, 0)",
              file=out)  # fmt: skip
    return res
