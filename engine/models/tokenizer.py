"""Text -> token ids for a model's text tower, from a tokenizer.json (no torch).

Two kinds, matching what open_clip does at training time:

``clip_bpe``
    open_clip's ``tokenize()``: clean (ftfy, HTML unescape twice, collapse
    whitespace, lowercase), BPE, then ``[sot] tokens [eot]`` zero-padded to the
    context length; a text that is too long is cut and its last slot set back to
    ``eot`` (the CLIP text tower pools at the eot position).
``hf``
    open_clip's ``HFTokenizer``: clean (ftfy, HTML unescape, collapse
    whitespace), then the tokenizer.json does everything else: normalisation,
    special tokens, truncation, padding to the context length (transformers'
    ``padding="max_length", truncation=True``). Model-specific cleaning such as
    SigLIP's ``canonicalize`` (lowercase, ASCII punctuation removed) is either
    baked into the tokenizer.json's normaliser (photosift's own exports) or named
    by the model's ``tokenizer.clean`` (a hub tokenizer.json as it comes, where
    transformers would take the pad token from tokenizer_config.json: the spec's
    ``pad_token``).

A ``clip_bpe`` tokenizer loads from a tokenizer.json or straight from CLIP's
``bpe_simple_vocab_16e6.txt.gz`` merges file, as rclip's model repo ships it.

ftfy is optional: without it the cleaning falls back to NFC normalisation, which
covers the common case (decomposed accents) but not ftfy's repairs of mojibake,
curly quotes or full-width characters.
"""

from __future__ import annotations

import html
import os
import string
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .registry import TokenizerSpec

# Names the start/end tokens go by in open_clip's and in transformers' CLIP vocabularies.
_SOT_NAMES = ("<start_of_text>", "<|startoftext|>")
_EOT_NAMES = ("<end_of_text>", "<|endoftext|>")


def _fix_text(text: str) -> str:
    if text.isascii() and text.isprintable() and "&" not in text:
        # What ftfy repairs is mojibake, odd quotes, widths, ligatures, control characters and
        # HTML entities: printable ASCII without "&" holds none of them, and most typed queries
        # are that (importing ftfy costs a one-shot search 30 ms; tested equal to ftfy's).
        return text
    try:
        import ftfy
    except ImportError:  # optional: NFC is the part of ftfy that matters for typed queries
        return unicodedata.normalize("NFC", text)
    return ftfy.fix_text(text)


def basic_clean(text: str) -> str:
    """open_clip's ``basic_clean``: ftfy, HTML unescape (twice), strip."""
    return html.unescape(html.unescape(_fix_text(text))).strip()


def whitespace_clean(text: str) -> str:
    """Collapse runs of whitespace (Python's definition, as open_clip) to one space."""
    return " ".join(text.split())


def clean_lower(text: str) -> str:
    """open_clip's ``clean="lower"``, the SimpleTokenizer default."""
    return whitespace_clean(basic_clean(text)).lower()


def clean_whitespace(text: str) -> str:
    """open_clip's ``clean="whitespace"``, the HFTokenizer default."""
    return whitespace_clean(basic_clean(text))


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def clean_canonicalize(text: str) -> str:
    """open_clip's ``clean="canonicalize"`` (SigLIP, SigLIP 2: ``canonicalize_text`` after
    ``basic_clean``): ``_`` to space, ASCII punctuation removed, lowercase, whitespace
    collapsed. Immich's client does the same minus the ``_`` (immich_ml/models/transforms.py
    ``clean_text``); open_clip's is what the models were evaluated with."""
    text = basic_clean(text).replace("_", " ").translate(_PUNCTUATION).lower()
    return whitespace_clean(text)


CLEANERS: dict[str, Callable[[str], str]] = {
    "lower": clean_lower,
    "whitespace": clean_whitespace,
    "canonicalize": clean_canonicalize,
}


