"""Open-set identification benchmark on LFW, bare and masked, with and without mask-aware
enrolment (``maskface gallery eval``).

Protocol. Every person of LFW with two or more images is enrolled from one image (their
first, ``<Name>_0001``); their other images are mated probes. Every person with a single
image is a non-mated probe. ``mated_people`` / ``nonmated`` draw a seeded subset.

Settings:

* ``unmasked``: bare gallery, bare probes.
* ``masked-probe``: bare gallery, masked probes.
* ``masked-both``: the enrolment photo is masked too.

Each runs with a plain gallery (one template per person) and with mask-aware enrolment
(:func:`maskface.gallery.masked_variants` adds one masked template per style, drawn on the
enrolment photo, bare or masked, exactly as :meth:`Gallery.enrol` does).

Masks. With ``masked_root`` (a masked copy of LFW written by ``maskface datasets mask lfw``,
the same files the verification benchmark uses), masked images are read from it; probes
whose image has no masked copy are left out of the masked settings and listed. Without it,
each masked image gets a style and renderer drawn from ``probe_styles`` / ``renderers`` by a
seed and its file name (so subsets and reruns agree), rendered on the fly.

Faces are found and cut as in ``maskface eval`` (:func:`maskface.geometry.locate.locate`:
the central face, a centre box when none is found, counted). Bare images go through
:func:`maskface.evaluation.embed_paths` and its SQLite cache; rendered images are cut in
worker processes, embedded by the main process and cached in the same file, keyed by the
pipeline, the mask settings and the source file's digest. The galleries are real
:class:`~maskface.gallery.Gallery` folders (in a temporary directory) searched with
:meth:`Gallery.search_codes` (bare probes skip the synthetic masked templates, as
:meth:`Gallery.search` does for faces its mask flag calls bare).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maskface.gallery.gallery import (
    DEFAULT_MASK_STYLES,
    DEFAULT_RENDERERS,
    Gallery,
    GalleryError,
    image_digest,
    masked_variants,
)
from maskface.gallery.openset import (
    FPIRS,
    OpenSetScores,
    open_set_metrics,
    paired_difference,
)
from maskface.gallery.store import SYNTHETIC_PREFIX

SETTINGS: tuple[str, ...] = ("unmasked", "masked-probe", "masked-both")
PROBE_STYLES: tuple[str, ...] = ("surgical", "n95", "kn95", "cloth")
MAX_RANK = 20
_VERSION = 1  # of the rendered-image cache entries
_CHUNK = 8


@dataclasses.dataclass
class OpenSetProtocol:
    """(person, image path) lists of an open-set protocol."""

    enrolled: list[tuple[str, str]]
    mated: list[tuple[str, str]]
    nonmated: list[tuple[str, str]]
    image_root: Path

    def describe(self) -> dict:
        return {"enrolled_people": len(self.enrolled), "mated_probes": len(self.mated),
                "nonmated_probes": len(self.nonmated), "image_root": str(self.image_root)}


def lfw_open_set(root: str | os.PathLike[str], *, mated_people: int | None = None,
                 nonmated: int | None = None, seed: int = 0) -> OpenSetProtocol:
    """LFW's open-set protocol (see the module docstring); a seeded subset when asked."""
    from maskface.datasets.lfw import LfwDataset

    ds = LfwDataset(root)
    people: dict[str, list] = {}
    for s in ds.samples:
        if "variant" not in s.attributes:
            people.setdefault(s.identity, []).append(s)
    multi = sorted(p for p, v in people.items() if len(v) >= 2)
    single = sorted(p for p, v in people.items() if len(v) == 1)
    rng = np.random.default_rng(seed)
    if mated_people is not None and mated_people < len(multi):
        multi = sorted(rng.choice(multi, mated_people, replace=False).tolist())
    if nonmated is not None and nonmated < len(single):
        single = sorted(rng.choice(single, nonmated, replace=False).tolist())
    if not multi or not single:
        raise GalleryError(f"{root}: an open-set protocol needs people with 2+ images and "
                           f"people with 1 image; found {len(multi)} and {len(single)}")
    enrolled, mated = [], []
    for p in multi:
        ordered = sorted(people[p], key=lambda s: s.attributes["number"])
        enrolled.append((p, str(ordered[0].path)))
        mated += [(p, str(s.path)) for s in ordered[1:]]
    return OpenSetProtocol(enrolled, mated, [(p, str(people[p][0].path)) for p in single],
                           ds.image_root)


