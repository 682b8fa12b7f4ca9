"""`photosift vocab ...`, `photosift tag ...` and `photosift search --tag` end to end."""

from __future__ import annotations

import json

import pytest

from app.sampledata import world_photos
from engine.cli import main


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("tagcli")
    photos = world_photos(root / "photos", 16)
    base = ["--data-dir", str(root / "data"), "--model", "photosift-demo"]
    assert main([*base, "index", str(root / "photos")]) == 0
    return root, base, photos


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_vocab_and_tag_commands(library, capsys, tmp_path):
    root, base, photos = library
    code, out, _ = run(capsys, *base, "vocab", "create", "world", "--starter", "shapes-world")
    assert code == 0 and "tagged 16 photos" in out
    code, out, _ = run(capsys, *base, "tag", "counts", "world", "--json")
    counts = {c["label"]: c["tagged"] for c in json.loads(out)}
    assert code == 0 and counts["red"] >= sum("-red-" in p.name for p in photos) > 0
    code, out, _ = run(capsys, *base, "search", "--tag", "world/red", "--json", "-k", "100")
    hits = json.loads(out)
    assert code == 0 and len(hits) == counts["red"]
    red = next(p for p in photos if "-red-" in p.name)
    code, out, _ = run(capsys, *base, "tag", "reject", "red", str(red))
    assert code == 0 and "1 answers recorded" in out
    code, out, _ = run(capsys, *base, "tag", "list", "--photo", str(red), "--json")
    assert any(t["label"] == "red" and t["state"] == "rejected" for t in json.loads(out))
    code, out, _ = run(capsys, *base, "search", "a shape", "--tag", "red", "--json", "-k", "100")
    assert code == 0 and str(red) not in {h["path"] for h in json.loads(out)}
    code, out, _ = run(capsys, *base, "tag", "threshold", "red", "0.999", "--preview")
    assert code == 0 and "preview, not saved" in out
    code, out, _ = run(capsys, *base, "vocab", "add", "world", "purple thing")
    assert code == 0 and "labels" in out
    code, out, _ = run(capsys, *base, "vocab", "export", "world", str(tmp_path / "w.txt"))
    assert code == 0 and "purple thing" in (tmp_path / "w.txt").read_text(encoding="utf-8")
    # --no-auto: only confirmed answers carry its labels (and it is kept in the JSON export)
    code, out, _ = run(capsys, *base, "vocab", "create", "places", "dublin", "2008", "--no-auto")
    assert code == 0 and "tagged" in out
    code, out, _ = run(capsys, *base, "tag", "counts", "places", "--json")
    assert code == 0 and all(c["tagged"] == 0 for c in json.loads(out))
    code, out, _ = run(capsys, *base, "vocab", "show", "places")
    assert "only confirmed answers" in out
    run(capsys, *base, "vocab", "export", "places", str(tmp_path / "p.json"))
    assert json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))["auto"] is False
    code, out, _ = run(capsys, *base, "vocab", "set", "places", "--auto")
    assert code == 0 and "automatically" in out


def test_malformed_import_names_the_line(library, capsys, tmp_path):
    _, base, _ = library
    bad = tmp_path / "bad.csv"
    bad.write_text("name,synonyms\ncat,kitty\ndog\n,\nCat\n", encoding="utf-8")
    code, _, err = run(capsys, *base, "vocab", "import", str(bad))
    assert code == 1 and "bad.csv: line 5: label 'Cat' is already there (line 2)" in err
    code, out, _ = run(capsys, *base, "vocab", "list", "--json")
    assert "bad" not in [
        v["name"] for v in json.loads(out)["vocabularies"]
    ]  # nothing half-imported


def test_help_everywhere(capsys):
    for argv in (["vocab", "--help"], ["tag", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0 and "usage" in capsys.readouterr().out


def test_export_xmp_writes_automatic_tags_beside_the_users_keywords(library, capsys):
    """`tag export-xmp VOCAB`: tags in force (automatic ones too) go into real XMP sidecars,
    merged with what a sidecar already holds (engine.xmp.tags, engine.xmp.keywords)."""
    from engine.xmp import keywords as xmp
    from tests.engine.test_xmp import rdf_items

    root, base, photos = library
    assert main([*base, "vocab", "create", "xmpv", "--starter", "shapes-world"]) == 0
    red = next(p for p in photos if "-red-" in p.name)
    xmp.write_sidecar_keywords(red, ["holiday"])
    capsys.readouterr()
    code, out, _ = run(capsys, *base, "tag", "export-xmp", "xmpv", "--json")
    report = json.loads(out)
    assert code == 0 and report["sidecars"] == report["total"] > 0 and report["failed"] == 0
    sidecar = xmp.sidecar_path(red).read_bytes()
    subjects = rdf_items(sidecar, "dc:subject")
    assert subjects[0] == "holiday" and "red" in subjects
    assert "photosift|xmpv|red" in rdf_items(sidecar, "lr:hierarchicalSubject")
    code, out, _ = run(capsys, *base, "tag", "list", "--photo", str(red), "--json")
    in_force = {
        t["label"] for t in json.loads(out) if t["vocab"] == "xmpv" and t["state"] != "rejected"
    }
    assert set(subjects) - {"holiday"} == in_force
