"""Tag vocabularies: what they hold, how they are checked, and how they are read and written.

A vocabulary is a named list of labels ("receipts", "my cat Miso", "sunsets"). A label
may carry synonyms (other names, each put through the templates too) and prompts of its
own (full sentences used as written, instead of the templates). The vocabulary's prompt
templates ("a photo of a {}.") form an ensemble: a label's text vector is the mean of
the text vectors of all its prompts, the CLIP paper's prompt ensembling.

This module is pure data (no database, no model): storage lives in engine.tags.tagstore,
scoring in engine.tags.tagging. Files come in three formats:

* JSON: ``{"name", "templates"?, "threshold"?, "auto"?, "labels": ["cat" | {"name",
  "synonyms"?, "prompts"?, "threshold"?}]}`` (a bare list of labels is accepted too);
  ``"auto": false`` makes a vocabulary whose labels only confirmed answers carry;
* CSV: a header row with ``name`` and optionally ``synonyms``, ``prompts``, ``threshold``;
  several synonyms or prompts in one cell are separated by ``|``;
* plain text: one label per line; blank lines and lines starting with ``#`` are skipped.

Every error names the file and the line (or the JSON path) at fault.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import QueryError

MAX_LABELS = 20_000  # a 10,000-label vocabulary is fine; this stops a runaway file
MAX_LABEL_CHARS = 200
MAX_PROMPTS = 64  # per label (templates x names, or its own prompts)
MAX_TEMPLATES = 32
MAX_FILE_BYTES = 32 * 1024 * 1024
FORMATS = ("json", "csv", "txt")

# The CLIP paper's idea (Radford et al. 2021, sec. 3.1.4): average the text vectors of a
# few phrasings; these five are from its ImageNet ensemble and suit photos in general.
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the {}.",
    "a good photo of a {}.",
    "a cropped photo of a {}.",
)


class VocabularyError(QueryError):
    """A vocabulary or a vocabulary file is invalid; the message says where."""


@dataclass(frozen=True)
class Label:
    name: str
    synonyms: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()  # used as written, instead of the templates
    threshold: float | None = None  # a fixed probability threshold from the file; None: calibrated

    def to_json(self) -> dict[str, Any] | str:
        d: dict[str, Any] = {"name": self.name}
        if self.synonyms:
            d["synonyms"] = list(self.synonyms)
        if self.prompts:
            d["prompts"] = list(self.prompts)
        if self.threshold is not None:
            d["threshold"] = self.threshold
        return d if len(d) > 1 else self.name


@dataclass(frozen=True)
class Vocabulary:
    name: str
    labels: tuple[Label, ...] = ()
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    threshold: float | None = None  # the default for its labels; None: the model family's
    description: str = ""
    # False: photos carry its labels only when the user confirmed them (imported keywords
    # such as "2008" or "dublin"): no automatic tags, nothing spread by an XMP export
    auto: bool = True

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        d["templates"] = list(self.templates)
        if self.threshold is not None:
            d["threshold"] = self.threshold
        if not self.auto:
            d["auto"] = False
        d["labels"] = [lab.to_json() for lab in self.labels]
        return d

    def label(self, name: str) -> Label:
        k = label_key(name)
        for lab in self.labels:
            if label_key(lab.name) == k:
                return lab
        raise VocabularyError(f"vocabulary {self.name!r} has no label {name!r}")


# -- checking ----------------------------------------------------------------------------


def clean(text: str) -> str:
    """NFC, whitespace collapsed. Any script works: Chinese, Arabic, emoji are all fine."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def label_key(name: str) -> str:
    """What makes two label names the same label: case and width folded ("Cat" == "cat")."""
    return unicodedata.normalize("NFKC", clean(name)).casefold()


def _text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str):
        raise VocabularyError(f"{where}: {what} must be text, not {type(value).__name__}")
    t = clean(value)
    if not t:
        raise VocabularyError(f"{where}: {what} is empty")
    if len(t) > MAX_LABEL_CHARS:
        raise VocabularyError(
            f"{where}: {what} is {len(t)} characters long (at most {MAX_LABEL_CHARS})"
        )
    if any(unicodedata.category(c) == "Cc" for c in t):
        raise VocabularyError(f"{where}: {what} holds control characters")
    return t


