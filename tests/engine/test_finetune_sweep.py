"""Training runs a killed engine left unfinished are removed when the next engine starts;
finished candidates stay for accept or discard."""

from __future__ import annotations

from engine.finetune.job import pending, runs_dir, sweep_unfinished
from engine.models.registry import MODEL_FILE, Registry, load_spec, save_spec
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY


def test_unfinished_runs_go_and_candidates_stay(tmp_path):
    s = Settings(data_dir=tmp_path / "data")
    root = runs_dir(s)
    (root / "killed-early").mkdir(parents=True)
    (root / "killed-early" / "train.log").write_text("loading torch\n")
    (root / "killed-exporting" / "candidate.tmp").mkdir(parents=True)  # write_candidate's temp
    (root / "finished" / "candidate").mkdir(parents=True)
    save_spec(
        Registry.load().get(MODEL_KEY).with_(key="ft-test"),
        root / "finished" / "candidate" / MODEL_FILE,
    )
    assert sorted(sweep_unfinished(s)) == ["killed-early", "killed-exporting"]
    assert [p.name for p in root.iterdir()] == ["finished"]
    assert [r["run"] for r in pending(s)] == ["finished"]
    assert load_spec(root / "finished" / "candidate" / MODEL_FILE).key == "ft-test"
    assert sweep_unfinished(Settings(data_dir=tmp_path / "nothing")) == []
