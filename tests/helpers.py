"""Small helpers the test modules share: generated photos and waiting with a deadline."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_photos(folder: Path, n: int, seed: int = 0, prefix: str = "p") -> list[Path]:
    """Distinct, decodable JPEGs: a colour field with a rectangle, so their vectors differ."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        px = np.zeros((48, 64, 3), np.uint8)
        px[:] = rng.integers(0, 255, 3)
        y, x = rng.integers(0, 30), rng.integers(0, 40)
        px[y : y + 16, x : x + 20] = rng.integers(0, 255, 3)
        p = folder / f"{prefix}{i:03d}.jpg"
        Image.fromarray(px).save(p, quality=90)
        out.append(p)
    return out


def wait_for(cond, what: str, timeout: float = 60.0, poll: float = 0.02):
    """Poll `cond` until it returns something truthy; fail the test saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(poll)


class Events:
    """Collects engine events (they arrive on the client's reader thread)."""

    def __init__(self):
        self.items: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, msg: dict) -> None:
        with self.lock:
            self.items.append(msg)

    def of(self, name: str, job: str | None = None) -> list[dict]:
        with self.lock:
            return [
                e for e in self.items if e["event"] == name and (job is None or e.get("job") == job)
            ]

    def of_all(self) -> list[dict]:
        with self.lock:
            return list(self.items)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()

    def wait(
        self, name: str, job: str | None = None, what: str = "", timeout: float = 60.0
    ) -> dict:
        return wait_for(
            lambda: (self.of(name, job) or [None])[-1], what or f"{name} event for {job}", timeout
        )
