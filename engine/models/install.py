"""Putting a model in a hub layout onto this machine: download it, or import a folder of it.

A model in a hub layout (rclip's, Immich's, transformers.js's; see engine.models.layouts) lives in
the user's models folder as its publisher laid it out, with photosift's ``model.json``
beside the files::

    <models>/<key>/model.json                the registry entry, with every file's sha256 and size
    <models>/<key>/visual/model.onnx         ... the repo's own paths
    <models>/<key>/textual/tokenizer.json

**Download**: the repo's file listing (one request: names, sizes) gives the files the
layout needs: its graphs, tokenizer and configs, and the external-data files a big graph
keeps beside it, and nothing else (no CoreML, ArmNN or RKNN files, no fp16 or int8
variants); their sizes add up to what the download costs, shown before it starts. Each file
comes into the Hugging Face cache through engine.models.hub's resumable, verified fetch; once the
graphs are here, the external-data files they name are checked against the listing, so a
repo that lost one fails with the file's name instead of a model that cannot load. The
folder is then made from the cached files (hard links where the file system allows, else
copies), run once with a tiny input, and moved into place whole: a failure at any step
leaves nothing behind and changes nothing already here.

**Import** (``photosift models import FOLDER``): a folder laid out like one of these repos
(as ``hf download REPO --local-dir FOLDER`` leaves it, or copied from another machine) is
recognised by its files, described from its own configs (matched to a registry entry by
name where there is one, for what no export carries: SigLIP's learned logit scale and
bias), checked and copied in the same way.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ..errors import ModelError, ModelNotAvailable
from ..settings import Settings
from .folder import check_model_folder
from .layouts import LAYOUTS, Layout, external_data_of, layout_of, recognise
from .registry import MODEL_FILE, ModelSpec, Registry, Source, file_sha256, load_spec, save_spec

log = logging.getLogger(__name__)


def download_plan(spec: ModelSpec, *, endpoint: str | None = None) -> dict[str, int | None]:
    """The files a download of ``spec`` fetches, with their sizes in bytes (one request to
    the hub for the repo's listing). Raises ModelNotAvailable when the hub cannot be asked."""
    from huggingface_hub import HfApi

    repo = spec.source.hf_repo
    try:
        listing = {
            f.path: f.size
            for f in HfApi(endpoint=endpoint).list_repo_tree(
                repo, revision=spec.source.revision, recursive=True
            )
            if hasattr(f, "size")  # files; folders have no size
        }
    except Exception as e:  # network, auth, no such repo: the download cannot start
        raise ModelNotAvailable(
            f"model {spec.key!r} ({spec.name}): the file list of hub repo {repo} could not be "
            f"fetched ({type(e).__name__}: {_first_line(e)}). Check the connection and try "
            f"again, or import a copy of the repo's folder (`photosift models import FOLDER`)."
        ) from e
    return {name: listing.get(name) for name in layout_of(spec).wanted(spec, listing)}


def download(
    spec: ModelSpec,
    settings: Settings,
    fetch: Callable[[list[str], int, int | None], tuple[dict[str, Path], dict[str, dict]]],
    *,
    offline: bool,
    endpoint: str | None = None,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Download ``spec`` (a hub layout) and make its model folder; returns the folder.

    ``fetch(names, bytes_before, total)`` is engine.models.hub's verified, resumable fetch into the
    HF cache (``bytes_before`` and ``total`` place its progress within the whole download);
    it returns name -> cached path and name -> {"sha256", "size"} of what it checked.
    ``note(step)`` hears of the slow steps after the download (see ``_install``)."""
    layout = layout_of(spec)
    if offline:  # no listing: what the layout always needs, then what its graphs name
        plan: dict[str, int | None] = dict.fromkeys(layout.wanted(spec, None))
    else:
        plan = download_plan(spec, endpoint=endpoint)
        if lost := [n for n, size in plan.items() if size is None]:
            raise ModelNotAvailable(
                f"model {spec.key!r}: hub repo {spec.source.hf_repo} has no {', '.join(lost)}, "
                f"which the {layout.name} layout needs; the repo is not what its registry entry "
                f"says, so nothing was downloaded"
            )
    total = sum(s or 0 for s in plan.values()) or None
    named = {*layout.required_files(spec), *layout.optional_files(spec)}
    first = [n for n in plan if n in named]  # graphs, tokenizer, configs; then their data
    got, checked = fetch(first, 0, total)
    done = sum(plan[n] or 0 for n in first)
    need = [n for n in _external_data(spec, layout, got) if n not in got]
    if not offline and (lost := [n for n in need if n not in plan]):
        raise ModelNotAvailable(
            f"model {spec.key!r}: hub repo {spec.source.hf_repo} lacks {', '.join(lost)}, which "
            f"its graphs keep their weights in; the repo is incomplete, so the model cannot run"
        )
    more, more_checked = fetch(need, done, total)
    got.update(more)
    checked.update(more_checked)
    from .hubverify import snapshot_revision

    name, path = next(iter(got.items()))
    provenance = {"repo": spec.source.hf_repo, "revision": snapshot_revision(path, name)}
    return _install(spec, settings, got, checked, provenance, note)


def _external_data(spec: ModelSpec, layout: Layout, got: dict[str, Path]) -> list[str]:
    """The repo paths of the external-data files the downloaded graphs name."""
    parts = layout.parts(spec)
    out: list[str] = []
    for graph in (parts.image.file, parts.text.file):
        folder = PurePosixPath(graph).parent
        out += [str(folder / ref) for ref in external_data_of(got[graph])]
    return list(dict.fromkeys(out))


def int8_by_default(spec: ModelSpec) -> bool:
    """Whether installing ``spec`` here also makes its int8 image tower: where the CPU has VNNI
    and it would be used by default (engine.models.quantize.use_int8); NaFlex towers stay fp32."""
    from .cpu import has_vnni

    return has_vnni() and spec.preprocess.resize_mode != "naflex"


def _install(spec: ModelSpec, settings: Settings, files: dict[str, Path], checked: dict[str, dict],
             provenance: dict | None, progress: Callable[[str], None] | None = None, *,
             link: bool = True) -> Path:  # fmt: skip
    """Make ``<models>/<spec.key>`` from ``files`` (repo path -> file), whole or not at all.
    ``progress(step)`` hears of the slow steps after the files are in (``"batch"``, ``"int8"``). ``link``:
    hard-link the files where possible (the HF cache's); False copies them (a folder the user
    imports stays theirs to change or delete)."""
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    dest = settings.models_dir / spec.key
    stage = Path(tempfile.mkdtemp(prefix=f".{spec.key}-", dir=settings.models_dir))
    try:
        recorded = {}
        for name, src in files.items():
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if link:
                _link_or_copy(Path(src), target)
            else:
                shutil.copy2(src, target)
            recorded[name] = checked.get(name) or {
                "sha256": file_sha256(target), "size": target.stat().st_size
            }  # fmt: skip
        extra = dict(spec.extra)
        if provenance is not None:
            extra["download"] = {**provenance, "files": recorded}
        folder_spec = spec.with_(
            source=Source(**{**spec.source.__dict__, "files": recorded}), extra=extra,
            recommended=False,
        )  # fmt: skip
        save_spec(folder_spec, stage / MODEL_FILE)
        check_model_folder(stage)
        _free_batch(stage, folder_spec, progress)
        if int8_by_default(spec):  # the tower indexing runs on this CPU (engine.models.cpu)
            if progress is not None:
                progress("int8")
            _add_int8(stage, folder_spec, recorded)
        if dest.exists():
            shutil.rmtree(dest)
        stage.replace(dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return dest


def _free_batch(stage: Path, folder_spec: ModelSpec, progress: Callable[[str], None] | None) -> None:
    """Derive the image graph that takes any batch where the layout's is fixed to batch 1
    (engine.models.freebatch); a graph it cannot free runs at batch 1, as exported."""
    from . import freebatch
    from .layouts import layout_of

    graph = layout_of(folder_spec).parts(folder_spec).image
    if not freebatch.fixed(folder_spec, graph):  # Immich's are fixed to batch 1
        return
    if progress is not None:
        progress("batch")
    freebatch.image_graph(stage, folder_spec, graph)  # derives, proves, logs a refusal


def _add_int8(stage: Path, folder_spec: ModelSpec, recorded: dict[str, dict]) -> None:
    """Make the int8 image tower in ``stage`` and record it in its model.json. A model is
    complete without it (fp32 runs instead), so a quantiser that fails is logged, not fatal."""
    from .quantize import quantize_folder

    try:
        (made,) = quantize_folder(stage)
    except (ModelError, ImportError) as e:
        log.warning("model %s: no int8 image tower (%s); the fp32 one will run", folder_spec.key, e)
        return
    recorded[made.name] = {"sha256": file_sha256(made), "size": made.stat().st_size}
    save_spec(folder_spec.with_(source=Source(**{**folder_spec.source.__dict__, "files": recorded})),
              stage / MODEL_FILE)  # fmt: skip


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link to the cached blob (no second copy of gigabytes), else a copy (another
    file system, or one without hard links). Never a symlink: clearing the HF cache must not
    break an installed model."""
    src = src.resolve()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# -- import ---------------------------------------------------------------------------------


def import_folder(
    src: Path, settings: Settings, registry: Registry, *, key: str | None = None
) -> ModelSpec:
    """Import a folder in a hub layout; returns the installed model's spec.

    The folder's layout is recognised from its files; ``key`` names the registry entry it is
    (else one whose repo the folder is named after, else a new key from the folder's name).
    Anything photosift cannot run is refused naming the file or field."""
    src = Path(src).expanduser()
    if not src.is_dir():
        raise ModelError(f"{src} is not a folder")
    layout = recognise(src)
    if layout is None or layout is LAYOUTS["photosift"]:
        raise ModelError(_not_a_model(src))
    known = _known(src, layout, registry, key)
    new_key = known.key if known is not None else (key or _slug(f"{layout.name}-{src.name}"))
    spec = layout.describe(src, key=new_key, known=known)
    if known is not None and known.embed_dim != spec.embed_dim:
        raise ModelError(f"{src}: holds a {spec.embed_dim}-d model, not {known.key!r} "
                         f"({known.embed_dim}-d)")  # fmt: skip
    files: dict[str, Path] = {}
    listing = [p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()]
    for name in layout.wanted(spec, listing):
        if not (src / name).is_file():
            raise ModelError(f"{src / name}: missing (the {layout.name} layout needs it)")
        files[name] = src / name
    for name in _external_data(spec, layout, files):
        if not (src / name).is_file():
            raise ModelError(f"{src / name}: missing (its graph keeps its weights in it)")
        files[name] = src / name
    folder = _install(spec, settings, files, {}, None, link=False)  # the user's folder: a copy
    return load_spec(folder / MODEL_FILE)


def _known(src: Path, layout: Layout, registry: Registry, key: str | None) -> ModelSpec | None:
    if key is not None and key in registry:
        known = registry.get(key)
        if known.source.layout != layout.name:
            raise ModelError(f"{src}: a folder in the {layout.name} layout, but model {key!r} "
                             f"comes in the {known.source.layout} layout")  # fmt: skip
        return known
    matches = [s for s in registry if layout.matches(s, src)]
    return matches[0] if len(matches) == 1 else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "imported"


def _not_a_model(src: Path) -> str:
    return (
        f"{src} is not a model folder photosift can run. It takes a photosift model folder "
        f"(model.json, image.onnx, text.onnx, tokenizer.json), an immich-app repo (config.json, "
        f"visual/model.onnx, textual/model.onnx), a transformers.js repo (config.json, "
        f"preprocessor_config.json, onnx/vision_model.onnx, onnx/text_model.onnx) or rclip's "
        f"model repo (<model>/visual.onnx, <model>/textual.onnx, tokenizer/)."
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__