def probe_mask(image: np.ndarray, name: str, styles: Sequence[str], renderers: Sequence[str],
               seed: int) -> tuple[np.ndarray, str] | None:
    """The masked probe of ``image`` (style and renderer drawn from the seed and ``name``),
    and what was drawn; ``None`` when the renderer finds no face."""
    from maskface.synthesis import mask_image

    salt = int(hashlib.blake2b(name.encode(), digest_size=8).hexdigest(), 16)
    rng = np.random.default_rng([seed, salt])
    style = styles[int(rng.integers(len(styles)))]
    renderer = renderers[int(rng.integers(len(renderers)))]
    result = mask_image(image, style, renderer=renderer, vary=True, seed=rng)
    return (result.image, f"{style}:{renderer}") if result.status == "ok" else None


# -- rendered images, cut in workers --------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Render:
    """What to draw on one source image before cutting chips."""

    probe_mask: bool  # draw the probe's mask first
    variants: bool  # then the mask-aware variants of the (possibly masked) image
    probe_styles: tuple[str, ...]
    styles: tuple[str, ...]
    renderers: tuple[str, ...]
    seed: int
    alignment: str
    chip_size: int
    padding: float
    detector: str

    def key(self) -> str:
        what = (f"probe={int(self.probe_mask)}:{','.join(self.probe_styles)}|"
                f"variants={int(self.variants)}:{','.join(self.styles)}|"
                f"renderers={','.join(self.renderers)}|seed={self.seed}")
        return f"openset-v{_VERSION}|{what}"


def _render_one(task: tuple[str, str, _Render]) -> list[tuple[str, np.ndarray, str]] | str:
    """[(variant, chip, "detected" | "center")] of one source image, or why there is none."""
    from maskface.errors import ImageReadError
    from maskface.geometry.locate import center_landmarks, cut_chip, locate
    from maskface.imageio import read_image

    path, name, r = task
    try:
        image = read_image(path)
    except (ImageReadError, OSError) as e:
        return f"unreadable: {e}"
    if r.probe_mask:
        drawn = probe_mask(image, name, r.probe_styles, r.renderers, r.seed)
        if drawn is None:
            return "no mask drawn (the mask renderer found no face)"
        image, what = drawn
        items = [(f"probe:{what}", image)]
    else:
        items = [("photo", image)]
    if r.variants:
        items = masked_variants(image, r.styles, r.renderers, r.seed, image_digest(image))
    out = []
    for variant, im in items:
        # as embed_paths cuts its chips: the central face, else the centre box
        points, how = locate(im, r.detector), "detected"
        if points is None:
            points, how = center_landmarks(im), "center"
        out.append((variant, cut_chip(im, points, r.alignment, r.chip_size, r.padding), how))
    return out


def _render_chunk(tasks: list) -> list:
    return [_render_one(t) for t in tasks]


