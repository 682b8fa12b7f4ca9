"""What every layout adapter provides, and the pieces they share.

A *layout* is the way a publisher lays a model's files out: which files, where, what the
graphs take and give, and how text becomes token ids. A model folder keeps its files as
the publisher laid them out (paths relative to the repo's root), with photosift's
``model.json`` beside them; the layout named in ``model.json`` (``source.layout``) maps them
onto the runtime. Which adapter applies is data in the registry entry, never a guess from
file names; only ``photosift models import`` looks at a folder to recognise its layout,
because a folder copied from a hub carries no registry entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ModelError
from ..registry import ModelSpec, Preprocess, Source, TokenizerSpec


@dataclass(frozen=True)
class Graph:
    """One tower's ONNX graph, as its exporter made it."""

    file: str  # path in the model folder (the repo's path)
    input: str  # the input that takes pixels (float32 NCHW) or token ids
    output: str  # the output that holds the embedding
    ids_dtype: str | None = None  # text graphs: "int32" or "int64"
    batch: int | None = None  # the batch size the graph is fixed to (Immich: 1); None: any
    normalized: bool = False  # L2-normalised inside the graph


@dataclass(frozen=True)
class Parts:
    """What the runtime loads from a model folder."""

    image: Graph
    text: Graph
    tokenizer: str  # tokenizer.json, or CLIP's bpe_simple_vocab_16e6.txt.gz


class Layout:
    """One publisher's layout. Subclasses say where things are, from that publisher's code."""

    name: ClassVar[str]

    def parts(self, spec: ModelSpec) -> Parts:
        raise NotImplementedError

    def required_files(self, spec: ModelSpec) -> list[str]:
        """The repo files this layout always needs (graphs, tokenizer, configs)."""
        p = self.parts(spec)
        return list(dict.fromkeys([p.image.file, p.text.file, p.tokenizer]))

    def optional_files(self, spec: ModelSpec) -> list[str]:
        """Files taken where the repo has them (licences), needed by nothing that runs."""
        return []

    def wanted(self, spec: ModelSpec, repo_files: Iterable[str] | None) -> list[str]:
        """Of a repo's files, those to download or import: the required ones (all of them:
        one the repo lacks fails by name), the optional ones it has, and what the graphs
        need beside them (ONNX external-data files). ``None``: the listing is not known
        (offline), so the required files alone."""
        required = self.required_files(spec)
        if repo_files is None:
            return required
        have = set(repo_files)
        optional = [f for f in self.optional_files(spec) if f in have]
        known = set(required) | set(optional)
        extra = [f for f in sorted(have) if f not in known and self._belongs(spec, f)]
        return required + optional + extra

    def _belongs(self, spec: ModelSpec, path: str) -> bool:
        """Whether a repo file beyond the fixed ones is part of the model (external data)."""
        return False

    # -- offline import -------------------------------------------------------------------

    @classmethod
    def recognise(cls, folder: Path) -> bool:
        """Whether ``folder`` is laid out this way (for `photosift models import`)."""
        return False

    def describe(self, folder: Path, *, key: str, known: ModelSpec | None) -> ModelSpec:
        """The spec of a folder laid out this way, from the files that describe it; ``known``
        is the registry entry the folder was matched to, if any (its name, licence, logit
        scale and bias, which no export carries)."""
        raise NotImplementedError

    def matches(self, spec: ModelSpec, folder: Path) -> bool:
        """Whether registry entry ``spec`` is the model in ``folder``: same layout, and the
        folder is named as the entry's repo (``hf download REPO --local-dir NAME``)."""
        repo = spec.source.hf_repo or ""
        return spec.source.layout == self.name and repo.rpartition("/")[2] == Path(folder).name


def read_json(folder: Path, name: str) -> dict[str, Any]:
    """A JSON file of a model folder; errors name the file (and the line)."""
    path = Path(folder) / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing (the folder's layout needs it)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        line = f"line {e.lineno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else str(e)
        raise ModelError(f"{path}: not valid JSON ({line})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


def field(d: dict[str, Any], key: str, where: str, typ: type | tuple[type, ...]) -> Any:
    """``d[key]``, which must be a ``typ``; errors name the file and the field."""
    if key not in d:
        raise ModelError(f"{where}: missing field '{key}'")
    value = d[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise ModelError(f"{where}: field '{key}' has the wrong type ({type(value).__name__})")
    return value


def pad_token_of(tok_cfg: dict, where: str) -> str:
    """tokenizer_config.json's pad_token (a string, or an AddedToken dict in newer files)."""
    pad = tok_cfg.get("pad_token")
    if isinstance(pad, dict):
        pad = pad.get("content")
    if not isinstance(pad, str) or not pad:
        raise ModelError(f"{where}: field 'pad_token' is missing (the text tower pads with it)")
    return pad


def external_data_of(graph: Path) -> list[str]:
    """The external-data files an ONNX graph refers to (paths relative to its folder), read
    from its initializers without loading them. ``onnx`` reads the graph's protobuf only."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    try:
        model = onnx.load(str(graph), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends for a damaged file
        raise ModelError(f"{graph}: not a readable ONNX graph ({type(e).__name__}: {e})") from None
    found: list[str] = []
    tensors = list(model.graph.initializer)
    for node in model.graph.node:  # Constant nodes may keep their value outside too
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    for t in tensors:
        if uses_external_data(t):
            found.append(ExternalDataInfo(t).location)
    return list(dict.fromkeys(found))


def unknown_spec(folder: Path, family: str) -> ModelSpec:
    """The parts of a spec that no file of a folder matched to no registry entry holds: its
    describe() fills in the rest from the folder's own files."""
    return ModelSpec(
        key="", name=f"{Path(folder).name} (imported)", family=family,
        architecture=Path(folder).name, embed_dim=0,
        preprocess=Preprocess((1, 1), (0, 0, 0), (1, 1, 1)), tokenizer=TokenizerSpec("hf", 1),
        source=Source(), license="see the original model's licence",
        description=f"Imported from the folder {Path(folder).name}.",
    )  # fmt: skip
