"""Where photosift keeps its data, and the few settings the engine needs.

Built once in ``main()`` and passed down; nothing here runs at import time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

APP_NAME = "photosift"


def default_data_dir() -> Path:
    """$PHOTOSIFT_HOME, else the platform's user-data folder (platformdirs)."""
    env = os.environ.get("PHOTOSIFT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


PRECISIONS = ("auto", "int8", "fp32")


@dataclass
class Settings:
    data_dir: Path
    model: str | None = None  # active model key; None: best available (demo as last resort)
    # The image tower's precision: "auto" (int8 where the CPU has VNNI, the model folder has
    # an int8 tower and it passed its check against fp32 on the first photos; else fp32),
    # "int8" (whenever there is one) or "fp32".
    precision: str = "auto"
    batch_size: int = 16
    workers: int | None = None
    exact_threshold: int = 20_000
    # Indexing takes in new photos' XMP/IPTC keywords as confirmed tags (engine.xmp.tags).
    read_keywords: bool = True
    extra: dict = field(default_factory=dict)  # the app's own settings ride along
    # NaFlex models: patch budget per model key (e.g. 576 or 1024 for more detail, slower).
    max_patches: dict = field(default_factory=dict)
    # Thumbnails on disk (engine.store.thumbcache): the least recently used go beyond this.
    thumb_cache_mb: int = 512
    # A RAW file with a JPEG (or HEIF) of the same name beside it, as cameras write them in
    # "RAW + JPEG" mode, is one photo in search results and tag lists: the JPEG, the RAW listed
    # as its twin. False: they are two photos.
    raw_jpeg_pairs: bool = True

    @property
    def db_path(self) -> Path:
        return self.data_dir / "library.db"

    @property
    def ann_dir(self) -> Path:
        return self.data_dir / "ann"

    @property
    def models_dir(self) -> Path:
        """Model folders that are here: imported, exported, downloaded, fine-tuned."""
        return self.data_dir / "models"

    @property
    def settings_path(self) -> Path:
        return self.data_dir / "settings.json"

    @classmethod
    def load(cls, data_dir: Path | None = None) -> Settings:
        data_dir = Path(data_dir) if data_dir else default_data_dir()
        s = cls(data_dir=data_dir)
        try:
            saved = json.loads(s.settings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return s  # first run, or an unreadable file: defaults
        for k, v in saved.items():
            if k in cls.__dataclass_fields__ and k != "data_dir":
                setattr(s, k, v)
        if saved.get("int8") is True and "precision" not in saved:  # before "precision"
            s.precision = "int8"
        if s.precision not in PRECISIONS:
            s.precision = "auto"
        return s

    def save(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        d = asdict(self)
        d.pop("data_dir")
        tmp = self.settings_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(d, indent=2), encoding="utf-8")
        tmp.replace(self.settings_path)
