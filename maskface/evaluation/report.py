"""Evaluation reports: ``report.json``, a self-contained ``report.html`` and ``report.md``.

The HTML embeds every figure and thumbnail as a base64 PNG, so it can be mailed or archived
alone; the Markdown links the same figures, written as PNG files next to it. Figures: ROC
(TAR against FAR, log scale) and DET (FNMR against FMR) curves of every configuration,
genuine/impostor distance histograms with their overlap (the area both normalised histograms
share: 0 separates perfectly, 1 not at all), and the hardest failing pairs at each
configuration's threshold (the median of its fold thresholds).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maskface.atomic import write_bytes_atomic, write_json_atomic
from maskface.evaluation.embeddings import EmbeddingResult
from maskface.evaluation.verification import ConfigurationResult

# (key in the metrics dict, column title, is a rate shown in percent)
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("pairs", "pairs", False),
    ("accuracy", "10-fold acc. %", True),
    ("accuracy_stderr", "± SE", True),
    ("val_far1e_3", "VAL@FAR=1e-3 %", True),
    ("auc", "AUC %", True),
    ("eer", "EER %", True),
    ("fmr100", "FMR100 %", True),
    ("fmr1000", "FMR1000 %", True),
    ("zero_fmr", "ZeroFMR %", True),
)
HARDEST = 6


def histogram_overlap(genuine: np.ndarray, impostor: np.ndarray, bins: int = 60) -> float:
    """Shared area of the two normalised distance histograms (0 = disjoint, 1 = identical)."""
    lo = min(genuine.min(), impostor.min())
    hi = max(genuine.max(), impostor.max())
    edges = np.linspace(lo, hi + 1e-9, bins + 1)
    g, _ = np.histogram(genuine, edges)
    i, _ = np.histogram(impostor, edges)
    return float(np.minimum(g / g.sum(), i / i.sum()).sum())


def _hardest(res: ConfigurationResult, threshold: float, n: int = HARDEST) -> list[dict]:
    """The genuine pairs rejected with the largest distances and the impostor pairs accepted
    with the smallest, interleaved, at distance ``threshold``."""
    d, y = res.distances, res.labels
    false_reject = [i for i in np.argsort(-d) if y[i] and d[i] > threshold][:n]
    false_accept = [i for i in np.argsort(d) if not y[i] and d[i] <= threshold][:n]
    picked = [i for pair in zip(false_reject, false_accept, strict=False) for i in pair]
    picked += false_reject[len(false_accept):] + false_accept[len(false_reject):]
    return [
        {"pair": res.rows[i].pair, "same": bool(y[i]), "distance": round(float(d[i]), 4),
         "a": res.paths[i][0], "b": res.paths[i][1], "methods": list(res.methods[i]),
         "style": res.styles[i]}
        for i in picked[:n]
    ]


def _metrics_dict(m) -> dict:
    return m.as_dict() if m is not None else {}


def build_report(
    results: Sequence[ConfigurationResult],
    embeddings: EmbeddingResult,
    *,
    recognizer: str,
    detector: str,
    fallback: str,
    protocol_files: Sequence[str],
    timings: dict,
    command: str = "",
    alignment: str = "dlib150",
) -> dict:
    """The JSON-able report of an evaluation run."""
    from maskface import __version__

    configs = {}
    for res in results:
        threshold = float(-np.median(res.metrics.fold_thresholds))
        gen, imp = res.distances[res.labels], res.distances[~res.labels]
        configs[res.configuration] = {
            "protocol": res.protocol,
            "metrics": _metrics_dict(res.metrics),
            "by_style": {s: _metrics_dict(m) for s, m in res.by_style.items()},
            "style_pairs": {s: res.styles.count(s) for s in sorted(set(res.styles))},
            "distance_threshold": threshold,
            "histogram_overlap": histogram_overlap(gen, imp),
            "genuine_distance": {"mean": float(gen.mean()), "std": float(gen.std())},
            "impostor_distance": {"mean": float(imp.mean()), "std": float(imp.std())},
            "pairs_with_fallback": sum("center" in m for m in res.methods),
            "excluded": [{"pair": p, "reason": r} for p, r in res.excluded],
            "hardest": _hardest(res, threshold),
        }
    return {
        "maskface": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "recognizer": recognizer,
        "alignment": alignment,
        "detector": detector,
        "fallback": fallback,
        "protocols": [str(p) for p in protocol_files],
        "timings": timings,
        "enrolment": {
            "images": len(embeddings.paths),
            "fallback_used": len(embeddings.fallback_used),
            "failures": len(embeddings.failures),
            "fallback_paths": embeddings.fallback_used,
            "failure_reasons": [{"path": p, "reason": r} for p, r in embeddings.failures],
        },
        "configurations": configs,
    }


def format_cell(value: float, percent: bool) -> str:
    """A table cell: rates in percent with 2 decimals, counts as integers."""
    if isinstance(value, int) and not percent:
        return str(value)
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def _table_rows(report: dict) -> list[tuple[str, str, dict]]:
    """(configuration, style, metrics) rows: each configuration, then its styles."""
    rows = []
    for name, cfg in report["configurations"].items():
        rows.append((name, "all", cfg["metrics"]))
        rows += [(name, style, m) for style, m in cfg["by_style"].items()]
    return rows


def markdown_table(report: dict) -> str:
    """The metrics table over configurations (and mask styles) as Markdown."""
    head = ["configuration", "mask style", *(title for _, title, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, style, m in _table_rows(report):
        cells = [format_cell(m[key], pct) for key, _, pct in COLUMNS]
        lines.append("| " + " | ".join([name, style, *cells]) + " |")
    return "\n".join(lines)


def _figures(results: Sequence[ConfigurationResult]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    figs: dict[str, bytes] = {}

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    roc, ax_roc = plt.subplots(figsize=(6, 4.5))
    det, ax_det = plt.subplots(figsize=(6, 4.5))
    for res in results:
        fpr, tpr, _ = roc_curve(res.labels, -res.distances)
        label = f"{res.configuration} (AUC {100 * res.metrics.auc:.2f}%)"
        ax_roc.plot(np.maximum(fpr, 1e-4), tpr, label=label)
        ax_det.plot(np.maximum(fpr, 1e-4), np.maximum(1 - tpr, 1e-4), label=res.configuration)
    ax_roc.set(xscale="log", xlabel="false accept rate", ylabel="true accept rate",
               title="ROC", xlim=(1e-4, 1))
    ax_det.set(xscale="log", yscale="log", xlabel="FMR", ylabel="FNMR", title="DET",
               xlim=(1e-4, 1), ylim=(1e-4, 1))
    for ax in (ax_roc, ax_det):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    figs["roc.png"], figs["det.png"] = png(roc), png(det)

    for res in results:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        bins = np.linspace(0, max(1.2, res.distances.max()), 60)
        ax.hist(res.distances[res.labels], bins, alpha=0.6, density=True, label="genuine")
        ax.hist(res.distances[~res.labels], bins, alpha=0.6, density=True, label="impostor")
        ax.axvline(-np.median(res.metrics.fold_thresholds), color="k", ls="--", lw=1,
                   label="threshold")
        overlap = histogram_overlap(res.distances[res.labels], res.distances[~res.labels])
        ax.set(xlabel="embedding distance", ylabel="density",
               title=f"{res.configuration}: overlap {overlap:.3f}")
        ax.legend(fontsize=8)
        figs[f"hist_{res.configuration}.png"] = png(fig)
    return figs


def _thumbnail(path: str, size: int = 96) -> bytes:
    from PIL import Image

    from maskface.imageio import read_image

    try:
        image = Image.fromarray(read_image(path))
    except Exception:  # a broken image must not break the report: show grey
        image = Image.new("RGB", (size, size), (128, 128, 128))
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _html(report: dict, figs: dict[str, bytes]) -> str:
    esc = html.escape
    head = ["configuration", "mask style", *(t for _, t, _ in COLUMNS)]
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in
                         [name, style, *(format_cell(m[k], p) for k, _, p in COLUMNS)]) + "</tr>"
        for name, style, m in _table_rows(report)
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>maskface eval: {esc(report['recognizer'])}</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;"
        "text-align:right}figure{display:inline-block;margin:4px}"
        "figcaption{font-size:11px;max-width:200px}</style></head><body>",
        f"<h1>Verification report: {esc(report['recognizer'])}</h1>",
        f"<p>detector {esc(report['detector'])}, fallback {esc(report['fallback'])}; "
        f"{report['enrolment']['images']} images, {report['enrolment']['fallback_used']} "
        f"centre-box fallbacks, {report['enrolment']['failures']} failures to enrol; "
        f"created {esc(report['created'])}</p>",
        f"<p><code>{esc(report['command'])}</code></p>",
        "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + f"</tr>{rows}</table>",
        "<p>Rates in percent; FMR100/FMR1000/ZeroFMR are the FNMR at FMR 1%, 0.1% and 0. "
        "Bootstrap 95% intervals are in report.json.</p><h2>Curves</h2>",
        f"<img src='{_b64(figs['roc.png'])}'><img src='{_b64(figs['det.png'])}'>",
    ]
    for name, cfg in report["configurations"].items():
        parts.append(f"<h2>{esc(name)}</h2><img src='{_b64(figs[f'hist_{name}.png'])}'>")
        parts.append(f"<h3>Hardest failing pairs (threshold {cfg['distance_threshold']:.3f})"
                     "</h3><div>")
        for h in cfg["hardest"]:
            kind = "genuine rejected" if h["same"] else "impostor accepted"
            imgs = "".join(f"<img src='{_b64(_thumbnail(h[s]))}'>" for s in ("a", "b"))
            parts.append(f"<figure>{imgs}<figcaption>{kind}, d={h['distance']:.3f}<br>"
                         f"{esc(Path(h['a']).name)} / {esc(Path(h['b']).name)}"
                         "</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def _markdown(report: dict) -> str:
    lines = [
        f"# Verification report: {report['recognizer']}", "",
        f"Detector {report['detector']}, fallback {report['fallback']}; "
        f"{report['enrolment']['images']} images, {report['enrolment']['fallback_used']} "
        f"centre-box fallbacks, {report['enrolment']['failures']} failures to enrol.", "",
    ]
    if report["command"]:
        lines += ["```", report["command"], "```", ""]
    lines += [markdown_table(report), "", "![ROC](roc.png) ![DET](det.png)", ""]
    for name, cfg in report["configurations"].items():
        lines += [f"## {name}", "", f"![histogram](hist_{name}.png)", "",
                  f"Histogram overlap {cfg['histogram_overlap']:.3f}; hardest failing pairs at "
                  f"distance threshold {cfg['distance_threshold']:.3f}:", ""]
        for h in cfg["hardest"]:
            kind = "genuine rejected" if h["same"] else "impostor accepted"
            lines.append(f"- {kind}, d={h['distance']:.3f}: `{h['a']}` / `{h['b']}`")
        lines.append("")
    return "\n".join(lines)


def write_report(out: str | Path, report: dict, results: Sequence[ConfigurationResult]
                 ) -> dict[str, Path]:
    """Write report.json, report.html, report.md and the figures into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(results)
    paths = {"json": out / "report.json", "html": out / "report.html", "md": out / "report.md"}
    write_json_atomic(paths["json"], report)
    write_bytes_atomic(paths["html"], _html(report, figs).encode("utf-8"))
    write_bytes_atomic(paths["md"], _markdown(report).encode("utf-8"))
    for name, data in figs.items():
        (out / name).write_bytes(data)
    return paths
