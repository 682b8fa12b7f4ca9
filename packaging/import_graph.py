"""The import graph of engine/, app/ and training/, read from the code (standard library only).

    python packaging/import_graph.py            # the layout's rules; exit 1 if one is broken
    python packaging/import_graph.py --readme   # rewrite README's architecture diagram

The rules (tests/test_layers.py checks them too, beside engine -/-> Qt and app -/-> ML libraries):

* no import cycle between modules, nor between the folders they sit in;
* the engine never imports training (torch work runs in a child process, engine.child),
  except its benchmarks (engine/bench), which build demo data;
* no Python file over ``MAX_LINES`` lines.

The diagram is a Mermaid flowchart of the folders (and the modules directly in engine/) with
an arrow for each import direction; an arrow that a longer path already implies is left out.
README carries it between two markers, and a test checks it is what this script makes now,
so the picture cannot drift from the code.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("engine", "app", "training")
MAX_LINES = 800
BEGIN = "<!-- layers:begin (python packaging/import_graph.py --readme) -->"
END = "<!-- layers:end -->"


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of engine, app and training."""
    mods = {}
    for top in TOPS:
        for p in sorted((root / top).rglob("*.py")):
            n = ".".join(p.relative_to(root).with_suffix("").parts)
            mods[n[: -len(".__init__")] if n.endswith(".__init__") else n] = p
    return mods


def _targets(cur: str, node: ast.AST, mods: dict[str, Path]) -> set[str]:
    """The modules of ours an import statement in module `cur` names (the nearest existing one
    for ``from x import name``); relative imports resolved."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            pkg = cur.split(".")
            if mods[cur].name != "__init__.py":
                pkg = pkg[:-1]
            pkg = pkg[: len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        names = [base] + [f"{base}.{a.name}" for a in node.names]
    out = set()
    for n in names:
        while n and n not in mods:
            n = n.rpartition(".")[0]
        if n and n != cur:
            out.add(n)
    return out


def graph(root: Path = ROOT, mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Module -> the modules it imports (anywhere in it: inside functions and TYPE_CHECKING too)."""
    mods = modules(root) if mods is None else mods
    g: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"), filename=str(p))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                g[m] |= _targets(m, node, mods)
    return g


def _path(g: dict[str, set[str]], a: str, b: str) -> list[str] | None:
    """A shortest import path from a to b, or None."""
    prev: dict[str, str | None] = {a: None}
    todo = [a]
    while todo:
        nxt = []
        for x in todo:
            for y in sorted(g.get(x, ())):
                if y not in prev:
                    prev[y] = x
                    if y == b:
                        out = [y]
                        while prev[out[-1]] is not None:
                            out.append(prev[out[-1]])
                        return out[::-1]
                    nxt.append(y)
        todo = nxt
    return None


def _related(a: str, b: str) -> bool:
    return a.startswith(b + ".") or b.startswith(a + ".")


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles, one per pair of modules that import each other through some path, as
    the path ``[a, b, ..., a]``. A package and its own modules are not a cycle (a package's
    __init__ may name its modules, and they import their siblings through it)."""
    seen, out = set(), []
    for a in sorted(g):
        for b in sorted(g[a]):
            if _related(a, b) or tuple(sorted((a, b))) in seen:
                continue
            back = _path(g, b, a)
            if back is not None:
                members = {a, *back}
                seen |= {tuple(sorted((x, y))) for x in members for y in members}
                out.append([a, *back])
    return out


def node_of(module: str) -> str | None:
    """The diagram's box a module belongs to: app/, a folder of engine or training, or a module
    directly in engine/ (the packages' own __init__ counts for nothing)."""
    parts = module.split(".")
    if parts[0] == "app":
        return "app"
    return ".".join(parts[:2]) if len(parts) > 1 else None


def folder_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    fg: dict[str, set[str]] = {}
    for a, targets in g.items():
        na = node_of(a)
        if na is None:
            continue
        fg.setdefault(na, set())
        for b in targets:
            nb = node_of(b)
            if nb is not None and nb != na:
                fg[na].add(nb)
                fg.setdefault(nb, set())
    return fg


def training_leaks(g: dict[str, set[str]]) -> dict[str, list[str]]:
    """Engine modules (benchmarks aside) that import training: module -> what it imports."""
    return {m: sorted(t for t in g[m] if t.split(".")[0] == "training") for m in sorted(g)
            if m.split(".")[0] == "engine" and not m.startswith("engine.bench")
            and any(t.split(".")[0] == "training" for t in g[m])}  # fmt: skip


def oversized(root: Path = ROOT) -> dict[str, int]:
    """Python files of engine, app and training over MAX_LINES lines: path -> lines."""
    out = {}
    for p in modules(root).values():
        n = len(p.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            out[str(p.relative_to(root))] = n
    return out


def problems(root: Path = ROOT) -> list[str]:
    """Every broken rule, one line each (empty: the layout is sound)."""
    g = graph(root)
    out = [f"import cycle: {' -> '.join(c)}" for c in cycles(g)]
    out += [f"import cycle between folders: {' -> '.join(c)}" for c in cycles(folder_graph(g))]
    out += [f"{m} imports {', '.join(t)} (the engine never imports training: run torch work as a "
            f"child process, engine.child)" for m, t in training_leaks(g).items()]  # fmt: skip
    out += [f"{p} has {n} lines (at most {MAX_LINES}: split it along a seam)" for p, n in oversized(root).items()]
    return out


def _reduced(fg: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each arrow that no longer path implies (the graph has no cycles)."""
    return {a: {b for b in bs if _path({**fg, a: bs - {b}}, a, b) is None} for a, bs in fg.items()}


def _label(name: str, root: Path) -> str:
    if name == "app":
        return "app/"
    path = root / name.replace(".", "/")
    return str(path.relative_to(root / name.split(".")[0])) + ("/" if path.is_dir() else ".py")


def diagram(root: Path = ROOT) -> str:
    """The Mermaid flowchart of folders and their arrows (README's architecture picture)."""
    fg = folder_graph(graph(root))
    red = _reduced(fg)
    ident = {n: n.replace(".", "_") for n in fg}
    lines = ["```mermaid", "flowchart TD"]
    for top in ("engine", "training"):
        lines.append(f'  subgraph {top}_pkg ["{top}/"]')
        lines += [f'    {ident[n]}["{_label(n, root)}"]' for n in sorted(fg) if n.split(".")[0] == top]
        lines.append("  end")
    lines.append('  app["app/"]')
    lines += [f"  {ident[a]} --> {ident[b]}" for a in sorted(red) for b in sorted(red[a])]
    lines.append("```")
    return "\n".join(lines) + "\n"


def readme_diagram(text: str) -> str | None:
    """The diagram README carries between its markers, or None."""
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_readme(root: Path = ROOT) -> bool:
    """Put the current diagram between README's markers; True if README changed."""
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if readme_diagram(text) is None:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    new = head + BEGIN + "\n" + diagram(root) + END + rest.split(END, 1)[1]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--readme"]:
        print("README.md: diagram " + ("updated" if write_readme() else "already current"))
        return 0
    if argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    found = problems()
    for line in found:
        print(line)
    g = graph()
    print(f"{len(g)} modules, {sum(map(len, g.values()))} import arrows, {len(found)} problems",
          file=sys.stderr)  # fmt: skip
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
