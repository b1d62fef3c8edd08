"""Open-set benchmark reports: ``report.json``, a self-contained ``report.html``, ``report.md``.

Same style as ``maskface eval``'s (:mod:`maskface.evaluation.report`): one table with every
configuration, figures embedded as base64 PNGs (DET: FNIR against FPIR; CMC: identification
rate by rank; top-1 score histograms of mated and non-mated searches), the gain mask-aware
enrolment brings with its paired interval, and thumbnails of the most confident mistakes.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import numpy as np

from maskface.atomic import write_bytes_atomic, write_json_atomic
from maskface.evaluation.report import _b64, _thumbnail
from maskface.gallery.benchmark import OpenSetRun


def _pct(value: float, ci: list[float] | None = None) -> str:
    text = f"{100 * value:.2f}"
    if ci:
        text += f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
    return text


def columns(fpirs: list[float]) -> list[tuple[str, str]]:
    """(metric key, column title) of the table."""
    return [("rank1", "rank-1 %"), ("rank5", "rank-5 %"),
            *((f"fnir_at_fpir_{p:g}", f"FNIR@FPIR={100 * p:g}% ") for p in fpirs)]


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    for name, cfg in report["configurations"].items():
        m = cfg["metrics"]
        rows.append([name, str(cfg["templates"]), f"{m['mated']} ({m['mated_people']})",
                     str(m["nonmated"]),
                     *(_pct(m[k], m["ci"].get(k)) for k, _ in columns(report["fpirs"])),
                     f"{m['threshold_at_fpir_{:g}'.format(report['fpirs'][0])]:.4f}"])
    return rows


def table_head(report: dict) -> list[str]:
    return ["configuration", "templates", "mated (people)", "non-mated",
            *(t.strip() for _, t in columns(report["fpirs"])),
            f"threshold@FPIR={100 * report['fpirs'][0]:g}%"]


def _points(gain: dict, key: str) -> str:
    text = f"{100 * gain['difference'][key]:+.2f}"
    if key in gain["ci"]:
        low, high = gain["ci"][key]
        text += f" [{100 * low:+.2f}, {100 * high:+.2f}]"
    return text


def gain_rows(report: dict) -> list[list[str]]:
    """Mask-aware minus plain, per setting, in points with the paired interval."""
    return [[setting, *(_points(g, k) for k, _ in columns(report["fpirs"]))]
            for setting, g in report["mask_aware_gain"].items()]


def markdown_table(report: dict) -> str:
    """The configuration table (95% bootstrap intervals in brackets) as Markdown."""
    head = table_head(report)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    if report["mask_aware_gain"]:
        head = ["mask-aware gain (points)", *(t.strip() for _, t in columns(report["fpirs"]))]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in gain_rows(report)]
    return "\n".join(lines)


def _figures(run: OpenSetRun) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    figs = {}
    det, ax = plt.subplots(figsize=(6, 4.5))
    cmc, ax_c = plt.subplots(figsize=(6, 4.5))
    settings = list(dict.fromkeys(c["setting"] for c in run.report["configurations"].values()))
    for name, cfg in run.report["configurations"].items():
        m = cfg["metrics"]
        # one colour per setting; dashed with mask-aware enrolment
        look = {"color": f"C{settings.index(cfg['setting'])}",
                "ls": "--" if cfg["mask_aware"] else "-"}
        fpir, fnir = np.array(m["det"]["fpir"]), np.array(m["det"]["fnir"])
        measured = fpir > 0  # below 1/non-mated searches nothing is measured
        ax.plot(fpir[measured], np.maximum(fnir[measured], 1e-4), label=name, **look)
        ax_c.plot(range(1, len(m["cmc"]) + 1), 100 * np.array(m["cmc"]), marker=".",
                  label=name, **look)
    ax.set(xscale="log", yscale="log", xlabel="FPIR", ylabel="FNIR (rank 1)",
           title="DET (open-set)", xlim=(1e-4, 1), ylim=(1e-3, 1))
    ax_c.set(xlabel="rank", ylabel="identification rate %", title="CMC (mated searches)")
    for a in (ax, ax_c):
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    figs["det.png"], figs["cmc.png"] = png(det), png(cmc)

    names = list(run.scores)
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 2.4 * len(names)), squeeze=False,
                             layout="constrained")
    # the scores' own range: a recognizer's cosines can crowd into a narrow band (dlib's
    # lie mostly above 0.8), which fixed bins would squeeze into a few bars
    every = np.concatenate([np.r_[s.top1_score, s.nonmated] for s in run.scores.values()])
    bins = np.linspace(np.percentile(every, 0.5), max(1.0, every.max()), 61)
    for a, name in zip(axes[:, 0], names, strict=True):
        s = run.scores[name]
        for values, label in ((s.top1_score[s.top1_is_mate], "mated, right person at rank 1"),
                              (s.top1_score[~s.top1_is_mate], "mated, wrong person at rank 1"),
                              (s.nonmated, "non-mated")):
            if len(values):  # an empty group has no density
                a.hist(values, bins, alpha=0.6, density=True, label=label)
        t = run.report["configurations"][name]["metrics"][
            f"threshold_at_fpir_{run.report['fpirs'][0]:g}"]
        a.axvline(t, color="k", ls="--", lw=1)
        a.set_title(f"{name}: top-1 scores (dashed: threshold at FPIR "
                    f"{100 * run.report['fpirs'][0]:g}%)", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    axes[-1, 0].set_xlabel("cosine similarity")
    figs["scores.png"] = png(fig)
    return figs


def _html(run: OpenSetRun, figs: dict[str, bytes]) -> str:
    esc = html.escape
    r = run.report
    p = r["protocol"]

    def table(head: list[str], rows: list[list[str]]) -> str:
        return ("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                          for row in rows) + "</table>")

    fb = r["embedding"]["centre_box_fallbacks"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>maskface gallery eval: {esc(r['recognizer'])}</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;"
        "text-align:right}figure{display:inline-block;margin:4px}"
        "figcaption{font-size:11px;max-width:300px}</style></head><body>",
        f"<h1>Open-set identification: {esc(r['recognizer'])}</h1>",
        f"<p>LFW ({esc(p['root'])}): {p['enrolled_people']} people enrolled from one photo "
        f"each, {p['mated_probes']} mated probes, {p['nonmated_probes']} non-mated probes "
        f"(people with one photo). Detector {esc(r['detector'])}, index {esc(r['index'])}, "
        f"seed {r['seed']}. Masks: {esc(r['masks']['source'])}; probe styles "
        f"{esc(', '.join(r['masks']['probe_styles']))}; mask-aware styles "
        f"{esc(', '.join(r['masks']['mask_aware_styles']))}; renderers "
        f"{esc(', '.join(r['masks']['renderers']))}. Centre-box fallbacks: {fb['bare']} bare, "
        f"{fb['masked']} masked, {fb['variants']} mask-aware variants; "
        f"{len(r['embedding']['failures'])} images unusable. Created {esc(r['created'])}.</p>",
        f"<p><code>{esc(r['command'])}</code></p>",
        table(table_head(r), table_rows(r)),
        "<p>Rates in percent with 95% bootstrap intervals (mated people and non-mated probes "
        "resampled). FNIR is at rank 1: the mate must be the first candidate and score at "
        "least the threshold that gives the FPIR on the non-mated probes.</p>",
    ]
    if r["mask_aware_gain"]:
        parts += ["<h2>What mask-aware enrolment buys</h2>",
                  table(["setting (with minus without, points)",
                         *(t.strip() for _, t in columns(r["fpirs"]))], gain_rows(r)),
                  "<p>Paired bootstrap: both configurations resampled alike. Positive is "
                  "better for rank-1/5, negative is better for FNIR.</p>"]
    parts += ["<h2>Curves</h2>",
              f"<img src='{_b64(figs['det.png'])}'><img src='{_b64(figs['cmc.png'])}'>",
              f"<h2>Top-1 scores</h2><img src='{_b64(figs['scores.png'])}'>",
              "<h2>Most confident mistakes</h2><p>Mated probes whose first candidate was "
              "someone else, highest score first: probe, the person returned (their "
              "enrolment photo), the true mate's enrolment photo. Shown bare.</p>"]
    for name, worst in run.hardest.items():
        parts.append(f"<h3>{esc(name)}</h3><div>")
        for h in worst:
            imgs = "".join(f"<img src='{_b64(_thumbnail(h[k]))}'>" for k in
                           ("probe", "returned_reference", "mate_reference") if h[k])
            parts.append(f"<figure>{imgs}<figcaption>{esc(h['person'])} taken for "
                         f"{esc(h['returned'])} ({h['score']:.3f}); mate at rank "
                         f"{h['mate_rank'] or '>20'}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def _markdown(run: OpenSetRun) -> str:
    r = run.report
    lines = [f"# Open-set identification: {r['recognizer']}", ""]
    if r["command"]:
        lines += ["```", r["command"], "```", ""]
    lines += [markdown_table(r), "", "![DET](det.png) ![CMC](cmc.png)", "",
              "![top-1 scores](scores.png)", ""]
    return "\n".join(lines)


def write_report(out: str | Path, run: OpenSetRun) -> dict[str, Path]:
    """Write report.json, report.html, report.md and the figures into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(run)
    paths = {"json": out / "report.json", "html": out / "report.html", "md": out / "report.md"}
    write_json_atomic(paths["json"], run.report)
    write_bytes_atomic(paths["html"], _html(run, figs).encode("utf-8"))
    write_bytes_atomic(paths["md"], _markdown(run).encode("utf-8"))
    for name, data in figs.items():
        write_bytes_atomic(out / name, data)
    return paths
