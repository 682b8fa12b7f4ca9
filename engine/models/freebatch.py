"""An image tower fixed to batch 1 (Immich's visual graphs), freed to take any batch.

Immich exports its visual towers with torch's exporter and no dynamic axes, so every shape
in them is a constant computed for one photo: ``[1, 50, 768]`` targets in Reshape nodes, the
class token expanded to a batch of 1, ``[50, 12, 64]`` where torch's attention merged the batch
with the heads (ViTs built on ``nn.MultiheadAttention`` run sequence-first). One photo at a
time leaves the matrix kernels too little work per call: on a 2-core AVX-512 VNNI EPYC the
ViT-B/32 tower ran 31 photos/s at batch 1 against 44 at batch 16 (`photosift bench adapters`).

This module derives, once per model, a graph that takes any batch (``image.batch.onnx``):

1. ONNX Runtime folds the graph's constants (its portable "basic" level: standard ONNX ops
   only), so every shape computation becomes a literal;
2. where the photo's batch axis travels is followed through the graph from the input: in any
   tensor it sits in one axis, as a factor of that axis's size with ``inner`` elements of that
   axis inside it (``[50, 12, 64]`` after the heads merge: axis 1, inner 12). Each op maps
   that place to its output's, or rules out a place (no batch in a LayerNorm's normalised
   axes, a MatMul's shared axis, a Gemm's columns). A Reshape keeps the batch where the
   element order puts it, which is ambiguous at an axis boundary (``[50, 1, 768]`` could hold
   it in any axis): every reading is followed, and those that later rule themselves out fall
   away; the reading that reaches the output as its first axis wins;
3. each Reshape the batch passes gets ``-1`` where the batch sits, a batch-free tensor
   concatenated with one that has it (the class token) is expanded to the batch, and the
   input and output name their first axis ``batch``;
4. the result is *proved*, not trusted: three photos in one batch must give the original's
   vectors for each photo alone (max abs difference 1e-4, cosine 0.99999). Any op the batch
   passes that is not understood, or a failed proof, leaves the tower at batch 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .derived import DATA_SUFFIX  # the derived graph's weights: <graph>.data

FREE_FILE = "image.batch.onnx"  # the derived graph, beside model.json
DECISION = "image.batch.json"  # what was decided, for which image graph
VERSION = 1
MAX_ABS_DIFF = 1e-4
MIN_COSINE = 0.99999
MAX_READINGS = 64  # readings of the batch's place followed at once before giving up
PROOF_BATCH = 3

log = logging.getLogger(__name__)


class Refused(Exception):
    """The graph holds something this cannot free (the message says what)."""


@dataclass(frozen=True)
class Place:
    """Where the batch sits in a tensor: in ``axis``, with ``inner`` elements of that axis
    inside each batch item's block; ``choices`` are the Reshape readings it depends on."""

    axis: int
    inner: int
    choices: frozenset = frozenset()


def fixed(spec, graph) -> bool:
    """Whether image ``graph`` is one this frees: fixed to a batch size, not NaFlex's."""
    return graph.batch is not None and spec.preprocess.resize_mode != "naflex"


def image_graph(folder: Path, spec, graph):
    """The image graph to run from a model folder, and the stamps of the files derived for it
    ({name: {"sha256", "size"}}, to check before use): ``graph`` itself where it takes any
    batch already (or is NaFlex's), else the freed graph where one was derived and proved
    (derived now if it never was: a few seconds for a ViT-B), else ``graph`` (batch 1). The
    decision, and why a graph stays at batch 1, is remembered in image.batch.json."""
    from dataclasses import replace

    from .derived import source_key

    if not fixed(spec, graph):
        return graph, {}
    folder = Path(folder)
    source = source_key(folder, graph.file, spec.source.files)
    path = folder / DECISION
    found = read_decision(path, source)
    if found is None:
        found = decide(folder, graph.file, graph.input, graph.output, [1, 3, *spec.preprocess.size])
        if not found["graph"]:
            log.info("model %s: its image graph stays at batch 1: %s", spec.key, found["reason"])
        # a folder that cannot be written: decided again next time
        with contextlib.suppress(OSError):
            write_decision(path, source, found)
    if not found.get("graph"):
        return graph, {}
    stamps = {found["graph"]: found.get("file") or {}, **(found.get("data") or {})}
    return replace(graph, file=found["graph"], batch=None), stamps


