"""The frozen Linux app, built and started: on demand only (minutes), never in the default run.

pytest -m installer tests/packaging        (the same as the README's two commands)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.installer,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux tarball's test"),
]


def test_build_and_smoke_the_linux_bundle():
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    build = subprocess.run(["bash", "packaging/linux/build.sh"], cwd=ROOT, capture_output=True,
                           text=True, timeout=3600)  # fmt: skip
    assert build.returncode == 0, build.stderr[-4000:]
    smoke = subprocess.run(["bash", "packaging/linux/smoke.sh"], cwd=ROOT, capture_output=True,
                           text=True, timeout=1800)  # fmt: skip
    assert smoke.returncode == 0 and "SMOKE PASS" in smoke.stderr, smoke.stderr[-4000:]
