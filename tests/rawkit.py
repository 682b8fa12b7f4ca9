"""Camera RAW files made in tests (small DNGs LibRaw decodes like a camera's): the writer lives
with the RAW benchmark, which needs camera-sized ones (engine/bench/dngfile.py)."""

from engine.bench.dngfile import mosaic, write_dng

__all__ = ["mosaic", "write_dng"]
