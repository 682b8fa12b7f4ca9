"""Getting a model onto this machine: bundled, already here, the Hugging Face hub, or a folder.

Downloads go into the standard HF cache, through huggingface_hub (offline mode, the cache
layout, retrying a transfer that breaks off). It keeps no partial files between attempts
(huggingface/huggingface_hub#4228), so a file not in the cache yet is fetched by
engine.models.hubresume, with huggingface_hub's own pieces, into a partial file that the next
attempt resumes. Each file is checked against its registry or hub hash (engine.models.hubverify),
a new one before it enters the cache. A registry entry's source says what the repo holds:
a ready ONNX export in its publisher's layout (rclip's, Immich's, transformers.js's; fetched
and installed by engine.models.install, no torch needed), a photosift model folder, or, for models
nobody has exported, open_clip or transformers weights, converted to ONNX once with the
training extra (engine.models.convert, in a child process).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Cancelled, ModelError, ModelNotAvailable
from ..settings import Settings
from .convert import (
    can_convert_open_clip,
    convert_open_clip,
    convert_transformers_naflex,
    no_converter_message,
)
from .folder import MODEL_FOLDER_FILES, check_model_folder, record_hashes
from .registry import MODEL_FILE, ModelSpec, Registry, load_spec, resources_dir

OPEN_CLIP_FILES = ("open_clip_config.json", "open_clip_model.safetensors")
TRANSFORMERS_FILES = ("config.json", "model.safetensors")  # e.g. SigLIP 2 NaFlex checkpoints


@dataclass
class DownloadProgress:
    file: str
    done: int
    total: int | None


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_cache() -> str:
    """The standard HF cache, read at call time (huggingface_hub reads its env once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hub_endpoint() -> str | None:
    """HF_ENDPOINT read at call time (huggingface_hub reads it once, at import); None: its default."""
    return os.environ.get("HF_ENDPOINT") or None


def local_model_folder(spec: ModelSpec, settings: Settings) -> Path | None:
    """A runnable folder for `spec` that is already on this machine, or None: a model.json
    and the files its layout needs (engine.models.layouts)."""
    from .layouts import layout_of

    # The user's own copy wins over the bundled one (it may carry an int8 tower).
    candidates = [settings.models_dir / spec.key]
    if spec.source.bundled:
        candidates.append(resources_dir() / spec.source.bundled)
    for c in candidates:
        if not (c / MODEL_FILE).is_file():
            continue
        try:
            here = load_spec(c / MODEL_FILE)
            need = layout_of(here).required_files(here)
        except ModelError:
            continue  # a damaged folder: not here (downloading again replaces it)
        if all((c / f).is_file() for f in need):
            return c
    return None


def local_models(settings: Settings) -> list[ModelSpec]:
    """Model folders in the user's models directory (imported, converted, fine-tuned)."""
    out = []
    if settings.models_dir.is_dir():
        for d in sorted(settings.models_dir.iterdir()):
            if not d.name.startswith(".") and (d / MODEL_FILE).is_file():  # .<key>-*: being made
                try:
                    # A fine-tuned model copies its base's entry: it is not what to offer first.
                    out.append(load_spec(d / MODEL_FILE).with_(recommended=False))
                except ModelError:
                    continue  # a broken folder is reported by `models list`, not fatal here
    return out


def full_registry(settings: Settings) -> Registry:
    """Bundled registry entries plus the user's own model folders."""
    reg = Registry.load()
    for spec in local_models(settings):
        if spec.key not in reg:
            reg.add(spec)
    return reg


def _tqdm_for(callback: Callable[[DownloadProgress], None] | None, cancel: threading.Event | None,
              name: str | None = None):  # fmt: skip
    """A tqdm class huggingface_hub can drive, forwarding to a plain callback. ``name``: the
    file's name in the repo (huggingface_hub's label is a shortened URL where the server
    sends no Content-Disposition)."""
    from tqdm.auto import tqdm

    class _Bridge(tqdm):
        def __init__(self, *a, **kw):
            kw["disable"] = True  # never print: the caller decides what the user sees
            self._name = name or str(kw.get("desc") or "")
            super().__init__(*a, **kw)
            # A disabled tqdm does not count (its update() returns at once): count here.
            self._done = int(kw.get("initial") or 0)
            if self._done and callback is not None:  # a resumed download starts where it was
                callback(DownloadProgress(self._name, self._done, self.total))

        def update(self, n=1):
            super().update(n)
            self._done += int(n or 0)
            if cancel is not None and cancel.is_set():
                raise Cancelled("download cancelled; it resumes where it stopped next time")
            if callback is not None:
                callback(DownloadProgress(self._name, self._done, self.total))

    return _Bridge


def _download(spec: ModelSpec, repo: str, files: tuple[str, ...], offline: bool, progress,
              cancel, before: int = 0, total: int | None = None,
              ) -> tuple[dict[str, Path], dict[str, dict]]:  # fmt: skip
    """Get each file of ``repo`` into the HF cache and check it (engine.models.hubverify).

    Online, a file not in the cache yet is fetched by engine.models.hubresume (resumed where an
    earlier attempt stopped, checked before it enters the cache); files already there are
    checked after. Returns name -> path in the cache, and name -> {"sha256", "size"} of the
    files checked (offline, only registry pins can be). With ``total`` (the bytes of the
    whole download), progress counts through it: ``before`` bytes came before these files.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from .hubresume import fetch_to_cache

    got: dict[str, Path] = {}
    checked: dict[str, dict] = {}
    for name in files:
        file_progress = progress
        if progress is not None and total:
            file_progress = functools.partial(_within, progress, before, total)
        try:
            if offline:
                p = hf_hub_download(
                    repo, name, revision=spec.source.revision, local_files_only=True,
                    cache_dir=_hub_cache(), endpoint=_hub_endpoint(),
                )  # fmt: skip
            else:
                p, done = fetch_to_cache(
                    repo, name, revision=spec.source.revision, cache_dir=_hub_cache(),
                    endpoint=_hub_endpoint(), checker=_checker(spec, repo, name),
                    tqdm_class=_tqdm_for(file_progress, None, name), cancel=cancel,
                )  # fmt: skip
                if done is not None:
                    checked[name] = done
        except LocalEntryNotFoundError as e:
            why = f"{name}: {str(e).splitlines()[0]}"
            raise ModelNotAvailable(_not_available(spec, offline, repo, why)) from e
        except (Cancelled, ModelError):  # incl. ChecksumMismatch: it says what to do
            raise
        except Exception as e:  # network, auth, missing file: all mean "not available now"
            why = f"{name}: {type(e).__name__}: {e}"
            raise ModelNotAvailable(_not_available(spec, offline, repo, why)) from e
        got[name] = Path(p)
        before += Path(p).stat().st_size
        if file_progress is not progress:  # also for a file the cache had (no bytes fetched)
            progress(DownloadProgress(name, before, total))
    rest = {name: path for name, path in got.items() if name not in checked}
    checked.update(_verify(spec, repo, rest, offline))
    return got, {name: checked[name] for name in got if name in checked}


def _within(progress, before: int, total: int, p: DownloadProgress) -> None:
    """One file's progress as progress through the whole download."""
    progress(DownloadProgress(p.file, before + p.done, total))


def _checker(spec: ModelSpec, repo: str, name: str) -> Callable[[str], Callable[[Path], dict]]:
    """For engine.models.hubresume: given the file's ETag, the check of the finished download
    against the registry's pin, else the hash the ETag publishes."""
    from .hubverify import Expected, check_file, expected_from_etag

    pin = (spec.source.files.get(name) or {}).get("sha256")

    def for_etag(etag: str) -> Callable[[Path], dict]:
        if pin:
            want = Expected("sha256", pin.lower(), "registry")
        else:
            want = expected_from_etag(repo, name, etag)
        return lambda path: check_file(spec.key, repo, name, path, want)

    return for_etag


def _verify(spec: ModelSpec, repo: str, got: dict[str, Path], offline: bool) -> dict[str, dict]:
    """Check downloaded files against the registry's sha256 or the hub's (see engine.models.hubverify)."""
    from .hubverify import verify_downloads

    pins = {name: (spec.source.files.get(name) or {}).get("sha256") for name in got}
    return verify_downloads(spec.key, repo, got, pins, offline=offline,
                            revision=spec.source.revision, endpoint=_hub_endpoint())  # fmt: skip


def _provenance(repo: str, got: dict[str, Path], checked: dict[str, dict]) -> dict:
    """Where a converted model came from: repo, commit and the checked hashes of its files."""
    from .hubverify import snapshot_revision

    name, path = next(iter(got.items()))
    return {"repo": repo, "revision": snapshot_revision(path, name), "files": checked}


def _not_available(spec: ModelSpec, offline: bool, repo: str | None, why: str) -> str:
    where = [f"the Hugging Face cache ({_hub_cache()})"]
    if repo:
        where.append(f"hub repo {repo}" + (" (not asked: offline mode)" if offline else ""))
    return (
        f"model {spec.key!r} ({spec.name}) is not on this machine and could not be downloaded: {why}. "
        f"Looked in: {'; '.join(where)}. To use it without internet, copy an exported model "
        f"folder here and run `photosift models import FOLDER` (or Models > Import in the app)."
    )


def fetch_model(
    spec: ModelSpec,
    settings: Settings,
    *,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    offline: bool | None = None,
) -> Path:
    """Return a runnable model folder for `spec`, downloading (and converting) if needed.

    Raises ModelNotAvailable with where it looked and how to import the model.
    """
    local = local_model_folder(spec, settings)
    if local is not None:
        return local
    offline = _offline(offline)
    src = spec.source
    if src.layout != "photosift":  # a ready ONNX export in its publisher's layout
        from . import install

        def fetch(names: list[str], before: int, total: int | None):
            return _download(spec, src.hf_repo, tuple(names), offline, progress, cancel,
                             before, total)  # fmt: skip

        steps = {"batch": "preparing the image tower to take many photos at once",
                 "int8": "making the int8 image tower for this CPU"}  # fmt: skip

        def note(step: str) -> None:  # a step with no byte count: the GUI shows it as busy
            if progress is not None and step in steps:
                progress(DownloadProgress(steps[step], 0, None))

        return install.download(spec, settings, fetch, offline=offline, endpoint=_hub_endpoint(),
                                note=note)  # fmt: skip
    if src.onnx_repo:
        # checked on the way in; a copy into the models folder records the hashes
        got, _ = _download(spec, src.onnx_repo, MODEL_FOLDER_FILES, offline, progress, cancel)
        folder = got["model.json"].parent
        found = load_spec(folder / MODEL_FILE)
        if found.key != spec.key or found.embed_dim != spec.embed_dim:
            raise ModelError(f"hub repo {src.onnx_repo} holds model {found.key!r}, not {spec.key!r}")
        return folder
    if src.hf_repo and src.open_clip_name:
        if not can_convert_open_clip():  # say so before a download of hundreds of MB, not after
            raise ModelNotAvailable(no_converter_message(spec))
        # The registry lists what the repo holds (tokenizer files too, for SigLIP-family models).
        wanted = tuple(dict.fromkeys([*OPEN_CLIP_FILES, *src.files]))
        got, checked = _download(spec, src.hf_repo, wanted, offline, progress, cancel)
        folder = convert_open_clip(spec, settings, got["open_clip_config.json"].parent)
        record_hashes(folder, _provenance(src.hf_repo, got, checked))
        return folder
    if src.hf_repo and spec.preprocess.resize_mode == "naflex":
        wanted = tuple(dict.fromkeys([*TRANSFORMERS_FILES, *src.files]))
        got, checked = _download(spec, src.hf_repo, wanted, offline, progress, cancel)
        folder = convert_transformers_naflex(spec, settings, got["config.json"].parent)
        record_hashes(folder, _provenance(src.hf_repo, got, checked))
        return folder
    raise ModelNotAvailable(_not_available(spec, offline, None, "it has no download source"))


def import_model_folder(src: Path, settings: Settings, *, key: str | None = None) -> ModelSpec:
    """Check a model folder (files, schema, both towers run) and copy it into the models dir.

    A folder laid out like a hub repo (Immich's, transformers.js's, rclip's) is recognised
    and imported as it is (engine.models.install); ``key`` says which registry entry it is, where
    its name does not."""
    src = Path(src).expanduser()
    if not src.is_dir():
        raise ModelError(f"{src} is not a folder")
    if not (src / MODEL_FILE).is_file():
        from . import install

        return install.import_folder(src, settings, full_registry(settings), key=key)
    missing = [f for f in MODEL_FOLDER_FILES if not (src / f).is_file()]
    if missing:
        raise ModelError(f"{src} is not a photosift model folder: missing {', '.join(missing)}")
    spec = load_spec(src / MODEL_FILE)
    check_model_folder(src)
    dest = settings.models_dir / spec.key
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key}-", dir=settings.models_dir))
    try:
        for f in src.iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        record_hashes(tmp)  # from now on the runtime refuses a file that changes
        if dest.exists():
            shutil.rmtree(dest)
        tmp.replace(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return spec
