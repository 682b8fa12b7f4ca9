"""The application icon and the About box (Help > About photosift).

The About box says what the user needs when asking for help: the version, where the library
lives (the platform's user-data folder unless ``--data-dir`` / ``$PHOTOSIFT_HOME`` said
otherwise), the model in use, and that uninstalling leaves that folder and the photos alone.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QIcon, QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QVBoxLayout

from . import __version__

# resources/icons beside app/ in a checkout; in a frozen bundle app/ sits in sys._MEIPASS,
# and so does resources/ (packaging/photosift.spec), so the same relative path holds.
ICONS_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"


def app_icon(folder: Path = ICONS_DIR) -> QIcon:
    """The photosift icon in the sizes that are here (an empty icon when none are)."""
    icon = QIcon()
    for name in ("photosift.png", "photosift-256.png"):
        if (folder / name).is_file():
            icon.addFile(str(folder / name))
    return icon


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AboutDialog(QDialog):
    """Name, icon, version, library folder (a link that opens it) and the model in use."""

    def __init__(self, data_dir: Path | None, hello: dict | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("About photosift")
        self.setObjectName("about")
        hello = hello or {}
        model = hello.get("model") or {}
        where = hello.get("data_dir") or data_dir  # the engine's word wins: it is what it uses
        self.data_dir = Path(where) if where else None

        self.icon = QLabel()
        pm = QPixmap(str(ICONS_DIR / "photosift-256.png"))
        if not pm.isNull():
            self.icon.setPixmap(
                pm.scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            )  # fmt: skip
        self.icon.setAlignment(Qt.AlignmentFlag.AlignTop)

        frozen = " (installed app)" if getattr(sys, "frozen", False) else ""
        rows = [
            f"<h2 style='margin-bottom:2px'>photosift</h2><div>Version {_html(__version__)}{frozen}</div>",
            "<p>Search and tag your photos in plain language. Everything runs on this computer.</p>",
        ]
        if self.data_dir is not None:
            url = QUrl.fromLocalFile(str(self.data_dir)).toString()
            rows.append(f"<p><b>Library folder</b><br><a href='{url}'>{_html(str(self.data_dir))}</a><br>"
                        "<small>Index, thumbnails, models and settings. Uninstalling photosift keeps it; "
                        "your photos are only ever read, never changed.</small></p>")  # fmt: skip
        if model:
            rows.append(
                f"<p><b>Model</b><br>{_html(model.get('name') or model.get('key', ''))}</p>"
            )
        engine = hello.get("engine_version")
        rows.append(
            "<p><small>"
            + (f"Engine {_html(str(engine))} · " if engine else "")
            + f"Python {platform.python_version()} · Qt {_qt_version()} · {_html(platform.system())}"
            + "<br>Licence: Apache-2.0</small></p>"
        )
        self.text = QLabel("".join(rows), objectName="aboutText", wordWrap=True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.text.linkActivated.connect(lambda link: QDesktopServices.openUrl(QUrl(link)))
        self.text.setMinimumWidth(380)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        top = QHBoxLayout()
        top.addWidget(self.icon)
        top.addSpacing(12)
        top.addWidget(self.text, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(buttons)


def _qt_version() -> str:
    from PySide6.QtCore import qVersion

    return qVersion()


def install_about(win) -> QAction:
    """Add Help > About photosift to `win` (a MainWindow); returns the action.

    On macOS Qt moves an action with the AboutRole into the application menu, where Mac users
    look for it.
    """
    action = QAction("About photosift", win, triggered=lambda: show_about(win))
    action.setMenuRole(QAction.MenuRole.AboutRole)
    win.menuBar().addMenu("&Help").addAction(action)
    win.about_action = action
    return action


def show_about(win) -> AboutDialog:
    settings_path = getattr(getattr(win, "settings", None), "path", None)
    data_dir = Path(settings_path).parent if settings_path else None
    hello = getattr(getattr(win, "bridge", None), "hello", None)
    dlg = AboutDialog(data_dir, hello, win)
    dlg.setWindowIcon(win.windowIcon())
    dlg.open()
    win.about_dialog = dlg
    return dlg