class Tokenizer:
    """Encodes texts to int64 token ids of shape [N, context_length]."""

    def __init__(self, backend, spec: TokenizerSpec, clean: Callable[[str], str]):
        self._tok = backend
        self.spec = spec
        self.context_length = spec.context_length
        self._clean = clean
        if spec.kind == "clip_bpe":
            self.sot_id = _find_id(backend, _SOT_NAMES)
            self.eot_id = _find_id(backend, _EOT_NAMES)
            # Special tokens, truncation and padding are done here, exactly like open_clip.
            backend.no_truncation()
            backend.no_padding()
        else:
            pad = backend.padding
            if spec.pad_token is not None:  # tokenizer_config.json's, as transformers reads it
                pad_id = _find_id(backend, (spec.pad_token,))
                pad_token = spec.pad_token
            else:
                pad_id = pad["pad_id"] if pad else _find_id(backend, ("<pad>",), default=0)
                pad_token = pad["pad_token"] if pad else (backend.id_to_token(pad_id) or "<pad>")
            trunc = backend.truncation
            backend.enable_truncation(
                max_length=self.context_length,
                strategy=trunc["strategy"] if trunc else "longest_first",
                direction=trunc["direction"] if trunc else "right",
            )
            backend.enable_padding(
                pad_id=pad_id,
                pad_token=pad_token,
                length=self.context_length,
                direction=pad["direction"] if pad else "right",
            )

    @classmethod
    def from_file(cls, path: Path, spec: TokenizerSpec) -> Tokenizer:
        """Load a tokenizer.json (or, for ``clip_bpe``, CLIP's ``.txt.gz`` merges file) for
        ``spec`` (its kind, context length, pad token and cleaning)."""
        from tokenizers import Tokenizer as HFTokenizer

        if spec.kind not in ("clip_bpe", "hf"):
            raise ModelError(f"unknown tokenizer kind {spec.kind!r}")
        if spec.context_length < 2:
            raise ModelError(f"tokenizer context length {spec.context_length} is too short")
        if not Path(path).is_file():
            raise ModelError(f"{path}: tokenizer file is missing")
        try:
            if spec.kind == "clip_bpe" and Path(path).name.endswith(".txt.gz"):
                from .clip_bpe import build_clip_tokenizer

                backend = build_clip_tokenizer(Path(path))
            else:
                backend = HFTokenizer.from_file(os.fspath(path))
        except Exception as e:  # tokenizers raises a bare Exception for malformed JSON
            raise ModelError(f"{path}: not a valid tokenizer file ({_first_line(e)})") from e
        clean = spec.clean or ("lower" if spec.kind == "clip_bpe" else "whitespace")
        return cls(backend, spec, CLEANERS[clean])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids int64 [len(texts), context_length]; an empty text gives just the specials."""
        return self.encode_with_lengths(texts)[0]

    def encode_with_lengths(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """``encode`` and, per text, how many of its ids are not padding (specials included)."""
        if isinstance(texts, str):  # a bare string would otherwise be split into characters
            texts = [texts]
        cleaned = [self._clean(t) for t in texts]
        n, length = len(cleaned), self.context_length
        if self.spec.kind == "hf":
            if n == 0:
                return np.zeros((0, length), dtype=np.int64), []
            encs = self._tok.encode_batch(cleaned)
            return np.array([e.ids for e in encs], dtype=np.int64), [sum(e.attention_mask) for e in encs]
        out = np.zeros((n, length), dtype=np.int64)
        lengths = []
        for i, enc in enumerate(self._tok.encode_batch(cleaned, add_special_tokens=False)):
            ids = [self.sot_id, *enc.ids, self.eot_id]
            if len(ids) > length:
                ids = ids[:length]
                ids[-1] = self.eot_id  # the text tower pools at eot: keep it
            out[i, : len(ids)] = ids
            lengths.append(len(ids))
        return out, lengths


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _find_id(backend, names: Sequence[str], default: int | None = None) -> int:
    for name in names:
        i = backend.token_to_id(name)
        if i is not None:
            return i
    if default is not None:
        return default
    raise ModelError(f"tokenizer.json has none of the tokens {list(names)}")
