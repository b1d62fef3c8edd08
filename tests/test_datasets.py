"""Dataset adapters: real LFW and UTKFace when present, tiny generated trees otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskface.datasets import (
    DatasetError,
    ProtocolFileError,
    list_datasets,
    load_dataset,
)

UTKFACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface"


def _image(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def make_lfw(root: Path, people: dict[str, int], ext: str = ".jpg") -> Path:
    """A tiny LFW-layout tree: ``root/<Name>/<Name>_NNNN<ext>``."""
    for name, count in people.items():
        for n in range(1, count + 1):
            _image(root / name / f"{name}_{n:04d}{ext}", 10 * n)
    return root


PEOPLE = {"Ann_A": 3, "Bob_B": 2, "Cid_C": 1}
PAIRS_TXT = "2\t1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t1\nBob_B\t1\t2\nCid_C\t1\tAnn_A\t3\n"


@pytest.fixture(scope="module")
def utkface() -> Path:
    if not (UTKFACE / "UTKFace").is_dir():
        pytest.skip(f"UTKFace sample not found at {UTKFACE} (../shared/data is absent)")
    return UTKFACE


# --- real data ---------------------------------------------------------------------------------


def test_real_lfw_view2_has_ten_folds_of_300_and_300(lfw: Path) -> None:
    dataset = load_dataset("lfw", lfw)
    assert dataset.layout == "deep-funneled"
    assert (len(dataset), len(dataset.identities()), dataset.problems) == (13233, 5749, [])
    pairs = dataset.pairs("view2", strict=True)
    assert (len(pairs.pairs), pairs.folds, pairs.per_fold, pairs.problems) == (6000, 10, 300, [])
    for k in range(10):
        fold = pairs.fold(k)
        assert sum(p.same for p in fold) == 300 and sum(not p.same for p in fold) == 300
    assert all(p.a.path.is_file() and p.b.path.is_file() for p in pairs.pairs)
    assert all((p.a.identity == p.b.identity) == p.same for p in pairs.pairs)


def test_real_lfw_view1_and_people_files(lfw: Path) -> None:
    dataset = load_dataset("lfw", lfw.parent)  # the folder holding lfw-deepfunneled/
    assert len(dataset.pairs("view1-train", strict=True).pairs) == 2200
    assert len(dataset.pairs("view1-test", strict=True).pairs) == 1000
    rows, problems = dataset.people("view2")
    assert (len(rows), len({fold for fold, _, _ in rows}), problems) == (5749, 10, [])
    assert sum(count for *_, count in rows) == 13233
    assert len(dataset.people("view1-train")[0]) == 4038
    assert len(dataset.people("view1-test")[0]) == 1711


def test_real_utkface_reports_exactly_the_five_malformed_names(utkface: Path) -> None:
    dataset = load_dataset("utkface", utkface)
    assert len(dataset) == 8000
    reasons = {p.file: p.reason for p in dataset.problems}
    assert len(reasons) == 5
    assert "whitespace" in reasons["24_0_1_20170116220224657 .jpg.chip.jpg"]
    assert "no '.jpg'" in reasons["55_0_0_20170116232725357jpg.chip.jpg"]
    for name in ("39_1_20170116174525125.jpg.chip.jpg", "61_1_20170109142408075.jpg.chip.jpg",
                 "61_1_20170109150557335.jpg.chip.jpg"):
        assert reasons[name].startswith("3 underscore-separated fields")
    first = dataset.samples[0]
    assert set(first.attributes) == {"age", "gender", "race", "datetime"}
    assert first.identity is None and dataset.identities() == []


# --- LFW on generated trees --------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["lfw", "lfw_funneled", "lfw-deepfunneled"])
def test_lfw_layouts_and_protocol_files_beside_the_archive(tmp_path: Path, folder: str) -> None:
    make_lfw(tmp_path / folder, PEOPLE)
    (tmp_path / "pairs.txt").write_text(PAIRS_TXT)
    for root in (tmp_path, tmp_path / folder):
        dataset = load_dataset("lfw", root)
        assert dataset.image_root == tmp_path / folder
        assert dataset.identities() == sorted(PEOPLE)
        pairs = dataset.pairs(strict=True)
        assert [(p.fold, p.same) for p in pairs.pairs] == [(0, True), (0, False), (1, True),
                                                           (1, False)]


def test_lfw_pairs_line_naming_a_missing_image_is_reported_not_dropped(tmp_path: Path) -> None:
    make_lfw(tmp_path, PEOPLE)
    (tmp_path / "pairs.txt").write_text(PAIRS_TXT.replace("Ann_A\t3", "Ann_A\t9"))
    pairs = load_dataset("lfw", tmp_path).pairs()
    assert len(pairs.pairs) == 3
    [problem] = pairs.problems
    assert (problem.file, problem.line) == ("pairs.txt", 5)
    assert "Ann_A_0009" in problem.reason
    with pytest.raises(ProtocolFileError, match=r"1 unusable line.*pairs.txt:5"):
        load_dataset("lfw", tmp_path).pairs(strict=True)


def test_lfw_pairs_header_and_position_are_checked(tmp_path: Path) -> None:
    make_lfw(tmp_path, PEOPLE)
    (tmp_path / "pairs.txt").write_text("1\t2\nAnn_A\t1\tBob_B\t1\nAnn_A\t1\t2\n")
    pairs = load_dataset("lfw", tmp_path).pairs()
    reasons = [str(p) for p in pairs.problems]
    assert any("announces 4 pairs, the file has 2" in r for r in reasons)
    assert any(r.startswith("pairs.txt:2: a same-person") for r in reasons)
    (tmp_path / "pairs.txt").write_text("ten folds\n")
    with pytest.raises(ProtocolFileError, match="line 1 should be a header"):
        load_dataset("lfw", tmp_path).pairs()


def test_lfw_missing_protocol_file_and_wrong_root(tmp_path: Path) -> None:
    make_lfw(tmp_path / "lfw", PEOPLE)
    with pytest.raises(ProtocolFileError, match=r"pairsDevTest.txt is missing"):
        load_dataset("lfw", tmp_path).pairs("view1-test")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"not an LFW root: expected lfw/.*found notes.txt"):
        load_dataset("lfw", tmp_path / "other")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("lfw", tmp_path / "nowhere")
    make_lfw(tmp_path / "lfw_funneled", PEOPLE)
    with pytest.raises(DatasetError, match="several LFW layouts"):
        load_dataset("lfw", tmp_path)
    assert load_dataset("lfw", tmp_path, layout="funneled").layout == "funneled"


def test_lfw_reads_masked_variants_and_reports_strays(tmp_path: Path) -> None:
    _image(tmp_path / "Ann_A" / "Ann_A_0001_0_surgical.png")
    _image(tmp_path / "Ann_A" / "Ann_A_0001_1_kn95.png")
    _image(tmp_path / "Ann_A" / "holiday.jpg")
    dataset = load_dataset("lfw", tmp_path)
    assert [s.attributes for s in dataset] == [
        {"number": 1, "variant": 0, "style": "surgical"},
        {"number": 1, "variant": 1, "style": "kn95"},
    ]
    assert [p.file for p in dataset.problems] == ["Ann_A/holiday.jpg"]


# --- other adapters ----------------------------------------------------------------------------


def test_mfr2_pairs_without_header_and_mask_labels(tmp_path: Path) -> None:
    make_lfw(tmp_path / "mfr2", {"Ann_A": 2, "Bob_B": 1}, ext=".png")
    (tmp_path / "mfr2" / "pairs.txt").write_text("Ann_A 1 2\nAnn_A 1 Bob_B 1\nBob_B 1 2\n")
    (tmp_path / "mfr2" / "mfr2_labels.txt").write_text(
        "name,number,label\nAnn_A,1,No mask\nAnn_A,2,Mask\n")
    dataset = load_dataset("mfr2", tmp_path)
    assert [s.attributes.get("mask") for s in dataset] == ["No mask", "Mask", None]
    pairs = dataset.pairs()
    assert [p.same for p in pairs.pairs] == [True, False]
    assert [(p.line, "Bob_B_0002" in p.reason) for p in pairs.problems] == [(3, True)]
    assert {p.name for p in dataset.protocol_files} == {"pairs.txt", "mfr2_labels.txt"}


def test_celeba_identity_attributes_partition_and_missing_image(tmp_path: Path) -> None:
    for i in (1, 2, 3):
        _image(tmp_path / "Img" / "img_align_celeba" / f"{i:06d}.jpg")
    (tmp_path / "Anno").mkdir()
    (tmp_path / "Anno" / "identity_CelebA.txt").write_text(
        "000001.jpg 7\n000002.jpg 7\n000003.jpg 9\n000004.jpg 9\n")
    (tmp_path / "Anno" / "list_attr_celeba.txt").write_text(
        "3\nSmiling Eyeglasses\n000001.jpg 1 -1\n000002.jpg -1 -1\n000003.jpg -1  1\n")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 2\n")
    dataset = load_dataset("celeba", tmp_path)
    assert [(s.path.name, s.identity) for s in dataset] == [
        ("000001.jpg", "7"), ("000002.jpg", "7"), ("000003.jpg", "9")]
    assert dataset.samples[0].attributes == {"Smiling": True, "Eyeglasses": False,
                                             "partition": "train"}
    assert [str(p) for p in dataset.problems] == [
        "identity_CelebA.txt:4: names missing image 000004.jpg"]
    (tmp_path / "Anno" / "identity_CelebA.txt").unlink()
    with pytest.raises(ProtocolFileError, match=r"identity_CelebA.txt is missing"):
        load_dataset("celeba", tmp_path)
    with pytest.raises(DatasetError, match="not a CelebA root: expected img_align_celeba"):
        load_dataset("celeba", tmp_path / "Anno")


def test_utkface_generated_tree(tmp_path: Path) -> None:
    _image(tmp_path / "30_1_2_20170116220224657.jpg.chip.jpg")
    _image(tmp_path / "30_7_2_20170116220224657.jpg.chip.jpg")
    dataset = load_dataset("utkface", tmp_path)
    assert [s.attributes["race"] for s in dataset] == [2]
    assert [p.reason for p in dataset.problems] == ["gender '7' is not 0 or 1"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"not a UTKFace root: .*found an empty folder"):
        load_dataset("utkface", tmp_path / "empty")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        load_dataset("utkface", tmp_path / "30_1_2_20170116220224657.jpg.chip.jpg")


@pytest.mark.parametrize("name", ["folder", "casia-webface", "vggface2"])
def test_identity_folder_tree(tmp_path: Path, name: str) -> None:
    _image(tmp_path / "0000045" / "001.jpg")
    _image(tmp_path / "0000045" / "extra" / "002.png")
    _image(tmp_path / "n000002" / "0001_01.jpg")
    _image(tmp_path / "stray.jpg")
    dataset = load_dataset(name, tmp_path)
    assert dataset.identities() == ["0000045", "n000002"]
    assert len(dataset) == 3 and dataset.samples[1].attributes == {"subfolder": "extra"}
    assert [p.file for p in dataset.problems] == ["stray.jpg"]
    (tmp_path / "flat").mkdir()
    _image(tmp_path / "flat" / "a.jpg")
    with pytest.raises(DatasetError, match=r"expected <identity>/<image> folders, found a.jpg"):
        load_dataset(name, tmp_path / "flat")


def test_table_csv_and_parquet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _image(tmp_path / "img" / "a.jpg")
    _image(tmp_path / "img" / "b.jpg")
    (tmp_path / "labels.csv").write_text(
        "path,identity,age\nimg/a.jpg,p1,30\nimg/b.jpg,p2,41\nimg/c.jpg,p2,50\n")
    dataset = load_dataset("table", tmp_path)
    assert [(s.identity, s.attributes) for s in dataset] == [("p1", {"age": "30"}),
                                                            ("p2", {"age": "41"})]
    assert [str(p) for p in dataset.problems] == ["labels.csv:4: names missing image img/c.jpg"]

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"file": ["img/a.jpg"], "age": [30]})
    pq.write_table(table, tmp_path / "t.parquet")
    parquet = load_dataset("table", tmp_path / "t.parquet", path_column="file")
    assert [(s.identity, s.attributes) for s in parquet] == [(None, {"age": 30})]
    with pytest.raises(ProtocolFileError, match="no 'path' column"):
        _ = load_dataset("table", tmp_path / "t.parquet").samples
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DatasetError, match=r"needs pyarrow: pip install 'maskface\[parquet\]'"):
        _ = load_dataset("table", tmp_path / "t.parquet").samples


# --- interface ---------------------------------------------------------------------------------


def test_split_is_seeded_and_keeps_identities_apart(tmp_path: Path) -> None:
    make_lfw(tmp_path, {f"P_{i}": 2 for i in range(10)})
    dataset = load_dataset("lfw", tmp_path)
    train, test = dataset.split((0.7, 0.3), seed=3)
    assert (len(train), len(test)) == (14, 6)
    assert not {s.identity for s in train} & {s.identity for s in test}
    assert dataset.split((0.7, 0.3), seed=3) == [train, test]
    assert dataset.split((0.7, 0.3), seed=4) != [train, test]
    assert [len(p) for p in dataset.split((0.5, 0.5), by_identity=False)] == [10, 10]
    with pytest.raises(DatasetError, match="sum to 1"):
        dataset.split((0.5, 0.6))


def test_registry(tmp_path: Path) -> None:
    assert {"lfw", "mfr2", "celeba", "utkface", "casia-webface", "vggface2", "folder",
            "table"} == set(list_datasets())
    with pytest.raises(DatasetError, match="Unknown dataset 'imagenet'; choose from lfw"):
        load_dataset("imagenet", tmp_path)
    make_lfw(tmp_path, PEOPLE)
    with pytest.raises(DatasetError, match="Bad option"):
        load_dataset("lfw", tmp_path, colour="red")


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_mask_writes_a_masked_copy_the_loader_reads(lfw: Path, tmp_path: Path) -> None:
    import shutil

    from click.testing import CliRunner

    from maskface.batch.manifest import read_manifest
    from maskface.cli_datasets import datasets

    root = tmp_path / "lfw"
    chosen = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
              "Abel_Pacheco/Abel_Pacheco_0001.jpg"]
    for rel in chosen:
        (root / "lfw-deepfunneled" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw / rel, root / "lfw-deepfunneled" / rel)
    (root / "pairs.txt").write_text(
        "1\t1\nAaron_Peirsol\t1\t2\nAaron_Peirsol\t1\tAbel_Pacheco\t1\n")
    out = tmp_path / "masked"
    runner = CliRunner()
    result = runner.invoke(datasets, ["mask", "lfw", str(root), str(out), "--workers", "1",
                                      "--quiet", "--styles", "surgical,kn95", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert f"copied {out / 'pairs.txt'}" in result.output
    rows = list(read_manifest(out / "lfw-deepfunneled" / "manifest.csv"))
    assert sorted(r.input for r in rows) == chosen
    assert all(r.status == "ok" for r in rows), rows
    masked = load_dataset("lfw", out)
    assert [masked.relpath(s) for s in masked] == chosen
    assert len(masked.pairs(strict=True).pairs) == 2

    result = runner.invoke(datasets, ["info", "lfw", str(out)])
    assert result.exit_code == 0, result.output
    assert "samples: 3" in result.output and "pairs.txt: 2 pairs in 1 fold(s)" in result.output
    result = runner.invoke(datasets, ["mask", "lfw", str(root), str(root / "inside")])
    assert result.exit_code == 1 and "inside the dataset root" in result.output
    result = runner.invoke(datasets, ["list"])
    assert "lfw            download" in result.output and "celeba         manual" in result.output
