"""A CLIP text tower that runs only as many positions as the text has.

CLIP's text transformer is causal (each position attends to those before it) and pools at
the end-of-text token, so the padding after it cannot change the embedding: a typed query of
8 tokens needs 8 positions computed, not 77 (about 10x less work). The ready exports fix the
sequence length at 77 (rclip's and Immich's give only the batch axis a name, and torch's
exporter folds the length into constants), so photosift derives a graph that takes any
length up to 77, once, beside the original (``text.cut.onnx``):

* the ids input's length axis is named;
* the ``[77, D]`` positional table is sliced to the input's length, the ``[77, 77]`` causal
  masks (``[1, 1, 77, 77]`` too) to ``[L, L]``, and a 77 inside a Reshape's target shape
  (``[77, batch*heads, head_dim]``...) becomes the length;
* any other 77 it cannot account for leaves the graph alone (no cut graph).

The cut graph is then *proved*, not trusted: texts of every length from an empty one to one
cut off at 77 tokens are run through the original with full padding and through the cut
graph with the padding cut off after the longest text's last real token, and must agree to
float rounding (max abs difference 1e-4, cosine 0.99999). SigLIP's towers are not causal
(they pool the last position, padding included) and fail this proof by construction, as any
tower whose output the padding changes does: those keep their fixed length.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .derived import DATA_SUFFIX  # the derived graph's weights: <graph>.data

CUT_FILE = "text.cut.onnx"  # the derived graph, beside model.json
DECISION = "text.cut.json"  # what was decided, for which text graph (its sha256)
VERSION = 2  # of the derivation: 2 keeps weights beside the graph and optimises it once
MAX_ABS_DIFF = 1e-4
MIN_COSINE = 0.99999
_SEQ = "photosift_seq_len"  # the [1] int64 tensor holding the input's length


def read_decision(path: Path, source_sha256: str) -> dict | None:
    """The decision made for the text graph ``source_sha256`` names (engine.models.derived), or
    None: none yet, for another file, by an older photosift, or optimised by another ONNX
    Runtime version."""
    from .derived import read_decision as read

    d = read(path, source_sha256, VERSION)
    if d is not None and d.get("optimised"):
        import onnxruntime as ort

        if d.get("onnxruntime") != ort.__version__:
            return None
    return d


def write_decision(path: Path, source_sha256: str, found: dict | None) -> None:
    from .derived import write_decision as write

    write(path, source_sha256, VERSION, found)


def decide(folder: Path, full_file: str, full, graph, tokenizer, ctx: int, opts, providers) -> dict | None:
    """Find the text tower to run cut, and prove it: the original graph when its length axis
    is already free (transformers.js), else a derived ``text.cut.onnx``; None when neither
    holds. Returns {"graph": file, "file": {"sha256", "size"}, "data": {name: {...}}}."""
    import onnxruntime as ort

    from .derived import stamp

    dtype = np.int32 if "int32" in full.get_inputs()[0].type else np.int64
    length = full.get_inputs()[0].shape[1]
    if not isinstance(length, int):  # free already: only the proof is needed
        if prove(full, full, tokenizer, graph.input, graph.output, dtype):
            return {"graph": full_file, "file": None}
        return None
    folder = Path(folder)
    dst = folder / CUT_FILE
    data = folder / (CUT_FILE + DATA_SUFFIX)
    if _external_refs(folder / full_file):  # a tower too big for one file: left as it is
        return None
    if not cut_graph(folder / full_file, dst, ctx):
        dst.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        return None
    try:
        _optimise(dst)
        cut = ort.InferenceSession(os.fspath(dst), sess_options=opts, providers=providers)
        ok = prove(full, cut, tokenizer, graph.input, graph.output, dtype)
    except Exception:  # onnxruntime refuses the rewritten graph: no cut
        ok = False
    if not ok:
        dst.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        return None
    return {"graph": CUT_FILE, "file": stamp(dst), "data": {data.name: stamp(data)},
            "optimised": True, "onnxruntime": ort.__version__}  # fmt: skip


def _optimise(dst: Path) -> None:
    """Replace the derived graph by ONNX Runtime's own optimised version of it (its portable
    level, weights beside it as before), so that loading it skips that work: a command-line
    search loads it with no further optimisation (0.016 s against 0.055 s for the text tower).
    The file is this ONNX Runtime version's: the decision names it, and another version
    derives the graph again."""
    import onnxruntime as ort

    stage = Path(tempfile.mkdtemp(prefix=".opt-", dir=dst.parent))
    try:
        o = ort.SessionOptions()
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        o.log_severity_level = 3
        o.optimized_model_filepath = os.fspath(stage / dst.name)
        o.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                   dst.name + DATA_SUFFIX)  # fmt: skip
        o.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(os.fspath(dst), o, providers=["CPUExecutionProvider"])
        (stage / (dst.name + DATA_SUFFIX)).replace(dst.with_name(dst.name + DATA_SUFFIX))
        (stage / dst.name).replace(dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _external_refs(graph: Path):
    from .layouts import external_data_of

    return external_data_of(graph)


def cut_graph(src: Path, dst: Path, ctx: int) -> bool:
    """Write the length-free version of text graph ``src`` to ``dst``; False when the graph
    holds a fixed length this cannot rewrite (then nothing is written)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(os.fspath(src))
    g = model.graph
    ids = g.input[0]
    dims = ids.type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value != ctx:
        return False
    dims[1].ClearField("dim_value")
    dims[1].dim_param = "sequence"
    start = [
        helper.make_node("Shape", [ids.name], [_SEQ + "_shape"], name="photosift_seq/Shape"),
        helper.make_node("Constant", [], [_SEQ + "_1"], value=numpy_helper.from_array(np.array([1], np.int64)),
                         name="photosift_seq/one"),  # fmt: skip
        helper.make_node("Constant", [], [_SEQ + "_2"], value=numpy_helper.from_array(np.array([2], np.int64)),
                         name="photosift_seq/two"),  # fmt: skip
        helper.make_node("Slice", [_SEQ + "_shape", _SEQ + "_1", _SEQ + "_2"], [_SEQ], name="photosift_seq/Slice"),
    ]  # fmt: skip
    consts = _constants(g)  # name -> (array, the node or initializer holding it)
    users = _users(g)
    new_nodes: list = []
    replace: dict[str, str] = {}  # tensor name -> its length-free stand-in
    for name, (value, _) in consts.items():
        if ctx not in value.shape and not (value.dtype == np.int64 and value.ndim == 1 and ctx in value):
            continue
        kinds = {n.op_type for n in users.get(name, [])}
        if not kinds:
            continue
        if value.dtype == np.int64 and value.ndim == 1 and kinds <= {"Concat", "Reshape"}:
            if list(value).count(ctx) != 1:
                return False
            i = list(value).index(ctx)  # a target shape: [.., 77, ..] -> [.., L, ..]
            parts = []
            if i:
                parts.append(_const(new_nodes, f"{name}/head", value[:i]))
            parts.append(_SEQ)
            if i + 1 < len(value):
                parts.append(_const(new_nodes, f"{name}/tail", value[i + 1 :]))
            out = f"{name}/photosift_cut"
            new_nodes.append(helper.make_node("Concat", parts, [out], axis=0, name=out))
            replace[name] = out
        elif value.dtype.kind == "f" and kinds <= {"Add"}:
            # the positional table ([77, D], or [1, 77, D]) or a causal mask ([.., 77, 77])
            axes = [a for a, d in enumerate(value.shape) if d == ctx]
            if len(axes) == 2 and axes != [value.ndim - 2, value.ndim - 1] or len(axes) > 2:
                return False
            zero = _const(new_nodes, f"{name}/zeros", np.zeros(len(axes), np.int64))
            ends = _SEQ if len(axes) == 1 else f"{name}/ends"
            if len(axes) == 2:
                new_nodes.append(helper.make_node("Concat", [_SEQ, _SEQ], [ends], axis=0, name=ends))
            ax = _const(new_nodes, f"{name}/axes", np.array(axes, np.int64))
            out = f"{name}/photosift_cut"
            new_nodes.append(helper.make_node("Slice", [name, zero, ends, ax], [out], name=out))
            replace[name] = out
        else:
            return False
    if not replace:
        return False
    for node in g.node:
        for k, inp in enumerate(node.input):
            if inp in replace:
                node.input[k] = replace[inp]
    used = {i for n in g.node for i in n.input} | {i for n in new_nodes for i in n.input}
    kept = [n for n in g.node if n.op_type != "Constant" or n.output[0] in used]
    unused = [t for t in g.initializer if t.name not in used]
    for t in unused:  # the constants the cut replaced (ONNX Runtime warns of each otherwise)
        g.initializer.remove(t)
    nodes = start + new_nodes + kept
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # shapes recorded for the fixed length no longer hold
    from .derived import save_graph

    dst = Path(dst)
    stage = Path(tempfile.mkdtemp(prefix=".cut-", dir=dst.parent))
    try:
        save_graph(model, dst, stage)  # weights beside it, mapped by ONNX Runtime
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return True


