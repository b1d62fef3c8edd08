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
    # more than the dataset can give: all it has, and it says so
    [capped] = reference_probe(dataset, pairs=14, seed=7)
    assert capped.kind == "reference-probe-12" and len(capped.rows) == 12
    assert capped.notes == ["asked for 14 pairs, which need 7 identities with two images; "
                            "lfw has 6: drew 12 pairs, two per identity"]
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
    # 8 people x 4 images: 48 distinct same pairs, 448 different ones; asking for more
    # draws them all and says so
    [capped] = identity_pairs(dataset, same=49, different=440, folds=4, seed=3)
    same_rows = [r for r in capped.rows if r.same]
    assert len(same_rows) == 48 and len({frozenset((r.a, r.b)) for r in same_rows}) == 48
    assert len({frozenset((r.a, r.b)) for r in capped.rows if not r.same}) == 440
    assert capped.notes == ["asked for 49 same pairs; folder has only 48 distinct ones: "
                            "drew them all"]
    assert identity_pairs(dataset, same=49, different=440, folds=4, seed=3)[0].rows == \
        capped.rows
    [everything] = identity_pairs(dataset, same=10**6, different=10**6)
    assert len(everything.rows) == 48 + 448
    with pytest.raises(DatasetError, match="too few for same/different pairs"):
        identity_pairs(load_dataset("folder", make_lfw(tmp_path / "solo", {"Solo_S": 1,
                                                                           "Uno_U": 1})))