def embed_rendered(paths: Sequence[str], names: Sequence[str], render: _Render, recognizer,
                   *, cache=None, pipeline: str, workers: int | None = None,
                   progress: bool = False, desc: str = "rendering"
                   ) -> dict[str, list[tuple[str, np.ndarray, str]] | str]:
    """``{path: [(variant, embedding, how)] or reason}`` for images drawn as ``render`` says."""
    from maskface.evaluation.embeddings import file_digest

    key = f"{pipeline}|{render.key()}"
    digests = {p: file_digest(p) for p in paths}
    out: dict[str, list | str] = {}
    if cache is not None:
        for d, (vec, method) in cache.get(key, list(digests.values())).items():
            meta = json.loads(method)
            if isinstance(meta, str):
                out[d] = meta
            else:
                vecs = vec.reshape(len(meta), -1) if len(meta) else vec.reshape(0, 0)
                out[d] = [(v, e, how) for (v, how), e in zip(meta, vecs, strict=True)]
    todo = [(p, n) for p, n in zip(paths, names, strict=True) if digests[p] not in out]
    todo = list({digests[p]: (p, n) for p, n in todo}.values())
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=desc, unit="img")
    pending: list[tuple[str, list]] = []

    def flush() -> None:
        chips = [c for _, items in pending for _, c, _ in items]
        vecs = recognizer.embed_chips(np.stack(chips)) if chips else np.zeros((0, 0))
        at, entries = 0, []
        for d, items in pending:
            got = [(v, vecs[at + i], how) for i, (v, _, how) in enumerate(items)]
            at += len(items)
            out[d] = got
            meta = json.dumps([[v, how] for v, _, how in got])
            flat = (np.concatenate([e for _, e, _ in got]) if got
                    else np.zeros(0, np.float32))
            entries.append((d, flat, meta))
        if cache is not None:
            cache.put(key, entries)
        pending.clear()

    tasks = [(p, n, render) for p, n in todo]
    for (p, _), result in zip(todo, _run_tasks(tasks, workers), strict=True):
        if bar is not None:
            bar.update()
        d = digests[p]
        if isinstance(result, str):
            out[d] = result
            if cache is not None and not result.startswith("unreadable"):
                cache.put(key, [(d, np.zeros(0, np.float32), json.dumps(result))])
            continue
        pending.append((d, result))
        if sum(len(items) for _, items in pending) >= 64:
            flush()
    flush()
    if bar is not None:
        bar.close()
    return {p: out[digests[p]] for p in paths}


def _run_tasks(tasks: list, workers: int | None, window: int = 16):
    """Results of :func:`_render_one` in task order, computed by ``workers`` processes."""
    from maskface.parallel import ordered_map

    chunks = (tasks[i:i + _CHUNK] for i in range(0, len(tasks), _CHUNK))
    for done in ordered_map(_render_chunk, chunks, workers or os.cpu_count() or 1,
                            window=window):
        yield from done


# -- the benchmark ---------------------------------------------------------------------------
@dataclasses.dataclass
class OpenSetRun:
    """A finished benchmark: the JSON-able report and each configuration's raw scores."""

    report: dict
    scores: dict[str, OpenSetScores]
    hardest: dict[str, list[dict]]


def _config_name(setting: str, mask_aware: bool) -> str:
    return f"{setting} + mask-aware" if mask_aware else setting


