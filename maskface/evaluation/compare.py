"""Several evaluation reports side by side: one row per (report, configuration)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from maskface.evaluation.report import COLUMNS, format_cell


def load_reports(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, dict]]:
    """``(label, report)`` per ``report.json`` (a directory means its ``report.json``)."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            p = p / "report.json"
        report = json.loads(p.read_text(encoding="utf-8"))
        if "configurations" not in report:
            raise ValueError(f"{p} is not a maskface eval report")
        out.append((f"{report.get('recognizer', '?')} ({p.parent.name or p.name})", report))
    return out


def compare_table(reports: Sequence[tuple[str, dict]], styles: bool = False) -> str:
    """Markdown table: configurations as row groups, one row per report, so runs line up."""
    names = list(dict.fromkeys(c for _, r in reports for c in r["configurations"]))
    head = ["configuration", "run", *(t for _, t, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        for label, report in reports:
            cfg = report["configurations"].get(name)
            if cfg is None:
                continue
            rows = [("", cfg["metrics"])]
            if styles:
                rows += [(f" [{s}]", m) for s, m in cfg.get("by_style", {}).items()]
            for suffix, m in rows:
                cells = [format_cell(m[k], pct) for k, _, pct in COLUMNS]
                lines.append("| " + " | ".join([name + suffix, label, *cells]) + " |")
    return "\n".join(lines)
