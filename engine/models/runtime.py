"""Run a model folder with ONNX Runtime: images and texts in, unit vectors out.

The folder's layout (``model.json``'s ``source.layout``, see engine.models.layouts) says which
graphs to load, what their inputs and outputs are called, the dtype of token ids and the
batch size a graph is fixed to; each is checked against the graph itself when it loads, so
a file from another export is refused with its name instead of giving wrong vectors.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .derived import source_key
from .filecheck import FileChecks
from .layouts import Graph, layout_of
from .registry import MODEL_FILE, ModelSpec, load_spec

log = logging.getLogger(__name__)

_IDS_DTYPES = {"int32": np.int32, "int64": np.int64}
_ORT_TYPES = {"int32": "tensor(int32)", "int64": "tensor(int64)"}

# Execution providers in order of preference; only those this onnxruntime build has are used.
PREFERRED_PROVIDERS = (
    "CUDAExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)


def available_providers(prefer_cpu: bool = False) -> list[str]:
    """The providers to ask for, best first (GPU ones whenever this build has them)."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    if prefer_cpu:
        return ["CPUExecutionProvider"]
    return [p for p in PREFERRED_PROVIDERS if p in have] or ["CPUExecutionProvider"]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class OnnxModel:
    """A loaded model folder (see engine.models.registry for the layout).

    Thread-safety: ``encode_*`` may be called from several threads; ONNX Runtime
    sessions are thread-safe for ``run``.
    """

    def __init__(
        self,
        folder: Path,
        *,
        int8: bool = False,
        prefer_cpu: bool = False,
        threads: int | None = None,
        load_text: bool = True,
        load_image: bool = True,
        max_patches: int | None = None,
        lazy: bool = False,
        check_int8: bool = False,
        one_shot: bool = False,
        free_batch: bool = True,
    ):
        """``lazy``: load each tower (and check its files) on first use instead of now, so a
        text query never loads the image tower, nor a rescan with nothing new either tower.
        ``check_int8``: the first photos an int8 tower embeds are embedded in fp32 too, once per
        model folder; a tower that gives them other vectors (engine.models.quantize.MIN_PHOTO_COSINE)
        is not used (here nor later: the check is recorded), and those photos keep fp32's.
        ``one_shot``: a process that runs a tower once or twice (a command-line search): weights
        are used where they lie instead of repacked for the matrix kernels first (measured on
        the ViT-B/32 text tower: 0.09 s to load and 19 ms a query, against 0.22 s and 10 ms).
        ``free_batch``: False runs an image graph fixed to batch 1 as exported, not freed
        (engine.models.freebatch; `photosift bench adapters` measures what freeing gains)."""

        self.folder = Path(folder)
        self.spec: ModelSpec = load_spec(self.folder / MODEL_FILE)
        self._int8 = int8
        # NaFlex models: the patch budget per photo (the registry default unless overridden).
        self.naflex = self.spec.preprocess.resize_mode == "naflex"
        default = self.spec.preprocess.max_patches
        self.max_patches = (max_patches or default) if self.naflex else None
        if self.naflex and not (isinstance(self.max_patches, int) and self.max_patches >= 1):
            raise ModelError(f"model {self.spec.key!r}: max_patches must be a positive whole number, "
                             f"not {self.max_patches!r}")  # fmt: skip
        self._naflex_base = 0
        if self.naflex and self.max_patches != self.spec.preprocess.max_patches:
            # Another patch budget gives other vectors: they live in an image space of their own,
            # so changing the budget re-embeds instead of mixing the two in one index.
            self.spec = self.spec.with_(image_space=f"{self.spec.space}@{self.max_patches}")
        self._threads = threads
        self._one_shot = one_shot
        self._free_batch = free_batch
        self._prefer_cpu = prefer_cpu
        self.parts = layout_of(self.spec).parts(self.spec)
        self._checks = FileChecks(self.folder, self.spec.key, self.spec.source.files)
        self._image = self._text = self._tokenizer = None
        self.text_cut = False  # the text tower runs each text at its own length (engine.models.textcut)
        self._pool = None  # threads running a fixed-batch image graph's photos side by side
        self._repacking: threading.Thread | None = None  # load_text(quick_first=True)
        self._may_load = {"image": load_image, "text": load_text}
        self._load_lock = threading.RLock()
        self._tok_lock = threading.Lock()
        self.image_graph: Graph = self.parts.image
        self._image_fp32: Graph = self.parts.image  # freed of batch 1 where it was (_image_base)
        self.text_graph: Graph = self.parts.text
        # An int8 tower made with other quantiser settings (an older photosift's 8-bit
        # weights saturate on CPUs without VNNI): the fp32 tower instead, until
        # `photosift models quantize` remakes it. Known once the image tower is loaded.
        self._int8_stale = False
        self._int8_unchecked = False
        self._check_int8 = check_int8
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        if not lazy:  # load (and check) now: errors surface here, not at the first photo
            if load_image:
                self._load_image()
            if load_text:
                self._load_text()

    def _load_image(self):
        with self._load_lock:
            if self._image is not None:
                return self._image
            if not self._may_load["image"]:
                raise ModelError(f"model {self.spec.key!r} was loaded without its image tower")
            self._image_fp32 = base = self._image_base()
            opts = self._image_opts(base)
            if self._int8:  # made by `photosift models quantize`, beside model.json, same names
                sess, graph = self._tower(base, opts, "image.int8.onnx")
                if not _int8_current(sess):
                    self._int8, self._int8_stale = False, True
                    sess, graph = self._tower(base, opts, checked=base != self.parts.image)
                elif self._check_int8:
                    from .quantize import read_check

                    self._int8_unchecked = read_check(self.folder) is None
            else:
                sess, graph = self._tower(base, opts, checked=base != self.parts.image)
            if self.naflex:
                from . import naflex

                self._naflex_base = naflex.base_of(sess)
            self.image_graph, self._image = graph, sess
            return sess

    @functools.cached_property
    def providers(self) -> list[str]:
        """ONNX Runtime's execution providers, best first (importing ONNX Runtime: not before
        a tower loads, so that a rescan with nothing new never pays for it)."""
        return available_providers(self._prefer_cpu)

    @functools.cached_property
    def _opts(self):
        return self._session_options()

    def _session_options(self, *, optimise: bool = True, threads: int | None = None,
                         prepack: bool | None = None):  # fmt: skip
        """ONNX Runtime's options for a tower. ``optimise``: False for a graph ONNX Runtime
        optimised already (engine.models.textcut); ``threads``: intra-op threads (default:
        the model's setting, else all cores); ``prepack``: repack weights for the matrix
        kernels (faster runs, slower load; default: unless one-shot)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                         else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)  # fmt: skip
        if threads or self._threads:
            opts.intra_op_num_threads = threads or self._threads
        # Idle ORT threads otherwise busy-wait between ops, taking the CPU that the
        # decode workers need to stay ahead of the encoder.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # errors only: its warnings are for graph authors, not users
        if not (prepack if prepack is not None else not self._one_shot):
            opts.add_session_config_entry("session.disable_prepacking", "1")
        return opts

    def _image_base(self) -> Graph:
        """The fp32 image graph: one fixed to batch 1 (Immich's) freed to take any batch where
        that is proved (engine.models.freebatch; derived once, at install or here), its own
        otherwise. The derived files are checked against what was recorded when they were made."""
        from . import freebatch

        if not self._free_batch:
            return self.parts.image
        graph, derived = freebatch.image_graph(self.folder, self.spec, self.parts.image)
        if derived:
            self._checks.check(self.parts.image.file)  # what it was derived from must still be intact
            for name, want in derived.items():
                self._checks.check(name, want)
        return graph

    def _image_opts(self, graph: Graph):
        """Session options for image graph ``graph``. A graph fixed to batch 1 leaves a core's
        worth of work per photo too small to share between cores: such a tower runs one
        thread per photo, as many photos at once as there are cores (measured in
        `photosift bench adapters`); others share all cores within each batch."""
        if graph.batch is None or self._threads:
            return self._opts
        from concurrent.futures import ThreadPoolExecutor

        opts = self._session_options(threads=1)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if (cores or 1) > 1:
            self._pool = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="photosift-tower")
        return opts

    def load_text(self, *, quick_first: bool = False) -> None:
        """Load the text tower now (a lazy model loads it at the first text otherwise).
        ``quick_first``: load it the one-shot way (weights used where they lie: ready in a
        tenth of the time, queries about twice as slow), answer with it, and swap in the
        repacked tower once a background thread has made it (the engine's start: the first
        search of a 100,000-photo library waited 0.57 s for the repacked one)."""
        if self._text is not None:
            return
        if not quick_first or self._one_shot:
            self._load_text()
            return
        self._load_text(prepack=False)
        self._repacking = threading.Thread(target=self._repack_text, name="photosift-text-repack",
                                           daemon=True)  # fmt: skip
        self._repacking.start()

    def close(self) -> None:
        """Wait for a background repack still building its session (a second at most): a
        process that exits while ONNX Runtime builds one aborts instead of exiting."""
        if self._repacking is not None:
            self._repacking.join()

    def _repack_text(self) -> None:
        try:
            opts = self._session_options(optimise=not self._text_optimised, prepack=True)
            sess, graph = self._tower(self.parts.text, opts, self._text_file, checked=self._text_checked)
        except Exception as e:  # the quick tower keeps answering: slower, never wrong
            log.warning("model %s: the repacked text tower could not be made (%s)", self.spec.key, e)
            return
        with self._load_lock:
            self.text_graph, self._text = graph, sess

    def _load_text(self, *, prepack: bool | None = None):
        with self._load_lock:
            if self._text is not None:
                return self._text
            if not self._may_load["text"]:
                raise ModelError(f"model {self.spec.key!r} was loaded without its text tower")
            # The tokenizer is built while the tower loads: both take a tenth of a second or
            # more, and ONNX Runtime does its part without holding the GIL.
            failed: list[BaseException] = []

            def tokenizer() -> None:
                try:
                    self.tokenizer  # noqa: B018
                except BaseException as e:  # raised in the loading thread below
                    failed.append(e)

            side = threading.Thread(target=tokenizer, name="photosift-tokenizer")
            side.start()
            try:
                sess, graph = self._cut_text_tower(prepack)
            finally:
                side.join()
            if failed:
                raise failed[0]
            self.text_graph, self._text = graph, sess
            return sess

    def _cut_text_tower(self, prepack: bool | None = None):
        """The text tower, cut to each text's length where that is proved exact (causal CLIP
        towers; see engine.models.textcut), decided once per model and remembered in text.cut.json."""
        from . import textcut

        self.text_cut = False
        full_file = self.parts.text.file
        self._text_file, self._text_checked, self._text_optimised = full_file, False, False
        base = self._opts if prepack is None else self._session_options(prepack=prepack)
        want = source_key(self.folder, full_file, self.spec.source.files)  # the decision's graph
        decision_path = self.folder / textcut.DECISION
        if self.spec.family != "clip":  # SigLIP pools the padding too: never cut
            return self._tower(self.parts.text, base)
        decision = textcut.read_decision(decision_path, want)
        if decision is not None:
            if not decision.get("graph"):
                return self._tower(self.parts.text, base)
            cut = decision["graph"]
            self._checks.check(full_file)  # what it was derived from must still be intact
            self._checks.check(cut, decision.get("file") or {})
            for data, want_data in (decision.get("data") or {}).items():
                self._checks.check(data, want_data)
            self.text_cut = True
            self._text_file, self._text_checked = cut, cut != full_file
            self._text_optimised = bool(decision.get("optimised"))
            opts = base
            if self._text_optimised:  # optimised once already (engine.models.textcut)
                opts = self._session_options(optimise=False, prepack=prepack)
            return self._tower(self.parts.text, opts, cut, checked=self._text_checked)
        full, graph = self._tower(self.parts.text, base)
        try:
            found = textcut.decide(self.folder, full_file, full, graph, self.tokenizer,
                                   self.spec.tokenizer.context_length, self._opts, self.providers)  # fmt: skip
        except OSError:  # a folder that cannot be written: no cut, decided again next time
            return full, graph
        textcut.write_decision(decision_path, want, found)
        if not found:
            return full, graph
        self.text_cut = True
        if found["graph"] == full_file:
            return full, graph
        self._text_file, self._text_checked = found["graph"], True
        self._text_optimised = bool(found.get("optimised"))
        opts = self._session_options(optimise=False, prepack=prepack) if self._text_optimised else base
        return self._tower(self.parts.text, opts, found["graph"], checked=True)

    @property
    def tokenizer(self):
        """The text tower's tokenizer (loaded on first use)."""
        with self._tok_lock:
            if self._tokenizer is None:
                from .tokenizer import Tokenizer

                self._checks.check(self.parts.tokenizer)
                self._tokenizer = Tokenizer.from_file(
                    self.folder / self.parts.tokenizer, self.spec.tokenizer
                )
            return self._tokenizer

    def _tower(self, graph: Graph, opts, file: str | None = None, *, checked: bool = False
               ) -> tuple[object, Graph]:  # fmt: skip
        """A session for one tower, and its Graph with the names the file really has (a
        photosift graph names none: its first input and output). ``checked``: a derived
        graph the caller checked (its external data are the original graph's)."""
        import onnxruntime as ort

        name = file or graph.file
        path = self.folder / name
        if not path.is_file():
            raise ModelError(f"model {self.spec.key!r}: {name} is missing from {self.folder}")
        for f in ((*_data_files(graph.file, self.spec.source.files),) if checked else
                  (name, *_data_files(name, self.spec.source.files))):  # fmt: skip
            self._checks.check(f)
        try:
            sess = ort.InferenceSession(
                os.fspath(path), sess_options=opts, providers=self.providers
            )
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"model {self.spec.key!r}: {name} cannot be loaded ({first})") from e
        inputs = {i.name: i for i in sess.get_inputs()}
        outputs = {o.name: o for o in sess.get_outputs()}
        inp = graph.input or next(iter(inputs))
        out = graph.output or next(iter(outputs))
        where = f"model {self.spec.key!r} ({self.spec.source.layout} layout): {name}"
        if inp not in inputs:
            raise ModelError(f"{where} has no input {inp!r} (it has {sorted(inputs)}); "
                             f"the file is from another export")  # fmt: skip
        if out not in outputs:
            raise ModelError(f"{where} has no output {out!r} (it has {sorted(outputs)}); "
                             f"the file is from another export")  # fmt: skip
        if graph.ids_dtype and inputs[inp].type != _ORT_TYPES[graph.ids_dtype]:
            raise ModelError(f"{where} takes {inputs[inp].type} token ids, its layout says "
                             f"{graph.ids_dtype}")  # fmt: skip
        dim = outputs[out].shape[-1]
        if isinstance(dim, int) and dim != self.spec.embed_dim:
            raise ModelError(f"{where} gives {dim}-d vectors, model.json says {self.spec.embed_dim}")
        self._check_input(name, inputs[inp].shape, graph)
        from dataclasses import replace

        first = inputs[inp].shape[0] if inputs[inp].shape else None
        # the batch the file really takes (an int8 tower made from a graph freed of batch 1 or not)
        return sess, replace(graph, input=inp, output=out, batch=first if isinstance(first, int) else None)

    def _check_input(self, name: str, shape: list, graph: Graph) -> None:
        """The network's input must be what model.json promises the preprocessing makes."""
        fixed = [d if isinstance(d, int) else None for d in shape]
        if graph.ids_dtype is None:
            want = [graph.batch, 3, *self.spec.preprocess.size]
            if self.spec.preprocess.resize_mode == "naflex":
                return  # patch sequences: checked by the NaFlex preprocessing itself
        else:
            want = [graph.batch, self.spec.tokenizer.context_length]
        if len(fixed) != len(want) or any(f is not None and w is not None and f != w
                                           for f, w in zip(fixed, want, strict=True)):  # fmt: skip
            raise ModelError(
                f"model {self.spec.key!r}: {name} takes input of shape {shape}, model.json's "
                f"settings make {['batch', *want[1:]]}; the file is from another model"
            )

    @property
    def int8(self) -> bool:
        """Whether the image tower runs in int8 (known once it is loaded: a stale int8 file, or
        one that fails its check, gives way to fp32)."""
        if self._int8 and self._image is None and self._may_load["image"]:
            self._load_image()
        return self._int8

    @property
    def int8_stale(self) -> bool:
        """The int8 tower was made with other quantiser settings, so fp32 runs instead."""
        _ = self.int8  # loading the image tower finds out
        return self._int8_stale

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def input_size(self) -> tuple[int, int]:
        """The (h, w) to decode photos at; for NaFlex, a square whose side covers every grid."""
        if self.naflex:
            from .naflex import decode_side

            side = decode_side(self.spec.preprocess.patch_size, self.max_patches)
            return side, side
        return self.spec.preprocess.size

    def preprocess(self, image):
        """Decoded upright RGB PIL image -> float32 [3, H, W] network input
        (for NaFlex models an ``engine.models.naflex.NaflexImage`` patch sequence)."""
        if self.naflex:
            from . import naflex

            return naflex.preprocess(image, self.spec.preprocess, self.max_patches)
        from .preprocess import preprocess

        return preprocess(image, self.spec.preprocess)

    def encode_images(self, pixels, *, normalize: bool = True) -> np.ndarray:
        """float32 [N, 3, H, W] (NaFlex: a list of NaflexImage) -> L2-normalised float32 [N, D]."""
        session = self._image or self._load_image()
        if self.naflex:
            from . import naflex

            out = naflex.run(session, list(pixels), self._naflex_base)
            return l2_normalize(out) if normalize else out
        if not isinstance(pixels, np.ndarray):
            pixels = np.stack(pixels)
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        out = _run(session, self.image_graph, pixels, self._pool)
        if self._int8_unchecked:
            out = self._check_int8_on(pixels, out)
        return l2_normalize(out) if normalize else out

    def _check_int8_on(self, pixels: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The int8 tower's check against fp32 on these (the first) photos; on failure, fp32 from
        here on, these photos included."""
        from .quantize import write_check

        with self._load_lock:
            if not self._int8_unchecked:
                return out
            base = self._image_fp32  # the fp32 graph the int8 tower was made from
            fp32, graph = self._tower(base, self._image_opts(base), checked=base != self.parts.image)
            want = _run(fp32, graph, pixels, self._pool)
            cos = (l2_normalize(out) * l2_normalize(want)).sum(1)
            self._int8_unchecked = False
            if write_check(self.folder, cos):
                return out
            self._image, self.image_graph, self._int8 = fp32, graph, False
            return want

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> L2-normalised float32 [N, D]. Recent texts are cached."""
        session = self._text or self._load_text()
        result: list[np.ndarray | None] = []
        missing: list[int] = []
        with self._cache_lock:
            for i, t in enumerate(texts):
                v = self._text_cache.get(t)
                if v is not None:
                    self._text_cache.move_to_end(t)
                else:
                    missing.append(i)
                result.append(v)
        if missing:
            tokens, lengths = self.tokenizer.encode_with_lengths([texts[i] for i in missing])
            ids = tokens.astype(_IDS_DTYPES[self.text_graph.ids_dtype or "int64"], copy=False)
            if not self.text_cut:
                out = _run(session, self.text_graph, ids)
            elif self.text_graph.batch == 1:  # one at a time anyway: each at its own length
                out = np.concatenate([_run(session, self.text_graph, ids[i : i + 1, :n])
                                      for i, n in enumerate(lengths)])  # fmt: skip
            else:  # the padding after the longest text's end cannot change any embedding
                out = _run(session, self.text_graph, ids[:, : max(lengths)])
            vecs = l2_normalize(out)
            with self._cache_lock:
                for i, v in zip(missing, vecs, strict=True):
                    result[i] = v
                    self._text_cache[texts[i]] = v
                while len(self._text_cache) > 1024:
                    self._text_cache.popitem(last=False)
        return np.stack(result).astype(np.float32)  # type: ignore[arg-type]


# Files beside a graph that are not its external data (configs, tokenizers, other graphs).
_NOT_DATA = (".onnx", ".json", ".txt", ".gz", ".md", ".model", ".armnn", ".rknn", ".safetensors",
             ".bin", ".pt")


def _data_files(graph: str, listed) -> list[str]:
    """The files model.json lists that hold ``graph``'s external data: those in its folder that
    are no config, tokenizer or graph, and (where several graphs share the folder, as
    transformers.js's ``onnx/``) named after it."""
    folder, _, name = graph.rpartition("/")
    here = [f for f in listed if f.rpartition("/")[0] == folder and f != graph]
    graphs = [f.rpartition("/")[2] for f in here if f.endswith(".onnx")]
    data = [f for f in here if not f.lower().endswith(_NOT_DATA)]
    if graphs:  # data files of graphs that share a folder carry their graph's name
        data = [f for f in data if f.rpartition("/")[2].startswith(name) or
                not any(f.rpartition("/")[2].startswith(g) for g in graphs)]  # fmt: skip
    return data


def _run(session, graph: Graph, x: np.ndarray, pool=None) -> np.ndarray:
    """One tower's embeddings of a batch; a graph fixed to batch b (Immich's: 1) runs b at a
    time, on ``pool``'s threads at once where there is one (see OnnxModel._image_opts)."""
    if graph.batch is None or len(x) == graph.batch:
        return session.run([graph.output], {graph.input: x})[0]
    if len(x) % graph.batch:
        raise ModelError(f"{graph.file} takes batches of {graph.batch}, not {len(x)}")

    def one(i: int) -> np.ndarray:
        return session.run([graph.output], {graph.input: x[i : i + graph.batch]})[0]

    starts = range(0, len(x), graph.batch)
    return np.concatenate(list(pool.map(one, starts)) if pool is not None else [one(i) for i in starts])


def _int8_current(session) -> bool:
    """Whether an int8 session's graph was made with this version's quantiser settings."""
    from .quantize import SETTINGS_KEY, current_settings

    made_with = session.get_modelmeta().custom_metadata_map.get(SETTINGS_KEY)
    return made_with == current_settings()