def read_decision(path: Path, source: str) -> dict | None:
    from .derived import read_decision as read

    return read(path, source, VERSION)


def write_decision(path: Path, source: str, found: dict) -> None:
    from .derived import write_decision as write

    write(path, source, VERSION, found)


def decide(folder: Path, src_file: str, input_name: str, output_name: str, shape: list[int]
           ) -> dict | None:  # fmt: skip
    """Derive and prove ``image.batch.onnx`` from the batch-1 graph ``src_file`` of a model
    folder. Returns {"graph": FREE_FILE, "file": stamp, "data": {name: stamp}}, or
    {"graph": None, "reason": why} where the graph cannot be freed (nothing is left behind
    then). The proof runs on the CPU, whose results do not depend on the batch beyond float
    rounding."""
    import onnxruntime as ort

    from .derived import stamp

    folder = Path(folder)
    src = folder / src_file
    dst = folder / FREE_FILE
    data = folder / (FREE_FILE + DATA_SUFFIX)
    why = None
    try:
        free_graph(src, dst)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        cpu = ["CPUExecutionProvider"]
        one = ort.InferenceSession(os.fspath(src), opts, providers=cpu)
        many = ort.InferenceSession(os.fspath(dst), opts, providers=cpu)
        if not prove(one, many, input_name, output_name, shape):
            why = f"the freed graph failed its proof ({PROOF_BATCH} photos in one run against each alone)"
    except Refused as e:
        why = str(e)
    except Exception as e:  # onnxruntime refuses the rewritten graph: stays at batch 1
        why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    if why:
        dst.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        return {"graph": None, "reason": why}
    return {
        "graph": FREE_FILE,
        "file": stamp(dst),
        "data": {data.name: stamp(data)} if data.exists() else {},
    }


