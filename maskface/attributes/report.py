"""Study reports: ``report.json``, confusion matrices as PNG, and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def confusion_png(matrix: np.ndarray, classes: list[str], title: str, path: Path) -> Path:
    """Draw a row-normalised confusion matrix (counts in the cells) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.2 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=90)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(target: str, score: dict[str, float]) -> str:
    if "accuracy" in score:
        return f"{100 * score['accuracy']:.2f}%"
    return f"{score['mae']:.2f} / {score['rmse']:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary_table(result: dict[str, Any]) -> str:
    targets = result["meta"]["targets"]
    header = ["train / test"] + [
        "age MAE / RMSE" if t == "age" else f"{t} accuracy" for t in targets
    ]
    rows = []
    for key in result["results"][targets[0]]:
        rows.append([key] + [_fmt(t, result["results"][t][key]["overall"]) for t in targets])
    return _table(header, rows)


def _breakdowns(target: str, per_key: dict[str, Any]) -> str:
    parts = []
    for key, scores in per_key.items():
        for name, groups in scores["breakdown"].items():
            rows = [[label, _fmt(target, s), str(s["n"])] for label, s in groups.items()]
            parts.append(f"<h4>{html.escape(key)}: by {html.escape(name)}</h4>"
                         + _table([name, "score", "n"], rows))
    return "".join(parts)


def write_report(result: dict[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.json``, ``confusion/*.png`` and ``report.html`` (images inlined)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(result, indent=1))
    meta = result["meta"]
    sections = [
        "<h1>Attributes under masks</h1>",
        f"<p>split <b>{html.escape(str(meta['split']))}</b>, seed {meta['seed']}, "
        f"{meta['samples']} images; train/val/test fractions {meta['fractions']}. "
        "Classification: accuracy; age: MAE / RMSE in years.</p>",
        _summary_table(result),
    ]
    for target, per_key in result["results"].items():
        sections.append(f"<h2>{html.escape(target)}</h2>")
        first = next(iter(per_key.values()))
        sections.append("<p>model picked on validation: " + ", ".join(
            f"{html.escape(k)}: {html.escape(v['model'])}" for k, v in per_key.items()) + "</p>")
        if "confusion" in first:
            for key, scores in per_key.items():
                name = f"{target}-{key.replace('/', '-')}.png"
                png = confusion_png(np.array(scores["confusion"]), scores["classes"],
                                    f"{target}: {key}", out / "confusion" / name)
                data = base64.b64encode(png.read_bytes()).decode()
                sections.append(f'<img alt="{html.escape(name)}" '
                                f'src="data:image/png;base64,{data}">')
        sections.append(_breakdowns(target, per_key))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
             "h4{margin:.8em 0 .2em}img{margin:4px}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>maskface attributes"
            f"</title><style>{style}</style></head><body>{''.join(sections)}"
            f"<h2>meta</h2><pre>{html.escape(json.dumps(meta, indent=1))}</pre></body></html>")
    html_path = out / "report.html"
    html_path.write_text(page)
    return {"json": json_path, "html": html_path}
