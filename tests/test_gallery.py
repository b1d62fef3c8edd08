"""Identification galleries on real LFW faces: enrol, search, reload, refuse, survive kills."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from maskface.gallery import (
    UNKNOWN,
    Gallery,
    GalleryError,
    threshold_at_fpir,
)
from maskface.gallery.index import IVF_MIN_TRAIN
from maskface.gallery.openset import OpenSetScores, open_set_metrics, paired_difference
from tests.conftest import read_rgb

ENROLLED = {"Colin Powell": "Colin_Powell", "Tony Blair": "Tony_Blair",
            "Gerhard Schroeder": "Gerhard_Schroeder"}
PROBE = {"Colin_Powell": 5, "Tony_Blair": 10, "Gerhard_Schroeder": 5}  # photos not enrolled
STRANGERS = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
             "Gloria_Macapagal_Arroyo/Gloria_Macapagal_Arroyo_0001.jpg")


def _photo(lfw: Path, folder: str, n: int) -> Path:
    return lfw / folder / f"{folder}_{n:04d}.jpg"


def _unit(rng: np.random.Generator, n: int, dim: int = 128) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def built(lfw: Path, tmp_path_factory) -> Path:
    """A gallery of three LFW people, two photos each; Tony Blair enrolled mask-aware."""
    path = tmp_path_factory.mktemp("gallery") / "g"
    with Gallery.create(path) as g:
        for name, folder in ENROLLED.items():
            report = g.enrol(name, [_photo(lfw, folder, 1), _photo(lfw, folder, 2)],
                             mask_aware=name == "Tony Blair")
            assert len(report.added) == 2 and not report.skipped
    return path


@pytest.fixture()
def gallery(built: Path, tmp_path: Path):
    """A private copy of the built gallery, for tests that change it."""
    shutil.copytree(built, tmp_path / "g")
    with Gallery.open(tmp_path / "g") as g:
        yield g


def test_search_names_the_right_person_and_rejects_a_stranger(built: Path, lfw: Path) -> None:
    with Gallery.open(built, readonly=True) as g:
        for name, folder in ENROLLED.items():
            (face,) = g.search(read_rgb(_photo(lfw, folder, PROBE[folder])))
            assert face.matches[0].identity == name
            assert face.identity == name and face.score >= g.threshold
            assert len(face.matches) == 3 and face.box.shape == (4,)
            assert face.landmarks.shape == (68, 2) and not face.masked
        for stranger in STRANGERS:
            (face,) = g.search(read_rgb(lfw / stranger))
            assert face.identity == UNKNOWN and face.score < g.threshold


def test_mask_aware_enrolment_stores_masked_variants(built: Path) -> None:
    with Gallery.open(built, readonly=True) as g:
        assert g.identities() == {"Colin Powell": 2, "Gerhard Schroeder": 2, "Tony Blair": 10}
        variants = [t.variant for t in g.templates("Tony Blair")]
        assert variants[:5] == ["photo", "mask:surgical:2d", "mask:kn95:3d", "mask:n95:2d",
                                "mask:cloth:3d"]
        assert all(t.masked == (t.variant != "photo") for t in g.templates("Tony Blair"))


def test_masked_probe_is_flagged_and_still_named(built: Path, lfw: Path) -> None:
    from maskface.synthesis import mask_image

    probe = mask_image(read_rgb(_photo(lfw, "Tony_Blair", 10)), "surgical", seed=7).image
    with Gallery.open(built, readonly=True) as g:
        (face,) = g.search(probe)
    assert face.masked and face.mask_probability > 0.9
    assert face.matches[0].identity == "Tony Blair"


def test_reload_gives_identical_results(built: Path, lfw: Path, tmp_path: Path) -> None:
    probe = read_rgb(_photo(lfw, "Colin_Powell", 5))
    with Gallery.open(built, readonly=True) as g:
        first = g.search(probe)
    shutil.copytree(built, tmp_path / "copy")  # the folder is the whole gallery
    with Gallery.open(tmp_path / "copy") as g:
        again = g.search(probe)
    assert [m.identity for m in again[0].matches] == [m.identity for m in first[0].matches]
    assert [m.score for m in again[0].matches] == [m.score for m in first[0].matches]


def test_refuses_to_mix_recognizers(built: Path, gallery: Gallery) -> None:
    from maskface.gallery import recognizer_signature
    from maskface.recognizers import create_recognizer

    with pytest.raises(GalleryError, match="built with recognizer 'dlib-resnet'"):
        Gallery.open(built, recognizer="dlib")
    with pytest.raises(GalleryError, match="built with detector"):
        Gallery.open(built, detector="dlib")
    other = recognizer_signature(create_recognizer("dlib-resnet", flip=True))
    with pytest.raises(GalleryError, match="cannot join"):
        gallery.add_embeddings("X", _unit(np.random.default_rng(0), 1), signature=other)
    with pytest.raises(GalleryError, match="128-d"):
        gallery.add_embeddings("X", np.ones((1, 512), np.float32))
    assert "X" not in gallery.identities()


def test_recognizer_changed_since_creation_is_refused(gallery: Gallery) -> None:
    gallery._store.set_meta(signature={**gallery.signature, "cache_id": "other-weights"})
    with Gallery.open(gallery.path) as again, pytest.raises(GalleryError, match="differs"):
        again.recognizer  # noqa: B018


def test_failed_enrolment_leaves_the_gallery_as_it_was(gallery: Gallery, lfw: Path,
                                                       monkeypatch) -> None:
    from maskface.gallery.store import Store

    probe = read_rgb(_photo(lfw, "Tony_Blair", 10))
    before = (gallery.identities(), len(gallery), gallery.search(probe)[0].matches)
    real = Store._insert

    def fail_after_first_row(self, rows):
        real(self, rows[:1])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Store, "_insert", fail_after_first_row)
    with pytest.raises(OSError, match="simulated"):
        gallery.enrol("Ada", [_photo(lfw, "Colin_Powell", 7), _photo(lfw, "Tony_Blair", 7)])
    monkeypatch.undo()
    assert (gallery.identities(), len(gallery), gallery.search(probe)[0].matches) == before
    with Gallery.open(gallery.path) as again:
        assert (again.identities(), len(again)) == before[:2]


_KILL = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from maskface.gallery import Gallery
    from maskface.gallery.store import Store
    where = sys.argv[2]
    if where == "insert":  # die inside the transaction, after one of two rows
        real = Store._insert
        def die(self, rows):
            real(self, rows[:1])
            os.kill(os.getpid(), signal.SIGKILL)
        Store._insert = die
    else:  # die after the commit, before the index file is written
        Gallery._save_index = lambda self: os.kill(os.getpid(), signal.SIGKILL)
    g = Gallery.open(sys.argv[1])
    x = np.random.default_rng(5).normal(size=(2, 128)).astype(np.float32)
    g.add_embeddings("Killed", x)
""")


