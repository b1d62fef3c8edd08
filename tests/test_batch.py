"""run_batch over generated trees: statuses, determinism, resume after kills, manifests."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskface.atomic import TEMP_SUFFIX
from maskface.batch.manifest import COLUMNS, read_manifest
from maskface.batch.runner import BatchSummary, JobOutput, JobResult, run_batch, seed_for
from maskface.errors import BatchError
from maskface.imageio import read_image


@dataclass(frozen=True)
class MarkJob:
    """Paints a seeded rectangle; "noface" names find no face, "boom" ones raise, "crash" ones
    kill their worker process."""

    sleep: float = 0.0
    boom: bool = True

    def options(self) -> dict:
        # The pause changes nothing in the outputs: runs with another pause may be resumed.
        return {"boom": self.boom}

    def __call__(self, image: np.ndarray, *, relpath: str, seed: int) -> JobResult:
        time.sleep(self.sleep)
        if "crash" in relpath:
            if multiprocessing.parent_process() is None:
                raise RuntimeError("refusing to kill the test process itself")
            os._exit(13)
        if self.boom and "boom" in relpath:
            raise RuntimeError("boom requested")
        if "noface" in relpath:
            return JobResult("no_face", info={"faces": 0})
        rng = np.random.default_rng(seed)
        out = image.copy()
        h, w = out.shape[:2]
        y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        out[y : y + h // 4, x : x + w // 4] = (255, 0, 255)
        stem = relpath.rsplit(".", 1)[0]
        outputs = [
            JobOutput(f"{stem}_masked.png", out),
            JobOutput(f"{stem}.json", {"seed": seed, "box": [x, y]}),
        ]
        return JobResult("ok", outputs, {"faces": 1, "styles": ["test"]})


@dataclass(frozen=True)
class EscapingJob:
    def __call__(self, image: np.ndarray, *, relpath: str, seed: int) -> JobResult:
        return JobResult("ok", [JobOutput("../escaped.png", image)])


def make_tree(root: Path, count: int = 12) -> dict[str, str]:
    """Write an input tree; return each input's relative path and expected status."""
    rng = np.random.default_rng(0)
    expected: dict[str, str] = {}

    def picture(relpath: str) -> Path:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((32, 40, 3)) * 255).astype(np.uint8)).save(path)
        return path

    for i in range(count):
        relpath = f"{'ab'[i % 2]}/{'xyz'[i % 3]}/img{i}.{('png', 'jpg')[i % 2]}"
        picture(relpath)
        expected[relpath] = "ok"
    picture('odd, "quoted" name.png')
    expected['odd, "quoted" name.png'] = "ok"
    picture("noface_1.png")
    expected["noface_1.png"] = "no_face"
    picture("deep/er/boom.png")
    expected["deep/er/boom.png"] = "error"
    (root / "bad").mkdir()
    (root / "bad" / "empty.jpg").touch()
    (root / "bad" / "text.jpg").write_text("not a picture")
    whole = picture("bad/cut.png").read_bytes()
    (root / "bad" / "cut.png").write_bytes(whole[: len(whole) // 2])
    expected.update({"bad/empty.jpg": "unreadable", "bad/text.jpg": "unreadable"})
    expected["bad/cut.png"] = "unreadable"
    (root / "readme.txt").write_text("not an input")
    picture(".hidden.png")
    return expected


def manifest_rows(path: Path) -> list[dict[str, str]]:
    """The manifest as plain CSV, read without maskface's own parser."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_complete(out: Path, expected: dict[str, str]) -> list[dict[str, str]]:
    """One row per input with the expected status, and every output whole and readable."""
    rows = manifest_rows(out / "manifest.csv")
    assert sorted(r["input"] for r in rows) == sorted(expected)
    for row in rows:
        assert row["status"] == expected[row["input"]], row
        outputs = row["outputs"].split(";") if row["outputs"] else []
        assert len(outputs) == (2 if row["status"] == "ok" else 0)
        for relpath in outputs:
            if relpath.endswith(".png"):
                assert read_image(out / relpath).shape == (32, 40, 3)
            else:
                assert json.loads((out / relpath).read_text())["seed"] == seed_for(0, row["input"])
    assert not list(out.rglob(f"*{TEMP_SUFFIX}"))
    return rows


def test_statuses_tree_and_untouched_inputs(tmp_path: Path) -> None:
    expected = make_tree(tmp_path / "in")
    before = tree_digest(tmp_path / "in")
    summary = run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    assert tree_digest(tmp_path / "in") == before

    rows = assert_complete(tmp_path / "out", expected)
    by_input = {r["input"]: r for r in rows}
    ok = by_input["b/y/img1.jpg"]
    assert ok["outputs"] == "b/y/img1_masked.png;b/y/img1.json"
    assert json.loads(ok["info"]) == {"faces": 1, "styles": ["test"]}
    assert float(ok["seconds"]) >= 0
    assert by_input["deep/er/boom.png"]["reason"] == "RuntimeError: boom requested"
    assert "test_batch.py" in json.loads(by_input["deep/er/boom.png"]["info"])["where"]
    assert by_input["bad/empty.jpg"]["reason"] == "empty"
    assert by_input["bad/text.jpg"]["reason"] == "not_image"
    assert by_input["bad/cut.png"]["reason"] == "truncated"
    assert "truncated" in json.loads(by_input["bad/cut.png"]["info"])["message"]
    assert by_input["noface_1.png"]["reason"] == ""

    # The mark is painted where the input's own seed says.
    marked = read_image(tmp_path / "out" / "b/y/img1_masked.png")
    x, y = json.loads((tmp_path / "out" / "b/y/img1.json").read_text())["box"]
    assert tuple(marked[y + 1, x + 1]) == (255, 0, 255)

    assert summary.counts == {"ok": 13, "no_face": 1, "unreadable": 3, "error": 1}
    assert summary.skipped == 0 and not summary.interrupted
    assert summary.processed == len(expected) and summary.images_per_second > 0
    assert "13 ok" in str(summary) and "3 unreadable" in str(summary)
    assert [row.input for row in read_manifest(tmp_path / "out" / "manifest.csv")] == [
        r["input"] for r in rows
    ]


def test_parallel_matches_serial_and_survives_a_worker_crash(tmp_path: Path) -> None:
    expected = make_tree(tmp_path / "in")
    Image.new("RGB", (40, 32)).save(tmp_path / "in" / "crash.png")
    expected["crash.png"] = "error"
    serial = run_batch(tmp_path / "in", tmp_path / "one", MarkJob(), workers=1, progress=False)
    parallel = run_batch(tmp_path / "in", tmp_path / "two", MarkJob(), workers=2, progress=False)
    assert serial.counts == parallel.counts

    one = tree_digest(tmp_path / "one")
    two = tree_digest(tmp_path / "two")
    for made in (one, two):
        made.pop("manifest.csv"), made.pop("manifest.run.json")
    assert one == two and len(one) == 2 * 13

    rows = {r["input"]: r for r in assert_complete(tmp_path / "two", expected)}
    assert rows["crash.png"]["reason"].startswith("WorkerCrashed")
    serial_rows = {r["input"]: r for r in manifest_rows(tmp_path / "one" / "manifest.csv")}
    for name, row in rows.items():
        if name != "crash.png":
            for column in ("status", "reason", "outputs"):
                assert row[column] == serial_rows[name][column]


def test_seed_depends_on_run_seed_and_path_only(tmp_path: Path) -> None:
    assert seed_for(0, "a/b.jpg") == seed_for(0, "a/b.jpg")
    assert len({seed_for(0, "a/b.jpg"), seed_for(1, "a/b.jpg"), seed_for(0, "a/c.jpg")}) == 3
    assert 0 <= seed_for(0, "a/b.jpg") < 2**64

    make_tree(tmp_path / "in", count=2)
    run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), seed=7, workers=1, progress=False)
    record = json.loads((tmp_path / "out" / "a/x/img0.json").read_text())
    assert record["seed"] == seed_for(7, "a/x/img0.png")


def test_resume_skips_done_inputs_and_retries_errors(tmp_path: Path) -> None:
    expected = make_tree(tmp_path / "in")
    run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    first = tree_digest(tmp_path / "out")

    again = run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    assert again.skipped == len(expected) - 1 and again.counts["error"] == 1
    assert tree_digest(tmp_path / "out").keys() == first.keys()

    # The job's settings changed, so resuming has to be forced.
    fixed = run_batch(
        tmp_path / "in", tmp_path / "out", MarkJob(boom=False), workers=1, progress=False,
        force=True,
    )
    assert fixed.counts == {"ok": 1, "no_face": 0, "unreadable": 0, "error": 0}
    assert_complete(tmp_path / "out", {**expected, "deep/er/boom.png": "ok"})


def test_resume_false_starts_afresh(tmp_path: Path) -> None:
    expected = make_tree(tmp_path / "in", count=3)
    run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    summary = run_batch(
        tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, resume=False, progress=False
    )
    assert summary.skipped == 0 and summary.processed == len(expected)
    assert_complete(tmp_path / "out", expected)


def test_torn_last_row_is_dropped_and_redone(tmp_path: Path) -> None:
    expected = make_tree(tmp_path / "in")
    run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    manifest = tmp_path / "out" / "manifest.csv"
    lines = manifest.read_bytes().splitlines(keepends=True)
    victim = next(line for line in lines if line.startswith(b'"odd,'))
    lost = [line for line in lines if line != victim]
    # The run "died" while writing this row, in the middle of its quoted JSON.
    manifest.write_bytes(b"".join(lost) + victim[: victim.index(b"faces") + 3])

    summary = run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    assert summary.processed == 2  # the torn row's input, and the error retried
    assert_complete(tmp_path / "out", expected)
    assert manifest.read_bytes().endswith(b"\n")


def test_torn_header_is_rewritten(tmp_path: Path) -> None:
    expected = make_tree(tmp_path / "in", count=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.csv").write_bytes(b"input,sta")
    run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    assert_complete(tmp_path / "out", expected)


def test_damaged_manifest_is_not_truncated(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", count=2)
    run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    manifest = tmp_path / "out" / "manifest.csv"
    lines = manifest.read_bytes().splitlines(keepends=True)
    damaged = b"".join([*lines[:3], b"this,is,not,a,row\n", *lines[3:]])
    manifest.write_bytes(damaged)
    with pytest.raises(BatchError, match="damaged"):
        run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    assert manifest.read_bytes() == damaged


def test_foreign_manifest_is_not_overwritten(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", count=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.csv").write_text("name,label\nx,1\n")
    with pytest.raises(BatchError, match="not a maskface manifest"):
        run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    assert (tmp_path / "out" / "manifest.csv").read_text() == "name,label\nx,1\n"


_KILLED_RUN = """
import sys
sys.path[:0] = {paths!r}
from test_batch import MarkJob
from maskface.batch.runner import run_batch
if __name__ == "__main__":
    run_batch({input!r}, {output!r}, MarkJob(sleep=0.1), workers=2, progress=False)
"""


def live_group_members(group: int) -> list[int]:
    """Processes of a process group that are still running (zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        try:
            stat = (Path("/proc") / entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        state, _, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == group and state != "Z":
            members.append(int(entry))
    return members


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigkill_then_rerun_gives_one_row_per_input(tmp_path: Path) -> None:
    expected = make_tree(tmp_path / "in", count=30)
    out = tmp_path / "out"
    script = tmp_path / "killed_run.py"
    script.write_text(
        _KILLED_RUN.format(
            paths=[str(Path(__file__).parent), *sys.path],
            input=str(tmp_path / "in"),
            output=str(out),
        )
    )
    process = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            manifest = out / "manifest.csv"
            if manifest.exists() and manifest.read_bytes().count(b"\n") > 8:
                break
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)  # the parent only: its workers must follow
        process.wait()
        assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        deadline = time.monotonic() + 10
        while live_group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live_group_members(process.pid) == [], "workers outlived their killed parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    done = len(manifest_rows(out / "manifest.csv"))
    assert 8 <= done < len(expected)

    summary = run_batch(tmp_path / "in", out, MarkJob(), workers=1, progress=False)
    assert summary.skipped + summary.processed == len(expected)
    assert_complete(out, expected)


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    expected = make_tree(tmp_path / "in", count=40)
    out = tmp_path / "out"
    finished = threading.Event()

    def press_ctrl_c() -> None:
        while not finished.is_set():
            manifest = out / "manifest.csv"
            if manifest.exists() and manifest.read_bytes().count(b"\n") > 4:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    presser = threading.Thread(target=press_ctrl_c)
    # Ctrl-C as a terminal delivers it to Python's default handler (pytest-xdist workers
    # ignore SIGINT, so the test puts the default back for its run).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser.start()
    try:
        summary = run_batch(tmp_path / "in", out, MarkJob(sleep=0.1), workers=2, progress=False)
    finally:
        finished.set()
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert summary.interrupted and "interrupted" in str(summary)
    rows = manifest_rows(out / "manifest.csv")
    assert 4 <= len(rows) == summary.processed < len(expected)
    assert len({r["input"] for r in rows}) == len(rows)

    summary = run_batch(tmp_path / "in", out, MarkJob(), workers=1, progress=False)
    assert not summary.interrupted
    assert_complete(out, expected)


def test_parquet_manifest(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    expected = make_tree(tmp_path / "in", count=4)
    out = tmp_path / "out"
    run_batch(tmp_path / "in", out, MarkJob(), workers=1, manifest="m.parquet", progress=False)
    assert (out / "m.parquet").is_file()
    assert not (out / "m.journal.csv").exists() and not (out / "manifest.csv").exists()
    rows = list(read_manifest(out / "m.parquet"))
    assert sorted(r.input for r in rows) == sorted(expected)
    assert {r.input: r.status for r in rows} == expected

    again = run_batch(
        tmp_path / "in", out, MarkJob(boom=False), workers=1, manifest="m.parquet", progress=False,
        force=True,
    )
    assert again.skipped == len(expected) - 1 and again.counts["ok"] == 1
    rows = list(read_manifest(out / "m.parquet"))
    assert len(rows) == len(expected) and {r.status for r in rows} != {"error"}


def test_parquet_without_pyarrow_fails_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "in", count=1)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(BatchError, match="pyarrow"):
        run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), manifest="m.parquet")
    assert not (tmp_path / "out").exists()


def test_single_file_input(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", count=2)
    summary = run_batch(
        tmp_path / "in" / "a" / "x" / "img0.png", tmp_path / "out", MarkJob(), workers=1
    )
    assert summary.counts["ok"] == 1
    rows = manifest_rows(tmp_path / "out" / "manifest.csv")
    assert [(r["input"], r["outputs"]) for r in rows] == [("img0.png", "img0_masked.png;img0.json")]


@pytest.mark.parametrize("inside", [".", "sub", "sub/deeper"])
def test_output_inside_input_is_refused(tmp_path: Path, inside: str) -> None:
    make_tree(tmp_path / "in", count=1)
    before = tree_digest(tmp_path / "in")
    with pytest.raises(BatchError, match="inside the input"):
        run_batch(tmp_path / "in", tmp_path / "in" / inside, MarkJob(), progress=False)
    assert tree_digest(tmp_path / "in") == before


def test_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    make_tree(tmp_path / "in", count=1)
    (tmp_path / "out").mkdir()
    fd = os.open(tmp_path / "out", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a run in progress holds it
        with pytest.raises(BatchError, match="Another maskface run"):
            run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    finally:
        os.close(fd)
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_pixel_limit_applies_to_inputs(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", count=1)
    run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, max_pixels=100)
    rows = manifest_rows(tmp_path / "out" / "manifest.csv")
    big = [r for r in rows if r["input"] == "a/x/img0.png"]
    assert [(r["status"], r["reason"]) for r in big] == [("unreadable", "too_large")]


def test_bad_arguments(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", count=1)
    with pytest.raises(BatchError, match="does not exist"):
        run_batch(tmp_path / "nope", tmp_path / "out", MarkJob())
    with pytest.raises(BatchError, match="workers"):
        run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=0)
    with pytest.raises(BatchError, match="csv"):
        run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), manifest="m.txt")
    with pytest.raises(BatchError, match="picklable"):
        run_batch(tmp_path / "in", tmp_path / "o2", lambda image, **_: None, workers=2)


def test_job_cannot_write_outside_the_output(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", count=1)
    run_batch(tmp_path / "in", tmp_path / "out", EscapingJob(), workers=1, progress=False)
    rows = manifest_rows(tmp_path / "out" / "manifest.csv")
    assert {r["status"] for r in rows if not r["input"].startswith("bad/")} == {"error"}
    assert all("ValueError" in r["reason"] for r in rows if r["status"] == "error")
    assert not (tmp_path / "escaped.png").exists()


def test_summary_line() -> None:
    summary = BatchSummary(
        counts={"ok": 3, "no_face": 1, "unreadable": 0, "error": 0},
        skipped=2,
        elapsed=2.0,
        manifest=Path("out/manifest.csv"),
    )
    assert str(summary) == (
        "4 images in 2.0 s (2.0/s): 3 ok, 1 no_face, 0 unreadable, 0 error; "
        "2 already done; manifest out/manifest.csv"
    )


# --- outputs never shared, settings recorded, odd inputs (issue 14) ---------------------------


@pytest.fixture(scope="module")
def face_png() -> bytes:
    """The sample face as PNG bytes (masking it is real work: MediaPipe and the renderer)."""
    import io

    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()[40:300, 120:330]).save(buffer, format="PNG")
    return buffer.getvalue()


def _faces(root: Path, names: list[str], face_png: bytes) -> None:
    for k, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.open(__import__("io").BytesIO(face_png))
        if k % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image.convert("RGB").save(path, format="PNG" if name.lower().endswith("png") else "JPEG")


def test_two_inputs_never_share_an_output(tmp_path: Path, face_png: bytes) -> None:
    from maskface.mask_job import MaskJob

    # a.jpg + a.JPG write a.jpg; a.png and a.jpg write a.png with png output; and the sidecars
    # of b.jpg and b.png are both b.mask.png and b.json.
    _faces(tmp_path / "in", ["a.jpg", "a.JPG", "a.png", "d/b.jpg", "d/b.png"], face_png)
    job = MaskJob(save_alpha=True, save_json=True, image_format=".png")
    summary = run_batch(tmp_path / "in", tmp_path / "out", job, workers=1, progress=False)
    assert summary.counts["ok"] == 5
    rows = {r["input"]: r for r in manifest_rows(tmp_path / "out" / "manifest.csv")}
    outputs = [o for r in rows.values() for o in r["outputs"].split(";")]
    assert len(outputs) == 15 and len({o.lower() for o in outputs}) == 15
    made = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
            if p.is_file()}
    assert made == {*outputs, "manifest.csv", "manifest.run.json"}
    # a.png keeps its name (its output is exactly its own file name); the others yield in
    # sorted order and are named after their own full name, compared ignoring case as on
    # macOS and Windows (a.JPG.png and a.jpg.png would be one file there).
    assert rows["a.png"]["outputs"] == "a.png;a.mask.png;a.json"
    assert rows["a.JPG"]["outputs"] == "a.JPG.png;a.JPG.mask.png;a.JPG.json"
    assert rows["a.jpg"]["outputs"] == "a.jpg-2.png;a.jpg-2.mask.png;a.jpg-2.json"
    assert rows["d/b.png"]["outputs"] == "d/b.png;d/b.mask.png;d/b.json"
    assert rows["d/b.jpg"]["outputs"] == "d/b.jpg.png;d/b.jpg.mask.png;d/b.jpg.json"
    assert json.loads(rows["a.jpg"]["info"])["output_base"] == "a.jpg-2.jpg"
    sidecars = MaskJob(save_alpha=True, save_json=True)  # only the sidecars would collide
    run_batch(tmp_path / "in" / "d", tmp_path / "side", sidecars, workers=1, progress=False)
    assert {r["input"]: r["outputs"] for r in manifest_rows(tmp_path / "side" / "manifest.csv")} \
        == {"b.jpg": "b.jpg;b.mask.png;b.json", "b.png": "b.png.png;b.png.mask.png;b.png.json"}
    for row in rows.values():  # every sidecar belongs to its own image
        sidecar = json.loads((tmp_path / "out" / row["outputs"].split(";")[2]).read_text())
        assert sidecar["input"] == row["input"]

    # A new sibling never takes the names of an input done by an earlier run.
    before = tree_digest(tmp_path / "out")
    _faces(tmp_path / "in", ["A.png"], face_png)
    again = run_batch(tmp_path / "in", tmp_path / "out", job, workers=1, progress=False)
    assert again.skipped == 5 and again.counts["ok"] == 1
    after = tree_digest(tmp_path / "out")
    assert {k: v for k, v in after.items() if k in before and not k.startswith("manifest")} \
        == {k: v for k, v in before.items() if not k.startswith("manifest")}
    new = manifest_rows(tmp_path / "out" / "manifest.csv")[-1]
    assert new["input"] == "A.png" and new["outputs"].startswith("A.png.png;")


