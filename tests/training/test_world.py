"""The procedural world: deterministic, truthful captions, clean splits, any aspect ratio."""

from __future__ import annotations

import numpy as np
import pytest

from training.demo import captions, world
from training.demo.world import Background, Caption, Clause, Meaning, Obj, Scene


def _scene(*objs: Obj, tone: str = "dark", pattern: str = "plain") -> Scene:
    return Scene(tuple(objs), Background(tone, pattern, (60, 60, 60), 0))


def _obj(kind="circle", colour="red", size="medium", x=0.5, y=0.5, r=0.12, texture="solid") -> Obj:
    return Obj(kind, colour, size, texture, x, y, r)


def test_scenes_are_deterministic_from_seed_and_index():
    a = world.scenes("train", 20, seed=3)
    b = world.scenes("train", 20, seed=3)
    assert a == b
    # scene i does not depend on how many are asked for or where the range starts
    assert world.scenes("train", 5, seed=3, start=15) == a[15:]
    assert world.scenes("train", 20, seed=4) != a
    assert world.scenes("test", 20, seed=3) != a
    img1 = np.asarray(world.render(a[7], (70, 110)))
    img2 = np.asarray(world.render(b[7], (70, 110)))
    assert np.array_equal(img1, img2)


def test_scenes_have_the_promised_variety():
    s = world.scenes("train", 400)
    counts = {sc.count for sc in s}
    assert counts == set(range(1, world.MAX_OBJECTS + 1))
    objs = [o for sc in s for o in sc.objects]
    assert {o.colour for o in objs} == set(world.COLOURS)
    assert {o.kind for o in objs} == set(world.KINDS)
    assert {o.size for o in objs} == set(world.SIZES)
    assert {o.texture for o in objs} == set(world.TEXTURES)
    assert {(o.hpos, o.vpos) for o in objs} == {(h, v) for h in world.HPOS for v in world.VPOS}
    assert {sc.background.pattern for sc in s} == set(world.PATTERNS)
    for sc in s:  # one object per grid cell: positions never collide
        cells = [(o.hpos, o.vpos) for o in sc.objects]
        assert len(set(cells)) == len(cells)


def test_held_out_pairs_never_in_train_or_test_and_always_in_compositions():
    held = set(world.HELD_OUT_PAIRS)
    for split in ("train", "test"):
        for sc in world.scenes(split, 1500):
            assert not {(o.colour, o.kind) for o in sc.objects} & held
    comp = world.scenes("compositions", 300)
    assert all({(o.colour, o.kind) for o in sc.objects} & held for sc in comp)
    # ... and each held-out colour and kind is still seen in training on its own
    train_objs = [o for sc in world.scenes("train", 1500) for o in sc.objects]
    for colour, kind in held:
        assert any(o.colour == colour for o in train_objs)
        assert any(o.kind == kind for o in train_objs)


def test_unknown_split_or_layout_is_refused():
    with pytest.raises(ValueError):
        world.sample_scene(np.random.default_rng(0), "validation")
    with pytest.raises(ValueError):
        world.sample_scene(np.random.default_rng(0), layout="spiral")


def test_position_buckets_follow_the_centre():
    assert _obj(x=0.1, y=0.1).hpos == "left" and _obj(x=0.1, y=0.1).vpos == "top"
    assert _obj(x=0.5, y=0.5).hpos == "centre" and _obj(x=0.5, y=0.5).vpos == "middle"
    assert _obj(x=0.99, y=0.99).hpos == "right" and _obj(x=0.99, y=0.99).vpos == "bottom"
    assert _obj(x=1.0).hpos == "right"