@pytest.mark.parametrize("where", ["insert", "index"])
def test_killed_enrolment_leaves_a_whole_item_or_none(tmp_path: Path, where: str) -> None:
    rng = np.random.default_rng(1)
    with Gallery.create(tmp_path / "g") as g:
        for i in range(3):
            g.add_embeddings(f"p{i}", _unit(rng, 2))
    out = subprocess.run([sys.executable, "-c", _KILL, str(tmp_path / "g"), where],
                         capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.returncode == -9, out.stderr
    with Gallery.open(tmp_path / "g") as g:
        people = g.identities()
        if where == "insert":  # rolled back: as before
            assert people == {"p0": 2, "p1": 2, "p2": 2} and len(g) == 6
        else:  # committed: the stale index file is brought up to date on open
            assert people["Killed"] == 2 and len(g) == 8
            x = np.random.default_rng(5).normal(size=(2, 128)).astype(np.float32)
            assert g.search_embeddings(x, 1)[0][0].identity == "Killed"


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_two_openers_see_each_others_changes(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(3)
    x = _unit(rng, 6)
    with Gallery.create(tmp_path / "g", index=kind) as a, Gallery.open(tmp_path / "g") as b:
        a.add_embeddings("p0", x[:2])
        a.add_embeddings("p1", x[2:4])
        assert [m.identity for m in b.search_embeddings(x[0], 2)[0]] == ["p0", "p1"]
        assert b.remove("p0") == 2
        a.add_embeddings("p2", x[4:])
        assert a.identities() == {"p1": 2, "p2": 2} and len(a) == len(b) == 4
        for g in (a, b):
            assert g.search_embeddings(x[4], 5)[0][0].identity == "p2"
            assert "p0" not in {m.identity for m in g.search_embeddings(x[0], 5)[0]}
    with Gallery.open(tmp_path / "g", readonly=True) as c:
        assert c.identities() == {"p1": 2, "p2": 2}
        assert c.search_embeddings(x[2], 1)[0][0].identity == "p1"


def test_remove(gallery: Gallery, lfw: Path) -> None:
    probe = read_rgb(_photo(lfw, "Gerhard_Schroeder", 5))
    assert gallery.remove("Gerhard Schroeder") == 2
    assert gallery.remove("Gerhard Schroeder") == 0
    assert "Gerhard Schroeder" not in gallery.identities() and len(gallery) == 12
    (face,) = gallery.search(probe)
    assert "Gerhard Schroeder" not in [m.identity for m in face.matches]
    with Gallery.open(gallery.path) as again:
        assert again.identities() == gallery.identities()


def test_enrol_reports_bad_inputs_and_never_enrols_twice(gallery: Gallery, lfw: Path,
                                                         tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    blank = np.full((200, 200, 3), 127, np.uint8)
    report = gallery.enrol("Tony Blair", [tmp_path / "empty.jpg", tmp_path / "text.png", blank,
                                          _photo(lfw, "Tony_Blair", 1), np.zeros((4, 4))])
    reasons = [s.reason for s in report.skipped]
    assert not report.added and len(reasons) == 5
    assert "empty" in reasons[0] or "zero" in reasons[0]
    assert reasons[2] == "no face found"
    assert reasons[3] == "already enrolled for this identity"
    assert "uint8" in reasons[4]
    for bad in ("", "unknown", "a\nb", 7):
        with pytest.raises(GalleryError):
            gallery.enrol(bad, [blank])


def test_enrol_tree_resumes(lfw: Path, tmp_path: Path) -> None:
    root = tmp_path / "people"
    for folder in ("Colin_Powell", "Tony_Blair"):
        (root / folder).mkdir(parents=True)
        for n in (1, 2):
            shutil.copy(_photo(lfw, folder, n), root / folder)
    shutil.copy(_photo(lfw, "Tony_Blair", 3), root)  # not inside an identity folder
    with Gallery.create(tmp_path / "g") as g:
        first = g.enrol_tree(root)
        again = g.enrol_tree(root)
        assert first.identities == ["Colin_Powell", "Tony_Blair"] and first.templates == 4
        assert "not inside an identity folder" in first.skipped[0].reason
        assert again.templates == 0 and len(again.skipped) == 5
    with pytest.raises(GalleryError, match="not a folder"):
        Gallery.open(tmp_path / "g").enrol_tree(tmp_path / "missing")


def test_open_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="not a gallery"):
        Gallery.open(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "gallery.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(GalleryError, match="damaged or not a gallery"):
        Gallery.open(tmp_path / "bad")


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_agrees_with_exact(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(2)
    centres = _unit(rng, 400)
    people = np.repeat(np.arange(400), 6)
    x = centres[people] + 0.25 * _unit(rng, len(people)) / np.sqrt(128) * 4
    assert len(x) >= IVF_MIN_TRAIN
    queries = centres[:200] + 0.3 * _unit(rng, 200) / np.sqrt(128) * 4
    with Gallery.create(tmp_path / "g", index=kind) as g:
        g.add_embeddings([f"p{p}" for p in people], x)  # a bulk load: one transaction
        assert not g.info()["index_exact"] and g.index_kind == kind
        approx = [m[0].identity for m in g.search_embeddings(queries, 1)]
        g.rebuild_index("flat")
        exact = [m[0].identity for m in g.search_embeddings(queries, 1)]
        assert np.mean(np.array(approx) == np.array(exact)) >= 0.97
        assert np.mean(np.array(exact) == np.array([f"p{i}" for i in range(200)])) >= 0.97
        g.rebuild_index(kind)
        assert g.remove("p0") == 6  # hnsw rebuilds its graph, ivf removes in place
        assert all(m.identity != "p0" for m in g.search_embeddings(queries[:1], 5)[0])
    with Gallery.open(tmp_path / "g") as g:
        assert g.index_kind == kind and len(g) == 2394


def test_threshold_at_fpir() -> None:
    scores = np.arange(10, dtype=float) / 10  # 0.0 .. 0.9
    t = threshold_at_fpir(scores, 0.1)  # one of ten may pass: only 0.9
    assert 0.8 < t <= 0.9 and np.mean(scores >= t) == 0.1
    assert threshold_at_fpir(scores, 0.0) > 0.9
    with pytest.raises(GalleryError):
        threshold_at_fpir([], 0.1)


def test_calibrate_from_scores_and_from_photos(gallery: Gallery, lfw: Path) -> None:
    cal = gallery.calibrate(np.linspace(0.5, 0.9, 200), fpir=0.01)
    assert cal.false_positives == 2 and cal.fpir == 0.01
    assert gallery.threshold == cal.threshold
    with Gallery.open(gallery.path) as again:
        assert again.threshold == cal.threshold and "calibrated" in again.threshold_source
    cal = gallery.calibrate([lfw / s for s in STRANGERS], fpir=0.01)
    assert cal.nonmated == 3 and cal.false_positives == 0 and "cannot resolve" in str(cal)
    for stranger in STRANGERS:
        assert gallery.search(read_rgb(lfw / stranger))[0].identity == UNKNOWN
    with pytest.raises(GalleryError, match="could be scored"):
        gallery.calibrate([np.full((100, 100, 3), 255, np.uint8)])


def test_masked_faces_have_a_threshold_of_their_own(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a, other = _unit(rng, 2)
    probe = 0.7 * a + np.sqrt(1 - 0.7**2) * (other - (other @ a) * a) / np.linalg.norm(
        other - (other @ a) * a)  # cosine 0.7 to A's template
    with Gallery.create(tmp_path / "g", threshold=0.5, masked_threshold=0.9) as g:
        g.add_embeddings("A", a[None])
        matches = g.search_embeddings(probe, 1)[0]
        assert matches[0].score == pytest.approx(0.7, abs=1e-4)
        assert g.decide(matches)[0] == "A"
        assert g.decide(matches, masked=True)[0] == UNKNOWN
        g.set_threshold(0.6, "by hand", masked=True)
        assert g.threshold == 0.5 and g.decide(matches, masked=True)[0] == "A"
    with Gallery.open(tmp_path / "g", readonly=True) as again:
        assert (again.threshold, again.masked_threshold) == (0.5, 0.6)
        assert again.info()["masked_threshold_source"] == "by hand"
    with Gallery.create(tmp_path / "d") as g:  # until calibrated, one threshold for both
        assert g.masked_threshold == g.threshold and "calibrate" in g.masked_threshold_source


def test_calibrate_masked_strangers(gallery: Gallery, lfw: Path) -> None:
    bare = gallery.threshold
    cal = gallery.calibrate([lfw / s for s in STRANGERS], fpir=0.01, masked=True)
    assert cal.nonmated == 3 and not cal.skipped
    assert gallery.threshold == bare and gallery.masked_threshold == cal.threshold
    assert "masked non-mated" in gallery.masked_threshold_source
    # masked strangers score higher than bare ones against a mask-aware gallery
    assert cal.threshold > gallery.calibrate([lfw / s for s in STRANGERS], apply=False).threshold


def test_open_set_metrics_by_hand() -> None:
    s = OpenSetScores(mate_rank=np.array([1, 1, 2, 0]),
                      top1_score=np.array([0.9, 0.6, 0.8, 0.7]),
                      top1_is_mate=np.array([True, True, False, False]),
                      person=np.array([0, 0, 1, 2]),
                      nonmated=np.array([0.1, 0.2, 0.3, 0.65]), max_rank=5)
    m = open_set_metrics(s, fpirs=(0.25, 0.0), n_bootstrap=0)
    assert m["rank1"] == 0.5 and m["rank5"] == 0.75 and m["cmc"][:3] == [0.5, 0.75, 0.75]
    # FPIR 25%: one non-mated may pass, threshold just above 0.3: both rank-1 hits count
    assert m["fnir_at_fpir_0.25"] == 0.5
    assert m["fnir_at_fpir_0"] == 0.75  # just above 0.65: the 0.6 hit is lost
    assert m["mated_people"] == 3
    d = paired_difference(s, s, n_bootstrap=50)
    assert d["difference"]["rank1"] == 0 and d["ci"]["rank1"] == [0.0, 0.0]


def test_cli_round_trip(lfw: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from maskface.cli import main

    run = CliRunner().invoke
    g = str(tmp_path / "g")
    r = run(main, ["gallery", "create", g])
    assert r.exit_code == 0, r.output
    r = run(main, ["gallery", "create", g])
    assert r.exit_code == 1 and "already holds a gallery" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    r = run(main, ["gallery", "enrol", g, "--name", "Tony Blair",
                   str(_photo(lfw, "Tony_Blair", 1)), str(_photo(lfw, "Tony_Blair", 2)),
                   str(tmp_path / "missing.jpg")])
    assert r.exit_code == 0 and "enrolled 2 image" in r.output and "skipped" in r.output
    r = run(main, ["gallery", "enrol", g, "--name", "Colin Powell",
                   str(_photo(lfw, "Colin_Powell", 1))])
    assert r.exit_code == 0, r.output
    r = run(main, ["gallery", "search", g, "--json", str(_photo(lfw, "Tony_Blair", 10)),
                   str(lfw / STRANGERS[0])])
    assert r.exit_code == 0, r.output
    answers = [json.loads(line) for line in r.output.splitlines()]
    assert [a["faces"][0]["identity"] for a in answers] == ["Tony Blair", UNKNOWN]
    r = run(main, ["gallery", "list", g])
    assert "2 identities, 3 templates" in r.output and "Tony Blair: 2" in r.output
    r = run(main, ["gallery", "remove", g, "Tony Blair", "Nobody"])
    assert r.exit_code == 1 and "removed Tony Blair" in r.output and "Nobody" in r.output
    r = run(main, ["gallery", "search", str(tmp_path / "nowhere"), str(lfw / STRANGERS[0])])
    assert r.exit_code == 1 and "not a gallery" in r.output and "Traceback" not in r.output
    r = run(main, ["gallery", "enrol", g, "--name", "X", "--mask-aware", "--styles", "paper",
                   str(_photo(lfw, "Tony_Blair", 1))])
    assert r.exit_code == 2 and "paper" in r.output


def _tiny_lfw(lfw: Path, root: Path) -> Path:
    """An LFW-shaped tree of a few real images: 3 people with 2 photos, 4 with one."""
    base = root / "lfw-deepfunneled"
    for folder, count in (("Colin_Powell", 2), ("Tony_Blair", 2), ("Gerhard_Schroeder", 2),
                          ("Aaron_Peirsol", 1), ("Aaron_Eckhart", 1),
                          ("Gloria_Macapagal_Arroyo", 1), ("Abdullah_Gul", 1)):
        (base / folder).mkdir(parents=True)
        for n in range(1, count + 1):
            shutil.copy(_photo(lfw, folder, n), base / folder)
    return root


@pytest.mark.slow
def test_open_set_benchmark_end_to_end(lfw: Path, tmp_path: Path) -> None:
    from maskface.gallery.benchmark import evaluate_open_set
    from maskface.gallery.report import write_report

    run = evaluate_open_set(_tiny_lfw(lfw, tmp_path / "lfw"),
                            settings=("unmasked", "masked-probe"), n_bootstrap=20, workers=1)
    r = run.report
    assert r["protocol"]["enrolled_people"] == 3 and r["protocol"]["mated_probes"] == 3
    assert r["protocol"]["nonmated_probes"] == 4
    assert set(r["configurations"]) == {"unmasked", "unmasked + mask-aware", "masked-probe",
                                        "masked-probe + mask-aware"}
    assert r["configurations"]["unmasked"]["metrics"]["rank1"] == 1.0
    assert r["configurations"]["masked-probe + mask-aware"]["templates"] == 15
    assert set(r["mask_aware_gain"]) == {"unmasked", "masked-probe"}
    paths = write_report(tmp_path / "out", run)
    page = paths["html"].read_text()
    assert "data:image/png;base64" in page and "src='http" not in page
    assert json.loads(paths["json"].read_text())["configurations"]


def test_gallery_import_is_lazy() -> None:
    from tests.conftest import modules_loaded_by

    assert modules_loaded_by("import maskface, maskface.gallery",
                             ("faiss", "torch", "maskface.gallery.gallery")) == []


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_bare_probes_skip_synthetic_masked_templates(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(11)
    a_photo, b_photo, probe = _unit(rng, 3)
    # B's synthetic masked variant lies nearer the probe than A's own photo does.
    b_variant = probe + 0.05 * _unit(rng, 1)[0]
    a_near = probe + 0.6 * (a_photo - probe)
    with Gallery.create(tmp_path / "g", index=kind) as g:
        g.add_embeddings("A", a_near[None], variants=["photo"])
        g.add_embeddings("B", np.stack([b_photo, b_variant]),
                         variants=["photo", "mask:kn95:2d"], masked=[False, True])
        assert g.search_embeddings(probe, 1)[0][0].identity == "B"  # masked probe: all
        assert g.search_embeddings(probe, 1, bare=[True])[0][0].identity == "A"
        codes, _ = g.search_codes(np.stack([probe, probe]), 2, bare=[False, True])
        assert [g.identity_names[c] for c in codes[:, 0]] == ["B", "A"]
        assert (codes >= 0).all()  # a bare probe still sees B, through B's photo
    # the flags survive the index file and a second opener's view of the database
    with Gallery.open(tmp_path / "g", readonly=True) as again:
        assert again.search_embeddings(probe, 1, bare=True)[0][0].identity == "A"
    with Gallery.open(tmp_path / "g") as g:
        assert g.remove("A") == 1
        assert g.search_embeddings(probe, 1, bare=True)[0][0].identity == "B"
        assert g.search_embeddings(probe, 2, bare=True)[0][0].score < 0.9