def check_threshold(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise VocabularyError(
            f"{where}: threshold must be a probability between 0 and 1 (exclusive), not {value!r}"
        )
    return float(value)


def check_name(name: Any, where: str = "vocabulary") -> str:
    return _text(name, where, "the vocabulary name")


def check_templates(templates: Any, where: str = "templates") -> tuple[str, ...]:
    if not isinstance(templates, list | tuple):
        raise VocabularyError(f"{where}: templates must be a list of texts")
    if not templates:
        raise VocabularyError(f'{where}: give at least one template, e.g. "a photo of a {{}}."')
    if len(templates) > MAX_TEMPLATES:
        raise VocabularyError(f"{where}: {len(templates)} templates (at most {MAX_TEMPLATES})")
    out = []
    for i, t in enumerate(templates):
        t = _text(t, f"{where}[{i}]", "a template")
        if t.count("{}") != 1 or "{" in t.replace("{}", "") or "}" in t.replace("{}", ""):
            raise VocabularyError(
                f"{where}[{i}]: a template holds {{}} exactly once, where the label goes: {t!r}"
            )
        if t not in out:
            out.append(t)
    return tuple(out)


def make_label(value: Any, where: str) -> Label:
    """A label from a name or an object {name, synonyms?, prompts?, threshold?}."""
    if isinstance(value, str):
        return Label(_text(value, where, "the label"))
    if not isinstance(value, dict):
        raise VocabularyError(
            f'{where}: a label is a name or an object with a "name", not {type(value).__name__}'
        )
    unknown = set(value) - {"name", "synonyms", "prompts", "threshold"}
    if unknown:
        raise VocabularyError(
            f"{where}: unknown field {sorted(unknown)[0]!r} (a label has name, synonyms, prompts, threshold)"
        )
    if "name" not in value:
        raise VocabularyError(f'{where}: the label has no "name"')
    name = _text(value["name"], where, "the label")

    def texts(key: str) -> tuple[str, ...]:
        v = value.get(key) or []
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list):
            raise VocabularyError(f"{where}: {key} must be a list of texts")
        out: list[str] = []
        for i, t in enumerate(v):
            t = _text(t, f"{where}.{key}[{i}]", f"a {key[:-1]}")
            if t not in out:
                out.append(t)
        return tuple(out)

    syn = tuple(s for s in texts("synonyms") if label_key(s) != label_key(name))
    prompts = texts("prompts")
    if (1 + len(syn)) > MAX_PROMPTS or len(prompts) > MAX_PROMPTS:
        raise VocabularyError(f"{where}: too many synonyms or prompts (at most {MAX_PROMPTS})")
    return Label(name, syn, prompts, check_threshold(value.get("threshold"), where))


def make_vocabulary(
    name: Any,
    labels: list[Any] = (),
    *,
    templates: Any = None,
    threshold: Any = None,
    description: str = "",
    where: str | None = None,
    auto: Any = True,
) -> Vocabulary:
    """A checked vocabulary. Empty or duplicate labels (same name up to case) are errors."""
    where = where or "vocabulary"
    name = check_name(name, where)
    if not isinstance(labels, list | tuple):
        raise VocabularyError(f"{where}: labels must be a list")
    if len(labels) > MAX_LABELS:
        raise VocabularyError(f"{where}: {len(labels)} labels (at most {MAX_LABELS:,})")
    # Label objects are checked again too: an edit (a rename) may have made one invalid.
    out = [make_label(x.to_json() if isinstance(x, Label) else x, f"{where}: label {i + 1}")
           for i, x in enumerate(labels)]  # fmt: skip
    check_unique(out, where)
    tpl = (
        DEFAULT_TEMPLATES
        if templates is None
        else check_templates(templates, f"{where}: templates")
    )
    if not isinstance(auto, bool):
        raise VocabularyError(f"{where}: auto must be true or false, not {auto!r:.40}")
    return Vocabulary(
        name, tuple(out), tpl, check_threshold(threshold, where), description or "", auto
    )


def check_unique(labels: list[Label], where: str, lines: list[int] | None = None) -> None:
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        k = label_key(lab.name)
        if k in seen:
            at = f"line {lines[i]}" if lines else f"label {i + 1}"
            first = f"line {lines[seen[k]]}" if lines else f"label {seen[k] + 1}"
            raise VocabularyError(f"{where}: {at}: label {lab.name!r} is already there ({first})")
        seen[k] = i


def prompt_texts(label: Label, templates: tuple[str, ...]) -> list[str]:
    """The texts whose vectors are averaged into the label's vector.

    A label's own prompts are used as written; otherwise every template is applied to
    its name and to each synonym."""
    if label.prompts:
        return list(label.prompts)
    out: list[str] = []
    for n in (label.name, *label.synonyms):
        for t in templates:
            s = t.replace("{}", n)
            if s not in out:
                out.append(s)
    return out


