"""`photosift bench ...`: benchmarks measured as ratios within one run, never timed unit tests."""

from __future__ import annotations

import argparse

BENCHES = (
    "pipeline", "query", "rescan", "quality", "tagging", "finetune", "naflex", "int8", "adapters", "raw",
    "first-result", "rclip",
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("which", choices=[*BENCHES, "all"], help="which benchmark to run")
    p.add_argument("--photos", help="folder of photos (default: ../shared/data/photos; raw: ../shared/data/raw/real; "
                   "rclip: the JPEGs anywhere under ../shared/data but odd-files)")
    p.add_argument("--sizes", default="100000,1000000", help="query bench: stored vector counts")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument(
        "--kinds", default="clip_like,uniform", help="query bench: synthetic vector kinds"
    )
    p.add_argument("--index-cache", help="query bench: keep built indexes here and reuse them")
    p.add_argument("--m", type=int, help="query bench: HNSW M (default: engine.store.ann's)")
    p.add_argument(
        "--ef-construction",
        type=int,
        help="query bench: HNSW ef_construction (default: engine.store.ann's)",
    )
    p.add_argument(
        "--model-folder",
        help="int8 bench: a model folder to quantise (default: a random-weight ViT-B-32-256)",
    )
    p.add_argument("--threads", type=int, help="int8 bench: ONNX Runtime threads (default: all)")
    p.add_argument(
        "--corpus-size",
        type=int,
        help="rclip bench: photos in the corpus made from the real JPEGs (default 1160; --quick 40)",
    )
    p.add_argument(
        "--rclip-python",
        help="rclip bench: a Python 3.12/3.13 for rclip's venv (default: python3.12 on PATH, then pyenv's)",
    )


def main(args) -> int:
    import json
    import sys

    which = BENCHES if args.which == "all" else (args.which,)
    results = {}
    for name in which:
        mod = __import__(f"engine.bench.{name.replace('-', '')}", fromlist=["run"])
        results[name] = mod.run(args, out=sys.stdout if not args.json else None)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0