def test_every_caption_is_true_of_its_scene_and_says_what_it_means():
    rng = np.random.default_rng(1)
    for sc in world.scenes("train", 300):
        caps: list[Caption] = [captions.caption_detailed(sc, rng)]
        caps += [captions.sample_caption(sc, rng) for _ in range(6)]
        caps += [
            captions.caption_attribute(sc, rng, a)
            for a in ("colour", "kind", "count", "position", "size")
        ]
        for c in caps:
            assert world.matches(sc, c.meaning), (c.text, sc)
            for clause in c.meaning.clauses:
                for attr, value in clause.attrs:
                    if attr in ("colour", "kind"):  # the words are in the text
                        assert value in c.text, (c.text, clause)
        detailed = caps[0].text
        for o in sc.objects:
            assert o.colour in detailed


def test_caption_mix_and_attribute_weights_choose_the_forms():
    sc = world.scenes("train", 400)
    rng = np.random.default_rng(3)
    only_kinds = [
        captions.sample_caption(s, rng, (("attribute", 1.0),), (0.0, 1.0, 0.0, 0.0, 0.0)) for s in sc
    ]
    # a kind caption, unless the object drawn is of a reserve kind (never named): then colour
    assert {c.form for c in only_kinds} == {"kind", "colour"}
    assert sum(c.form == "kind" for c in only_kinds) > 0.8 * len(sc)
    counted = {captions.sample_caption(s, rng, (("counted", 1.0),)).form for s in sc}
    assert counted == {"counted"}
    mixed = [captions.sample_caption(s, rng, (("full", 0.5), ("object", 0.5))).form for s in sc]
    assert set(mixed) == {"full", "object"} and 150 < mixed.count("full") < 250


def test_label_captions_are_a_label_in_the_editors_default_templates():
    from engine.tags.vocab import DEFAULT_TEMPLATES

    rng = np.random.default_rng(4)
    prefixes = {t.split("{}")[0] for t in DEFAULT_TEMPLATES}
    names = set()
    for sc in world.scenes("train", 300):
        c = captions.caption_label(sc, rng)
        assert c.form == "label" and world.matches(sc, c.meaning), (c.text, sc)
        prefix = next(p for p in prefixes if c.text.startswith(p))
        names.add(c.text[len(prefix) : -1])
    # colours, kinds, counts and positions, named as the shapes-world starter vocabulary does
    assert {
        "red",
        "circle",
        "two objects",
        "something on the left",
        "something at the top",
    } <= names


def test_reserve_kinds_and_textures_are_never_named_in_captions():
    rng = np.random.default_rng(2)
    words = set(world.RESERVE_KINDS) | {"striped", "dotted"}
    seen_reserve = 0
    for sc in world.scenes("train", 400):
        seen_reserve += any(o.kind in world.RESERVE_KINDS for o in sc.objects)
        for text in captions.captions(sc, rng, 8):
            assert not words & set(text.replace(",", " ").replace(":", " ").split()), text
    assert seen_reserve > 20  # they are drawn, though


def test_captions_are_varied():
    rng = np.random.default_rng(3)
    sc = world.scenes("train", 1)[0]
    texts = {t for _ in range(20) for t in captions.captions(sc, rng, 6)}
    assert len(texts) > 30


def test_matches_semantics():
    sc = _scene(
        _obj("circle", "red", x=0.1), _obj("star", "blue", x=0.9), _obj("star", "red", x=0.5)
    )
    red_left = Meaning((Clause((("colour", "red"), ("hpos", "left"))),))
    assert world.matches(sc, red_left)
    assert not world.matches(sc, Meaning((Clause((("colour", "blue"), ("hpos", "left"))),)))
    assert world.matches(sc, Meaning((Clause((), 3),)))
    assert not world.matches(sc, Meaning((Clause((), 2),)))
    assert world.matches(sc, Meaning((Clause((("kind", "star"),), 2),)))  # exactly two stars
    assert not world.matches(sc, Meaning((Clause((("kind", "star"),), 1),)))
    # two distinct red objects exist, but not two distinct red circles
    red = Clause((("colour", "red"),))
    red_circle = Clause((("colour", "red"), ("kind", "circle")))
    assert world.matches(sc, Meaning((red, red)))
    assert not world.matches(sc, Meaning((red_circle, red_circle)))
    assert world.matches(sc, Meaning(background=(("tone", "dark"),)))
    assert not world.matches(sc, Meaning(background=(("pattern", "lined"),)))


