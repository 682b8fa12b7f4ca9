"""Generated photo folders for tests, the benchmark and the screenshot.

Never imported by the window itself: it uses training.world (numpy + Pillow), which
the GUI process keeps off its hot path.
"""

from __future__ import annotations

from pathlib import Path


def world_photos(
    folder: Path, n: int, *, start: int = 0, size=(160, 200), split: str = "test"
) -> list[Path]:
    """`n` procedural scenes of coloured shapes, named after their first object
    (``0007-red-star.jpg``), as JPEGs in `folder`."""
    from training import world

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, sc in enumerate(world.scenes(split, n, start=start), start):
        o = sc.objects[0]
        p = folder / f"{i:04d}-{o.colour}-{o.kind}.jpg"
        world.render(sc, size).save(p, quality=90)
        out.append(p)
    return out


def single_shape(
    path: Path, colour: str, kind: str = "circle", *, seed: int = 0, size=(160, 200)
) -> Path:
    """One large solid shape of `colour` on a grey background; `seed` moves it and changes
    the background noise, so no two files share content (the engine dedupes by content)."""
    import numpy as np

    from training import world

    rng = np.random.default_rng(seed)
    x, y = (float(v) for v in rng.uniform(0.35, 0.65, 2))
    obj = world.Obj(kind, colour, "large", "solid", x, y, 0.16, float(rng.uniform(-15, 15)))
    tone = ("dark", "grey", "light")[seed % 3]
    lum = {"dark": 60, "grey": 120, "light": 185}[tone]
    bg = world.Background(tone, "noisy", (lum, lum, lum), int(seed))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    world.render(world.Scene((obj,), bg), size).save(path, quality=90)
    return path


def colour_folder(folder: Path, colours=("red", "blue", "green", "yellow"), per_colour: int = 6,
                  kinds=("circle", "square")) -> dict[str, list[Path]]:  # fmt: skip
    """`per_colour` single-shape photos of each colour: colour -> paths."""
    out: dict[str, list[Path]] = {c: [] for c in colours}
    n = 0
    for c in colours:
        for i in range(per_colour):
            kind = kinds[i % len(kinds)]
            out[c].append(single_shape(Path(folder) / f"{c}-{kind}-{i}.jpg", c, kind, seed=n))
            n += 1
    return out
