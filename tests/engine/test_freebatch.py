"""engine.models.freebatch on small graphs written as torch's exporter writes them at batch 1:
what it frees must give each photo its lone vector, and what mixes photos it must refuse.
(The real thing, Immich's exporter re-implemented on open_clip towers, is in
tests/training/test_hub_layouts.py.)"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.models import freebatch

RNG = np.random.default_rng(1)


def _model(nodes, inits, out_shape, path):
    graph = helper.make_graph(
        nodes, "tower",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(path))
    return path


def _sequence_first_attention(path):
    """Patches -> [tokens, batch, width] -> heads merged with the batch ([tokens, batch*heads,
    head]) as nn.MultiheadAttention reshapes them -> softmax attention -> back, with a class
    token concatenated as a batch-1 constant, and the class token pooled: the shapes of
    open_clip's sequence-first ViT under torch's exporter."""
    w = 8  # width: 2 heads of 4
    inits = {
        "patch_w": RNG.standard_normal((w, 3, 2, 2)).astype(np.float32),
        "to_seq": np.array([1, w, 4], np.int64),
        "cls": RNG.standard_normal((1, 1, w)).astype(np.float32),
        "pos": RNG.standard_normal((5, w)).astype(np.float32),
        "ln_w": np.ones(w, np.float32), "ln_b": np.zeros(w, np.float32),
        "heads": np.array([5, 2, 4], np.int64),  # [tokens, batch*heads, head]
        "flat": np.array([5, w], np.int64),  # [tokens*batch, width] for the Gemm
        "back": np.array([5, 1, w], np.int64),
        "wo": RNG.standard_normal((w, w)).astype(np.float32),
        "bo": RNG.standard_normal(w).astype(np.float32),
        "zero": np.array(0, np.int64),
    }  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["image", "patch_w"], ["c"], strides=[2, 2]),  # [1, w, 2, 2]
        helper.make_node("Reshape", ["c", "to_seq"], ["s"]),  # [1, w, 4]
        helper.make_node("Transpose", ["s"], ["t"], perm=[0, 2, 1]),  # [1, 4, w]
        helper.make_node("Concat", ["cls", "t"], ["x"], axis=1),  # [1, 5, w]
        helper.make_node("Add", ["x", "pos"], ["xp"]),
        helper.make_node("LayerNormalization", ["xp", "ln_w", "ln_b"], ["ln"], axis=-1),
        helper.make_node("Transpose", ["ln"], ["lnd"], perm=[1, 0, 2]),  # [5, 1, w]
        helper.make_node("Reshape", ["lnd", "heads"], ["q"]),  # [5, 2, 4]
        helper.make_node("Transpose", ["q"], ["qh"], perm=[1, 0, 2]),  # [2, 5, 4]
        helper.make_node("Transpose", ["q"], ["kh"], perm=[1, 2, 0]),  # [2, 4, 5]
        helper.make_node("MatMul", ["qh", "kh"], ["scores"]),  # [2, 5, 5]
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "qh"], ["o"]),  # [2, 5, 4]
        helper.make_node("Transpose", ["o"], ["ot"], perm=[1, 0, 2]),  # [5, 2, 4]
        helper.make_node("Reshape", ["ot", "flat"], ["of"]),  # [5, w]
        helper.make_node("Gemm", ["of", "wo", "bo"], ["g"]),
        helper.make_node("Reshape", ["g", "back"], ["gb"]),  # [5, 1, w]
        helper.make_node("Transpose", ["gb"], ["bd"], perm=[1, 0, 2]),  # [1, 5, w]
        helper.make_node("Add", ["bd", "xp"], ["res"]),
        helper.make_node("Gather", ["res", "zero"], ["pooled"], axis=1),  # [1, w]
        helper.make_node("ReduceL2", ["pooled"], ["norm"], axes=[-1], keepdims=1),
        helper.make_node("Div", ["pooled", "norm"], ["embedding"]),
    ]
    return _model(nodes, inits, [1, w], path)


def _run(path, x):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(["embedding"], {"image": x})[0]


def test_a_sequence_first_vit_is_freed_and_gives_each_photo_its_lone_vector(tmp_path):
    src = _sequence_first_attention(tmp_path / "visual.onnx")
    found = freebatch.decide(tmp_path, "visual.onnx", "image", "embedding", [1, 3, 4, 4])
    assert found["graph"] == freebatch.FREE_FILE
    x = RNG.standard_normal((5, 3, 4, 4)).astype(np.float32)
    lone = np.concatenate([_run(src, x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(_run(tmp_path / freebatch.FREE_FILE, x), lone, rtol=0, atol=1e-5)
    freed = onnx.load(str(tmp_path / freebatch.FREE_FILE), load_external_data=False)
    assert freed.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def _mixing(path, op: str):
    """Batch-1 graphs that, run on a batch, would mix photos: a softmax over the batch axis;
    every element, the batch included, flattened into one vector and projected."""
    inits = {"w": RNG.standard_normal((48, 8)).astype(np.float32), "flat": np.array([48], np.int64),
             "two": np.array([1, 48], np.int64)}  # fmt: skip
    if op == "Softmax":
        nodes = [helper.make_node("Reshape", ["image", "two"], ["f"]),
                 helper.make_node("Softmax", ["f"], ["sm"], axis=0),
                 helper.make_node("MatMul", ["sm", "w"], ["embedding"])]  # fmt: skip
        return _model(nodes, inits, [1, 8], path)
    nodes = [helper.make_node("Reshape", ["image", "flat"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["embedding"])]  # fmt: skip
    return _model(nodes, inits, [8], path)


@pytest.mark.parametrize("op", ["Softmax", "Flatten everything"])
def test_a_graph_that_would_mix_photos_is_refused_and_leaves_nothing(tmp_path, op):
    _mixing(tmp_path / "visual.onnx", op)
    with pytest.raises(freebatch.Refused):
        freebatch.free_graph(tmp_path / "visual.onnx", tmp_path / "out.onnx")
    found = freebatch.decide(tmp_path, "visual.onnx", "image", "embedding", [1, 3, 4, 4])
    assert found["graph"] is None
    assert "no place for the batch fits" in found["reason"]  # refused by the analysis, before any proof
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visual.onnx"]


def test_the_proof_catches_a_graph_whose_batch_mixes_photos(tmp_path):
    """Mixing the batch that the analysis missed is caught by running it: here a 'freed' graph
    that adds the batch's mean photo to each."""
    src = _sequence_first_attention(tmp_path / "visual.onnx")
    freebatch.free_graph(src, tmp_path / "good.onnx")
    good = onnx.load(str(tmp_path / "good.onnx"))
    g = good.graph
    out = g.output[0].name
    g.node[-1].output[0] = "unmixed"
    g.node.extend([helper.make_node("ReduceMean", ["unmixed"], ["mean"], axes=[0], keepdims=1),
                   helper.make_node("Add", ["unmixed", "mean"], [out])])  # fmt: skip
    onnx.save_model(good, str(tmp_path / "bad.onnx"))
    one = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    ok = ort.InferenceSession(str(tmp_path / "good.onnx"), providers=["CPUExecutionProvider"])
    bad = ort.InferenceSession(str(tmp_path / "bad.onnx"), providers=["CPUExecutionProvider"])
    assert freebatch.prove(one, ok, "image", "embedding", [1, 3, 4, 4])
    assert not freebatch.prove(one, bad, "image", "embedding", [1, 3, 4, 4])