def prove(one, many, input_name: str, output_name: str, shape: list[int]) -> bool:
    """Whether ``many`` gives a batch of photos the vectors ``one`` gives each alone."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((PROOF_BATCH, *shape[1:])).astype(np.float32)
    want = np.concatenate(
        [one.run([output_name], {input_name: x[i : i + 1]})[0] for i in range(len(x))]
    )
    got = many.run([output_name], {input_name: x})[0]
    if got.shape != want.shape:
        return False
    a, b = want.reshape(len(x), -1), got.reshape(len(x), -1)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return bool(
        np.abs(a - b).max() <= MAX_ABS_DIFF * max(1.0, np.abs(a).max()) and cos.min() >= MIN_COSINE
    )


def free_graph(src: Path, dst: Path) -> None:
    """Write the any-batch version of batch-1 graph ``src`` to ``dst`` (weights beside it in
    ``dst.data``); raises Refused naming what it cannot free."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    from .derived import save_graph

    dst = Path(dst)
    stage = Path(tempfile.mkdtemp(prefix=".batch-", dir=dst.parent))
    try:
        folded = stage / "folded.onnx"
        _fold(Path(src), folded)
        # the weights stay on disk while the graph is analysed (shape inference copies the
        # model, and a SigLIP 2 SO400M's 1.7 GB would double the memory it takes)
        model = onnx.load(os.fspath(folded), load_external_data=False)
        _free(model)
        load_external_data_for_model(model, os.fspath(stage))
        save_graph(model, dst, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _fold(src: Path, dst: Path) -> None:
    """ONNX Runtime's constant folding (and its other portable rewrites) of ``src``."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    o.log_severity_level = 3
    o.optimized_model_filepath = os.fspath(dst)
    o.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", dst.name + ".data"
    )
    o.add_session_config_entry(
        "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
    )
    ort.InferenceSession(os.fspath(src), o, providers=["CPUExecutionProvider"])


def _free(model) -> None:
    """Rewrite a folded batch-1 ``model`` in place to take any batch."""
    import onnx

    g = model.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise Refused(f"{len(g.input)} inputs and {len(g.output)} outputs, not one of each")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    shapes = _shapes(inferred)
    consts = _constants(g)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    image = g.input[0].name
    if shapes.get(image, [None])[0] != 1:
        raise Refused(f"input {image!r} is not fixed to batch 1")
    places: dict[str, list[Place]] = {image: [Place(0, 1)]}
    for index, node in enumerate(g.node):
        if not any(i in places for i in node.input):
            continue  # batch-free
        outs = _step(index, node, places, shapes, consts, opset)
        for name, found in zip(node.output, outs, strict=False):
            if not name:
                continue
            found = _one_per_place(found)
            if not found:
                raise Refused(f"{node.op_type} node {node.name!r}: no place for the batch fits")
            if len(found) > MAX_READINGS:
                raise Refused(f"more than {MAX_READINGS} readings of the batch at {node.name!r}")
            places[name] = found
    out = g.output[0].name
    final = [p for p in places.get(out, []) if p.axis == 0 and p.inner == 1]
    if not final:
        raise Refused(f"the batch does not reach output {out!r} as its first axis")
    _apply(g, dict(final[0].choices), places, shapes, image)
    for v in (g.input[0], g.output[0]):
        dim = v.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    del g.value_info[:]  # shapes recorded for batch 1 no longer hold


def _one_per_place(found: list[Place]) -> list[Place]:
    """The first reading of each (axis, inner): readings that put the batch in the same place
    act alike from here on, so later ops need follow only one of them (without this their
    number doubles at every ambiguous Reshape)."""
    seen: dict[tuple[int, int], Place] = {}
    for p in found:
        seen.setdefault((p.axis, p.inner), p)
    return list(seen.values())


def _shapes(g) -> dict[str, list[int]]:
    out = {}
    for v in [*g.input, *g.value_info, *g.output]:
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            out[v.name] = [d.dim_value for d in dims]
    for t in g.initializer:
        out[t.name] = list(t.dims)
    return out


def _constants(g) -> dict:
    from onnx import numpy_helper
    from onnx.external_data_helper import uses_external_data

    out = {
        t.name: numpy_helper.to_array(t)
        for t in g.initializer
        if not uses_external_data(t) and int(np.prod(t.dims)) <= 64
    }  # shapes, axes, bounds
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def _attr(node, name: str, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _merge(*places: Place) -> Place | None:
    """One place from several inputs' (the same axis and inner, choices that agree), or None."""
    first = places[0]
    choices = dict(first.choices)
    for p in places[1:]:
        if (p.axis, p.inner) != (first.axis, first.inner):
            return None
        for k, v in p.choices:
            if choices.setdefault(k, v) != v:
                return None
    return Place(first.axis, first.inner, frozenset(choices.items()))


def _combos(node, places, pick) -> list[tuple]:
    """Every combination of the readings of ``node``'s batch-carrying inputs ``pick``."""
    combos: list[tuple] = [()]
    for i in pick:
        combos = [(*c, p) for c in combos for p in places[node.input[i]]]
        if len(combos) > MAX_READINGS * MAX_READINGS:
            raise Refused(f"too many readings of the batch at {node.name!r}")
    return combos


_ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal",
    "Cast", "Clip", "Where", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And",
    "Or", "Relu", "Sigmoid", "Tanh", "Gelu", "HardSigmoid", "HardSwish", "LeakyRelu", "Softplus", "Max",
    "Min", "Floor", "Ceil", "Round", "Sign", "Identity", "Dropout", "IsNaN", "Sin", "Cos",
}  # fmt: skip
_REDUCE = {"ReduceL2", "ReduceL1", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
           "ReduceSumSquare", "ReduceLogSumExp"}  # fmt: skip


