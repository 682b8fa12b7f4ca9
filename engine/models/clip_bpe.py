"""CLIP's BPE tokenizer as a Hugging Face ``tokenizers`` tokenizer.json.

open_clip's ``SimpleTokenizer`` is pure Python and needs torch at import; the
engine runs the same tokenisation from a tokenizer.json instead. This builds that
tokenizer from a ``bpe_simple_vocab_16e6.txt.gz`` merges file (the one open_clip
ships; rclip's model repo carries the same file as ``tokenizer/``), laid out the
way transformers' ``CLIPConverter`` does it:

* normaliser: NFC, whitespace runs -> one space, lowercase;
* pre-tokeniser: CLIP's split regex (words, single digits, punctuation runs and
  the English clitics), then the GPT-2 byte-to-unicode map (no second regex);
* model: BPE with ``</w>`` appended to the last symbol of each word, so the ids
  are exactly SimpleTokenizer's (256 bytes, 256 bytes + ``</w>``, 48,894
  merges, then the two special tokens: 49,408 in all);
* post-processor: ``<start_of_text> $A <end_of_text>``.

The runtime (``engine.models.tokenizer``) still does open_clip's Python-side cleaning
(ftfy, HTML unescape) and the truncation that keeps the end token last.
"""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path

SOT = "<start_of_text>"
EOT = "<end_of_text>"
# The regex of open_clip's SimpleTokenizer, minus the special-token alternatives:
# special tokens are matched as added tokens before pre-tokenisation.
CLIP_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
N_MERGES = 49152 - 256 - 2  # what SimpleTokenizer keeps of the merges file


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (same as open_clip's)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def open_clip_bpe_path() -> Path:
    """The merges file inside the installed open_clip, found without importing it (no torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed; it ships the CLIP BPE merges file")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the open_clip install")
    return path


def _first_lines(gz: Path, n: int) -> list[str]:
    """The first ``n`` lines of gzip file ``gz``, decompressing no further than they reach: CLIP
    uses the first 48,895 of the merges file's 262,146 lines, and decompressing the rest cost a
    one-shot search 25 ms (of the tokenizer's 80)."""
    unzip = zlib.decompressobj(wbits=31)  # gzip framing
    got = bytearray()
    with open(gz, "rb") as f:
        while got.count(b"\n") < n:
            chunk = f.read(1 << 16)
            if not chunk:
                got += unzip.flush()
                break
            got += unzip.decompress(chunk)
    return got.decode("utf-8").split("\n")[:n]


def build_clip_tokenizer(bpe_path: Path | None = None):
    """A ``tokenizers.Tokenizer`` with SimpleTokenizer's vocabulary and behaviour."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    lines = _first_lines(bpe_path or open_clip_bpe_path(), N_MERGES + 1)
    merges = [tuple(m.split()) for m in lines[1 : N_MERGES + 1]]
    byte_chars = list(bytes_to_unicode().values())
    vocab_list = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    vocab_list += [SOT, EOT]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    if len(vocab) != len(vocab_list):  # the CLIP file has no duplicates; a different file might
        raise ValueError("BPE merges file yields duplicate vocabulary entries")

    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
            # SimpleTokenizer has no unknown token: every byte is in the vocabulary.
        )
    )
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
            # use_regex=False: CLIP splits once, with its own regex above.
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    # Bytes back to text first, then the end-of-word marks become spaces.
    tok.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace("</w>", " ")])
    # SimpleTokenizer's regex matches its special tokens anywhere in the text.
    tok.add_special_tokens([AddedToken(SOT, normalized=True), AddedToken(EOT, normalized=True)])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}",
        special_tokens=[(SOT, vocab[SOT]), (EOT, vocab[EOT])],
    )
    return tok


def write_clip_tokenizer_json(path: Path, bpe_path: Path | None = None) -> Path:
    """Write the CLIP tokenizer.json to ``path`` (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    build_clip_tokenizer(bpe_path).save(str(tmp))
    tmp.replace(path)
    return path
