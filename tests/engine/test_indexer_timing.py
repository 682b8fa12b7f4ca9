"""The indexer says where its time went (encode, waiting for decode, commit)."""

from __future__ import annotations

from engine.library import Library
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import make_photos


def test_report_splits_the_consumer_time(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", batch_size=4)
    install_test_model(settings)
    make_photos(tmp_path / "photos", 10)
    lib = Library(settings, model_key=MODEL_KEY)
    lib.add_folder(tmp_path / "photos")
    rep = lib.scan()
    assert rep.embedded == 10
    assert rep.encode_s > 0 and rep.commit_s > 0 and rep.wait_s >= 0
    # The three are disjoint parts of the consumer thread's time, inside the whole run.
    assert rep.encode_s + rep.wait_s + rep.commit_s <= rep.elapsed_s
    again = lib.scan()  # nothing to embed: no encoder time
    assert again.encode_s == 0
