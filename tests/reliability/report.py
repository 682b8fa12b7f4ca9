"""Turn the faults the reliability suite recorded into the report's table.

PHOTOSIFT_RELIABILITY_REPORT=faults.jsonl pytest -m "slow or not slow" tests/reliability
python -m tests.reliability.report faults.jsonl
"""

from __future__ import annotations

import json
import sys


def table(rows: list[dict]) -> str:
    """A Markdown table: one line per kind of fault, counts summed, the worst recovery time."""
    merged: dict[str, dict] = {}
    for r in rows:
        m = merged.setdefault(r["fault"], dict(injected=0, lost=0, recover_s=None, notes=[]))
        m["injected"] += r.get("injected", 1)
        m["lost"] += r.get("lost", 0)
        if r.get("recover_s") is not None:
            m["recover_s"] = max(m["recover_s"] or 0.0, r["recover_s"])
        extra = {k: v for k, v in r.items() if k not in ("fault", "injected", "lost", "recover_s")}
        if extra:
            m["notes"].append(", ".join(f"{k}: {v}" for k, v in extra.items()))
    out = [
        "| fault | injected | lost | worst time to recover | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for fault, m in merged.items():
        rec = "-" if m["recover_s"] is None else f"{m['recover_s']:.2f} s"
        out.append(f"| {fault} | {m['injected']} | {m['lost']} | {rec} | {'; '.join(m['notes'])} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