def test_resuming_with_other_settings_is_refused_unless_forced(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", count=2)
    out = tmp_path / "out"
    run_batch(tmp_path / "in", out, MarkJob(), workers=1, progress=False)
    record = json.loads((out / "manifest.run.json").read_text())
    assert record["settings"]["seed"] == 0 and record["settings"]["job"]["boom"] is True
    with pytest.raises(BatchError, match=r"seed 0 -> 1.*--force"):
        run_batch(tmp_path / "in", out, MarkJob(), seed=1, workers=1, progress=False)
    with pytest.raises(BatchError, match="boom True -> False"):
        run_batch(tmp_path / "in", out, MarkJob(boom=False), workers=1, progress=False)
    # Same settings resume; a pause that changes no output is not a setting (options()).
    same = run_batch(tmp_path / "in", out, MarkJob(sleep=0.001), workers=1, progress=False)
    assert same.skipped == len(manifest_rows(out / "manifest.csv")) - 1
    forced = run_batch(tmp_path / "in", out, MarkJob(), seed=1, workers=1, progress=False,
                       force=True)
    assert forced.counts["error"] == 1  # only the failed input is redone
    record = json.loads((out / "manifest.run.json").read_text())
    assert record["settings"]["seed"] == 1 and record["earlier"][0]["seed"] == 0
    # Starting afresh is always allowed.
    run_batch(tmp_path / "in", out, MarkJob(), seed=2, workers=1, progress=False, resume=False)
    assert "earlier" not in json.loads((out / "manifest.run.json").read_text())


def _wide_png(path: Path, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((2, width, 3), 120, np.uint8)).save(path)


def test_images_of_32767_pixels_a_side_get_a_row_not_a_crash(tmp_path: Path) -> None:
    _wide_png(tmp_path / "in" / "wide.png", 32767)
    _wide_png(tmp_path / "in" / "fine.png", 32766)
    run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), workers=1, progress=False)
    rows = {r["input"]: r for r in manifest_rows(tmp_path / "out" / "manifest.csv")}
    assert (rows["wide.png"]["status"], rows["wide.png"]["reason"]) == ("unreadable", "too_large")
    assert "32,766 pixels a side" in json.loads(rows["wide.png"]["info"])["message"]
    assert rows["fine.png"]["status"] == "ok"

    # The real job and the detector, in a process of their own: OpenCV used to abort it.
    (tmp_path / "in" / "fine.png").unlink()  # detecting on 32,766 x 2 px takes long
    script = (
        "import sys\nfrom click.testing import CliRunner\nfrom maskface.cli import main\n"
        "r = CliRunner().invoke(main, ['apply', sys.argv[1], sys.argv[2], '--workers', '1',"
        " '--quiet'])\nprint('apply', r.exit_code)\n"
        "r = CliRunner().invoke(main, ['detect', sys.argv[1] + '/wide.png'])\n"
        "print('detect', r.exit_code, r.output.strip())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "in"),
                           str(tmp_path / "masked")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "apply 3" in done.stdout and "detect 1 Error: Cannot read" in done.stdout
    (row,) = manifest_rows(tmp_path / "masked" / "manifest.csv")
    assert (row["input"], row["status"], row["reason"]) == ("wide.png", "unreadable", "too_large")


def test_transparency_is_kept_where_the_format_stores_it(tmp_path: Path, face_png: bytes) -> None:
    from maskface.mask_job import MaskJob

    face = np.asarray(Image.open(__import__("io").BytesIO(face_png)).convert("RGB"))
    alpha = np.full(face.shape[:2], 255, np.uint8)
    alpha[:, :40] = 0  # a transparent band, away from the face
    (tmp_path / "in").mkdir()
    Image.fromarray(np.dstack([face, alpha])).save(tmp_path / "in" / "cut-out.png")
    Image.fromarray(face).save(tmp_path / "in" / "opaque.png")
    run_batch(tmp_path / "in", tmp_path / "out", MaskJob(), workers=1, progress=False)
    masked = Image.open(tmp_path / "out" / "cut-out.png")
    assert masked.mode == "RGBA"
    assert np.array_equal(np.asarray(masked)[..., 3], alpha)
    assert Image.open(tmp_path / "out" / "opaque.png").mode == "RGB"  # no alpha invented
    run_batch(tmp_path / "in", tmp_path / "jpg", MaskJob(image_format=".jpg"), workers=1,
              progress=False)
    assert Image.open(tmp_path / "jpg" / "cut-out.jpg").mode == "RGB"


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file names must be UTF-8")
def test_file_names_that_are_not_utf8(tmp_path: Path, face_png: bytes) -> None:
    pytest.importorskip("pyarrow")
    from maskface.mask_job import MaskJob

    (tmp_path / "in").mkdir()
    raw = os.fsencode(tmp_path / "in") + b"/caf\xe9.png"
    with open(raw, "wb") as f:
        f.write(face_png)
    name = os.fsdecode(b"caf\xe9.png")
    job = MaskJob(save_json=True)
    for manifest in ("manifest.csv", "m.parquet"):
        out = tmp_path / manifest.replace(".", "-")
        summary = run_batch(tmp_path / "in", out, job, workers=1, manifest=manifest,
                            progress=False)
        assert summary.counts["ok"] == 1
        (row,) = read_manifest(out / manifest)
        assert row.input == name and row.status == "ok"
        assert os.path.exists(os.fsencode(out) + b"/caf\xe9.png")
        sidecar = json.loads((out / os.fsdecode(b"caf\xe9.json")).read_text("utf-8"))
        assert sidecar["input"] == "caf\\xe9.png"  # printable, and still the same byte
        again = run_batch(tmp_path / "in", out, job, workers=1, manifest=manifest,
                          progress=False)
        assert again.skipped == 1 and again.processed == 0
    # Any UTF-8 reader takes the CSV manifest, and the Parquet one.
    assert manifest_rows(tmp_path / "manifest-csv" / "manifest.csv")[0]["input"] == "caf\\xe9.png"
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "m-parquet" / "m.parquet").column("input").to_pylist() == [
        "caf\\xe9.png"]


@dataclass(frozen=True)
class HalfBadJob:
    """An image output, then a sidecar that cannot be JSON (NaN)."""

    def __call__(self, image: np.ndarray, *, relpath: str, seed: int) -> JobResult:
        stem = relpath.rsplit(".", 1)[0]
        return JobResult("ok", [JobOutput(f"{stem}.png", image),
                                JobOutput(f"{stem}.json", {"score": float("nan")})])


def test_a_result_that_cannot_be_written_whole_leaves_no_file(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", count=1)
    run_batch(tmp_path / "in", tmp_path / "out", HalfBadJob(), workers=1, progress=False)
    rows = manifest_rows(tmp_path / "out" / "manifest.csv")
    assert {r["status"] for r in rows if not r["input"].startswith("bad/")} == {"error"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.csv", "manifest.run.json"]