def _step(index: int, node, places, shapes, consts, opset) -> list[list[Place]]:
    """The batch's possible places in each output of ``node``."""
    op = node.op_type
    ins = [shapes.get(i) if i else None for i in node.input]
    carrying = [k for k, i in enumerate(node.input) if i in places]
    out_shape = shapes.get(node.output[0])
    if out_shape is None or any(ins[k] is None for k in carrying):
        raise Refused(f"{op} node {node.name!r}: shapes unknown")

    def refuse(why: str):
        raise Refused(f"{op} node {node.name!r}: {why}")

    found: list[Place] = []
    if op in _ELEMENTWISE:
        r = len(out_shape)
        free = [k for k, i in enumerate(node.input) if i and k not in carrying]
        for combo in _combos(node, places, carrying):
            mapped = []
            for k, p in zip(carrying, combo, strict=True):
                a = p.axis + r - len(ins[k])
                if ins[k][p.axis] != out_shape[a]:
                    break  # the batch's axis broadcast from 1: not the batch
                mapped.append(Place(a, p.inner, p.choices))
            else:
                merged = _merge(*mapped)
                if merged is None:
                    continue
                a = merged.axis
                if all(_dim(ins[k], a, r) == 1 for k in free if ins[k] is not None):
                    found.append(merged)
        return [found] * len(node.output)
    (p_in,) = [0] if carrying == [0] else [None]
    if op == "MatMul":
        return [_matmul(node, places, ins, out_shape, carrying)]
    if p_in is None and op not in ("Concat", "Gather"):
        refuse("the batch reaches an input other than the first")
    readings = places[node.input[0]] if p_in == 0 else []
    shape = ins[0]
    if op in ("Softmax", "LogSoftmax"):
        axis = _attr(node, "axis", -1 if opset >= 13 else 1) % len(shape)
        found = [p for p in readings if (p.axis != axis if opset >= 13 else p.axis < axis)]
    elif op == "LayerNormalization":
        axis = _attr(node, "axis", -1) % len(shape)
        found = [p for p in readings if p.axis < axis]
        return [found] * len(node.output)
    elif op in _REDUCE:
        axes = _attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = consts.get(node.input[1])
            if axes is None:
                refuse("axes not constant")
        if axes is None:
            refuse("reduces every axis")
        axes = sorted(int(a) % len(shape) for a in np.atleast_1d(axes))
        keep = _attr(node, "keepdims", 1)
        found = [Place(p.axis if keep else p.axis - sum(a < p.axis for a in axes), p.inner, p.choices)
                 for p in readings if p.axis not in axes]  # fmt: skip
    elif op == "Gemm":
        m_axis = 1 if _attr(node, "transA", 0) else 0
        found = [Place(0, p.inner, p.choices) for p in readings if p.axis == m_axis]
    elif op in ("Conv", "MaxPool", "AveragePool", "BatchNormalization", "InstanceNormalization",
                "GlobalAveragePool", "GlobalMaxPool"):  # fmt: skip
        found = [p for p in readings if p.axis == 0]
    elif op == "Transpose":
        perm = list(_attr(node, "perm", list(range(len(shape)))[::-1]))
        found = [Place(perm.index(p.axis), p.inner, p.choices) for p in readings]
    elif op == "Reshape":
        for p in readings:
            for k, inner in _reshape_places(shape, out_shape, p):
                choices = dict(p.choices)
                if choices.setdefault(index, k) == k:
                    found.append(Place(k, inner, frozenset(choices.items())))
    elif op == "Flatten":
        axis = _attr(node, "axis", 1) % (len(shape) + 1)
        for p in readings:
            if p.axis < axis:
                found.append(Place(0, p.inner * int(np.prod(shape[p.axis + 1 : axis])), p.choices))
            else:
                found.append(Place(1, p.inner * int(np.prod(shape[p.axis + 1 :])), p.choices))
    elif op == "Squeeze":
        axes = _attr(node, "axes")
        if axes is None and len(node.input) > 1:
            axes = consts.get(node.input[1])
        if axes is None:
            refuse("squeezes every axis of size 1")
        axes = sorted(int(a) % len(shape) for a in np.atleast_1d(axes))
        found = [Place(p.axis - sum(a < p.axis for a in axes), p.inner, p.choices)
                 for p in readings if p.axis not in axes]  # fmt: skip
    elif op == "Unsqueeze":
        axes = _attr(node, "axes")
        if axes is None:
            axes = consts.get(node.input[1])
        if axes is None:
            refuse("axes not constant")
        r = len(out_shape)
        axes = sorted(int(a) % r for a in np.atleast_1d(axes))
        for p in readings:
            kept = [a for a in range(r) if a not in axes]
            found.append(Place(kept[p.axis], p.inner, p.choices))
    elif op == "Split":
        axis = _attr(node, "axis", 0) % len(shape)
        found = [p for p in readings if p.axis != axis]
        return [found] * len(node.output)
    elif op == "Slice":
        starts, ends = consts.get(node.input[1]), consts.get(node.input[2])
        axes = consts.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        steps = consts.get(node.input[4]) if len(node.input) > 4 and node.input[4] else None
        if starts is None or ends is None:
            refuse("bounds not constant")
        axes = np.arange(len(starts)) if axes is None else axes
        steps = np.ones(len(starts), np.int64) if steps is None else steps
        whole = {int(a) % len(shape) for a, s, e, st in zip(axes, starts, ends, steps, strict=True)
                 if s == 0 and st == 1 and e >= np.iinfo(np.int32).max}  # fmt: skip
        sliced = {int(a) % len(shape) for a in axes} - whole
        found = [p for p in readings if p.axis not in sliced]
    elif op == "Expand":
        target = consts.get(node.input[1])
        if target is None:
            refuse("target shape not constant")
        r = len(out_shape)
        for p in readings:
            a = p.axis + r - len(shape)
            if _dim(list(target), a, r) == 1:
                found.append(Place(a, p.inner, p.choices))
    elif op == "Gather":
        axis = _attr(node, "axis", 0) % len(shape)
        idx = ins[1]
        if carrying == [0]:
            for p in readings:
                if p.axis < axis:
                    found.append(p)
                elif p.axis > axis:
                    found.append(Place(p.axis + len(idx) - 1, p.inner, p.choices))
        elif carrying == [1]:  # a lookup table indexed by the batch's ids
            found = [Place(axis + p.axis, p.inner, p.choices) for p in places[node.input[1]]]
        else:
            refuse("the batch is in both the data and the indices")
    elif op == "Concat":
        axis = _attr(node, "axis") % len(out_shape)
        free = [k for k in range(len(node.input)) if k not in carrying]
        for combo in _combos(node, places, carrying):
            merged = _merge(*combo)
            if merged is None or merged.axis == axis:
                continue
            if free and ins[carrying[0]][merged.axis] != 1:
                continue  # a batch-free part could not be stretched to the batch
            found.append(merged)
    else:
        refuse("the batch passes an op this does not follow")
    return [found]


