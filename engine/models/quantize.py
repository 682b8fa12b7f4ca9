"""Dynamic int8 quantisation of a model folder's ONNX towers (no torch).

Dynamic quantisation stores MatMul/Gemm weights as int8 and quantises
activations on the fly per batch, so it needs no calibration photos: it can run
on the user's machine right after a model is downloaded. The image tower is
where the time goes during indexing, so that is the one worth quantising; its
output is written beside the fp32 graph as ``image.int8.onnx``.

Quality is checked, not assumed: ``cosine_to_fp32`` runs both graphs on the
same inputs and gives the per-row cosine between int8 and fp32 embeddings.

Weights are quantised to 7 bits (``reduce_range``), not 8. On x86 CPUs without
VNNI (AVX2, and AVX-512 without VNNI) onnxruntime multiplies uint8 activations by
int8 weights with ``vpmaddubsw``, which adds pairs of products into a saturating
int16: 255 * 127 * 2 = 64770 overflows it, 255 * 63 * 2 = 32130 does not. Measured on
an AVX2 EPYC, one 768-wide MatMulInteger with 8-bit weights differs from exact int32
arithmetic in 94 % of its outputs (8.9 % relative error); with 7-bit weights it is
exact. On ViT-B-32-256 that is the difference between a worst cosine to fp32 of 0.988
and 0.9998 (``photosift bench int8``). VNNI CPUs accumulate in int32 and never
saturate, which explains why the same code measured 0.9999 on an earlier build
machine (AVX-512 VNNI) and 0.988 on this one (AVX2). 7-bit weights are the usual
workaround (OpenVINO documents the same saturation and the same fix). They cost
nothing measurable in speed (same kernels) and little in accuracy (random SigLIP 2
B/16: worst cosine 0.9981 instead of 0.9985).

What int8 gains depends on the CPU even more than what it loses. With VNNI the
ViT-B-32-256 image tower ran 2.7x faster than fp32. On AVX2 alone the int8 GEMM
itself measured 1.9x the fp32 GEMM (onnxruntime's per-op profile, one thread), and
the rest of the graph (patch conv, GELU, softmax, transposes; about 10 % of fp32's
time) does not speed up, so the whole tower gains 1.5-1.8x there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError

INT8_NAMES = {"image.onnx": "image.int8.onnx", "text.onnx": "text.int8.onnx"}
# Ops worth quantising in CLIP-style towers: all the FLOPs of a ViT are in these.
DEFAULT_OP_TYPES = ("MatMul", "Gemm")
# Written into the int8 graph's metadata, so a graph made with other settings (say by an
# older version, with saturating 8-bit weights) can be told apart and made again.
SETTINGS_KEY = "photosift.int8_settings"


def int8_path(fp32_path: Path) -> Path:
    """Where the int8 version of ``fp32_path`` goes (image.onnx -> image.int8.onnx)."""
    fp32_path = Path(fp32_path)
    name = INT8_NAMES.get(fp32_path.name, fp32_path.stem + ".int8.onnx")
    return fp32_path.with_name(name)


def quantize_int8(
    src: Path,
    dst: Path | None = None,
    *,
    per_channel: bool = True,
    op_types: Sequence[str] = DEFAULT_OP_TYPES,
    exclude_nodes: Sequence[str] = (),
    exclude_last_matmul: bool = True,
    reduce_range: bool = True,
    weight_type: str = "int8",
) -> Path:
    """Dynamically quantise ``src`` to int8 (weights int8, activations uint8 per batch).

    ``per_channel`` gives each output channel its own weight scale (better
    accuracy for the same speed). ``exclude_last_matmul`` keeps the final
    projection in fp32, the op whose error goes straight into the embedding;
    it is a small share of the FLOPs (measured on ViT-B-32-256: same speed
    within noise, worst cosine 0.99991 instead of 0.99986). ``reduce_range`` keeps
    weights to 7 bits so no CPU's int8 kernel saturates (see the module docstring);
    ``weight_type="uint8"`` takes the u8u8 kernels instead, also saturation-free but
    slower. The settings are recorded in the graph (:func:`int8_settings`).
    Written atomically; returns the output path.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    if weight_type not in types:
        raise ValueError(f"weight_type must be one of {sorted(types)}, not {weight_type!r}")

    src = Path(src)
    dst = Path(dst) if dst is not None else int8_path(src)
    if not src.is_file():
        raise ModelError(f"{src}: no such ONNX file to quantise")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        exclude = list(exclude_nodes)
        if exclude_last_matmul:
            exclude += _last_matmul(src, op_types)
        with _readable_by_onnx(src, dst.parent) as graph, _quiet_quantizer():
            quantize_dynamic(
                model_input=os.fspath(graph),
                model_output=os.fspath(tmp),
                op_types_to_quantize=list(op_types),
                per_channel=per_channel,
                reduce_range=reduce_range,
                # Activations uint8, weights int8: the combination the x86 VNNI kernels take.
                weight_type=types[weight_type],
                nodes_to_exclude=exclude,
            )
        settings = current_settings(
            per_channel=per_channel, op_types=op_types, exclude_nodes=exclude_nodes,
            exclude_last_matmul=exclude_last_matmul, reduce_range=reduce_range,
            weight_type=weight_type,
        )  # fmt: skip
        model = onnx.load(os.fspath(tmp))
        onnx.helper.set_model_props(
            model, {**{p.key: p.value for p in model.metadata_props}, SETTINGS_KEY: settings}
        )
        onnx.save(model, os.fspath(tmp))
        shutil.copymode(src, tmp)  # mkstemp made it private; it is as readable as its source
        tmp.replace(dst)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, ModelError):
            raise
        raise ModelError(f"{src}: int8 quantisation failed ({e})") from e
    return dst


