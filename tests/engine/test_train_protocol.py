"""The engine's fine-tuning methods: argument checks, a refused training reported as a
failed job with what is needed, and candidates that can only be accepted when they exist."""

from __future__ import annotations

import pytest

from engine.service.client import EngineClient, EngineError
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import wait_for
from tests.worldlabels import label_tree

TIMEOUT = 300  # a shared 2-core machine: the engine and the training child start slowly


@pytest.fixture
def engine(tmp_path):
    from tests.helpers import Events

    d = tmp_path / "data"
    install_test_model(Settings(data_dir=d))
    events = Events()
    c = EngineClient(data_dir=d, model=MODEL_KEY, on_event=events)
    c.events = events
    c.start(timeout=TIMEOUT)
    yield c
    c.close()


def test_train_methods(engine, tmp_path):
    with pytest.raises(EngineError) as e:
        engine.request("train_start", {}, timeout=TIMEOUT)
    assert e.value.code == "query_error"
    root = label_tree(tmp_path / "labels", n=4)
    with pytest.raises(EngineError, match="not in the library") as e:
        engine.request("train_start", {"folders": str(root)}, timeout=TIMEOUT)
    scan = engine.request("add_folder", {"path": str(root)}, timeout=TIMEOUT)["job"]
    engine.events.wait("job_done", scan, timeout=TIMEOUT)
    job = engine.request("train_start", {"folders": str(root)}, timeout=TIMEOUT)["job"]
    failed = engine.events.wait("job_failed", job, timeout=TIMEOUT)["data"]
    assert failed["code"] == "training_data"
    assert "'crimson' has 4 photos, needs at least 10" in failed["message"]
    assert engine.request("train_pending", timeout=TIMEOUT) == {"runs": []}
    with pytest.raises(EngineError) as e:
        engine.request("train_accept", {"run": "nope"}, timeout=TIMEOUT)
    assert e.value.code == "training_data"


@pytest.mark.slow
def test_train_job_progress_accept_and_switch_without_reembedding(engine, tmp_path):
    pytest.importorskip("torch")
    root = label_tree(tmp_path / "labels", n=12)
    scan = engine.request("add_folder", {"path": str(root)}, timeout=TIMEOUT)["job"]
    engine.events.wait("job_done", scan, timeout=TIMEOUT)
    job = engine.request("train_start", {"folders": str(root), "max_steps": 20}, timeout=TIMEOUT)[
        "job"
    ]
    done = engine.events.wait("job_done", job, timeout=900)["data"]
    assert (
        done["kind"] == "train"
        and not done["cancelled"]
        and done["key"].startswith(MODEL_KEY + "-ft-")
    )
    steps = [e["data"] for e in engine.events.of("progress", job)]
    assert steps and all(p["unit"] == "steps" for p in steps) and "train" in steps[-1]
    assert engine.request("train_pending", timeout=TIMEOUT)["runs"][0]["run"] == done["run"]
    model = engine.request("train_accept", {"run": done["run"]}, timeout=TIMEOUT)["model"]
    assert model["key"] == done["key"] and model["here"]
    vectors = engine.request("status", timeout=TIMEOUT)["vectors"]
    def scans():
        return [
            e["job"] for e in engine.events.of("job_started") if e["data"]["kind"] == "scan"
        ]  # noqa: E731
    before = len(scans())
    engine.request("use_model", {"key": done["key"]}, timeout=TIMEOUT)
    rescan = wait_for(
        lambda: scans()[before:] and scans()[before], "the rescan after the switch", TIMEOUT
    )
    report = engine.events.wait("job_done", rescan, timeout=TIMEOUT)["data"]
    assert report["embedded"] == 0  # same image space: nothing is re-embedded
    assert engine.request("status", timeout=TIMEOUT)["vectors"] == vectors
    assert engine.request("search", {"text": "crimson", "k": 3}, timeout=TIMEOUT)["hits"]
