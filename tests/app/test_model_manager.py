"""The model manager end to end against a real engine: download (progress, cancel, resume)
from a stand-in hub, import a model folder, and switch models while searches keep working."""

from __future__ import annotations

import os

from app.models_dialog import DEMO_MODEL, RECOMMENDED_TAG, fmt_mb
from tests.app.conftest import ENGINE_TIMEOUT_MS, index_folder, result_paths
from tests.app.fakehub import FakeHub, hub_model_files, model_folder_copy, register_hub_model


def _keys(dlg) -> list[str]:
    return [m["key"] for m in dlg.models]


def _status_of(dlg, key: str) -> str:
    return dlg.table.item(_keys(dlg).index(key), 4).text()


def _select(dlg, key: str) -> None:
    dlg.table.selectRow(_keys(dlg).index(key))


def test_download_shows_progress_can_be_cancelled_then_completes(
    qtbot, make_window, data_dir, monkeypatch
):
    key, repo = "demo-hub", "photosift/demo-hub"
    register_hub_model(data_dir, key, repo)  # known to the engine, not downloaded
    with FakeHub(repo, hub_model_files(key, repo)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)  # read by the engine process at start
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        gate = hub.hold("image.onnx")  # the download stalls there until the test lets it go
        win = make_window()
        dlg = win.open_models()
        qtbot.waitUntil(lambda: key in _keys(dlg), timeout=ENGINE_TIMEOUT_MS)
        assert _status_of(dlg, key) == "not downloaded"
        _select(dlg, key)
        assert dlg.download_btn.isEnabled() and not dlg.use_btn.isEnabled()

        progress: list[dict] = []
        win.bridge.event.connect(
            lambda ev: ev["event"] == "progress" and ev.get("job") in dlg.downloads and progress.append(ev["data"])
        )  # fmt: skip
        dlg.download_btn.click()
        # model.json comes in whole (a file's first event may say 0 bytes done); image.onnx is held
        qtbot.waitUntil(lambda: any(p["done"] == p["total"] > 0 for p in progress),
                        timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
        assert all(p["unit"] == "bytes" and 0 <= p["done"] <= p["total"] for p in progress)
        qtbot.waitUntil(lambda: dlg.progress.value() == 1000, timeout=10_000)
        assert dlg.progress.isVisible()
        assert dlg.message.text().startswith(f"Downloading {key}") and "MB" in dlg.message.text()
        assert _status_of(dlg, key) == "downloading…"
        assert dlg.cancel_btn.isVisible() and not dlg.download_btn.isEnabled()

        dlg.cancel_btn.click()
        qtbot.waitUntil(lambda: dlg.message.text().startswith("Cancelling"), timeout=10_000)
        (job,) = dlg.downloads  # a chunk already on its way does not undo "Cancelling…"
        win.bridge.event.emit({"event": "progress", "job": job,
                               "data": {"done": 1, "total": 10, "unit": "bytes"}})  # fmt: skip
        assert dlg.message.text().startswith("Cancelling")
        gate.set()  # the engine notices the cancel at the next chunk of image.onnx
        qtbot.waitUntil(
            lambda: dlg.message.text() == f"Download of {key} cancelled.", timeout=ENGINE_TIMEOUT_MS
        )
        assert not dlg.progress.isVisible() and not dlg.downloads
        qtbot.waitUntil(lambda: _status_of(dlg, key) == "not downloaded", timeout=ENGINE_TIMEOUT_MS)
        assert not (data_dir / "models" / key / "image.onnx").exists()

        # again, to the end: the model is here (copied into the models folder) and, being the
        # first real model while the demo is in use, put to work at once with no other step
        _select(dlg, key)
        with qtbot.waitSignal(dlg.modelChanged, timeout=ENGINE_TIMEOUT_MS) as switched:
            dlg.download_btn.click()
        assert switched.args[0]["key"] == key
        assert "is downloaded and in use" in dlg.message.text()
        qtbot.waitUntil(lambda: _status_of(dlg, key) == "active", timeout=ENGINE_TIMEOUT_MS)
        assert (data_dir / "models" / key / "image.onnx").is_file()
        # the cancelled attempt kept the chunk it had (huggingface_hub reads 10 MB at a time):
        # the second asks only for the rest
        from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

        gets = [r[2] for r in hub.requests if r[:2] == ("GET", "image.onnx")]
        assert gets == [None, f"bytes={DOWNLOAD_CHUNK_SIZE}-"], gets
        _select(dlg, key)
        assert not dlg.use_btn.isEnabled() and not dlg.download_btn.isEnabled()  # already in use


def test_download_without_network_fails_with_a_message(qtbot, window):
    dlg = window.open_models()
    qtbot.waitUntil(lambda: bool(dlg.models), timeout=ENGINE_TIMEOUT_MS)
    other = next(m["key"] for m in dlg.models if not m["here"])
    _select(dlg, other)
    dlg.download_btn.click()  # HF_HUB_OFFLINE=1 in tests: the job fails and the dialog says why
    qtbot.waitUntil(lambda: "failed" in dlg.message.text(), timeout=ENGINE_TIMEOUT_MS)
    assert dlg.message.text().startswith(f"Download of {other} failed")
    assert "could not be downloaded" in dlg.message.text() and "import" in dlg.message.text()
    assert not dlg.download_progress and not dlg.progress.isVisible()
    # a model that is not here cannot be made active (the engine refuses; the old one stays)
    errors = []
    window.bridge.call("use_model", {"key": other}, on_result=errors.append, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=ENGINE_TIMEOUT_MS)
    assert getattr(errors[0], "code", None) == "model_not_available"
    assert _status_of(dlg, DEMO_MODEL) == "active"


def test_import_a_model_folder_and_switch_to_it_while_searching(qtbot, window, photos, tmp_path):
    index_folder(qtbot, window, photos["red"][0].parent)
    key = "my-model"
    src = model_folder_copy(tmp_path / "usb" / key, key)
    dlg = window.open_models()
    dlg.import_folder(str(src))
    qtbot.waitUntil(lambda: dlg.message.text().startswith("Imported"), timeout=ENGINE_TIMEOUT_MS)
    qtbot.waitUntil(
        lambda: key in _keys(dlg) and _status_of(dlg, key) == "here", timeout=ENGINE_TIMEOUT_MS
    )

    # Hold the re-embedding (pause), so the switch is caught in the middle
    lib = window.library
    lib.pause_btn.click()
    qtbot.waitUntil(lambda: lib.pause_btn.text() == "Resume", timeout=10_000)
    _select(dlg, key)
    with qtbot.waitSignal(dlg.modelChanged, timeout=ENGINE_TIMEOUT_MS):
        dlg.use_btn.click()
    qtbot.waitUntil(
        lambda: window.status.get("model", {}).get("key") == key, timeout=ENGINE_TIMEOUT_MS
    )
    assert window.status["search_model"] == DEMO_MODEL
    assert window.status["vectors"].get(key, 0) == 0  # nothing re-embedded yet
    assert window.banner.kind == "switching" and DEMO_MODEL in window.banner.text.text()
    # searching meanwhile finds every photo, from the old model's vectors
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS) as sig:
        window.search.setText("a red object")
        window.run_search()  # Enter: a refresh of an older query still on its way is stale now
    assert sig.args == [24]
    top = [os.path.basename(p) for p in result_paths(window)[:6]]
    assert sum(n.startswith("red-") for n in top) >= 5, top

    lib.pause_btn.click()  # go on: the library is re-embedded for the new model
    qtbot.waitUntil(lambda: window.status.get("search_model") == key and window.status["vectors"].get(key) == 24,
                    timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
    assert window.banner.kind == "switched"
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS) as sig:
        window.search.setText("a red circle")
        window.run_search()  # (the switch re-runs "a red object"; its answer must not count)
    assert sig.args == [24]
    # the three red circles first (after them come the half matches: red squares, circles
    # of other colours, in whichever order the model weighs colour against shape)
    top = [os.path.basename(p) for p in result_paths(window)[:3]]
    assert all(n.startswith("red-circle-") for n in top), top
    qtbot.waitUntil(lambda: _status_of(dlg, key) == "active", timeout=ENGINE_TIMEOUT_MS)


