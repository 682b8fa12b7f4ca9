"""First run with a real model, as a new user meets it: the demo model is in use, the app offers
a real model with the size of its download (the hub's figure for the files it needs), and one
click downloads it in its publisher's layout, switches to it and indexes the library with it,
after which searching the photos works with no other step."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")  # the tiny hub repo is made with torch; the engine never imports it

from app.models_dialog import DEMO_MODEL, fmt_mb  # noqa: E402
from tests import hubrepos  # noqa: E402
from tests.app.conftest import ENGINE_TIMEOUT_MS, index_folder, result_paths  # noqa: E402
from tests.app.fakehub import FakeHub, repo_files  # noqa: E402


@pytest.mark.parametrize("name", ["rclip", "immich-siglip2-external"])
def test_one_click_downloads_switches_and_indexes(qtbot, make_window, data_dir, photos, monkeypatch,
                                                  tmp_path_factory, name):  # fmt: skip
    made = hubrepos.build(name, tmp_path_factory.mktemp("repo"))
    # Known to the engine as a registry entry is (its JSON alone in the models folder), not here.
    entry = data_dir / "models" / made.spec.key / "model.json"
    entry.parent.mkdir(parents=True)
    entry.write_text(json.dumps(made.spec.to_json()))
    served = repo_files(made.folder)
    with FakeHub(made.repo, served) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)  # read by the engine process at start
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        win = make_window()
        folder = photos["red"][0].parent
        index_folder(qtbot, win, folder)
        assert win.model["key"] == DEMO_MODEL
        dlg = win.open_models()
        qtbot.waitUntil(lambda: any(m["key"] == made.spec.key for m in dlg.models), timeout=ENGINE_TIMEOUT_MS)
        dlg.table.selectRow([m["key"] for m in dlg.models].index(made.spec.key))
        # The button names the size of exactly the files the layout needs, as the hub lists them.
        layout = hubrepos.REPOS[name][1]
        needed = set(served) - set(hubrepos.DECOYS[layout]) - ({"README.md"} if layout != "rclip" else set())
        size = fmt_mb(sum(len(served[f]) for f in needed) / 1e6)
        qtbot.waitUntil(lambda: dlg.download_btn.text() == f"Download ({size})", timeout=ENGINE_TIMEOUT_MS)
        with qtbot.waitSignal(dlg.modelChanged, timeout=ENGINE_TIMEOUT_MS) as switched:
            dlg.download_btn.click()
        assert switched.args[0]["key"] == made.spec.key
        assert {f for m, f, _ in hub.requests if m in ("HEAD", "GET") and f in served} == needed
    # The library is indexed with the new model in the background; then a search answers from it.
    qtbot.waitUntil(lambda: win.model["key"] == made.spec.key, timeout=ENGINE_TIMEOUT_MS)
    status: list[dict] = []
    win.statusShown.connect(status.append)
    qtbot.waitUntil(lambda: any(not s["jobs"] and s.get("model", {}).get("key") == made.spec.key
                                for s in status), timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
    win.search.setText("a photo of a dog")
    win.run_search()
    qtbot.waitUntil(lambda: bool(result_paths(win)), timeout=ENGINE_TIMEOUT_MS)
    assert {p.rsplit("/", 1)[0] for p in result_paths(win)} == {str(folder)}
