"""The web app in a real browser: Debian's Chromium driven by Playwright against the real
`maskface serve` process on 127.0.0.1.

Needs the `chromium` apt package (``apt-get install -y chromium``; .ci/run installs it) and
the `playwright` pip package; Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("MASKFACE_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1200, "height": 900}


def _launch():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser at {CHROMIUM}: apt-get install -y chromium")
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _launch()
    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`maskface serve --gallery` in its own process; yields (base URL, gallery folder)."""
    gallery = tmp_path_factory.mktemp("web") / "gallery"
    # the door's thresholds, as in tests/test_web.py: masked faces decided at 0.94
    subprocess.run([sys.executable, "-m", "maskface.cli", "gallery", "create", str(gallery),
                    "--masked-threshold", "0.94"], cwd=REPO, check=True, capture_output=True)
    port = _free_port()
    log = (gallery.parent / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskface.cli", "serve", "--port", str(port),
         "--gallery", str(gallery)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        with contextlib.suppress(OSError), \
                urllib.request.urlopen(url + "/api/options", timeout=2) as r:
            if r.status == 200:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail("maskface serve did not start:\n" +
                        (gallery.parent / "server.log").read_text())
        time.sleep(0.2)
    yield url, gallery
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # Nothing may be fetched from anywhere but the app itself.
    outside: list[str] = []
    pg.on("request", lambda r: None if r.url.startswith((server[0], "blob:", "data:"))
          else outside.append(r.url))
    pg.goto(server[0] + "/")
    pg.wait_for_selector("body[data-ready='1']", timeout=15000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
    assert not outside, f"the page fetched from outside the app: {outside}"


def check_screenshot(path: Path) -> np.ndarray:
    """A screenshot of the whole viewport, not blank: a real page was drawn."""
    shot = np.asarray(Image.open(path).convert("RGB"))
    assert shot.shape == (VIEWPORT["height"], VIEWPORT["width"], 3)
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 500
    return shot


def test_mask_a_photo_in_the_browser(page, astronaut, tmp_path: Path):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    page.set_input_files("#mask-file", str(photo))
    assert page.inner_text("#mask-file-name") == "astronaut.png"
    page.check("#styles input[value='kn95']")
    page.select_option("#color", "black")
    page.check("#wear input[value='under_nose']")
    # Record what the status line and the progress bar show while the work runs.
    page.evaluate("""() => {
        window.seen = [];
        const status = document.getElementById('mask-status');
        const bar = document.getElementById('mask-progress');
        new MutationObserver(() => window.seen.push([status.textContent, !bar.hidden]))
            .observe(status, {childList: true, characterData: true, subtree: true});
    }""")
    page.click("#mask-run")
    page.wait_for_selector("#mask-status.ok", timeout=30000)
    assert "2 masked images" in page.inner_text("#mask-status")
    seen = page.evaluate("window.seen")
    assert ["Masking 1 of 2 (kn95): drawing the mask…", True] in seen
    assert ["Masking 2 of 2 (surgical): drawing the mask…", True] in seen
    images = page.locator(".mask-result img")
    assert images.count() == 2
    sizes = page.eval_on_selector_all(".mask-result img", "els => els.map(e => [e.naturalWidth, "
                                      "e.naturalHeight])")
    assert sizes == [[512, 512], [512, 512]]
    # The download is the masked photo: black under the nose, the rest as it was.
    with page.expect_download() as info:
        page.locator(".mask-result a.download").nth(1).click()
    download = info.value
    assert download.suggested_filename == "astronaut_surgical_under_nose.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    out = np.asarray(Image.open(saved).convert("RGB")).astype(int)
    changed = np.abs(out - astronaut.astype(int)).sum(axis=2) > 40
    assert changed.sum() > 2000 and not changed[:60].any()  # nothing drawn above the face
    page.screenshot(path=str(tmp_path / "mask.png"))
    shot = check_screenshot(tmp_path / "mask.png")
    print("screenshot:", tmp_path / "mask.png", shot.shape)


def test_bad_file_gets_a_message_on_the_page(page, tmp_path: Path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image\n" * 100)
    page.set_input_files("#mask-file", str(notes))
    page.click("#mask-run")
    page.wait_for_selector("#mask-status.error", timeout=15000)
    text = page.inner_text("#mask-status")
    assert "notes.png is not an image" in text and "Traceback" not in text
    assert page.locator(".mask-result").count() == 0


def _lfw_photo(lfw: Path, name: str, i: int) -> Path:
    return lfw / name / f"{name}_{i:04d}.jpg"


def test_enrol_two_people_and_identify_a_masked_face(page, server, lfw: Path, tmp_path: Path):
    import maskface

    people = {"Colin Powell": "Colin_Powell", "Tony Blair": "Tony_Blair"}
    for shown, folder in people.items():
        page.fill("#enrol-name", shown)
        page.set_input_files("#enrol-files", [str(_lfw_photo(lfw, folder, 1))])
        page.click("#enrol-run")
        page.wait_for_function(
            "() => /Enrolled|not enrolled/.test(document.getElementById('enrol-status')"
            ".textContent)", timeout=60000)
        assert f"Enrolled {shown} from 1 photo" in page.inner_text("#enrol-status")
    listed = page.eval_on_selector_all("#people li", "els => els.map(e => e.dataset.identity)")
    assert listed == ["Colin Powell", "Tony Blair"]

    probe = maskface.read_image(_lfw_photo(lfw, "Tony_Blair", 7))
    masked = maskface.mask_image(probe, "surgical", seed=2).image
    path = tmp_path / "masked probe.png"
    Image.fromarray(masked).save(path)
    page.set_input_files("#identify-file", str(path))
    page.wait_for_selector("#identify-status.ok, #identify-status.error", timeout=30000)
    assert page.get_attribute("#identify-status", "class") == "status ok", \
        page.inner_text("#identify-status")
    rows = page.eval_on_selector_all("#identify-table tbody tr",
                                     "rs => rs.map(r => Array.from(r.cells, c => c.textContent))")
    assert rows[0][1] == "Tony Blair" and rows[0][3] == "on", rows
    assert float(rows[0][2]) > 0.5 and rows[0][4].startswith("Tony Blair")
    canvas = page.eval_on_selector("#identify-canvas", "c => [c.width, c.height]")
    assert canvas == [360, 360]  # the 250-pixel photo, shown larger
    page.locator("#identify").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "identify.png"))
    shot = check_screenshot(tmp_path / "identify.png")
    # The box around the recognised face is drawn in the page's green.
    green = (np.abs(shot.astype(int) - [31, 138, 76]).sum(axis=2) < 30).sum()
    assert green > 200
    print("screenshot:", tmp_path / "identify.png")