@contextlib.contextmanager
def _quiet_quantizer():
    """onnxruntime's quantiser logs advice for model authors on the root logger ("consider
    pre-processing"): noise in a user's terminal, dropped while it runs."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    for h in root.handlers:
        h.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
        for h in root.handlers:
            h.removeFilter(keep)


@contextlib.contextmanager
def _readable_by_onnx(graph: Path, scratch: Path):
    """``graph`` as the onnx package will read it. onnx refuses external-data files with more
    than one hard link (a guard against hard-link attacks), and a model folder hard-links its
    big files to the Hugging Face cache's; such a graph is read from a private copy instead,
    removed afterwards."""
    from .layouts import external_data_of

    refs = external_data_of(graph)
    if not any((graph.parent / r).stat().st_nlink > 1 for r in refs):
        yield graph
        return
    tmp = Path(tempfile.mkdtemp(prefix=".quantize-", dir=scratch))
    try:
        shutil.copyfile(graph, tmp / graph.name)
        for r in refs:
            (tmp / r).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(graph.parent / r, tmp / r)
        yield tmp / graph.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def current_settings(**options) -> str:
    """The settings string :func:`quantize_int8` records for ``options`` (its defaults filled in)."""
    import inspect

    params = inspect.signature(quantize_int8).parameters
    full = {k: v.default for k, v in params.items() if v.default is not inspect.Parameter.empty}
    full.pop("dst", None)
    full.update(options)
    full = {k: list(v) if isinstance(v, tuple | list) else v for k, v in full.items()}
    return json.dumps(full, sort_keys=True)


def int8_settings(path: Path) -> str | None:
    """The settings an int8 graph was made with, or None (made before they were recorded)."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}.get(SETTINGS_KEY)


def _last_matmul(path: Path, op_types: Sequence[str]) -> list[str]:
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    names = [n.name for n in graph.node if n.op_type in op_types]
    return names[-1:]


def quantize_folder(folder: Path, towers: Sequence[str] = ("image",), **options) -> list[Path]:
    """Quantise the named towers of a model folder into ``image.int8.onnx`` (``text.int8.onnx``)
    beside its model.json, from the graph its layout names (``image.onnx`` for photosift's own,
    ``visual/model.onnx`` for Immich's ...); the int8 graph keeps its input and output names."""
    from .layouts import layout_of
    from .registry import MODEL_FILE, load_spec

    folder = Path(folder)
    graphs = {"image": "image.onnx", "text": "text.onnx"}  # photosift's own folder
    if (folder / MODEL_FILE).is_file():
        spec = load_spec(folder / MODEL_FILE)
        parts = layout_of(spec).parts(spec)
        from .freebatch import image_graph  # a graph fixed to batch 1 freed first: int8 keeps that

        graphs = {"image": image_graph(folder, spec, parts.image)[0].file, "text": parts.text.file}
    return [quantize_int8(folder / graphs[t], folder / f"{t}.int8.onnx", **options) for t in towers]


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def run_graph(path: Path, inputs: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Run a one-input, one-output tower graph on CPU."""
    sess = _session(path, threads)
    return sess.run(None, {sess.get_inputs()[0].name: inputs})[0]


def cosine_to_fp32(fp32: Path, int8: Path, inputs: np.ndarray) -> np.ndarray:
    """Per-row cosine between the int8 and fp32 graphs' embeddings of ``inputs``."""
    a = run_graph(fp32, inputs).astype(np.float64)
    b = run_graph(int8, inputs).astype(np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na * nb, 1e-30)


# -- when the int8 tower is used --------------------------------------------------------------

CHECK_FILE = "image.int8.check.json"
#: Each of the first photos must embed the same within this cosine in int8 as in fp32.
MIN_PHOTO_COSINE = 0.999


def use_int8(precision: str, folder: Path) -> bool:
    """Whether to run ``folder``'s int8 image tower: ``precision`` "int8" whenever it has one,
    "fp32" never, "auto" where the CPU has VNNI (engine.models.cpu) and the tower has not failed its
    check against fp32 on this library's first photos (the runtime makes it on first use)."""
    if precision == "fp32" or not (Path(folder) / "image.int8.onnx").is_file():
        return False
    if precision == "int8":
        return True
    from .cpu import has_vnni

    return has_vnni() and read_check(folder) is not False


def read_check(folder: Path) -> bool | None:
    """The int8 tower's check against fp32 on real photos: True, False, or None (not made)."""
    import json

    try:
        return bool(json.loads((Path(folder) / CHECK_FILE).read_text(encoding="utf-8"))["ok"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_check(folder: Path, cosines: np.ndarray) -> bool:
    """Record the check (per-photo cosines of int8 against fp32); returns whether it passed.
    A folder that cannot be written checks again next time."""
    import json

    ok = bool(len(cosines)) and float(cosines.min()) >= MIN_PHOTO_COSINE
    record = {"ok": ok, "photos": int(len(cosines)), "min_cosine": round(float(cosines.min()), 6),
              "threshold": MIN_PHOTO_COSINE}  # fmt: skip
    path = Path(folder) / CHECK_FILE
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass
    return ok