def test_match_matrix_agrees_with_matches():
    rng = np.random.default_rng(4)
    sc = world.scenes("test", 120)
    meanings = [captions.sample_caption(s, rng).meaning for s in sc]
    meanings += [q.meaning for q in captions.attribute_queries() + captions.composition_queries()]
    meanings += [Meaning((Clause((("colour", "red"),)),) * 3)]
    m = world.match_matrix(sc, meanings)
    want = np.array([[world.matches(s, q) for q in meanings] for s in sc])
    assert np.array_equal(m, want)
    assert m[:, :120].diagonal().all()  # each scene's own caption is true of it
    assert 0.02 < m.mean() < 0.5  # neither trivial nor empty


def test_attribute_queries_cover_every_kind_and_are_selective():
    qs = captions.attribute_queries()
    assert {q.kind for q in qs} == {"colour", "shape", "count", "position"}
    texts = {q.text for q in qs}
    for t in ("a red object", "a triangle", "three objects", "something on the left"):
        assert t in texts
    sc = world.scenes("test", 500)
    truth = world.match_matrix(sc, [q.meaning for q in qs])
    assert (truth.mean(0) > 0.05).all() and (truth.mean(0) < 0.9).all()


def test_the_engine_reads_these_queries_for_a_demo_world_model():
    """The engine never imports training: the general-knowledge check of a fine-tuned model of
    this world reads the attribute queries from resources/finetune/world_queries.txt."""
    from engine.finetune.sources import general_queries
    from engine.models.registry import load_spec, resources_dir

    spec = load_spec(resources_dir() / "demo" / "model.json")
    assert "world" in spec.extra
    assert general_queries(spec) == [q.text for q in captions.attribute_queries()]


def _object_columns(img: np.ndarray, bg: int = 60) -> np.ndarray:
    """Columns (or rows, for a transposed array) that contain object pixels."""
    return np.nonzero((np.abs(img.astype(int) - bg).max(2) > 40).any(0))[0]


@pytest.mark.parametrize("size", [(96, 96), (100, 400), (64, 300), (400, 100), (81, 57)])
def test_render_size_and_objects_inside_the_frame(size):
    sc = world.scenes("train", 10)
    for s in sc:
        im = world.render(s, size)
        assert im.size == (size[1], size[0]) and im.mode == "RGB"


def test_panorama_and_portrait_keep_edge_objects_whole_and_round():
    left = _scene(_obj("circle", "white", "large", x=0.0, y=0.5, r=0.16))
    img = np.asarray(world.render(left, (100, 400)))
    cols = _object_columns(img)
    assert cols.min() <= 1, "the object touches the left edge"
    assert 28 <= cols.max() - cols.min() + 1 <= 36, "a circle of radius 0.16*100 px, not stretched"
    rows = _object_columns(img.transpose(1, 0, 2))
    assert 28 <= rows.max() - rows.min() + 1 <= 36

    right = _scene(_obj("square", "yellow", x=1.0, y=0.5, r=0.12))
    cols = _object_columns(np.asarray(world.render(right, (80, 320))))
    assert cols.max() >= 318

    top = _scene(_obj("star", "pink", x=0.5, y=0.0, r=0.12))
    rows = _object_columns(np.asarray(world.render(top, (400, 100))).transpose(1, 0, 2))
    assert rows.min() <= 3


def test_edge_layout_puts_objects_at_the_sides():
    rng = np.random.default_rng(5)
    for _ in range(50):
        s = world.sample_scene(rng, "test", layout="edges")
        for o in s.objects:
            assert o.x <= 0.06 or o.x >= 0.94
            assert o.hpos in ("left", "right")