def test_import_a_bad_model_folder_says_why(qtbot, window, tmp_path):
    dlg = window.open_models()
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "model.json").write_text('{"key": "x"}')
    dlg.import_folder(str(bad))
    qtbot.waitUntil(lambda: dlg.message.text() != "", timeout=ENGINE_TIMEOUT_MS)
    assert "not a photosift model folder" in dlg.message.text() and "missing" in dlg.message.text()


def test_naflex_patch_budget_is_chosen_in_the_model_manager(qtbot, make_window, data_dir, tmp_path):
    """A NaFlex model shows a 'patches per photo' choice; choosing saves it in the engine."""
    import pytest

    pytest.importorskip("transformers", reason="building a NaFlex model needs the training extra")
    from engine.models.hub import import_model_folder
    from engine.settings import Settings
    from training.export.naflex import export_siglip2_naflex
    from training.testmodels.tiny_naflex import build_tiny_naflex

    tiny = build_tiny_naflex(tmp_path / "tiny")
    folder = tmp_path / "export" / "tiny-naflex"
    export_siglip2_naflex(tiny.model, tiny.spec, tiny.tokenizer_json, folder)
    key = import_model_folder(folder, Settings(data_dir=data_dir)).key

    win = make_window()
    dlg = win.open_models()
    qtbot.waitUntil(lambda: key in _keys(dlg), timeout=ENGINE_TIMEOUT_MS)
    _select(dlg, DEMO_MODEL)
    assert not dlg.patches.isVisibleTo(dlg)  # not a NaFlex model: no such choice
    _select(dlg, key)
    assert dlg.patches.isVisibleTo(dlg)
    choices = [dlg.patches.itemData(i) for i in range(dlg.patches.count())]
    assert 576 in choices and dlg.patches.currentData() == tiny.spec.preprocess.max_patches
    dlg.patches.setCurrentIndex(dlg.patches.findData(576))
    dlg.patches.activated.emit(dlg.patches.currentIndex())

    def budget():
        return next(m for m in dlg.models if m["key"] == key).get("max_patches")

    qtbot.waitUntil(lambda: budget() == 576, timeout=ENGINE_TIMEOUT_MS)
    _select(dlg, key)
    assert dlg.patches.currentData() == 576