def _constants(g) -> dict:
    from onnx import numpy_helper

    out = {i.name: (numpy_helper.to_array(i), i) for i in g.initializer if not _external(i)}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and not _external(a.t):
                    out[n.output[0]] = (numpy_helper.to_array(a.t), n)
    return out


def _external(t) -> bool:
    from onnx.external_data_helper import uses_external_data

    return uses_external_data(t)


def _users(g) -> dict:
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return users


def _const(nodes: list, name: str, value: np.ndarray) -> str:
    from onnx import helper, numpy_helper

    nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value)), name=name))
    return name


def prove(full, cut, tokenizer, input_name: str, output: str, dtype) -> bool:
    """Whether the cut session gives the full one's embeddings on texts of every length."""
    texts = ["", "a", "a photo of a dog", "kids on a red slide at dusk, two of them laughing",
             " ".join(["word"] * 30), " ".join(f"w{i}" for i in range(120))]  # fmt: skip
    ids, lengths = tokenizer.encode_with_lengths(texts)
    ids = ids.astype(dtype, copy=False)
    want = np.concatenate([full.run([output], {input_name: ids[i : i + 1]})[0] for i in range(len(ids))])
    got = []
    for i in range(len(ids)):  # one at a time (a fixed-batch graph), and the batch cut at its max
        got.append(cut.run([output], {input_name: ids[i : i + 1, : lengths[i]]})[0])
    got = np.concatenate(got)
    pairs = [(want, got)]
    if cut.get_inputs()[0].shape[0] != 1:  # a batch runs cut at its longest text
        pairs.append((want, cut.run([output], {input_name: ids[:, : max(lengths)]})[0]))
    ok = True
    for a, b in pairs:
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
        ok &= bool(np.abs(a - b).max() <= MAX_ABS_DIFF * max(1.0, np.abs(a).max()) and cos.min() >= MIN_COSINE)
    return ok