# -- files --------------------------------------------------------------------------------


def format_of(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise VocabularyError(f"unknown vocabulary format {fmt!r} (json, csv or txt)")
        return fmt
    ext = Path(path).suffix.lower().lstrip(".")
    if ext in FORMATS:
        return ext
    if ext in ("text", "lst", "list", ""):
        return "txt"
    raise VocabularyError(
        f"{path}: cannot tell the format from the extension; use .json, .csv or .txt"
    )


def read_file(path: Path, fmt: str | None = None, *, name: str | None = None) -> Vocabulary:
    """Read a vocabulary file. The name comes from `name`, else the JSON, else the file's stem."""
    path = Path(path)
    fmt = format_of(path, fmt)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise VocabularyError(
                f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; not a vocabulary"
            )
        raw = path.read_bytes()
    except OSError as e:
        raise VocabularyError(f"{path}: cannot be read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise VocabularyError(f"{path}: line {line}: not UTF-8 text (byte {e.start})") from None
    return parse(text, fmt, name=name, source=str(path), default_name=path.stem)


def parse(text: str, fmt: str, *, name: str | None = None, source: str = "vocabulary",
          default_name: str = "imported") -> Vocabulary:  # fmt: skip
    if fmt == "json":
        return _parse_json(text, source, name, default_name)
    if fmt == "csv":
        return _parse_csv(text, source, name or default_name)
    if fmt == "txt":
        return _parse_txt(text, source, name or default_name)
    raise VocabularyError(f"unknown vocabulary format {fmt!r}")


def _parse_json(text: str, source: str, name: str | None, default_name: str) -> Vocabulary:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise VocabularyError(
            f"{source}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})"
        ) from None
    if isinstance(data, list):
        data = {"labels": data}
    if not isinstance(data, dict):
        raise VocabularyError(
            f'{source}: a JSON vocabulary is an object with "labels" (or a list of labels)'
        )
    unknown = set(data) - {"name", "labels", "templates", "threshold", "description", "format", "auto"}
    if unknown:
        raise VocabularyError(f"{source}: unknown field {sorted(unknown)[0]!r}")
    if "labels" not in data:
        raise VocabularyError(f'{source}: no "labels" list')
    # Error positions inside a JSON file: the label's number, and its line when we can find it.
    lines = _json_label_lines(text, len(data["labels"]) if isinstance(data["labels"], list) else 0)
    labels = data["labels"]
    if not isinstance(labels, list):
        raise VocabularyError(f'{source}: "labels" must be a list')
    out = []
    for i, v in enumerate(labels):
        at = (
            f"{source}: line {lines[i]}"
            if i < len(lines) and lines[i]
            else f"{source}: label {i + 1}"
        )
        out.append(make_label(v, at))
    check_unique(out, source, lines if len(lines) == len(out) and all(lines) else None)
    return make_vocabulary(
        name or data.get("name") or default_name, out, templates=data.get("templates"),
        threshold=data.get("threshold"), description=str(data.get("description") or ""), where=source,
        auto=data.get("auto", True),
    )  # fmt: skip


def _json_label_lines(text: str, n: int) -> list[int]:
    """Best effort: the line on which each element of "labels" starts (0 when unknown)."""
    try:
        dec = json.JSONDecoder()
        start = text.index('"labels"')
        i = text.index("[", start) + 1
        out = []
        for _ in range(n):
            while text[i] in " \t\r\n,":
                i += 1
            out.append(text.count("\n", 0, i) + 1)
            _, i = dec.raw_decode(text, i)
        return out
    except (ValueError, IndexError):
        return []


def _split_cell(cell: str) -> list[str]:
    return [p for p in (clean(x) for x in cell.split("|")) if p]


def _parse_csv(text: str, source: str, name: str) -> Vocabulary:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as e:
        raise VocabularyError(f"{source}: not valid CSV: {e}") from None
    if not rows:
        raise VocabularyError(f"{source}: the file is empty")
    header = [clean(h).lower() for h in rows[0]]
    if "name" not in header and "label" not in header:
        raise VocabularyError(
            f'{source}: line 1: the header needs a "name" column (and optionally synonyms, prompts, threshold)'
        )
    col = {h: i for i, h in enumerate(header)}
    name_col = col.get("name", col.get("label"))
    unknown = [
        h for h in header if h not in ("name", "label", "synonyms", "prompts", "threshold", "")
    ]
    if unknown:
        raise VocabularyError(f"{source}: line 1: unknown column {unknown[0]!r}")
    labels, lines = [], []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) > len(header):
            raise VocabularyError(
                f"{source}: line {n}: {len(row)} cells but the header has {len(header)} (quote cells that hold commas)"
            )

        def cell(key: str, row=row) -> str:
            return row[col[key]] if key in col and col[key] < len(row) else ""

        d: dict[str, Any] = {"name": row[name_col] if name_col < len(row) else ""}
        if cell("synonyms").strip():
            d["synonyms"] = _split_cell(cell("synonyms"))
        if cell("prompts").strip():
            d["prompts"] = _split_cell(cell("prompts"))
        if cell("threshold").strip():
            try:
                d["threshold"] = float(cell("threshold"))
            except ValueError:
                raise VocabularyError(
                    f"{source}: line {n}: threshold {cell('threshold')!r} is not a number"
                ) from None
        labels.append(make_label(d, f"{source}: line {n}"))
        lines.append(n)
    if len(labels) > MAX_LABELS:
        raise VocabularyError(f"{source}: {len(labels)} labels (at most {MAX_LABELS:,})")
    check_unique(labels, source, lines)
    return make_vocabulary(name, labels, where=source)


def _parse_txt(text: str, source: str, name: str) -> Vocabulary:
    labels, lines = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        labels.append(make_label(s, f"{source}: line {n}"))
        lines.append(n)
        if len(labels) > MAX_LABELS:
            raise VocabularyError(f"{source}: line {n}: more than {MAX_LABELS:,} labels")
    check_unique(labels, source, lines)
    return make_vocabulary(name, labels, where=source)


def dumps(vocab: Vocabulary, fmt: str) -> str:
    """A vocabulary as file text; `read_file` gives the same vocabulary back (txt keeps names only)."""
    if fmt == "json":
        return json.dumps(vocab.to_json(), ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["name", "synonyms", "prompts", "threshold"])
        for lab in vocab.labels:
            w.writerow([lab.name, "|".join(lab.synonyms), "|".join(lab.prompts),
                        "" if lab.threshold is None else repr(lab.threshold)])  # fmt: skip
        return buf.getvalue()
    if fmt == "txt":
        bad = [lab.name for lab in vocab.labels if lab.name.startswith("#")]
        if bad:
            raise VocabularyError(
                f"label {bad[0]!r} starts with # and would read back as a comment; export as JSON or CSV"
            )
        return "".join(lab.name + "\n" for lab in vocab.labels)
    raise VocabularyError(f"unknown vocabulary format {fmt!r}")


def write_file(vocab: Vocabulary, path: Path, fmt: str | None = None) -> Path:
    """Write atomically (a temp file renamed over the target)."""
    path = Path(path)
    fmt = format_of(path, fmt)
    text = dumps(vocab, fmt)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise VocabularyError(f"{path}: cannot be written: {e.strerror or e}") from None
    return path


# -- starter vocabularies ---------------------------------------------------------------


def starters_dir() -> Path:
    from ..models.registry import resources_dir

    return resources_dir() / "vocabularies"


def starters() -> dict[str, Path]:
    """Starter vocabularies shipped in resources/vocabularies: name -> file."""
    d = starters_dir()
    return {p.stem: p for p in sorted(d.glob("*.json"))} if d.is_dir() else {}


# The starter made for the bundled demo model's world of coloured shapes: first choice while
# that model is active, last otherwise (it means nothing to a model of real photos).
DEMO_STARTER = "shapes-world"


def starters_for(model_key: str | None, demo_model: str) -> list[str]:
    """Starter names in the order to offer them to a user of `model_key`."""
    names = sorted(starters())
    if DEMO_STARTER in names:
        names.remove(DEMO_STARTER)
        names.insert(0 if model_key == demo_model else len(names), DEMO_STARTER)
    return names


def load_starter(key: str) -> Vocabulary:
    files = starters()
    if key not in files:
        raise VocabularyError(
            f"no starter vocabulary {key!r} (there are: {', '.join(files) or 'none'})"
        )
    return read_file(files[key])


def with_labels(vocab: Vocabulary, labels: list[Label]) -> Vocabulary:
    check_unique(labels, vocab.name)
    if len(labels) > MAX_LABELS:
        raise VocabularyError(f"{vocab.name}: {len(labels)} labels (at most {MAX_LABELS:,})")
    return replace(vocab, labels=tuple(labels))
