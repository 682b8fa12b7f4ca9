"""Vocabularies: checking, the three file formats, errors that name the line, starters."""

from __future__ import annotations

import json

import pytest

from engine.tags import vocab as V


def test_labels_in_any_script_and_duplicates_up_to_case():
    v = V.make_vocabulary(
        "mixed", ["猫", "قطة", "🐱", "Cat", {"name": "my cat Miso", "synonyms": ["Miso"]}]
    )
    assert [lab.name for lab in v.labels] == ["猫", "قطة", "🐱", "Cat", "my cat Miso"]
    with pytest.raises(V.VocabularyError, match="'cat' is already there"):
        V.make_vocabulary("dup", ["Cat", "cat"])
    with pytest.raises(V.VocabularyError, match="label 2.*empty"):
        V.make_vocabulary("empty", ["cat", "   "])
    with pytest.raises(V.VocabularyError, match="exactly once"):
        V.make_vocabulary("t", ["cat"], templates=["a photo"])


def test_ten_thousand_labels_fine_and_limit_enforced():
    v = V.make_vocabulary("big", [f"label {i}" for i in range(10_000)])
    assert len(v.labels) == 10_000
    with pytest.raises(V.VocabularyError, match="at most"):
        V.make_vocabulary("huge", [f"l{i}" for i in range(V.MAX_LABELS + 1)])


def test_prompt_texts_templates_synonyms_and_own_prompts():
    tpl = ("a photo of a {}.", "a close-up photo of a {}.")
    assert V.prompt_texts(V.Label("cat", ("kitty",)), tpl) == [
        "a photo of a cat.", "a close-up photo of a cat.", "a photo of a kitty.", "a close-up photo of a kitty.",
    ]  # fmt: skip
    assert V.prompt_texts(V.Label("Miso", prompts=("my grey cat Miso",)), tpl) == [
        "my grey cat Miso"
    ]


@pytest.mark.parametrize("fmt", ["json", "csv", "txt"])
def test_round_trip(tmp_path, fmt):
    v = V.make_vocabulary("pets", ["dog", {"name": "cat, tabby", "synonyms": ["kitty", "猫"], "threshold": 0.2},
                                   {"name": "Miso", "prompts": ["my cat \"Miso\""]}],
                          templates=["a photo of a {}.", "a {}"])  # fmt: skip
    p = V.write_file(v, tmp_path / f"pets.{fmt}")
    back = V.read_file(p)
    assert back.name == "pets"
    if fmt == "txt":
        assert [lab.name for lab in back.labels] == ["dog", "cat, tabby", "Miso"]
    else:
        assert back.labels == v.labels
    if fmt == "json":
        assert back.templates == v.templates


@pytest.mark.parametrize(
    "name,text,message",
    [
        (
            "bad.json",
            '{"name": "x",\n "labels": ["a",\n "b",,]}',
            r"bad.json: line 3, column 6: not valid JSON",
        ),
        (
            "dup.json",
            '{"labels": [\n "a",\n "b",\n "A"\n]}',
            r"dup.json: line 4: label 'A' is already there \(line 2\)",
        ),
        (
            "field.json",
            '{"labels": [\n "a",\n {"name": "b", "colour": 1}\n]}',
            r"field.json: line 3: unknown field 'colour'",
        ),
        ("empty.json", '{"labels": [\n "a",\n ""\n]}', r"empty.json: line 3: the label is empty"),
        (
            "dup.csv",
            "name,synonyms\ncat,kitty\ndog,\nCAT,\n",
            r"dup.csv: line 4: label 'CAT' is already there \(line 2\)",
        ),
        ("cells.csv", "name\ncat\ndog,extra\n", r"cells.csv: line 3: 2 cells"),
        (
            "thr.csv",
            "name,threshold\ncat,high\n",
            r"thr.csv: line 2: threshold 'high' is not a number",
        ),
        (
            "noname.csv",
            "label_name\ncat\n",
            r"noname.csv: line 1: the header needs a \"name\" column",
        ),
        (
            "dup.txt",
            "# pets\ncat\n\ndog\ncat\n",
            r"dup.txt: line 5: label 'cat' is already there \(line 2\)",
        ),
        ("ctrl.txt", "cat\ndo\x07g\n", r"ctrl.txt: line 2: the label holds control characters"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    with pytest.raises(V.VocabularyError, match=message):
        V.read_file(p)


def test_not_utf8_names_the_line(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("cat\ndog\nch\xe2teau\n".encode("latin-1"))
    with pytest.raises(V.VocabularyError, match="line 3: not UTF-8"):
        V.read_file(p)


def test_txt_skips_blank_and_comment_lines_and_bom(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("\ufeff# my labels\n\ncat\n  dog  \n".encode())
    assert [lab.name for lab in V.read_file(p).labels] == ["cat", "dog"]


def test_starters_load_and_shapes_world_matches_its_generator():
    from engine.bench.tagging import shapes_world_vocabulary_json

    names = V.starters()
    assert {"shapes-world", "scenes", "objects", "documents", "animals"} <= set(names)
    for key in names:
        v = V.load_starter(key)
        assert len(v.labels) >= 10, key
    on_disk = json.loads(names["shapes-world"].read_text(encoding="utf-8"))
    assert on_disk == shapes_world_vocabulary_json()


def test_the_demo_starter_comes_first_only_for_the_demo_model():
    from engine.tags.vocab import DEMO_STARTER, starters, starters_for

    assert set(starters_for("photosift-demo", "photosift-demo")) == set(starters())
    assert starters_for("photosift-demo", "photosift-demo")[0] == DEMO_STARTER
    assert starters_for("vit-b-32-256-datacomp", "photosift-demo")[-1] == DEMO_STARTER