def _dim(shape: list[int], axis: int, rank: int) -> int:
    """``shape``'s size at output axis ``axis`` of a broadcast to ``rank`` (1 where absent)."""
    k = axis - (rank - len(shape))
    return shape[k] if k >= 0 else 1


def _matmul(node, places, ins, out_shape, carrying) -> list[Place]:
    r = len(out_shape)
    found = []
    for combo in _combos(node, places, carrying):
        mapped = []
        for k, p in zip(carrying, combo, strict=True):
            rank = len(ins[k])
            if rank == 1:
                break
            if (k == 0 and p.axis == rank - 1) or (k == 1 and p.axis == rank - 2):
                break  # the shared axis
            if k == 0 and p.axis == rank - 2:
                mapped.append(Place(r - 2, p.inner, p.choices))
            elif k == 1 and p.axis == rank - 1:
                mapped.append(Place(r - 1, p.inner, p.choices))
            else:  # a stacking axis, broadcast against the other side's
                a = p.axis + r - rank
                other = ins[1 - k]
                if 1 - k not in carrying and len(other) > 2 and _dim(other[:-2], a, r - 2) != 1:
                    break
                mapped.append(Place(a, p.inner, p.choices))
        else:
            merged = _merge(*mapped)
            if merged is not None:
                found.append(merged)
    return found