def evaluate_open_set(
    root: str | os.PathLike[str],
    recognizer: str = "dlib-resnet",
    recognizer_kwargs: dict | None = None,
    *,
    settings: Sequence[str] = SETTINGS,
    mask_aware: Sequence[bool] = (False, True),
    masked_root: str | os.PathLike[str] | None = None,
    probe_styles: Sequence[str] = PROBE_STYLES,
    styles: Sequence[str] = DEFAULT_MASK_STYLES,
    renderers: Sequence[str] = DEFAULT_RENDERERS,
    seed: int = 0,
    cache=None,
    detector: str = "blazeface",
    index: str = "flat",
    fpirs: Sequence[float] = FPIRS,
    n_bootstrap: int = 1000,
    mated_people: int | None = None,
    nonmated: int | None = None,
    workers: int | None = None,
    progress: bool = False,
    command: str = "",
) -> OpenSetRun:
    """Run the LFW open-set benchmark (see the module docstring); ``root`` is LFW's root."""
    from maskface.evaluation.embeddings import embed_paths, pipeline_key
    from maskface.recognizers import create_recognizer

    bad = [s for s in settings if s not in SETTINGS]
    if bad or not settings:
        raise GalleryError(f"unknown setting(s) {bad or '(none)'}; choose from "
                           f"{', '.join(SETTINGS)}")
    if not mask_aware:
        raise GalleryError("choose at least one of plain and mask-aware enrolment")
    from maskface.gallery.gallery import _check_styles

    styles, renderers = _check_styles(styles, renderers)
    probe_styles, _ = _check_styles(probe_styles, renderers)
    t0 = time.perf_counter()
    proto = lfw_open_set(root, mated_people=mated_people, nonmated=nonmated, seed=seed)
    rec = create_recognizer(recognizer, **(recognizer_kwargs or {}))
    pipeline = pipeline_key(rec, detector, 1)
    render_args = {"probe_styles": tuple(probe_styles), "styles": tuple(styles),
                   "renderers": tuple(renderers), "seed": seed,
                   "alignment": getattr(rec, "alignment", "dlib150"),
                   "chip_size": rec.chip_size, "padding": rec.padding, "detector": detector}
    masked_settings = [s for s in settings if s != "unmasked"]
    rel = {p: os.path.relpath(p, proto.image_root)
           for _, p in itertools.chain(proto.enrolled, proto.mated, proto.nonmated)}
    probes = proto.mated + proto.nonmated
    timings: dict[str, float] = {}

    # 1. bare images (embed_paths and its cache)
    t = time.perf_counter()
    bare_paths = list(rel)
    bare = embed_paths(bare_paths, rec, cache=cache, fallback="center", detector=detector,
                       workers=workers, progress=progress)
    bare_row = bare.index()
    timings["bare_s"] = time.perf_counter() - t
    failures: dict[str, str] = dict(bare.failures)

    def bare_emb(p: str) -> np.ndarray | None:
        return bare.embeddings[bare_row[p]] if bare.ok[bare_row[p]] else None

    # 2. masked images: a masked copy on disk, or rendered here
    t = time.perf_counter()
    masked: dict[str, np.ndarray | None] = {}
    masked_path: dict[str, str] = {}
    fallback_counts = {"bare": len(bare.fallback_used), "masked": 0, "variants": 0}
    if masked_settings:
        need = [p for _, p in probes]
        if "masked-both" in settings:
            need += [p for _, p in proto.enrolled]
        if masked_root is not None:
            from maskface.datasets.lfw import LfwDataset

            copy = LfwDataset(masked_root)
            for person, p in itertools.chain(proto.enrolled, proto.mated, proto.nonmated):
                number = int(Path(p).stem.rsplit("_", 1)[1])
                s = copy.lookup(person, number)
                if s is not None:
                    masked_path[p] = str(s.path)
            have = [p for p in need if p in masked_path]
            emb = embed_paths([masked_path[p] for p in have], rec, cache=cache,
                              fallback="center", detector=detector, workers=workers,
                              progress=progress)
            row = emb.index()
            fallback_counts["masked"] = len(emb.fallback_used)
            for p in need:
                mp = masked_path.get(p)
                if mp is None:
                    masked[p], failures[p + " (masked)"] = None, "no masked copy"
                elif not emb.ok[row[mp]]:
                    masked[p] = None
                else:
                    masked[p] = emb.embeddings[row[mp]]
            failures.update({f"{p} (masked)": r for p, r in emb.failures})
        else:
            got = embed_rendered(need, [rel[p] for p in need],
                                 _Render(True, False, **render_args), rec, cache=cache,
                                 pipeline=pipeline, workers=workers, progress=progress,
                                 desc="masking probes")
            for p, r in got.items():
                if isinstance(r, str):
                    masked[p], failures[p + " (masked)"] = None, r
                else:
                    masked[p] = r[0][1]
                    fallback_counts["masked"] += r[0][2] == "center"
    timings["masked_s"] = time.perf_counter() - t

    # 3. mask-aware variants of the enrolment photos (bare and, for masked-both, masked)
    t = time.perf_counter()
    variants: dict[tuple[str, bool], list[np.ndarray]] = {}
    if True in mask_aware:
        enrol_paths = [p for _, p in proto.enrolled]
        sources = [False] if set(settings) - {"masked-both"} else []
        sources += [True] if "masked-both" in settings else []
        for on_masked in sources:
            if on_masked and masked_root is not None:
                files = [masked_path.get(p, p) for p in enrol_paths]
                got = embed_rendered(files, [rel[p] for p in enrol_paths],
                                     _Render(False, True, **render_args), rec, cache=cache,
                                     pipeline=pipeline, workers=workers, progress=progress,
                                     desc="mask-aware variants (masked copies)")
                got = dict(zip(enrol_paths, [got[f] for f in files], strict=True))
            else:
                got = embed_rendered(enrol_paths, [rel[p] for p in enrol_paths],
                                     _Render(on_masked, True, **render_args), rec,
                                     cache=cache, pipeline=pipeline, workers=workers,
                                     progress=progress,
                                     desc="mask-aware variants" + (" (masked)" * on_masked))
            for p, r in got.items():
                items = [] if isinstance(r, str) else r
                variants[(p, on_masked)] = [e for _, e, _ in items]
                fallback_counts["variants"] += sum(how == "center" for _, _, how in items)
    timings["variants_s"] = time.perf_counter() - t

    # 4. a gallery per configuration, searched by every probe
    t = time.perf_counter()
    scores: dict[str, OpenSetScores] = {}
    configs: dict[str, dict] = {}
    hardest: dict[str, list[dict]] = {}
    excluded: dict[str, list[dict]] = {}
    person_code = {p: i for i, p in enumerate(sorted({p for p, _ in proto.enrolled}))}
    with tempfile.TemporaryDirectory(prefix="maskface-openset-") as tmp:
        for setting in settings:
            masked_probe = setting != "unmasked"
            probe_emb = {p: (masked.get(p) if masked_probe else bare_emb(p)) for _, p in probes}
            left_out = [{"probe": p, "reason": failures.get(p + " (masked)" if masked_probe
                                                            else p, "not embedded")}
                        for _, p in probes if probe_emb[p] is None]
            excluded[setting] = left_out
            for aware in mask_aware:
                name = _config_name(setting, aware)
                g = Gallery.create(Path(tmp) / name.replace(" ", "_"), rec, detector, index,
                                   recognizer_kwargs)
                bare_refs = 0
                with g.batch():
                    for person, p in proto.enrolled:
                        ref = masked.get(p) if setting == "masked-both" else bare_emb(p)
                        if ref is None:  # the mask could not be drawn: enrol the bare photo
                            ref, bare_refs = bare_emb(p), bare_refs + (setting == "masked-both")
                        if ref is None:
                            continue
                        vecs = [ref]
                        if aware:
                            vecs += variants.get((p, setting == "masked-both"), [])
                        g.add_embeddings(person, np.stack(vecs), sources=[p] * len(vecs),
                                         variants=["photo"] + [f"{SYNTHETIC_PREFIX}{i}" for i in
                                                               range(len(vecs) - 1)])
                s, worst = _search_all(g, proto, probe_emb, person_code,
                                       bare=not masked_probe)
                scores[name] = s
                hardest[name] = worst
                metrics = open_set_metrics(s, fpirs=tuple(fpirs), n_bootstrap=n_bootstrap,
                                           seed=seed)
                configs[name] = {"setting": setting, "mask_aware": bool(aware),
                                 "templates": len(g), "identities": len(g.identities()),
                                 "bare_references": bare_refs,
                                 "excluded_probes": len(left_out), "metrics": metrics,
                                 "hardest": worst, "scores": _scores_json(s)}
                g.close()
    timings["search_and_metrics_s"] = time.perf_counter() - t

    gains = {}
    if set(mask_aware) == {False, True}:
        for setting in settings:
            gains[setting] = paired_difference(
                scores[_config_name(setting, False)], scores[_config_name(setting, True)],
                n_bootstrap=n_bootstrap, seed=seed, fpirs=tuple(fpirs))
    timings["total_s"] = time.perf_counter() - t0
    from maskface import __version__

    report = {
        "maskface": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command, "recognizer": rec.name, "recognizer_kwargs": recognizer_kwargs or {},
        "detector": detector, "index": index, "seed": seed,
        "protocol": {**proto.describe(), "dataset": "lfw", "root": str(root),
                     "mated_people_requested": mated_people, "nonmated_requested": nonmated},
        "masks": {"source": str(masked_root) if masked_root else "rendered on the fly",
                  "probe_styles": list(probe_styles), "renderers": list(renderers),
                  "mask_aware_styles": list(styles)},
        "embedding": {"bare_images": len(bare_paths), "bare_cached": bare.cached,
                      "centre_box_fallbacks": fallback_counts,
                      "failures": [{"image": k, "reason": v} for k, v in failures.items()]},
        "excluded_probes": excluded,
        "fpirs": list(fpirs),
        "configurations": configs,
        "mask_aware_gain": gains,
        "timings": timings,
    }
    return OpenSetRun(report, scores, hardest)


