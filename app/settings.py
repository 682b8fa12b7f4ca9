"""The window's own settings: a small JSON file in the data dir (``app.json``).

QSettings would scatter them over the registry / plist / ~/.config; keeping them beside
the library means one folder holds everything photosift knows, and ``--data-dir``
isolates a test or a second library completely. Corrupt or missing files give defaults.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "app.json"


def default_data_dir() -> Path:
    """$PHOTOSIFT_HOME, else the platform's user-data folder: the same place the engine uses."""
    # engine.settings is standard library + platformdirs only: the one definition of the place.
    from engine.settings import default_data_dir as engine_default

    return engine_default()


@dataclass
class AppSettings:
    geometry: str = ""  # QWidget.saveGeometry(), base64
    window_state: str = ""  # QMainWindow.saveState(), base64
    splitter: str = ""  # the library | results | preview splitter, base64
    last_query: str = ""
    last_folders: list[str] = field(default_factory=list)  # folders added through this window
    last_dialog_dir: str = ""  # where "Add folder..." opens
    folder_filter: str = ""  # the folder the results were last limited to ("" = all)
    thumb_size: int = 160
    theme: str = "system"  # system | light | dark
    path: Path | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, data_dir: Path) -> AppSettings:
        path = Path(data_dir) / FILE_NAME
        s = cls(path=path)
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return s
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable %s: %s", path, e)
            return s
        if isinstance(saved, dict):
            for k, v in saved.items():
                if (
                    k in cls.__dataclass_fields__
                    and k != "path"
                    and isinstance(v, type(getattr(s, k)))
                ):
                    setattr(s, k, v)
        return s

    def save(self) -> None:
        if self.path is None:
            return
        d = asdict(self)
        d.pop("path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(d, indent=2), encoding="utf-8")
            os.replace(tmp, self.path)  # atomic: a crash never leaves half a file
        except OSError as e:
            log.warning("cannot save %s: %s", self.path, e)
