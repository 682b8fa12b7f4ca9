"""engine.models.tokenizer (tokenizer.json, no torch) against open_clip's own tokenizers."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

from engine.errors import ModelError
from engine.models.registry import TokenizerSpec
from engine.models.tokenizer import Tokenizer

open_clip = pytest.importorskip("open_clip", reason="open_clip is the reference tokenizer")

TEXTS = [
    "a photo of a cat",
    "A PHOTO OF A Cat!!!",
    "kids on a red slide at dusk",
    "",
    "   ",
    "hello,world;foo...bar?!",
    "it's I'M we'll THEY'D you've she's",
    "snake_case, CamelCase and kebab-case",
    "123456 3.14 1,000 2024-05-01",
    "日本語のテキスト 猫が好き",
    "中文：一只猫坐在沙发上。",
    "مرحبا بالعالم",
    "שלום עולם",
    "Привет, МИР",
    "ΟΔΟΣ ΣΟΦΟΣ",
    "😀🐱‍👤 👍🏽 emoji 🇫🇷",
    unicodedata.normalize("NFD", "Crème brûlée in Zürich, Ångström"),
    "İstanbul ǅemal straße ﬁne",
    "“curly” ‘quotes’ and ＦＵＬＬＷＩＤＴＨ",
    "a &amp; b &lt;3 &#39;x&#39;",
    "tab\tnew\nline\u00a0nbsp\u2003em\u3000ideographic",
    "ÃƒÂ© mojibake",
    "\x1c\x1dseparators\x85",
    "zero\u200bwidth",
    "word " * 200,
    "x" * 500,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


@pytest.fixture(scope="module")
def clip_json(tmp_path_factory):
    from engine.models.clip_bpe import write_clip_tokenizer_json

    return write_clip_tokenizer_json(tmp_path_factory.mktemp("tok") / "tokenizer.json")


@pytest.mark.parametrize("context_length", [77, 16])
def test_clip_bpe_matches_open_clip_tokenize(clip_json, context_length):
    tok = Tokenizer.from_file(clip_json, TokenizerSpec("clip_bpe", context_length))
    got = tok.encode(TEXTS)
    want = open_clip.tokenize(TEXTS, context_length=context_length).numpy()
    assert got.dtype == np.int64 and got.shape == (len(TEXTS), context_length)
    bad = [t[:40] for t, g, w in zip(TEXTS, got, want, strict=True) if not np.array_equal(g, w)]
    assert not bad, f"differs from open_clip.tokenize for {bad}"


def test_clip_bpe_truncation_keeps_eot_last(clip_json):
    tok = Tokenizer.from_file(clip_json, TokenizerSpec("clip_bpe", 77))
    ids = tok.encode(["word " * 200, "a cat"])
    assert ids[0, 0] == tok.sot_id and ids[0, -1] == tok.eot_id and (ids[0] != 0).all()
    assert ids[1, 0] == tok.sot_id and ids[1, 3] == tok.eot_id and (ids[1, 4:] == 0).all()


def test_bare_string_and_empty_list(clip_json):
    tok = Tokenizer.from_file(clip_json, TokenizerSpec("clip_bpe", 77))
    assert tok.encode("a cat").shape == (1, 77)
    assert tok.encode([]).shape == (0, 77)


def test_bad_tokenizer_files_raise_model_error(tmp_path):
    spec = TokenizerSpec("clip_bpe", 77)
    with pytest.raises(ModelError, match="missing"):
        Tokenizer.from_file(tmp_path / "nope.json", spec)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="not a valid"):
        Tokenizer.from_file(bad, spec)


@pytest.fixture(scope="module")
def hf_reference(tmp_path_factory):
    """A Gemma-style tokenizer as a hub repo holds it, loaded the way open_clip loads SigLIP 2's."""
    pytest.importorskip("transformers", reason="open_clip's HFTokenizer is built on transformers")
    from open_clip.tokenizer import HFTokenizer

    from training.testmodels.tiny import write_tiny_hf_tokenizer_repo

    repo = tmp_path_factory.mktemp("hf-repo")
    write_tiny_hf_tokenizer_repo(repo)
    # ViT-B-16-SigLIP2-256's text_cfg: context 64, tokenizer_kwargs clean=canonicalize.
    cfg = open_clip.get_model_config("ViT-B-16-SigLIP2-256")["text_cfg"]
    return HFTokenizer(
        str(repo), context_length=cfg["context_length"], **cfg.get("tokenizer_kwargs", {})
    )


def _hf_mismatches(tok, reference, texts):
    got = tok.encode(texts)
    want = reference(texts).numpy()
    assert got.shape == want.shape
    return [t[:40] for t, g, w in zip(texts, got, want, strict=True) if not np.array_equal(g, w)]


def test_hf_matches_open_clip_hftokenizer(hf_reference, tmp_path):
    from training.export.tokenizer_json import open_clip_tokenizer_json

    path = open_clip_tokenizer_json(hf_reference, tmp_path / "tokenizer.json")
    tok = Tokenizer.from_file(path, TokenizerSpec("hf", 64))
    texts = [t for t in TEXTS if t != "ΟΔΟΣ ΣΟΦΟΣ"]
    assert not _hf_mismatches(tok, hf_reference, texts)
    ids = tok.encode(["word " * 200])
    assert ids.shape == (1, 64) and ids[0, -1] == 1  # <eos> kept when truncated


def test_hf_known_difference_final_sigma(hf_reference, tmp_path):
    """Documented gap: the Rust lowercase does not know Greek final sigma (Python's does)."""
    from training.export.tokenizer_json import open_clip_tokenizer_json

    path = open_clip_tokenizer_json(hf_reference, tmp_path / "tokenizer.json")
    tok = Tokenizer.from_file(path, TokenizerSpec("hf", 64))
    assert _hf_mismatches(tok, hf_reference, ["ΟΔΟΣ"]) == ["ΟΔΟΣ"]


def test_tiny_siglip_tokenizer_is_the_baked_reference(hf_reference, tmp_path):
    from training.testmodels.tiny import write_tiny_gemma_tokenizer

    path = write_tiny_gemma_tokenizer(tmp_path / "tokenizer.json")
    tok = Tokenizer.from_file(path, TokenizerSpec("hf", 64))
    texts = [t for t in TEXTS if t != "ΟΔΟΣ ΣΟΦΟΣ"]
    assert not _hf_mismatches(tok, hf_reference, texts)


def test_plain_ascii_skips_ftfy_with_the_same_result():
    """Printable ASCII without '&' is what ftfy returns unchanged (random strings and edge cases)."""
    import random
    import string

    import ftfy

    from engine.models.tokenizer import _fix_text

    rng = random.Random(0)
    alphabet = string.printable.replace("&", "")[:95]  # printable ASCII, no whitespace controls
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    texts += ['a "quoted" photo', "it's `odd`", "<b>bold</b>", "x;y", "  spaced  ", "--", "'"]
    for t in texts:
        assert _fix_text(t) == ftfy.fix_text(t), t
    assert _fix_text("caf\u00e9 &amp; bar") == ftfy.fix_text("caf\u00e9 &amp; bar")  # not skipped