def _scores_json(s: OpenSetScores) -> dict:
    """Every search's outcome, so the figures and any other metric can be redone from the
    JSON alone (:func:`load_run`)."""
    return {"mate_rank": s.mate_rank.tolist(), "top1_score": np.round(s.top1_score, 5).tolist(),
            "top1_is_mate": s.top1_is_mate.astype(int).tolist(), "person": s.person.tolist(),
            "nonmated": np.round(s.nonmated, 5).tolist(), "max_rank": s.max_rank}


def load_run(path: str | os.PathLike[str]) -> OpenSetRun:
    """An :class:`OpenSetRun` read back from its ``report.json`` (to redraw the report)."""
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    scores = {}
    for name, cfg in report["configurations"].items():
        raw = cfg["scores"]
        scores[name] = OpenSetScores(
            np.array(raw["mate_rank"]), np.array(raw["top1_score"], np.float64),
            np.array(raw["top1_is_mate"], bool), np.array(raw["person"]),
            np.array(raw["nonmated"], np.float64), int(raw["max_rank"]))
    return OpenSetRun(report, scores, {n: c["hardest"] for n, c in
                                       report["configurations"].items()})


def _search_all(g: Gallery, proto: OpenSetProtocol, probe_emb: dict,
                person_code: dict[str, int], bare: bool) -> tuple[OpenSetScores, list[dict]]:
    # Bare probes skip synthetic masked templates, as Gallery.search does by the mask flag;
    # here the flag is the setting's (the flag's classifier agrees on 99% of faces).
    mated = [(person, p) for person, p in proto.mated if probe_emb[p] is not None]
    nonm = [p for _, p in proto.nonmated if probe_emb[p] is not None]
    if not mated or not nonm:
        raise GalleryError("no mated or no non-mated probe left to search")
    codes, sc = g.search_codes(np.stack([probe_emb[p] for _, p in mated]), MAX_RANK,
                               bare=bare)
    names = g.identity_names
    code_of = {n: i for i, n in enumerate(names)}
    # -2: a person whose reference could not be enrolled, so never found (still a search)
    mate = np.array([code_of.get(person, -2) for person, _ in mated])
    hit = codes == mate[:, None]
    rank = np.where(hit.any(1), hit.argmax(1) + 1, 0)
    _, nm_scores = g.search_codes(np.stack([probe_emb[p] for p in nonm]), 1, bare=bare)
    s = OpenSetScores(mate_rank=rank, top1_score=sc[:, 0].astype(np.float64),
                      top1_is_mate=hit[:, 0],
                      person=np.array([person_code[person] for person, _ in mated]),
                      nonmated=nm_scores[:, 0].astype(np.float64), max_rank=MAX_RANK)
    # The mated probes lost with the highest wrong score: the most confident mistakes.
    wrong = np.flatnonzero(~hit[:, 0])
    worst = wrong[np.argsort(-sc[wrong, 0], kind="stable")][:6]
    enrolled = dict(proto.enrolled)
    out = [{"probe": mated[i][1], "person": mated[i][0], "returned": names[codes[i, 0]],
            "score": round(float(sc[i, 0]), 4), "mate_rank": int(rank[i]),
            "returned_reference": enrolled.get(names[codes[i, 0]], ""),
            "mate_reference": enrolled.get(mated[i][0], "")} for i in worst]
    return s, out
