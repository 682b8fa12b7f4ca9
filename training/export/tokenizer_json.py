"""Turn an open_clip tokenizer into the tokenizer.json a model folder carries.

The engine tokenises from tokenizer.json alone (``engine.models.tokenizer``): for kind
``clip_bpe`` it re-creates open_clip's SimpleTokenizer (see ``engine.models.clip_bpe``); for
kind ``hf`` the tokenizer.json must already behave like open_clip's
``HFTokenizer``. Two things transformers and open_clip add on top of a hub
tokenizer.json are therefore baked in here:

* the post-processor, padding and truncation transformers configured from
  ``tokenizer_config.json`` (e.g. SigLIP 2's Gemma tokenizer: no ``<bos>``,
  ``<eos>`` appended, ``<pad>`` = 0);
* open_clip's model-specific cleaning beyond whitespace, i.e. SigLIP's
  ``canonicalize`` (``_`` -> space, ASCII punctuation removed, lowercase,
  whitespace collapsed), as normaliser steps in front of the tokenizer's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# string.punctuation as character ranges: 0x21-0x2F, 0x3A-0x40, 0x5B-0x60, 0x7B-0x7E.
ASCII_PUNCTUATION = r"[!-/:-@\[-`{-~]"


def canonicalize_normalizer():
    """Normaliser steps equal to open_clip's ``canonicalize_text`` after ``basic_clean``.

    The engine has already collapsed whitespace and run ftfy/HTML unescape on
    the Python side; one known difference remains: the Rust lowercase is per
    character, so a word-final capital sigma becomes 'σ' where Python gives 'ς'.
    """
    from tokenizers import Regex, normalizers

    return normalizers.Sequence(
        [
            normalizers.Replace("_", " "),
            normalizers.Replace(Regex(ASCII_PUNCTUATION), ""),
            normalizers.Lowercase(),
            normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Strip(),
        ]
    )


def bake_clean(backend, clean: str) -> None:
    """Put open_clip's ``clean`` mode into ``backend``'s normaliser (in place)."""
    from tokenizers import normalizers

    if clean == "whitespace":  # the engine's Python-side cleaning already does this
        return
    if clean == "lower":
        steps = [normalizers.Lowercase()]
    elif clean == "canonicalize":
        steps = [canonicalize_normalizer()]
    else:
        raise ValueError(f"unknown open_clip clean mode {clean!r}")
    if backend.normalizer is not None:
        steps.append(backend.normalizer)
    backend.normalizer = normalizers.Sequence(steps)


def configure_fixed_length(backend, context_length: int, pad_id: int, pad_token: str) -> None:
    """Pad and truncate to the context length, as transformers' ``padding="max_length"``."""
    backend.enable_truncation(max_length=context_length)
    backend.enable_padding(pad_id=pad_id, pad_token=pad_token, length=context_length)


def open_clip_tokenizer_json(oc_tokenizer: Any, path: Path, clean: str | None = None) -> Path:
    """Write the tokenizer.json equivalent of an open_clip tokenizer object.

    ``oc_tokenizer`` is what ``open_clip.get_tokenizer(name)`` returns: a
    ``SimpleTokenizer`` (written with ``engine.models.clip_bpe``) or an ``HFTokenizer``
    (its transformers backend, as configured, plus ``clean`` baked in; ``clean``
    defaults to the mode the open_clip tokenizer was built with when it can be
    told, else "whitespace").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    hf = getattr(oc_tokenizer, "tokenizer", None)
    if hf is None:  # SimpleTokenizer
        from engine.models.clip_bpe import build_clip_tokenizer

        build_clip_tokenizer().save(str(tmp))
        tmp.replace(path)
        return path
    from tokenizers import Tokenizer

    # A copy of the backend: the open_clip tokenizer must stay as it was.
    backend = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    if clean is None:
        clean = _clean_mode_of(oc_tokenizer)
    bake_clean(backend, clean)
    pad_id = hf.pad_token_id if hf.pad_token_id is not None else 0
    pad_token = hf.pad_token or backend.id_to_token(pad_id) or "<pad>"
    configure_fixed_length(backend, oc_tokenizer.context_length, pad_id, pad_token)
    backend.save(str(tmp))
    tmp.replace(path)
    return path


def _clean_mode_of(oc_tokenizer: Any) -> str:
    fn = getattr(oc_tokenizer, "clean_fn", None)
    name = getattr(fn, "__name__", "")
    for mode in ("canonicalize", "lower", "whitespace"):
        if name == f"_clean_{mode}":
            return mode
    return "whitespace"
