"""The training report: what the run saw and how it went, as JSON and one self-contained page."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from maskface.atomic import write_bytes_atomic, write_json_atomic
from maskface.training.trainer import VAL_CONFIGS


def _curves(history: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in sorted(k for k in history[0] if k.startswith("train_")):
        left.plot(epochs, [h[key] for h in history], marker="o", label=key[6:])
    left.set(xlabel="epoch", ylabel="training loss", title="Loss")
    left.legend()
    for config in VAL_CONFIGS:
        key = f"val_{config}"
        if key in history[0]:
            right.plot(epochs, [100 * h[key] for h in history], marker="o", label=config)
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="Validation (held-out people)")
    right.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(out: str | Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """``report.json`` and ``report.html`` in ``out``; ``report`` holds ``history``,
    ``config``, ``data`` and ``best_epoch``."""
    out = Path(out)
    write_json_atomic(out / "report.json", report)
    history = report["history"]
    figure = (f'<img alt="training curves" src="data:image/png;base64,'
              f'{base64.b64encode(_curves(history)).decode()}">' if history else "")
    cols = ["epoch", "train_loss", *(f"val_{c}" for c in VAL_CONFIGS), "images_per_second",
            "seconds"]
    cols = [c for c in cols if history and c in history[0]]

    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    rows = "".join(
        "<tr" + (' class="best"' if h["epoch"] == report["best_epoch"] else "") + ">"
        + "".join(f"<td>{cell(h.get(c, ''))}</td>" for c in cols) + "</tr>" for h in history)
    facts = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in {**report["data"], **report["config"]}.items())
    w = report.get("whitening")
    white = "" if not w else (
        f"<p>Within-face whitening: validation score {100 * w['score_before']:.2f} without, "
        f"{100 * w['score_after']:.2f} with; "
        + ("folded into <code>model.safetensors</code>." if w["kept"] else "not kept.") + "</p>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>maskface training</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;
margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{text-align:left}}
tr.best{{background:#e6f4e6}}</style></head><body>
<h1>Training run</h1><p>Best epoch: <b>{report['best_epoch']}</b> (highlighted), picked on the
validation people's pairs; its weights are <code>model.safetensors</code>.</p>{white}{figure}
<h2>Epochs</h2><table><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr>{rows}</table>
<h2>Data and recipe</h2><table>{facts}</table></body></html>"""
    write_bytes_atomic(out / "report.html", page.encode("utf-8"))
    return out / "report.json", out / "report.html"