def _reshape_places(src: list[int], dst: list[int], p: Place) -> list[tuple[int, int]]:
    """Where the batch can sit after reshaping ``src`` to ``dst``: (axis, inner) pairs that
    put it at the same place in the element order (the batch item's block of ``stride``
    elements); a size-1 axis of its own first."""
    stride = p.inner * int(np.prod(src[p.axis + 1 :]))
    out = []
    for k in range(len(dst)):
        after = int(np.prod(dst[k + 1 :]))
        if (
            stride % after == 0
            and dst[k] % (stride // after) == 0
            and after <= stride <= after * dst[k]
        ):
            out.append((k, stride // after))
    out.sort(key=lambda c: dst[c[0]] != 1)
    return out


def _apply(g, choices: dict, places, shapes, image: str) -> None:
    """Rewrite ``g`` for the readings chosen: -1 where the batch sits in each Reshape's target,
    batch-free parts of a Concat expanded to the batch."""
    from onnx import helper, numpy_helper

    batch = "photosift_batch"
    added_batch = False
    new_inits = []
    nodes = []
    for index, node in enumerate(g.node):
        if node.op_type == "Reshape" and index in choices:
            target = list(shapes[node.output[0]])
            target[choices[index]] = -1
            name = f"{node.name or node.output[0]}/photosift_batch_shape"
            new_inits.append(numpy_helper.from_array(np.array(target, np.int64), name))
            node.input[1] = name
            _clear(node, "allowzero")
        elif node.op_type == "Concat" and any(i in places for i in node.input):
            axis_of = next(_chosen(places[i], choices).axis for i in node.input if i in places)
            for k, inp in enumerate(node.input):
                if inp in places:
                    continue
                if not added_batch:
                    nodes += [
                        helper.make_node(
                            "Shape", [image], [batch + "_shape"], name=batch + "/Shape"
                        ),
                        helper.make_node(
                            "Gather",
                            [batch + "_shape", batch + "_0"],
                            [batch],
                            axis=0,
                            name=batch + "/Gather",
                        ),  # fmt: skip
                    ]
                    new_inits.append(numpy_helper.from_array(np.array([0], np.int64), batch + "_0"))
                    added_batch = True
                rank = len(shapes[inp])
                parts = []
                if axis_of:
                    parts.append(_ones(new_inits, f"{inp}/ones_before", axis_of))
                parts.append(batch)
                if rank - axis_of - 1:
                    parts.append(_ones(new_inits, f"{inp}/ones_after", rank - axis_of - 1))
                target, stretched = f"{inp}/photosift_batch_target", f"{inp}/photosift_batch"
                nodes += [helper.make_node("Concat", parts, [target], axis=0, name=target),
                          helper.make_node("Expand", [inp, target], [stretched], name=stretched)]  # fmt: skip
                node.input[k] = stretched
        nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)


def _chosen(readings: list[Place], choices: dict) -> Place:
    """The reading of a tensor's batch place that the final choices make."""
    return next(p for p in readings if all(choices.get(k) == v for k, v in p.choices))


def _ones(inits: list, name: str, n: int) -> str:
    from onnx import numpy_helper

    inits.append(numpy_helper.from_array(np.ones(n, np.int64), name))
    return name


def _clear(node, attr: str) -> None:
    for a in list(node.attribute):
        if a.name == attr:
            node.attribute.remove(a)
