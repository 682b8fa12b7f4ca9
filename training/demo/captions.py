"""Captions and queries for the procedural world (training.demo.world): varied wording, each
caption carrying its meaning, so that exactly which scenes it describes is known.

Captions are what pretraining reads (full descriptions, single objects, one attribute,
counts, label names as the app phrases them); queries are what evaluation and benchmarks
search for (every colour, shape, count and position; held-out colour-kind compositions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.tags.vocab import DEFAULT_TEMPLATES  # how the app phrases a label it asks about

from .world import (
    COLOURS,
    HELD_OUT_PAIRS,
    HPOS,
    MAX_OBJECTS,
    NAMED_KINDS,
    PLURALS,
    VPOS,
    Caption,
    Clause,
    Meaning,
    Obj,
    Scene,
)

# --- captions ----------------------------------------------------------------------------

_COUNT_WORDS = {
    1: ["one", "a single", "1"],
    2: ["two", "a pair of", "2"],
    3: ["three", "3"],
    4: ["four", "4"],
}
_NOUNS = ["object", "shape", "thing", "item"]
_INTROS = ["", "", "a picture of ", "an image of ", "a photo of ", "a drawing of ", "there is "]
_SIZE_WORDS = {
    "small": ["small", "little", "tiny"],
    "medium": ["medium-sized", "medium"],
    "large": ["large", "big"],
}
_H_PHRASES = {
    "left": ["on the left", "on the left side", "at the left"],
    "centre": ["in the centre", "in the center", "in the centre column"],
    "right": ["on the right", "on the right side", "at the right"],
}
_V_PHRASES = {
    "top": ["at the top", "near the top", "in the upper part"],
    "middle": ["halfway down", "at mid height"],
    "bottom": ["at the bottom", "near the bottom", "in the lower part"],
}
_HV_PHRASES = {
    ("left", "top"): ["in the top left corner", "at the top left", "in the upper left"],
    ("right", "top"): ["in the top right corner", "at the top right", "in the upper right"],
    ("left", "bottom"): ["in the bottom left corner", "at the bottom left", "in the lower left"],
    ("right", "bottom"): [
        "in the bottom right corner",
        "at the bottom right",
        "in the lower right",
    ],
    ("centre", "top"): ["at the top centre", "at the top in the middle", "top center"],
    ("centre", "bottom"): ["at the bottom centre", "at the bottom in the middle", "bottom center"],
    ("left", "middle"): ["on the left halfway down", "at the middle left", "centre left"],
    ("right", "middle"): ["on the right halfway down", "at the middle right", "centre right"],
    ("centre", "middle"): ["right in the centre", "in the very middle", "dead centre"],
}
_BG_TONE = {"dark": ["dark", "black"], "grey": ["grey", "gray"], "light": ["light", "pale"]}
_BG_PATTERN = {
    "plain": ["plain"],
    "gradient": ["gradient", "shaded"],
    "noisy": ["noisy", "grainy"],
    "lined": ["lined", "ruled"],
    "checkered": ["checkered", "checked"],
}
_BG_NOUNS = ["background", "backdrop"]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[rng.integers(len(options))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _position_phrase(rng, h: str | None, v: str | None) -> str:
    if h and v:
        return _pick(rng, _HV_PHRASES[(h, v)])
    return _pick(rng, _H_PHRASES[h]) if h else _pick(rng, _V_PHRASES[v])


def object_phrase(
    o: Obj, rng: np.random.Generator, use: set[str], *, article: bool = True
) -> tuple[str, Clause]:
    """Describe one object with the attributes in ``use`` (a subset of colour, kind,
    size, hpos, vpos); reserve kinds are never named. Returns text and clause."""
    attrs: list[tuple[str, str]] = []
    words: list[str] = []
    if "size" in use:
        words.append(_pick(rng, _SIZE_WORDS[o.size]))
        attrs.append(("size", o.size))
    if "colour" in use:
        words.append(o.colour)
        attrs.append(("colour", o.colour))
    if "kind" in use and o.kind in NAMED_KINDS:
        words.append(o.kind)
        attrs.append(("kind", o.kind))
    else:
        words.append(_pick(rng, _NOUNS))
    text = " ".join(words)
    if article:
        text = f"{_article(text)} {text}"
    h = o.hpos if "hpos" in use else None
    v = o.vpos if "vpos" in use else None
    if h or v:
        text += " " + _position_phrase(rng, h, v)
        attrs += [("hpos", h)] if h else []
        attrs += [("vpos", v)] if v else []
    return text, Clause(tuple(attrs))


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _background_phrase(scene: Scene, rng) -> tuple[str, tuple[tuple[str, str], ...]]:
    bg = scene.background
    r = rng.random()
    if r < 0.4:
        words, meaning = [_pick(rng, _BG_TONE[bg.tone])], (("tone", bg.tone),)
    elif r < 0.7:
        words, meaning = [_pick(rng, _BG_PATTERN[bg.pattern])], (("pattern", bg.pattern),)
    else:
        words = [_pick(rng, _BG_TONE[bg.tone]), _pick(rng, _BG_PATTERN[bg.pattern])]
        meaning = (("tone", bg.tone), ("pattern", bg.pattern))
    return f"on a {' '.join(words)} {_pick(rng, _BG_NOUNS)}", meaning


def _count_phrase(n: int, rng, noun_plural: str | None = None) -> str:
    word = _pick(rng, _COUNT_WORDS[n])
    noun = noun_plural or _pick(rng, _NOUNS)
    if n > 1 and noun_plural is None:
        noun += "s"
    return f"{word} {noun}"


def caption_full(scene: Scene, rng: np.random.Generator, *, detail: float = 0.6) -> Caption:
    """Every object described (colour and kind always; size and position often),
    usually with the count and sometimes the background."""
    clauses, parts = [], []
    for o in rng.permutation(len(scene.objects)):
        use = {"colour", "kind"} | {a for a in ("size", "hpos", "vpos") if rng.random() < detail}
        text, clause = object_phrase(scene.objects[o], rng, use)
        parts.append(text)
        clauses.append(clause)
    text = _join(parts)
    if rng.random() < 0.6:
        clauses.append(Clause((), scene.count))
        if scene.count == 1:
            text = _pick(rng, _INTROS) + text
        else:
            text = f"{_pick(rng, _INTROS)}{_count_phrase(scene.count, rng)}: {text}"
    else:
        text = _pick(rng, _INTROS) + text
    bg: tuple[tuple[str, str], ...] = ()
    if rng.random() < 0.3:
        bg_text, bg = _background_phrase(scene, rng)
        text += " " + bg_text
    return Caption(text, Meaning(tuple(clauses), bg), "full")


def caption_detailed(scene: Scene, rng: np.random.Generator) -> Caption:
    """The most specific caption: count, and every object with all its attributes.
    Used as the query in caption-retrieval benchmarks."""
    clauses, parts = [Clause((), scene.count)], []
    for o in scene.objects:
        text, clause = object_phrase(o, rng, {"colour", "kind", "size", "hpos", "vpos"})
        parts.append(text)
        clauses.append(clause)
    text = (
        _join(parts) if scene.count == 1 else f"{_count_phrase(scene.count, rng)}: {_join(parts)}"
    )
    return Caption(text, Meaning(tuple(clauses)), "detailed")


def caption_object(scene: Scene, rng: np.random.Generator) -> Caption:
    """One object with a random subset of its attributes ("a red object on the left")."""
    o = scene.objects[rng.integers(scene.count)]
    # Kind more often than the rest: colour and position alone tell most scenes
    # apart, so shapes get learned only when captions insist on them.
    use = {a for a, p in (("colour", 0.5), ("kind", 0.7), ("size", 0.3)) if rng.random() < p}
    r = rng.random()
    if r < 0.25:
        use |= {"hpos"}
    elif r < 0.4:
        use |= {"vpos"}
    elif r < 0.5:
        use |= {"hpos", "vpos"}
    if not use:
        use = {"colour"}
    text, clause = object_phrase(o, rng, use)
    return Caption(_pick(rng, _INTROS) + text, Meaning((clause,)), "object")


# How often each attribute is the subject of a single-attribute caption: colour is
# learned at once, shapes and counts are the hard part.
ATTRIBUTE_CAPTIONS = ("colour", "kind", "count", "position", "size")
ATTRIBUTE_WEIGHTS = (0.15, 0.35, 0.25, 0.2, 0.05)


def caption_attribute(
    scene: Scene,
    rng: np.random.Generator,
    attr: str | None = None,
    weights: tuple[float, ...] = ATTRIBUTE_WEIGHTS,
) -> Caption:
    """A single-attribute statement, phrased the way people search:
    "a red object", "something red", "a triangle", "three objects", "something on the left".
    Without ``attr``, the attribute is drawn with ``weights`` (over ``ATTRIBUTE_CAPTIONS``)."""
    if attr is None:
        attr = ATTRIBUTE_CAPTIONS[rng.choice(len(ATTRIBUTE_CAPTIONS), p=weights)]
    o = scene.objects[rng.integers(scene.count)]
    if attr == "kind" and o.kind not in NAMED_KINDS:
        attr = "colour"
    if attr == "count":
        n = scene.count
        text = (
            _count_phrase(n, rng)
            if n > 1
            else _pick(
                rng,
                ["one object", "a single object", "one shape", "a single thing", "just one object"],
            )
        )
        if n > 1 and rng.random() < 0.3:
            text = (
                _pick(rng, ["a picture with ", "an image with ", "there are ", "exactly "]) + text
            )
        return Caption(text, Meaning((Clause((), n),)), "count")
    if attr == "colour":
        c = o.colour
        text = _pick(
            rng,
            [
                f"{_article(c)} {c} {_pick(rng, _NOUNS)}",
                f"something {c}",
                c,
                f"{c} {_pick(rng, _NOUNS)}",
                f"an image with something {c}",
            ],
        )
        return Caption(text, Meaning((Clause((("colour", c),)),)), "colour")
    if attr == "kind":
        k = o.kind
        text = _pick(
            rng,
            [
                f"{_article(k)} {k}",
                k,
                f"a picture with {_article(k)} {k}",
                f"{_article(k)} {k} shape",
            ],
        )
        return Caption(text, Meaning((Clause((("kind", k),)),)), "kind")
    if attr == "size":
        s = o.size
        w = _pick(rng, _SIZE_WORDS[s])
        text = _pick(rng, [f"{_article(w)} {w} {_pick(rng, _NOUNS)}", f"something {w}"])
        return Caption(text, Meaning((Clause((("size", s),)),)), "size")
    # position: horizontal, vertical or both
    r = rng.random()
    h = o.hpos if r < 0.45 or r >= 0.8 else None
    v = o.vpos if r >= 0.45 else None
    noun = _pick(rng, ["something", "an object", "a shape", "a thing", "an item"])
    text = f"{noun} {_position_phrase(rng, h, v)}"
    attrs = ((("hpos", h),) if h else ()) + ((("vpos", v),) if v else ())
    return Caption(text, Meaning((Clause(attrs),)), "position")


def caption_counted(scene: Scene, rng: np.random.Generator) -> Caption:
    """How many objects of one kind or colour: "two stars", "three red shapes"."""
    o = scene.objects[rng.integers(scene.count)]
    if o.kind in NAMED_KINDS and rng.random() < 0.5:
        attrs = (("kind", o.kind),)
        n = sum(p.kind == o.kind for p in scene.objects)
        noun = o.kind if n == 1 else PLURALS[o.kind]
        text = f"{_pick(rng, _COUNT_WORDS[n])} {noun}"
    else:
        attrs = (("colour", o.colour),)
        n = sum(p.colour == o.colour for p in scene.objects)
        noun = _pick(rng, _NOUNS) + ("s" if n > 1 else "")
        text = f"{_pick(rng, _COUNT_WORDS[n])} {o.colour} {noun}"
    return Caption(text, Meaning((Clause(attrs, n),)), "counted")


def _count_label(n: int) -> str:
    return "one object" if n == 1 else f"{_COUNT_WORDS[n][0]} objects"


def _place_label(attr: str, value: str) -> str:
    return f"something {(_H_PHRASES if attr == 'hpos' else _V_PHRASES)[value][0]}"


def label_names() -> list[tuple[str, Meaning]]:
    """The labels a user of the demo types into the vocabulary editor, by name, with what
    each means: the colours, the named kinds, the counts ("two objects") and the positions
    ("something on the left"), as the ``shapes-world`` starter vocabulary names them."""
    out = [(c, Meaning((Clause((("colour", c),)),))) for c in COLOURS]
    out += [(k, Meaning((Clause((("kind", k),)),))) for k in NAMED_KINDS]
    out += [(_count_label(n), Meaning((Clause((), n),))) for n in range(1, MAX_OBJECTS + 1)]
    out += [
        (_place_label(attr, v), Meaning((Clause(((attr, v),)),)))
        for attr, values in (("hpos", HPOS), ("vpos", VPOS))
        for v in values
        if v != "middle"  # "something halfway down" is no label anyone types
    ]
    return out


def caption_label(scene: Scene, rng: np.random.Generator) -> Caption:
    """A label's name in one of the vocabulary editor's default templates, as photosift
    asks the model when a user types a label ("red" -> "a close-up photo of a red.", "two
    objects" -> "a photo of a two objects."), so the demo model has read at training time
    what tagging sends it at run time. Names are those of :func:`label_names`: a colour, a
    kind, a count or a position of the scene, drawn alike."""
    o = scene.objects[rng.integers(scene.count)]
    attr = ("colour", "kind", "count", "position")[rng.integers(4)]
    if attr == "kind" and o.kind not in NAMED_KINDS:
        attr = "colour"
    if attr == "colour":
        name, clause = o.colour, Clause((("colour", o.colour),))
    elif attr == "kind":
        name, clause = o.kind, Clause((("kind", o.kind),))
    elif attr == "count":
        name, clause = _count_label(scene.count), Clause((), scene.count)
    else:
        place = ("hpos", o.hpos) if rng.random() < 0.5 else ("vpos", o.vpos)
        name, clause = _place_label(*place), Clause((place,))
    template = DEFAULT_TEMPLATES[rng.integers(len(DEFAULT_TEMPLATES))]
    return Caption(template.format(name), Meaning((clause,)), "label")


CAPTION_FORMS = {
    "full": caption_full,
    "object": caption_object,
    "attribute": caption_attribute,
    "counted": caption_counted,
    "label": caption_label,
}
# Mixture of caption forms in training: full descriptions teach composition;
# single attributes teach the short queries people type.
CAPTION_MIX = (("full", 0.35), ("object", 0.2), ("attribute", 0.35), ("counted", 0.1))


def sample_caption(
    scene: Scene,
    rng: np.random.Generator,
    mix: tuple[tuple[str, float], ...] = CAPTION_MIX,
    attribute_weights: tuple[float, ...] = ATTRIBUTE_WEIGHTS,
) -> Caption:
    """One caption drawn from a mixture of ``CAPTION_FORMS`` (``mix``: (form, share) pairs);
    attribute captions choose their attribute with ``attribute_weights``."""
    r, acc = rng.random(), 0.0
    form = mix[0][0]
    for name, p in mix:
        acc += p
        if r < acc:
            form = name
            break
    if form == "attribute":
        return caption_attribute(scene, rng, weights=attribute_weights)
    return CAPTION_FORMS[form](scene, rng)


def captions(scene: Scene, rng: np.random.Generator, n: int = 6) -> list[str]:
    """``n`` varied captions for a scene (the first one the most detailed)."""
    out = [caption_detailed(scene, rng).text]
    out += [sample_caption(scene, rng).text for _ in range(n - 1)]
    return out


# --- queries for evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    kind: str  # colour | shape | count | position | composition
    text: str
    meaning: Meaning = field(default_factory=Meaning)


def attribute_queries() -> list[Query]:
    """Single-attribute queries for every value of colour, shape, count and position."""
    qs = [
        Query("colour", f"{_article(c)} {c} object", Meaning((Clause((("colour", c),)),)))
        for c in COLOURS
    ]
    qs += [
        Query("shape", f"{_article(k)} {k}", Meaning((Clause((("kind", k),)),)))
        for k in NAMED_KINDS
    ]
    words = {1: "one object", 2: "two objects", 3: "three objects", 4: "four objects"}
    qs += [Query("count", words[n], Meaning((Clause((), n),))) for n in range(1, MAX_OBJECTS + 1)]
    qs += [
        Query("position", f"something {t}", Meaning((Clause(((a, v),)),)))
        for a, v, t in (
            ("hpos", "left", "on the left"),
            ("hpos", "right", "on the right"),
            ("hpos", "centre", "in the centre"),
            ("vpos", "top", "at the top"),
            ("vpos", "bottom", "at the bottom"),
        )
    ]
    return qs


def composition_queries(held_out: bool = True) -> list[Query]:
    """Colour-kind queries: the held-out pairs, or as many seen pairs for comparison."""
    if held_out:
        pairs = list(HELD_OUT_PAIRS)
    else:  # shift colours by one: same kinds, pairs that are in training
        pairs = [(COLOURS[(COLOURS.index(c) + 1) % len(COLOURS)], k) for c, k in HELD_OUT_PAIRS]
    return [
        Query(
            "composition",
            f"{_article(c)} {c} {k}",
            Meaning((Clause((("colour", c), ("kind", k))),)),
        )
        for c, k in pairs
    ]