def test_colours_render_as_named():
    for colour, rgb in world.RGB.items():
        s = _scene(_obj("square", colour, "large", r=0.16))
        px = np.asarray(world.render(s, (64, 64)))[32, 32]
        assert np.abs(px.astype(int) - rgb).max() <= 2, colour


def test_rendering_many_small_images_works():
    # a sanity check on the training path (no timing assertion: the machine is shared)
    for s in world.scenes("train", 200):
        assert world.render(s, (64, 64)).size == (64, 64)


def test_twins_differ_only_in_kinds_and_respect_held_out_pairs():
    rng = np.random.default_rng(6)
    held = set(world.HELD_OUT_PAIRS)
    for sc in world.scenes("train", 200):
        twin = world.with_new_kinds(sc, rng)
        assert twin.background == sc.background and twin.count == sc.count
        for a, b in zip(sc.objects, twin.objects, strict=True):
            assert a.kind != b.kind and b.kind in world.NAMED_KINDS
            assert (a.colour, a.size, a.x, a.y, a.r) == (b.colour, b.size, b.x, b.y, b.r)
            assert (b.colour, b.kind) not in held


def test_opposite_moves_every_object_to_the_opposite_place():
    rng = np.random.default_rng(8)
    h = {"left": "right", "right": "left", "centre": "centre"}
    v = {"top": "bottom", "bottom": "top", "middle": "middle"}
    told_apart = 0
    for sc in world.scenes("train", 300):
        o = world.opposite(sc)
        assert o.background == sc.background
        for a, b in zip(sc.objects, o.objects, strict=True):
            assert (b.hpos, b.vpos) == (h[a.hpos], v[a.vpos])
            assert (a.kind, a.colour, a.size, a.r, a.angle) == (
                b.kind,
                b.colour,
                b.size,
                b.r,
                b.angle,
            )
        cap = captions.caption_detailed(sc, rng)  # names every object's place
        told_apart += not world.matches(o, cap.meaning)
        if all((x.hpos, x.vpos) == ("centre", "middle") for x in sc.objects):
            assert world.matches(o, cap.meaning)  # nothing moved
    assert told_apart > 0.9 * 300
    # rendered: the original turned half a turn, except that the shapes stay upright
    sc = world.Scene(
        (world.Obj("circle", "red", "large", "solid", 0.2, 0.2, 0.15),),
        world.scenes("train", 1)[0].background,
    )
    a = np.asarray(world.render(sc, (90, 90)))
    b = np.asarray(world.render(world.opposite(sc), (90, 90)))
    red = lambda im: np.argwhere((im[..., 0] > 180) & (im[..., 1] < 80)).mean(0)  # noqa: E731
    assert np.allclose(red(a) + red(b), 89, atol=1.5)  # centres mirror through the middle


def test_mirrored_swaps_left_and_right_only():
    rng = np.random.default_rng(7)
    flip = {"left": "right", "right": "left", "centre": "centre"}
    for sc in world.scenes("train", 200):
        m = world.mirrored(sc)
        for a, b in zip(sc.objects, m.objects, strict=True):
            assert b.hpos == flip[a.hpos] and b.vpos == a.vpos
            assert (a.kind, a.colour, a.size) == (b.kind, b.colour, b.size)
        cap = captions.caption_detailed(sc, rng)
        if any(o.hpos != "centre" for o in sc.objects):
            assert not world.matches(m, cap.meaning), cap.text
    # rendered: the mirror image of the original, up to anti-aliasing of rotated edges
    sc = _scene(_obj("triangle", "red", x=0.1, y=0.2), _obj("square", "blue", x=0.8, y=0.7))
    a = np.asarray(world.render(sc, (60, 90))).astype(int)
    b = np.asarray(world.render(world.mirrored(sc), (60, 90))).astype(int)
    assert np.abs(a[:, ::-1] - b).mean() < 3
