"""Fine-tuning end to end, through the CLI and the child process: index a folder per
label, train, accept; the stored image vectors are byte-identical, switching to the new
model re-embeds nothing, switching back is instant, and cancel keeps nothing."""

from __future__ import annotations

import hashlib
import threading

import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from engine.cli import commands as cli
from engine.errors import Cancelled, TrainingDataError  # noqa: E402
from engine.finetune.job import TrainRequest, runs_dir, train  # noqa: E402
from engine.library import DEMO_MODEL, Library  # noqa: E402
from engine.models.hub import local_models  # noqa: E402
from engine.photos import decode  # noqa: E402
from engine.settings import Settings  # noqa: E402
from tests.worldlabels import label_tree  # noqa: E402


def vectors_digest(settings: Settings) -> tuple[str, int]:
    lib = Library(settings)
    h = hashlib.sha256()
    rows = lib.db.conn.execute(
        "SELECT space_id, image_id, vec FROM vectors ORDER BY space_id, image_id"
    ).fetchall()
    for r in rows:
        h.update(repr(r[:2]).encode() + r[2])
    lib.close()
    return h.hexdigest(), len(rows)


@pytest.mark.slow
def test_train_accept_switch_and_back(tmp_path, monkeypatch):
    root = label_tree(tmp_path / "labels", n=16)
    data = tmp_path / "data"
    base = ["--data-dir", str(data), "--model", DEMO_MODEL]
    assert cli.main([*base, "index", str(root)]) == 0
    before = vectors_digest(Settings.load(data))
    assert cli.main([*base, "train", "--folders", str(root), "--yes", "--max-steps", "40"]) == 0
    settings = Settings.load(data)
    assert vectors_digest(settings) == before  # byte-identical image vectors
    new = [s for s in local_models(settings) if s.base_model == DEMO_MODEL]
    assert len(new) == 1 and new[0].image_space == DEMO_MODEL
    assert not any(runs_dir(settings).iterdir())  # the run folder is gone once accepted

    def no_decoding(*a, **k):
        raise AssertionError("switching to a fine-tuned text side must not decode photos")

    monkeypatch.setattr(decode, "decode_photo", no_decoding)
    for key in (new[0].key, DEMO_MODEL, new[0].key):  # to it, back, and to it again
        lib = Library(Settings(data_dir=data, model=key))
        rep = lib.scan()  # what a model switch runs: finds every photo already embedded
        assert rep.embedded == 0 and lib.spec.key == key
        assert lib.db.vectors_per_space() == {DEMO_MODEL: before[1]}
        assert lib.search("crimson", k=5)
        lib.close()
    assert vectors_digest(settings) == before


@pytest.mark.slow
def test_cancel_keeps_nothing(tmp_path):
    root = label_tree(tmp_path / "labels", n=12)
    settings = Settings(data_dir=tmp_path / "data", model=DEMO_MODEL)
    lib = Library(settings)
    lib.add_folder(root)
    lib.scan()
    lib.close()
    cancel = threading.Event()

    def progress(rec):
        if rec.get("event") == "step" and rec["step"] >= 2:
            cancel.set()

    req = TrainRequest(base=DEMO_MODEL, folders=str(root), max_steps=100000)
    with pytest.raises(Cancelled):
        train(settings, req, progress=progress, cancel=cancel)
    assert not list(runs_dir(settings).iterdir())
    assert not settings.models_dir.exists() or not list(settings.models_dir.iterdir())


def test_too_little_data_is_refused_by_the_child_with_what_is_needed(tmp_path):
    root = label_tree(tmp_path / "labels", n=4)
    settings = Settings(data_dir=tmp_path / "data", model=DEMO_MODEL)
    lib = Library(settings)
    lib.add_folder(root)
    lib.scan()
    lib.close()
    with pytest.raises(TrainingDataError, match=r"'crimson' has 4 photos, needs at least 10"):
        train(settings, TrainRequest(base=DEMO_MODEL, folders=str(root)))
    assert not list(runs_dir(settings).iterdir())
