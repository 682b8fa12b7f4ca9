"""The engine's fine-tuning methods: argument checks, a refused training reported as a
failed job with what is needed, and candidates that can only be accepted when they exist."""

from __future__ import annotations

import pytest

from engine.client import EngineClient, EngineError
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.worldlabels import label_tree

TIMEOUT = 300  # a shared 2-core machine: the engine and the training child start slowly


@pytest.fixture
def engine(tmp_path):
    from tests.engine.test_protocol import Events

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
