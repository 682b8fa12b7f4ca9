"""Draw the photosift application icon and write it in every format the installers need.

    python packaging/make_icons.py            # writes resources/icons/

Writes ``photosift.png`` (512 px, Linux .desktop, Qt window icon), ``photosift-256.png``,
``photosift.ico`` (Windows: 16 to 256 px) and ``photosift.icns`` (macOS). Only Pillow is
needed, so any machine can rebuild them; the results are committed, so a build does not
have to. The drawing: a photo (sky, hills, sun) on a rounded tile, under a magnifier.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources" / "icons"
SS = 4  # supersampling: draw at 4x, then downscale for smooth edges


def _gradient(size: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    g = Image.new("RGB", (1, size))
    for y in range(size):
        t = y / max(1, size - 1)
        g.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return g.resize((size, size))


def draw(size: int = 1024) -> Image.Image:
    """The icon at `size` x `size` pixels (RGBA)."""
    s = size * SS
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))

    # The tile: a rounded square with a deep blue gradient (macOS-style margins).
    m = round(s * 0.06)
    tile_mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(tile_mask).rounded_rectangle(
        (m, m, s - m, s - m), radius=round(s * 0.2), fill=255
    )
    img.paste(_gradient(s, (38, 70, 160), (20, 30, 80)), (0, 0), tile_mask)

    # The photo: white frame, sky gradient, two hills, a sun.
    px0, py0, px1, py1 = round(s * 0.17), round(s * 0.2), round(s * 0.71), round(s * 0.64)
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((px0, py0, px1, py1), radius=round(s * 0.03), fill=(250, 250, 250, 255))
    b = round(s * 0.025)
    ix0, iy0, ix1, iy1 = px0 + b, py0 + b, px1 - b, py1 - b
    sky = _gradient(s, (120, 190, 255), (200, 230, 255)).resize((ix1 - ix0, iy1 - iy0))
    img.paste(sky, (ix0, iy0))
    w, h = ix1 - ix0, iy1 - iy0
    d.ellipse(
        (ix0 + w * 0.62, iy0 + h * 0.14, ix0 + w * 0.84, iy0 + h * 0.14 + w * 0.22),
        fill=(255, 196, 60, 255),
    )
    d.polygon(
        [(ix0, iy1), (ix0 + w * 0.3, iy0 + h * 0.45), (ix0 + w * 0.62, iy1)],
        fill=(60, 150, 90, 255),
    )
    d.polygon([(ix0 + w * 0.35, iy1), (ix0 + w * 0.68, iy0 + h * 0.55), (ix1, iy0 + h * 0.8), (ix1, iy1)],
              fill=(40, 120, 70, 255))  # fmt: skip

    # The magnifier: a ring with a tinted lens over the photo's corner, and a handle.
    cx, cy, r = s * 0.62, s * 0.58, s * 0.17
    ring = round(s * 0.045)
    lens = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    ImageDraw.Draw(lens).ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 255, 255, 70))
    img = Image.alpha_composite(img, lens)
    d = ImageDraw.Draw(img)
    hx, hy = cx + r * 0.72, cy + r * 0.72
    d.line((hx, hy, s * 0.84, s * 0.80), fill=(255, 170, 40, 255), width=round(s * 0.075))
    d.ellipse((s * 0.84 - s * 0.0375, s * 0.80 - s * 0.0375, s * 0.84 + s * 0.0375, s * 0.80 + s * 0.0375),
              fill=(255, 170, 40, 255))  # fmt: skip
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 255, 255, 255), width=ring)

    # Keep everything inside the tile (the handle must not poke out of the rounded corner).
    clipped = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    clipped.paste(img, (0, 0), tile_mask)
    return clipped.resize((size, size), Image.Resampling.LANCZOS)


def write_all(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    big = draw(1024)
    paths = []
    for name, px in (("photosift.png", 512), ("photosift-256.png", 256)):
        p = out / name
        big.resize((px, px), Image.Resampling.LANCZOS).save(p, optimize=True)
        paths.append(p)
    p = out / "photosift.ico"
    big.save(p, sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    paths.append(p)
    p = out / "photosift.icns"
    big.save(p)  # Pillow writes all the standard ICNS sizes from the 1024 px master
    paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    for p in write_all(args.out):
        print(f"wrote {p} ({p.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
