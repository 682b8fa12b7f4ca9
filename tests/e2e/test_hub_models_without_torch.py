"""The lean install's whole path with a ready hub export: download, index, text search, search by
example and tagging, each a `photosift` command in a process where torch (and open_clip,
torchvision, timm, transformers) cannot be imported, as in the installers' lean app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # only to make the tiny hub repo in this process

from tests import hubrepos  # noqa: E402
from tests.app.fakehub import FakeHub, repo_files  # noqa: E402
from tests.helpers import make_photos  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("torch", "open_clip", "torchvision", "timm", "transformers")
SHIM = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # `import torch` raises ImportError; find_spec says "not installed"
"""


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize("name", ["immich-siglip2", "tfjs-clip"])
def test_download_index_search_similar_tag_without_torch(tmp_path, tmp_path_factory, name):
    made = hubrepos.build(name, tmp_path_factory.mktemp("repo"))
    data = tmp_path / "data"
    entry = data / "models" / made.spec.key / "model.json"  # a registry entry, not downloaded
    entry.parent.mkdir(parents=True)
    entry.write_text(json.dumps(made.spec.to_json()))
    photos = make_photos(tmp_path / "photos", 6)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    with FakeHub(made.repo, repo_files(made.folder)) as hub:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]), "HF_ENDPOINT": hub.url,
               "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path / "hf"), "PHOTOSIFT_HOME": str(data)}  # fmt: skip
        check = _run(["--help"], {**env, "PYTHONPATH": env["PYTHONPATH"]})
        assert check.returncode == 0
        probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
        assert probe.returncode != 0 and "torch" in probe.stderr  # the shim really blocks it
        steps = [
            ["models", "download", made.spec.key],
            ["models", "use", made.spec.key],
            ["index", str(photos[0].parent)],
            ["search", "a photo of a dog", "--json"],
            ["similar", str(photos[2]), "--json"],
            ["vocab", "create", "pets", "cat", "dog"],
            ["tag", "run", "pets"],
            ["tag", "list", "--photo", str(photos[1]), "--all", "--json"],
        ]
        out = {}
        for args in steps:
            r = _run(args, env)
            assert r.returncode == 0, f"{args}: {r.stderr[-2000:]}"
            out[args[0] + " " + args[1]] = r.stdout
    found = json.loads(out["search a photo of a dog"])
    assert len(found) == len(photos)
    similar = json.loads(out[f"similar {photos[2]}"])
    assert similar[0]["path"] == str(photos[2])  # a photo is most like itself
    tags = json.loads(out["tag list"])
    assert {t["label"] for t in tags} == {"cat", "dog"} and all(0 <= t["score"] <= 1 for t in tags)
