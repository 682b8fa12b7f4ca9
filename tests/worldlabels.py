"""A folder per label, drawn from the demo model's world, for fine-tuning tests."""

from __future__ import annotations

import shutil

from training.demo import world


def label_tree(root, n=14, seed=0):
    """crimson/ (red objects), pair/ (exactly two objects), _other/ (neither)."""
    tests = {
        "crimson": lambda s: any(o.colour == "red" for o in s.objects),
        "pair": lambda s: s.count == 2,
    }
    for d in (*tests, "_other"):
        (root / d).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys((*tests, "_other"), 0)
    for i, s in enumerate(world.scenes("test", 600, seed=seed)):
        dest = [d for d, f in tests.items() if f(s)] or ["_other"]
        if all(counts[d] >= n for d in dest):
            continue
        world.render(s, (96, 96)).save(root / dest[0] / f"s{i:04d}.png")
        for d in dest[1:]:
            shutil.copyfile(root / dest[0] / f"s{i:04d}.png", root / d / f"s{i:04d}.png")
        for d in dest:
            counts[d] += 1
        if min(counts.values()) >= n:
            break
    return root