def test_the_recommended_model_is_offered_first_with_its_download_size(qtbot, window):
    """First look at the model manager: the recommended real model heads the list, says so,
    is selected, and the Download button and the text below say how big the download is."""
    dlg = window.open_models()
    qtbot.waitUntil(lambda: bool(dlg.models), timeout=ENGINE_TIMEOUT_MS)
    rec = [m for m in dlg.models if m.get("recommended")]
    assert [m["key"] for m in rec] == ["vit-b-32-256-datacomp"]  # from the engine's ModelInfo
    first = dlg.table.item(0, 0).text()
    assert (
        dlg.models[0] is rec[0] and first.endswith(RECOMMENDED_TAG) and first.startswith("OpenCLIP")
    )
    assert (
        sum(RECOMMENDED_TAG in dlg.table.item(r, 0).text() for r in range(dlg.table.rowCount()))
        == 1
    )
    size = fmt_mb(rec[0]["size_mb"])
    assert dlg.table.item(0, 1).text() == size == "606 MB"
    assert _status_of(dlg, rec[0]["key"]) == "not downloaded"

    assert dlg.selected_key() == rec[0]["key"]  # offered: one click downloads it
    assert dlg.download_btn.isEnabled() and dlg.download_btn.text() == f"Download ({size})"
    assert "Recommended" in dlg.about.text() and f"{size} download" in dlg.about.text()

    _select(dlg, DEMO_MODEL)  # a model that is here: nothing to download, no size on the button
    assert dlg.download_btn.text() == "Download" and not dlg.download_btn.isEnabled()
    assert "Recommended" not in dlg.about.text()
    shown = dlg.models
    dlg.refresh()  # a refresh keeps the user's choice
    qtbot.waitUntil(lambda: dlg.models is not shown, timeout=ENGINE_TIMEOUT_MS)
    assert dlg.selected_key() == DEMO_MODEL
