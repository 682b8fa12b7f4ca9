"""Camera RAW files in the window, against a real engine: thumbnails and the preview come from
the engine (Qt cannot decode RAW files), a RAW + JPEG pair is one tile showing its twin, the type
filter offers RAW formats, date and camera come from the RAW, Open / Show in folder get the RAW."""

from __future__ import annotations

import os

from PIL import Image
from PySide6.QtCore import Qt

from app import desktop
from app.sampledata import single_shape
from tests.app.conftest import ENGINE_TIMEOUT_MS, index_folder, result_paths
from tests.rawkit import write_dng


def _search(qtbot, win, text: str) -> None:
    win.search.setFocus()
    with qtbot.waitSignal(win.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        qtbot.keyClicks(win.search, text)


def _raw_folder(folder):
    """Two RAW shots: IMG_0001 in RAW + JPEG (a red circle), IMG_0002 RAW only (a red square,
    landscape, its sensor data stored turned with EXIF orientation 6); and blue photos."""
    folder.mkdir(parents=True)
    jpg = single_shape(folder / "IMG_0001.JPG", "red", "circle", seed=1)
    pic = Image.open(jpg).convert("RGB")
    pair_raw = write_dng(folder / "IMG_0001.dng", pic, preview=pic, taken="2023:04:05 06:07:08")
    square = Image.open(single_shape(folder / "tmp.jpg", "red", "square", seed=2)).convert("RGB")
    os.unlink(folder / "tmp.jpg")
    turned = square.transpose(Image.Transpose.ROTATE_90)  # as the sensor saw it (EXIF 6)
    lone = write_dng(folder / "IMG_0002.dng", turned, orientation=6, make="Canon",
                     model="EOS R5", taken="2023:04:05 06:09:00")  # fmt: skip
    for i in range(4):
        single_shape(folder / f"blue-{i}.jpg", "blue", "triangle", seed=10 + i)
    return str(jpg), str(pair_raw), str(lone)


def test_raw_files_in_the_window(qtbot, window, tmp_path, monkeypatch):
    jpg, pair_raw, lone = _raw_folder(tmp_path / "card")
    index_folder(qtbot, window, tmp_path / "card")
    assert window.status["files"] == 7 and window.status["failures"] == 0

    _search(qtbot, window, "a red object")
    paths = result_paths(window)
    assert jpg in paths and lone in paths and pair_raw not in paths  # the pair is one tile
    row = paths.index(jpg)
    tip = window.model_.index(row).data(Qt.ItemDataRole.ToolTipRole)
    assert "also IMG_0001.dng" in tip
    window.grid.setCurrentIndex(window.model_.index(row))
    assert window.preview.path == jpg
    twins = window.preview.fields["twins"]
    assert twins.text() == "IMG_0001.dng" and window.preview.form.isRowVisible(twins)

    # the RAW on its own: its thumbnail and its preview are rendered by the engine, upright
    row = paths.index(lone)
    qtbot.waitUntil(lambda: window.thumbs._mem.get(lone) is not None, timeout=20_000)
    thumb = window.thumbs._mem[lone]
    assert thumb.width() > thumb.height()  # upright (landscape), though the sensor data is portrait
    window.grid.setCurrentIndex(window.model_.index(row))
    assert window.preview.path == lone
    assert not window.preview.form.isRowVisible(window.preview.fields["twins"])
    qtbot.waitUntil(window.preview.has_image, timeout=20_000)
    assert window.preview._image.width() > window.preview._image.height()
    assert window.preview.fields["camera"].text() == "Canon EOS R5"
    assert "2023" in window.preview.fields["taken"].text()
    assert window.preview.fields["dims"].text().endswith("DNG")

    # Open and Show in folder hand the RAW file itself to the desktop
    opened, shown = [], []
    monkeypatch.setattr(desktop, "open_file", opened.append)
    monkeypatch.setattr(desktop, "reveal", shown.append)
    window.preview.open_btn.click()
    window.preview.reveal_btn.click()
    assert opened == [lone] and shown == [lone]

    # the type filter offers RAW formats; filtered to RAW, the pair's RAW is listed
    i = window.type_filter.findText("Camera RAW (all)")
    assert (
        i > 0 and "cr3" in window.type_filter.itemData(i) and window.type_filter.findText("DNG") > 0
    )
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        window.type_filter.setCurrentIndex(i)
    assert sorted(result_paths(window)) == sorted([pair_raw, lone])
