"""Opening a photo, or showing it in the system file manager, on each platform."""

from __future__ import annotations

import os
import shutil
import sys

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices


def open_file(path: str) -> bool:
    """Open with the user's default application."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def reveal(path: str) -> bool:
    """Show the file selected in Finder / Explorer / the freedesktop file manager; where
    no file manager can select a file, open its folder instead."""
    if sys.platform == "darwin":
        return QProcess.startDetached("open", ["-R", path])[0]
    if os.name == "nt":
        return QProcess.startDetached("explorer", [f"/select,{os.path.normpath(path)}"])[0]
    dbus = shutil.which("dbus-send")
    if dbus:  # the FileManager1 interface: Nautilus, Dolphin, Nemo, Thunar, Caja ...
        uri = QUrl.fromLocalFile(path).toString()
        ok = QProcess.startDetached(dbus, [
            "--session", "--dest=org.freedesktop.FileManager1", "--type=method_call",
            "/org/freedesktop/FileManager1", "org.freedesktop.FileManager1.ShowItems",
            f"array:string:{uri}", "string:",
        ])[0]  # fmt: skip
        if ok:
            return True
    return QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))
