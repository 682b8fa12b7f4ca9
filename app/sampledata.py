"""Generated photo folders for tests, the benchmark and the screenshot.

Never imported by the window itself: it uses training.demo.world (numpy + Pillow), which
the GUI process keeps off its hot path. The photos carry EXIF (date taken, camera) like
a camera's would, so the preview and the date filter have something to show.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

SAMPLE_CAMERA = ("photosift", "Shape World")  # EXIF Make, Model of every generated photo
# The year each colour of colour_folder() was "taken" in: the date filter's test data.
COLOUR_YEARS = {"red": 2019, "blue": 2020, "green": 2021, "yellow": 2022}


def _save(image, path: Path, taken: dt.datetime | None) -> None:
    """JPEG with EXIF Make / Model and, when given, DateTimeOriginal."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = SAMPLE_CAMERA  # Make, Model (IFD0)
    if taken is not None:
        stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = stamp  # DateTime
        exif.get_ifd(0x8769)[0x9003] = stamp  # Exif IFD: DateTimeOriginal
    image.save(path, quality=90, exif=exif)


def world_photos(
    folder: Path, n: int, *, start: int = 0, size=(160, 200), split: str = "test"
) -> list[Path]:
    """`n` procedural scenes of coloured shapes, named after their first object
    (``0007-red-star.jpg``), as JPEGs in `folder`, taken a day apart from 1 June 2021."""
    from training.demo import world

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    first = dt.datetime(2021, 6, 1, 9, 30)
    out = []
    for i, sc in enumerate(world.scenes(split, n, start=start), start):
        o = sc.objects[0]
        p = folder / f"{i:04d}-{o.colour}-{o.kind}.jpg"
        taken = first + dt.timedelta(days=i, minutes=37 * i)
        _save(world.render(sc, size), p, taken)
        out.append(p)
    return out


def single_shape(
    path: Path,
    colour: str,
    kind: str = "circle",
    *,
    seed: int = 0,
    size=(160, 200),
    taken: dt.datetime | None = None,
) -> Path:
    """One large solid shape of `colour` on a grey background; `seed` moves it and changes
    the background noise, so no two files share content (the engine dedupes by content)."""
    import numpy as np

    from training.demo import world

    rng = np.random.default_rng(seed)
    x, y = (float(v) for v in rng.uniform(0.35, 0.65, 2))
    obj = world.Obj(kind, colour, "large", "solid", x, y, 0.16, float(rng.uniform(-15, 15)))
    tone = ("dark", "grey", "light")[seed % 3]
    lum = {"dark": 60, "grey": 120, "light": 185}[tone]
    bg = world.Background(tone, "noisy", (lum, lum, lum), int(seed))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(world.render(world.Scene((obj,), bg), size), path, taken)
    return path


def colour_folder(folder: Path, colours=("red", "blue", "green", "yellow"), per_colour: int = 6,
                  kinds=("circle", "square")) -> dict[str, list[Path]]:  # fmt: skip
    """`per_colour` single-shape photos of each colour: colour -> paths. Each colour was
    taken in its own year (:data:`COLOUR_YEARS`; 2018 for others), one photo a month."""
    out: dict[str, list[Path]] = {c: [] for c in colours}
    n = 0
    for c in colours:
        year = COLOUR_YEARS.get(c, 2018)
        for i in range(per_colour):
            kind = kinds[i % len(kinds)]
            taken = dt.datetime(year, 1 + i % 12, 10, 12, 0)
            out[c].append(
                single_shape(Path(folder) / f"{c}-{kind}-{i}.jpg", c, kind, seed=n, taken=taken)
            )
            n += 1
    return out


# Words the demo model never read, naming what its image tower does see (as in
# `photosift bench finetune`): fine-tuning on them has something to teach. (Its reserve
# shapes "ring" and "moon" would not do: its image vectors barely tell them apart.)
DEMO_LABELS = {
    "crimson": lambda sc: any(o.colour == "red" for o in sc.objects),
    "pair": lambda sc: sc.count == 2,
    "disc": lambda sc: any(o.kind == "circle" for o in sc.objects),
}


def label_folders(root: Path, labels=None, per_label: int = 14, size=(128, 128),
                  seed: int = 0) -> Path:  # fmt: skip
    """A folder per label for fine-tuning: ``<label>/`` holds demo-world scenes the label's
    test (scene -> bool) accepts, ``_other/`` scenes no test accepts; scenes two labels
    accept are left out, so every photo has one folder. Default labels: DEMO_LABELS."""
    from training.demo import world

    tests = labels or DEMO_LABELS
    root = Path(root)
    names = (*tests, "_other")
    for d in names:
        (root / d).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(names, 0)
    for i, sc in enumerate(world.scenes("test", 60 * per_label * len(names), seed=seed)):
        hits = [name for name, test in tests.items() if test(sc)]
        if len(hits) > 1:
            continue
        dest = hits[0] if hits else "_other"
        if counts[dest] >= per_label:
            if min(counts.values()) >= per_label:
                break
            continue
        _save(world.render(sc, size), root / dest / f"s{i:04d}.jpg", None)
        counts[dest] += 1
    return root
