"""Embedding cache, failure-to-enrol policy, protocol runs, reports and the eval CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from maskface.evaluation.compare import compare_table, load_reports
from maskface.evaluation.embeddings import EmbeddingCache, embed_paths, file_digest
from maskface.evaluation.report import build_report, histogram_overlap, write_report
from maskface.evaluation.verification import evaluate_protocols
from maskface.recognizers import Recognizer, list_recognizers, register_recognizer
from tests.conftest import modules_loaded_by


class ColourRecognizer(Recognizer):
    """Mean colour of a 2x2 grid of the chip: images of one flat colour embed alike."""

    name = "test-colour"
    dim = 12

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        self.calls += len(chips)
        h = self.chip_size // 2
        cells = [chips[:, i:i + h, j:j + h].mean(axis=(1, 2)) for i in (0, h) for j in (0, h)]
        return np.concatenate(cells, axis=1) - 100.0


if "test-colour" not in list_recognizers():
    register_recognizer("test-colour", ColourRecognizer)

# (identity, colour) per image: two images per identity with nearby colours.
COLOURS = {"ann": [(200, 40, 40), (190, 50, 45)], "bob": [(40, 200, 40), (50, 190, 45)],
           "cid": [(40, 40, 200), (45, 50, 190)], "dee": [(200, 200, 40), (190, 190, 50)]}


def _write(path: Path, colour) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(colour))
    noise = rng.integers(-3, 4, (250, 250, 3))
    Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    """Face-less 250x250 images (every detection falls back to the centre box)."""
    root = tmp_path / "data"
    for ident, colours in COLOURS.items():
        for k, c in enumerate(colours):
            _write(root / ident / f"{ident}_{k + 1:04d}.jpg", c)
    return root


def test_center_fallback_is_reported_not_dropped(faces: Path):
    paths = sorted(str(p) for p in faces.rglob("*.jpg"))
    res = embed_paths([*paths, paths[0]], ColourRecognizer(), workers=1)
    assert res.ok.all() and res.embeddings.shape == (9, 12)
    assert res.fallback_used == paths  # each image once, though one was asked twice
    assert set(res.methods) == {"center"} and not res.failures
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(res.embeddings[0], res.embeddings[8])


def test_worker_processes_give_the_same_result_in_order(faces: Path, tmp_path: Path):
    from maskface.evaluation.embeddings import _detections

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    paths = [*sorted(str(p) for p in faces.rglob("*.jpg")), str(broken)]
    tasks = [(p, "blazeface", 0, "dlib150", 150, 0.25) for p in paths]
    inline = list(_detections(tasks, workers=1))
    # a window of 2 chunks of 3 forces the refill path across 3 chunks
    pooled = list(_detections(tasks, workers=2, chunk=3, window=2))
    assert [how for _, how in pooled] == [how for _, how in inline]
    assert pooled[-1][0] is None and pooled[-1][1].startswith("unreadable")
    for (a, _), (b, _) in zip(inline[:-1], pooled[:-1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_workers_import_only_what_they_use():
    # a spawned detection worker imports this module: the renderers and scikit-learn
    # would add seconds to every worker's start
    loaded = modules_loaded_by("import maskface.evaluation.embeddings, maskface",
                               ("sklearn", "maskface.render.renderer2d", "torch"))
    assert loaded == []


def test_exclude_policy_and_unreadable(faces: Path, tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    paths = [str(next(faces.rglob("*.jpg"))), str(broken), str(tmp_path / "missing.jpg")]
    res = embed_paths(paths, ColourRecognizer(), fallback="exclude", workers=1)
    assert not res.ok.any()
    reasons = dict(res.failures)
    assert reasons[paths[0]] == "no face detected"
    assert reasons[paths[1]].startswith("unreadable") and reasons[paths[2]].startswith("unread")
    assert not res.embeddings.any()
    res = embed_paths(paths, ColourRecognizer(), fallback="center", workers=1)
    assert res.ok.tolist() == [True, False, False] and res.fallback_used == [paths[0]]


def test_cache_keyed_by_content_and_model(faces: Path, tmp_path: Path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    paths = sorted(str(p) for p in faces.rglob("*.jpg"))
    rec = ColourRecognizer()
    first = embed_paths(paths, rec, cache=cache, workers=1)
    assert first.cached == 0 and rec.calls == 8 and len(cache) == 8
    again = embed_paths(paths, rec, cache=cache, workers=1)
    assert again.cached == 8 and rec.calls == 8  # nothing recomputed
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    # Same bytes under another name hit; edited bytes miss.
    copy = tmp_path / "copy.jpg"
    shutil.copy(paths[0], copy)
    edited = _write(tmp_path / "edited.jpg", (1, 2, 3))
    mixed = embed_paths([str(copy), str(edited)], rec, cache=cache, workers=1)
    assert mixed.cached == 1 and rec.calls == 9
    assert file_digest(copy) == file_digest(paths[0])
    # Another pipeline (flip) does not reuse these embeddings.
    flipped = ColourRecognizer(flip=True)
    assert embed_paths(paths[:2], flipped, cache=cache, workers=1).cached == 0
    cache.close()


@pytest.mark.slow
def test_worker_processes_match_inline(faces: Path):
    paths = sorted(str(p) for p in faces.rglob("*.jpg"))
    inline = embed_paths(paths, ColourRecognizer(), workers=1)
    pooled = embed_paths(paths, ColourRecognizer(), workers=2)
    np.testing.assert_array_equal(inline.embeddings, pooled.embeddings)


def test_detects_a_real_face(astronaut: np.ndarray, tmp_path: Path):
    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    res = embed_paths([str(path)], ColourRecognizer(), workers=1)
    assert res.methods == ["detected"] and not res.fallback_used


def _protocol(path: Path, roots: dict[str, Path], rows: list[tuple]) -> Path:
    lines = ["# test protocol", *(f"# root {k}: {v}" for k, v in roots.items()),
             "pair,fold,same,a_side,a,b_side,b,identity_a,identity_b,source_line"]
    for i, (fold, same, a_side, a, b_side, b) in enumerate(rows):
        lines.append(f"{i},{fold},{int(same)},{a_side},{a},{b_side},{b},x,y,{i + 1}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def protocols(faces: Path, tmp_path: Path) -> list[Path]:
    """Two configurations over 2 folds; the masked copy is the same images plus sidecars."""
    masked = tmp_path / "masked"
    shutil.copytree(faces, masked)
    for i, p in enumerate(sorted(masked.rglob("*.jpg"))):
        style = "surgical" if i // 2 % 2 else "n95"  # by identity
        p.with_suffix(".json").write_text(json.dumps({"faces": [{"style": {"style": style}}]}))
    names = {k: [f"{k}/{k}_{i:04d}.jpg" for i in (1, 2)] for k in COLOURS}
    ids = list(COLOURS)
    rows = []
    for fold in (0, 1):
        for j in range(4):
            a = ids[j]
            rows.append((fold, True, names[a][0], names[a][1]))
            rows.append((fold, False, names[a][fold], names[ids[(j + 1 + fold) % 4]][1]))
    out = tmp_path / "proto"
    roots = {"unmasked": faces, "masked": masked}
    uu = _protocol(out / "t_unmasked-unmasked.csv", roots,
                   [(f, s, "unmasked", a, "unmasked", b) for f, s, a, b in rows])
    um = _protocol(out / "t_unmasked-masked.csv", roots,
                   [(f, s, "unmasked", a, "masked", b) for f, s, a, b in rows])
    return [uu, um]


def test_evaluate_protocols_scores_and_styles(protocols: list[Path], tmp_path: Path):
    results, emb, timings = evaluate_protocols(protocols, ColourRecognizer(), n_bootstrap=20,
                                               workers=1)
    assert [r.configuration for r in results] == ["unmasked-unmasked", "unmasked-masked"]
    # 8 unmasked images, and the masked copies of the 4 "b" images
    assert timings["images"] == 12 and len(emb.fallback_used) == 12
    for r in results:
        assert r.metrics.accuracy == 1.0 and r.metrics.auc == 1.0 and r.metrics.eer == 0.0
        assert (r.distances[r.labels] < r.distances[~r.labels].min()).all()
    assert set(results[0].styles) == {"none"}
    assert set(results[1].styles) == {"n95", "surgical"}


def test_excluded_pairs_are_listed(protocols: list[Path]):
    # Break one image: its pairs leave the configuration, each with the reason.
    root = Path(next(line for line in protocols[0].read_text().splitlines()
                     if line.startswith("# root unmasked")).split(": ", 1)[1])
    (root / "ann" / "ann_0001.jpg").write_bytes(b"broken")
    results, emb, _ = evaluate_protocols(protocols[:1], ColourRecognizer(), n_bootstrap=0,
                                         workers=1, fallback="center")
    assert [p for p, _ in emb.failures] == [str(root / "ann" / "ann_0001.jpg")]
    r = results[0]
    assert len(r.excluded) == 3 and len(r.rows) == 13  # ann_0001 is in three pairs
    assert all("ann_0001.jpg" in why for _, why in r.excluded)
    assert sorted(p for p, _ in r.excluded) == [0, 1, 8]
    # Face-less images under "exclude" leave no pair at all: a clear error, not empty metrics.
    with pytest.raises(ValueError, match="no pair left"):
        evaluate_protocols(protocols[:1], ColourRecognizer(), n_bootstrap=0, workers=1,
                           fallback="exclude")


def test_report_files_are_self_contained(protocols: list[Path], tmp_path: Path):
    results, emb, timings = evaluate_protocols(protocols, ColourRecognizer(), n_bootstrap=10,
                                               workers=1)
    report = build_report(results, emb, recognizer="test-colour", detector="dlib",
                          fallback="center", protocol_files=[str(p) for p in protocols],
                          timings=timings, command="maskface eval ...")
    paths = write_report(tmp_path / "rep", report, results)
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") >= 2 + 2 + 0
    assert "src='http" not in html and "src='/" not in html
    loaded = json.loads(paths["json"].read_text())
    cfg = loaded["configurations"]["unmasked-masked"]
    assert set(cfg["by_style"]) == {"n95", "surgical"}
    assert cfg["metrics"]["accuracy"] == 1.0 and cfg["hardest"] == []
    md = paths["md"].read_text()
    assert "| unmasked-masked | surgical |" in md and "(roc.png)" in md
    assert (tmp_path / "rep" / "roc.png").is_file()
    table = compare_table(load_reports([tmp_path / "rep", paths["json"]]))
    assert table.count("| unmasked-unmasked | test-colour") == 2


def test_histogram_overlap_known():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    assert histogram_overlap(a, a) == pytest.approx(1.0)
    assert histogram_overlap(a, a + 10) == 0.0


def test_cli_eval_and_compare(protocols: list[Path], tmp_path: Path):
    from maskface.cli_eval import compare_command, eval_command

    runner = CliRunner()
    assert "Examples" in runner.invoke(eval_command, ["--help"]).output
    assert "Examples" in runner.invoke(compare_command, ["--help"]).output
    out = tmp_path / "rep"
    result = runner.invoke(eval_command, [
        "--recognizer", "test-colour", "--protocol", str(protocols[0].parent),
        "--configs", "unmasked-masked", "--out", str(out), "--cache",
        str(tmp_path / "c.sqlite"), "--bootstrap", "5", "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "| unmasked-masked | all |" in result.output
    assert list(json.loads((out / "report.json").read_text())["configurations"]) == [
        "unmasked-masked"]
    result = runner.invoke(compare_command, [str(out), str(out / "report.json")])
    assert result.exit_code == 0 and result.output.count("unmasked-masked") == 2
    bad = runner.invoke(eval_command, ["--protocol", str(tmp_path), "--configs", "nope"])
    assert bad.exit_code != 0 and "unknown configuration" in bad.output