def test_cli_protocols_and_errors(tiny: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    masked = tmp_path / "masked"
    dataset = load_dataset("lfw", tiny)
    run_batch(dataset.image_root, masked / "lfw-deepfunneled", FakeMask(), workers=1,
              progress=False)
    result = runner.invoke(datasets, ["protocols", "lfw", str(tiny), str(tmp_path / "p"),
                                      "--masked-root", str(masked)])
    assert result.exit_code == 0, result.output
    assert "masked-masked: 4 pairs (2 same, 2 different, 2 fold(s)), 0 left out" in result.output
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


def test_parse_and_format_fold_selections() -> None:
    from maskface.datasets.lfw import format_folds, parse_folds

    assert parse_folds("6-10") == (6, 7, 8, 9, 10)
    assert parse_folds(" 1,3,5-7 ") == (1, 3, 5, 6, 7)
    assert parse_folds([3, 1, 3]) == (1, 3) and parse_folds(4) == (4,)
    assert parse_folds(None) is None
    assert format_folds((1, 3, 5, 6, 7)) == "1,3,5-7"
    for bad, message in (("0", "No fold 0"), ("9-11", "No fold 11"), ("7-6", "7 > 6"),
                         ("a", "Bad fold selection"), ("1,,2", "Bad fold selection")):
        with pytest.raises(DatasetError, match=message):
            parse_folds(bad)


def test_lfw_fold_selection_keeps_pairs_folds_and_indices(tiny: Path, tmp_path: Path) -> None:
    dataset = load_dataset("lfw", tiny)
    [everything] = lfw_protocols(dataset)
    [second] = lfw_protocols(dataset, folds="2")
    assert second.kind == "lfw-view2-folds2"
    assert second.rows == [r for r in everything.rows if r.fold == 1]
    assert [r.pair for r in second.rows] == [2, 3]
    [both] = lfw_protocols(dataset, folds="1-2")
    assert both.kind == "lfw-view2" and both.rows == everything.rows
    with pytest.raises(DatasetError, match=r"No fold 3: folds are numbered 1-2"):
        lfw_protocols(dataset, folds=3)

    runner = CliRunner()
    out = tmp_path / "p"
    result = runner.invoke(datasets, ["protocols", "lfw", str(tiny), str(out), "--folds", "2"])
    assert result.exit_code == 0, result.output
    rows, _ = read_protocol(out / "lfw-view2-folds2_unmasked-unmasked.csv")
    assert rows == second.rows
    result = runner.invoke(datasets, ["protocols", "lfw", str(tiny), str(out), "--folds", "5"])
    assert result.exit_code == 1 and "Error: No fold 5" in result.output
    result = runner.invoke(datasets, ["protocols", "lfw", str(tiny), str(out), "--folds", "x"])
    assert result.exit_code == 1 and "Bad fold selection 'x'" in result.output
    # --folds still counts folds for drawn pairs
    result = runner.invoke(datasets, ["protocols", "lfw", str(tiny), str(tmp_path / "d"),
                                      "--kind", "pairs", "--same", "2", "--different", "2",
                                      "--folds", "2"])
    assert result.exit_code == 0, result.output
    rows, _ = read_protocol(tmp_path / "d" / "pairs_unmasked-unmasked.csv")
    assert sorted({r.fold for r in rows}) == [0, 1]


def test_protocol_identities_from_columns_or_folders(tiny: Path, tmp_path: Path) -> None:
    from maskface.protocols import PairRow, Protocol, protocol_identities

    dataset = load_dataset("lfw", tiny)
    made = lfw_protocols(dataset, folds="2")
    written = write_protocols(tmp_path / "p", made, roots={"unmasked": dataset.image_root},
                              seed=0, description="test")
    # fold 2: Bob_B 1-2 (same) and Cid_C 1 vs Ann_A 3
    assert protocol_identities(written[0]) == {"Bob_B", "Cid_C", "Ann_A"}
    assert protocol_identities(tmp_path / "p") == {"Bob_B", "Cid_C", "Ann_A"}
    # no identity columns filled: the image's folder names the person
    rows = [PairRow(0, 0, True, "Dee_D/Dee_D_0001.jpg", "Dee_D/Dee_D_0002.jpg", "", ""),
            PairRow(1, 0, False, "Dee_D/Dee_D_0001.jpg", "Eve_E/x.jpg", "", "")]
    write_protocols(tmp_path / "q", [Protocol("pairs", "unmasked-unmasked", rows)],
                    roots={"unmasked": tmp_path}, seed=0, description="test")
    assert protocol_identities(tmp_path / "q") == {"Dee_D", "Eve_E"}
    with pytest.raises(DatasetError, match="does not exist"):
        protocol_identities(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no protocol CSV"):
        protocol_identities(tmp_path / "empty")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="is not a maskface protocol CSV"):
        protocol_identities(tmp_path / "bad.csv")


def test_real_lfw_test_folds_and_training_people_are_disjoint(lfw: Path, tmp_path: Path,
                                                              ) -> None:
    from maskface.datasets.lfw import fold_people
    from maskface.protocols import protocol_identities

    dataset = load_dataset("lfw", lfw)
    [test] = lfw_protocols(dataset, folds="6-10", strict=True)
    assert test.kind == "lfw-view2-folds6-10"
    assert len(test.rows) == 3000 and sum(r.same for r in test.rows) == 1500
    assert {r.fold for r in test.rows} == set(range(5, 10))
    train_people, test_people = fold_people(dataset, "1-5"), fold_people(lfw, "6-10")
    assert len(train_people) > 2000 and len(test_people) > 2000
    assert not train_people & test_people
    assert train_people | test_people == fold_people(dataset)
    write_protocols(tmp_path, [test], roots={"unmasked": dataset.image_root}, seed=0,
                    description="test")
    in_protocol = protocol_identities(tmp_path)
    assert in_protocol <= test_people and not in_protocol & train_people
    assert in_protocol == {r.identity_a for r in test.rows} | {r.identity_b for r in test.rows}


# MFR2's layout: mfr2/<Name>/<Name>_000N.png, a header-less pairs.txt and mfr2_labels.txt
# ("name, number, label": "no-mask" or the mask's type), all inside mfr2/.
MFR2_LABELS = {
    "Ann_A": ["no-mask", "surgical_blue", "cloth"],
    "Bob_B": ["no-mask", "KN95", "no-mask"],
    "Cid_C": ["no-mask", "unknown", "no-mask"],
    "Dee_D": ["N95", "surgical_white"],
}
MFR2_PAIRS = [
    "Ann_A 1 2",  # unmasked, masked
    "Ann_A 2 3",  # masked, masked
    "Bob_B 1 3",  # unmasked, unmasked
    "Bob_B 2 1",  # masked, unmasked
    "Cid_C 1 2",  # 2 says "unknown": left out
    "Dee_D 1 2",  # masked, masked
    "Ann_A 1 Bob_B 1",  # unmasked, unmasked
    "Ann_A 1 Dee_D 1",  # unmasked, masked: turned round
    "Bob_B 2 Dee_D 2",  # masked, masked
    "Cid_C 1 Bob_B 3",  # unmasked, unmasked
    "Dee_D 1 Ann_A 3",  # masked, masked
    "Ann_A 3 Bob_B 1",  # masked, unmasked
    "Cid_C 1 3",  # unmasked, unmasked (no header: kinds are told by the fields)
]


def make_mfr2(root: Path, images: dict[str, list[np.ndarray]] | None = None) -> Path:
    """An MFR2-shaped tree; ``images`` gives each person's pictures (else flat colours)."""
    folder = root / "mfr2"
    lines = []
    for name, labels in MFR2_LABELS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for n, label in enumerate(labels, 1):
            picture = (images[name][n - 1] if images else np.full((16, 16, 3), 20 * n, np.uint8))
            Image.fromarray(picture).save(folder / name / f"{name}_{n:04d}.png")
            lines.append(f"{name},{n},{label}")
    (folder / "mfr2_labels.txt").write_text("\n".join(lines) + "\n")
    (folder / "pairs.txt").write_text("\n".join(MFR2_PAIRS) + "\n")
    return root


def test_mfr2_own_pairs_split_by_real_mask_labels(tmp_path: Path) -> None:
    from maskface.protocols import dataset_pairs

    dataset = load_dataset("mfr2", make_mfr2(tmp_path / "data"))
    made = dataset_pairs(dataset, deal=2)
    assert [p.configuration for p in made] == ["unmasked-unmasked", "masked-unmasked",
                                               "masked-masked"]
    assert {p.kind for p in made} == {"mfr2-pairs"}
    plain, mixed, both = made
    assert [r.pair for r in plain.rows] == [2, 6, 9, 12]
    assert [r.pair for r in mixed.rows] == [0, 3, 7, 11]
    assert [r.pair for r in both.rows] == [1, 5, 8, 10]
    assert all((r.a_side, r.b_side) == ("unmasked", "unmasked") for r in plain.rows)
    assert all((r.a_side, r.b_side) == ("masked", "masked") for r in both.rows)
    # the masked image goes first: pair 0 (Ann 1 bare vs Ann 2 masked) and pair 7 turned round
    assert [(r.a, r.b) for r in mixed.rows[:1]] == [("Ann_A/Ann_A_0002.png",
                                                     "Ann_A/Ann_A_0001.png")]
    turned = mixed.rows[2]
    assert (turned.a, turned.identity_a, turned.b, turned.identity_b, turned.same) == (
        "Dee_D/Dee_D_0001.png", "Dee_D", "Ann_A/Ann_A_0001.png", "Ann_A", False)
    assert all((r.a_side, r.b_side) == ("masked", "unmasked") for r in mixed.rows)
    # the pair with the "unknown" label is reported with its line in every configuration
    for protocol in made:
        [problem] = protocol.problems
        assert (problem.file, problem.line) == ("pairs.txt", 5)
        assert "no mask label for Cid_C/Cid_C_0002.png" in problem.reason
    # no folds in the file: dealt into folds, each holding same and different pairs
    for protocol in made:
        for fold in {r.fold for r in protocol.rows}:
            labels = {r.same for r in protocol.rows if r.fold == fold}
            assert labels == {True, False}
    assert {r.fold for r in mixed.rows} == {0, 1}
    assert dataset_pairs(dataset, deal=2)[2].rows == both.rows  # deterministic
    with pytest.raises(DatasetError, match=r"pairs\.txt has no folds to choose from"):
        dataset_pairs(dataset, folds="1")
    # without labels: the file's pairs, unsplit; a line naming a missing image is reported
    (tmp_path / "data/mfr2/mfr2_labels.txt").unlink()
    with open(tmp_path / "data/mfr2/pairs.txt", "a") as f:
        f.write("Dee_D 1 7\n")
    [unsplit] = dataset_pairs(load_dataset("mfr2", tmp_path / "data"), deal=2)
    assert unsplit.configuration == "unmasked-unmasked" and len(unsplit.rows) == 13
    assert [(p.line, p.reason) for p in unsplit.problems] == [
        (14, "names missing image Dee_D_0007")]
    with pytest.raises(DatasetError, match="has no per-image mask labels"):
        dataset_pairs(load_dataset("mfr2", tmp_path / "data"), labels=True)
    with pytest.raises(DatasetError, match="folder has no pairs file of its own; use the"):
        dataset_pairs(load_dataset("folder", make_lfw(tmp_path / "f", {"Ann_A": 2})))


def test_mfr2_cli_real_mask_protocols_and_capped_sampling(tmp_path: Path) -> None:
    root = make_mfr2(tmp_path / "data")
    runner = CliRunner()
    out = tmp_path / "proto"
    result = runner.invoke(datasets, ["protocols", "mfr2", str(root), str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "mfr2-pairs_masked-masked.csv", "mfr2-pairs_masked-unmasked.csv",
        "mfr2-pairs_problems.csv", "mfr2-pairs_unmasked-unmasked.csv"]
    assert "masked-masked: 4 pairs (2 same, 2 different, 2 fold(s)), 1 left out" in result.output
    assert "note: real masks: the images' own mask labels split the pairs" in result.output
    rows, roots = read_protocol(out / "mfr2-pairs_masked-unmasked.csv")
    assert roots["masked"] == roots["unmasked"] == (root / "mfr2").resolve()
    assert all((roots[r.a_side] / r.a).is_file() and (roots[r.b_side] / r.b).is_file()
               for r in rows)
    labels = dict(line.rsplit(",", 1) for line in
                  (root / "mfr2" / "mfr2_labels.txt").read_text().split())
    for r in rows:  # side a masked, side b bare, by the dataset's own labels
        name, number = Path(r.a).stem.rsplit("_", 1)
        assert labels[f"{name},{int(number)}"] != "no-mask"
        name, number = Path(r.b).stem.rsplit("_", 1)
        assert labels[f"{name},{int(number)}"] == "no-mask"

    # sampling kinds draw what a small dataset has and say so, instead of stopping
    result = runner.invoke(datasets, ["protocols", "mfr2", str(root), str(tmp_path / "s"),
                                      "--kind", "pairs"])
    assert result.exit_code == 0, result.output
    # 11 images: 3 + 3 + 3 + 1 same pairs, (11^2 - 3 * 3^2 - 2^2) / 2 different ones
    assert "note: asked for 3000 same pairs; mfr2 has only 10 distinct ones: drew them all" in \
        result.output
    rows, _ = read_protocol(tmp_path / "s" / "pairs_unmasked-unmasked.csv")
    assert sum(r.same for r in rows) == 10 and sum(not r.same for r in rows) == 45
    result = runner.invoke(datasets, ["protocols", "mfr2", str(root), str(tmp_path / "r"),
                                      "--kind", "reference-probe"])
    assert result.exit_code == 0, result.output
    assert "drew 8 pairs, two per identity" in result.output
    assert (tmp_path / "r" / "reference-probe-8_unmasked-unmasked.csv").is_file()


@pytest.mark.slow  # loads the recognizer and writes a full report (~8 s)
def test_real_mask_protocols_feed_maskface_eval(lfw: Path, tmp_path: Path) -> None:
    """The pairs-file protocols of an MFR2-shaped tree of real faces go straight into eval."""
    import json

    import cv2

    from maskface.cli_eval import eval_command

    people = {"Ann_A": "Abel_Pacheco", "Bob_B": "Adam_Sandler", "Cid_C": "Aaron_Peirsol",
              "Dee_D": "Abdoulaye_Wade"}
    images: dict[str, list[np.ndarray]] = {}
    for name, labels in MFR2_LABELS.items():
        source = people[name]
        images[name] = []
        for n, label in enumerate(labels, 1):
            face = cv2.cvtColor(cv2.imread(str(lfw / source / f"{source}_{n:04d}.jpg")),
                                cv2.COLOR_BGR2RGB)
            face = cv2.resize(face[45:205, 45:205], (160, 160), interpolation=cv2.INTER_AREA)
            if label not in ("no-mask", "unknown"):  # a plain cloth over mouth and nose
                cv2.fillPoly(face, [np.array([[30, 95], [130, 95], [120, 150], [40, 150]])],
                             (70, 90, 160))
            images[name].append(face)
    root = make_mfr2(tmp_path / "data", images)
    runner = CliRunner()
    result = runner.invoke(datasets, ["protocols", "mfr2", str(root), str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    report = tmp_path / "report"
    result = runner.invoke(eval_command, ["--protocol", str(tmp_path / "p"), "--out",
                                          str(report), "--no-cache", "--bootstrap", "0",
                                          "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads((report / "report.json").read_text())
    assert "masked-masked" in json.dumps(data) and "masked-unmasked" in json.dumps(data)
