"""Pair protocols: LFW views, reference/probe, same/different pairs, masked configurations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from maskface.batch.runner import JobOutput, JobResult, run_batch
from maskface.cli_datasets import datasets
from maskface.datasets import DatasetError, ProtocolFileError, load_dataset
from maskface.protocols import (
    CONFIGURATIONS,
    MaskedCopy,
    identity_pairs,
    lfw_protocols,
    read_protocol,
    reference_probe,
    write_protocols,
)


def make_lfw(root: Path, people: dict[str, int]) -> Path:
    for name, count in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(1, count + 1):
            image = Image.fromarray(np.full((8, 8, 3), n, np.uint8))
            image.save(root / name / f"{name}_{n:04d}.jpg")
    return root


@dataclass
class FakeMask:
    """Stands in for MaskJob: copies the image, in ``variants`` variants, or finds no face."""

    no_face: tuple[str, ...] = ()
    variants: int = 1

    def __call__(self, image: np.ndarray, *, relpath: str, seed: int) -> JobResult:
        if relpath in self.no_face:
            return JobResult("no_face")
        stem = relpath[: -len(".jpg")]
        names = [relpath] if self.variants == 1 else [
            f"{stem}_{k}_fake.png" for k in range(self.variants)]
        return JobResult("ok", [JobOutput(n, 255 - image) for n in names])


PEOPLE = {"Ann_A": 3, "Bob_B": 2, "Cid_C": 1}
PAIRS_TXT = "2\t1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t1\nBob_B\t1\t2\nCid_C\t1\tAnn_A\t3\n"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    root = make_lfw(tmp_path / "lfw" / "lfw-deepfunneled", PEOPLE)
    (root.parent / "pairs.txt").write_text(PAIRS_TXT)
    return root.parent


def test_lfw_four_configurations_report_pairs_without_masked_image(tiny: Path, tmp_path: Path,
                                                                   ) -> None:
    dataset = load_dataset("lfw", tiny)
    masked_root = tmp_path / "masked"
    run_batch(dataset.image_root, masked_root, FakeMask(no_face=("Bob_B/Bob_B_0001.jpg",)),
              workers=1, progress=False)
    made = lfw_protocols(dataset, masked=MaskedCopy.open(masked_root))
    assert [p.configuration for p in made] == list(CONFIGURATIONS)
    plain, a_masked, b_masked, both = made
    assert [r.pair for r in plain.rows] == [0, 1, 2, 3]
    # Bob_B_0001 is side b of pair 1 and side a of pair 2.
    assert [r.pair for r in a_masked.rows] == [0, 1, 3]
    assert [r.pair for r in b_masked.rows] == [0, 2, 3]
    assert [r.pair for r in both.rows] == [0, 3]
    [problem] = a_masked.problems
    assert (problem.file, problem.line) == ("pairs.txt", 4)
    assert "Bob_B/Bob_B_0001.jpg has no masked copy (status no_face)" in problem.reason
    assert (both.rows[0].a_side, both.rows[0].b_side) == ("masked", "masked")

    out = tmp_path / "proto"
    written = write_protocols(out, made, roots={"unmasked": dataset.image_root,
                                                "masked": masked_root}, seed=0,
                              description="test")
    assert sorted(p.name for p in written) == sorted(
        [f"lfw-view2_{c}.csv" for c in CONFIGURATIONS] + ["lfw-view2_problems.csv"])
    text = (out / "lfw-view2_masked-unmasked.csv").read_text()
    assert text.startswith("# maskface pair protocol lfw-view2, configuration masked-unmasked")
    assert "# columns: pair: 0-based index" in text
    rows, roots = read_protocol(out / "lfw-view2_masked-unmasked.csv")
    assert rows == a_masked.rows and roots["masked"] == masked_root
    assert all((roots[r.a_side] / r.a).is_file() and (roots[r.b_side] / r.b).is_file()
               for r in rows)
    problems = (out / "lfw-view2_problems.csv").read_text().splitlines()
    assert problems[0] == "configuration,file,line,reason" and len(problems) == 1 + 1 + 1 + 2


def test_masked_variants_are_drawn_with_the_seed(tiny: Path, tmp_path: Path) -> None:
    dataset = load_dataset("lfw", tiny)
    run_batch(dataset.image_root, tmp_path / "m", FakeMask(variants=3), workers=1,
              progress=False)
    masked = MaskedCopy.open(tmp_path / "m")
    first = lfw_protocols(dataset, masked=masked, seed=1)[3].rows
    assert first == lfw_protocols(dataset, masked=masked, seed=1)[3].rows
    assert {r.a.rsplit("_", 2)[1] for r in first} <= {"0", "1", "2"}
    seeds = {tuple(r.a for r in lfw_protocols(dataset, masked=masked, seed=s)[3].rows)
             for s in range(5)}
    assert len(seeds) > 1


def test_masked_copy_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProtocolFileError, match=r"has no manifest.csv or manifest.parquet"):
        MaskedCopy.open(tmp_path)


def test_real_lfw_view2_and_view1_protocols(lfw: Path) -> None:
    dataset = load_dataset("lfw", lfw)
    [view2] = lfw_protocols(dataset, "lfw-view2", strict=True)
    assert len(view2.rows) == 6000 and view2.problems == []
    assert {f: sum(r.fold == f for r in view2.rows) for f in range(10)} == dict.fromkeys(
        range(10), 600)
    [view1] = lfw_protocols(dataset, "lfw-view1")
    assert [sum(r.fold == f for r in view1.rows) for f in (0, 1)] == [2200, 1000]
    assert all((lfw / r.a).is_file() for r in view2.rows[:50])


def _people(count: int, images: int = 3) -> dict[str, int]:
    return {f"P{i:02d}_X": images for i in range(count)}


def test_reference_probe_sample_and_all_identities(tmp_path: Path) -> None:
    people = {**_people(6), "Solo_S": 1}
    dataset = load_dataset("lfw", make_lfw(tmp_path, people))
    [sample] = reference_probe(dataset, pairs=4, seed=7)
    assert sample.kind == "reference-probe-4" and len(sample.rows) == 4
    assert [r.same for r in sample.rows] == [True, False, True, False]
    for genuine, impostor in zip(sample.rows[::2], sample.rows[1::2], strict=True):
        assert genuine.a == impostor.a and genuine.a != genuine.b
        assert genuine.identity_b == genuine.identity_a != impostor.identity_b
    assert reference_probe(dataset, pairs=4, seed=7)[0].rows == sample.rows
    [everyone] = reference_probe(dataset, pairs=None, seed=7)
    assert everyone.kind == "reference-probe-all"
    assert len(everyone.rows) == 12  # Solo_S has one image: impostor only, never reference
    with pytest.raises(DatasetError, match="need 7 identities with two images"):
        reference_probe(dataset, pairs=14)
    with pytest.raises(DatasetError, match="even number"):
        reference_probe(dataset, pairs=3)


def test_identity_pairs_are_unique_balanced_and_seeded(tmp_path: Path) -> None:
    dataset = load_dataset("folder", make_lfw(tmp_path, _people(8, 4)))
    [made] = identity_pairs(dataset, same=20, different=30, folds=5, seed=3)
    assert len(made.rows) == 50
    for fold in range(5):
        rows = [r for r in made.rows if r.fold == fold]
        assert (sum(r.same for r in rows), sum(not r.same for r in rows)) == (4, 6)
    assert len({frozenset((r.a, r.b)) for r in made.rows}) == 50
    assert all((r.identity_a == r.identity_b) == r.same and r.a != r.b for r in made.rows)
    assert identity_pairs(dataset, same=20, different=30, folds=5, seed=3)[0].rows == made.rows
    assert identity_pairs(dataset, same=20, different=30, folds=5, seed=4)[0].rows != made.rows
    with pytest.raises(DatasetError, match="Could only draw 48 distinct same pairs"):
        identity_pairs(dataset, same=49, different=0)


def test_cli_protocols_and_errors(tiny: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    masked = tmp_path / "masked"
    dataset = load_dataset("lfw", tiny)
    run_batch(dataset.image_root, masked / "lfw-deepfunneled", FakeMask(), workers=1,
              progress=False)
    result = runner.invoke(datasets, ["protocols", "lfw", str(tiny), str(tmp_path / "p"),
                                      "--masked-root", str(masked)])
    assert result.exit_code == 0, result.output
    assert "masked-masked: 4 pairs, 0 left out" in result.output
    result = runner.invoke(datasets, ["protocols", "lfw", str(tiny), str(tmp_path / "q"),
                                      "--kind", "reference-probe", "--pairs", "all"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "q" / "reference-probe-all_unmasked-unmasked.csv").is_file()

    (tiny / "pairs.txt").write_text(PAIRS_TXT.replace("Ann_A\t3", "Ann_A\t9"))
    result = runner.invoke(datasets, ["protocols", "lfw", str(tiny), str(tmp_path / "r"),
                                      "--strict"])
    assert result.exit_code == 1 and result.exception is not None
    assert "Error: pairs.txt has 1 unusable line(s); first: pairs.txt:5: names missing image " \
           "Ann_A_0009." in result.output
    result = runner.invoke(datasets, ["protocols", "lfw", str(tmp_path / "p"), str(tmp_path)])
    assert result.exit_code == 1 and "is not an LFW root: expected" in result.output
    assert "Traceback" not in result.output
