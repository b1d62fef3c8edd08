"""The web app's API through FastAPI's TestClient, on real faces (astronaut, LFW)."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette suggests httpx2, which is not needed here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from maskface.web import create_app, static_dir


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app()) as c:
        yield c


def test_page_and_its_files_come_from_the_app_only(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="mask-file"' in page.text and 'id="identify-canvas"' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    # Nothing fetched from elsewhere: no absolute URL in any shipped file.
    for path in static_dir().iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path.name


def test_options_come_from_the_registries(client: TestClient):
    import maskface
    from maskface.styles import NAMED_COLORS, PATTERNS

    opts = client.get("/api/options").json()
    names = [s["name"] for s in opts["styles"]]
    # Every style a person can use without files of their own (custom needs an image).
    assert names == [s for s in maskface.list_styles() if s != "custom"]
    assert opts["wear"] == list(maskface.WEAR_STYLES)
    assert opts["colors"] == dict(NAMED_COLORS)
    cloth = next(s for s in opts["styles"] if s["name"] == "cloth")
    assert cloth["colors"] and cloth["patterns"] == list(PATTERNS)
    respirator = next(s for s in opts["styles"] if s["name"] == "respirator")
    assert respirator["patterns"] == []
    assert opts["gallery"] is None and opts["renderers"] == maskface.list_renderers()


def test_mask_returns_the_photo_masked_as_asked(client: TestClient, astronaut: np.ndarray):
    r = client.post("/api/mask", files={"file": ("astro naut.png", png(astronaut), "image/png")},
                    data={"style": "cloth", "color": "red", "wear": "correct", "seed": "3"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-faces-masked"] == "1"
    assert 'filename="astro naut_cloth_correct.png"' in r.headers["content-disposition"]
    out = decode(r.content)
    assert out.shape == astronaut.shape
    changed = np.abs(out.astype(int) - astronaut.astype(int)).sum(axis=2) > 40
    ys, xs = np.nonzero(changed)
    # The mask covers the lower face (the astronaut's face spans x 170-270, y 60-200).
    assert changed.sum() > 3000 and 120 < np.median(ys) < 220 and 170 < np.median(xs) < 270
    red = out[changed].astype(int)
    assert (red[:, 0] - red[:, 2]).mean() > 60  # a red mask, not the default navy
    # Same options, same seed: same bytes; JPEG in, JPEG out.
    again = client.post("/api/mask", files={"file": ("a.png", png(astronaut), "image/png")},
                        data={"style": "cloth", "color": "red", "seed": "3"})
    assert again.content == r.content
    j = client.post("/api/mask", files={"file": ("a.JPG", jpeg(astronaut), "image/jpeg")},
                    data={"style": "kn95", "wear": "chin"})
    assert j.status_code == 200 and j.headers["content-type"] == "image/jpeg"
    assert 'filename="a_kn95_chin.jpg"' in j.headers["content-disposition"]


@pytest.mark.parametrize(("name", "payload", "status", "message"), [
    ("notes.jpg", b"these are not pixels\n" * 20, 415, "not an image maskface can read"),
    ("empty.png", b"", 422, "empty"),
    ("cut.png", "truncated", 422, "truncated"),
    ("wall.png", "blank", 422, "No face found in wall.png"),
    ("tiny.png", "tiny", 422, "too small"),
])
def test_bad_photos_get_a_clear_message(client: TestClient, astronaut: np.ndarray,
                                        name: str, payload, status: int, message: str):
    if payload == "truncated":
        payload = png(astronaut)[:20000]
    elif payload == "blank":
        payload = png(np.full((300, 400, 3), 200, np.uint8))
    elif payload == "tiny":
        payload = png(astronaut[:8, :8])
    r = client.post("/api/mask", files={"file": (name, payload, "image/png")})
    assert r.status_code == status
    body = r.json()
    assert message in body["error"] and "Traceback" not in body["error"]
    assert "/tmp" not in body["error"]  # the server's temp paths never leak to the page


def test_oversized_upload_is_refused(astronaut: np.ndarray):
    with TestClient(create_app(max_upload_mb=0.2)) as small:
        big = png(np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8))
        r = small.post("/api/mask", files={"file": ("big.png", big, "image/png")})
        assert r.status_code == 413 and "too large" in r.json()["error"]
        ok = small.post("/api/mask", files={"file": ("a.jpg", jpeg(astronaut), "image/jpeg")})
        assert ok.status_code == 200


@pytest.mark.parametrize(("data", "message"), [
    ({"style": "balaclava"}, "unknown mask style 'balaclava'"),
    ({"style": "cloth", "color": "blurple"}, "unknown colour 'blurple'"),
    ({"style": "respirator", "pattern": "dots"}, "has no parameter 'pattern'"),
    ({"wear": "forehead"}, "Unknown wear 'forehead'"),
    ({"renderer": "4d"}, "Unknown renderer '4d'"),
])
def test_bad_options_get_a_clear_message(client: TestClient, astronaut: np.ndarray,
                                         data: dict, message: str):
    r = client.post("/api/mask", files={"file": ("a.png", png(astronaut), "image/png")},
                    data=data)
    assert r.status_code == 400 and message in r.json()["error"]


def test_missing_file_and_no_gallery_messages(client: TestClient, astronaut: np.ndarray):
    r = client.post("/api/mask", data={"style": "kn95"})
    assert r.status_code == 422 and "file" in r.json()["error"]
    for url in ("/api/identify", "/api/enrol"):
        r = client.post(url, files={"file": ("a.png", png(astronaut), "image/png"),
                                    "files": ("a.png", png(astronaut), "image/png")},
                        data={"name": "Ada"})
        assert r.status_code == 503 and "--gallery" in r.json()["error"]


# ---- enrolment and identification against a real gallery (LFW) ------------------------------

def _lfw_bytes(lfw: Path, name: str, index: int) -> bytes:
    return (lfw / name / f"{name}_{index:04d}.jpg").read_bytes()


@pytest.fixture(scope="module")
def gallery_client(lfw: Path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("webgallery") / "gallery"
    # A door of two people: masked faces decided at 0.94 (the default, 0.97, is set for
    # hundreds of people enrolled mask-aware), as tests/test_watch.py does.
    app = create_app(gallery=str(folder), create_gallery={"masked_threshold": 0.94})
    with TestClient(app) as c:
        yield c, folder


def test_enrol_identify_and_remove(gallery_client, lfw: Path):
    import maskface

    client, _ = gallery_client
    assert client.get("/api/gallery").json()["people"] == 0
    r = client.post("/api/identify", files={"file": ("p.jpg", _lfw_bytes(lfw, "Colin_Powell", 3),
                                                     "image/jpeg")})
    assert r.status_code == 409 and "empty" in r.json()["error"]
    for name, folder_name in (("Colin Powell", "Colin_Powell"), ("Tony Blair", "Tony_Blair")):
        r = client.post("/api/enrol", data={"name": f"  {name} ", "mask_aware": "true"},
                        files=[("files", (f"{folder_name}_1.jpg",
                                          _lfw_bytes(lfw, folder_name, 1), "image/jpeg")),
                               ("files", ("notes.jpg", b"not a photo" * 50, "image/jpeg"))])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["identity"] == name and body["used"] == [f"{folder_name}_1.jpg"]
        assert body["skipped"] == [{"photo": "notes.jpg", "reason": body["skipped"][0]["reason"]}]
        assert "not an image" in body["skipped"][0]["reason"]
        assert body["templates"] > 1  # the photo and its masked variants
    info = client.get("/api/gallery").json()
    assert list(info["identities"]) == ["Colin Powell", "Tony Blair"] and info["people"] == 2

    # A masked photo of Tony Blair the gallery has never seen, beside an unmasked Powell.
    blair = maskface.mask_image(maskface.read_image(lfw / "Tony_Blair" / "Tony_Blair_0007.jpg"),
                                "surgical", seed=2).image
    r = client.post("/api/identify", files={"file": ("blair masked.png", png(blair),
                                                     "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (250, 250) and len(body["faces"]) >= 1
    face = body["faces"][0]
    assert face["identity"] == "Tony Blair" and face["masked"]
    assert face["matches"][0]["identity"] == "Tony Blair"
    assert face["score"] == face["matches"][0]["score"] >= body["masked_threshold"] == 0.94
    x0, y0, x1, y1 = face["box"]
    assert 60 < x0 < x1 < 190 and 50 < y0 < y1 < 200  # the central face of the LFW photo

    r = client.delete("/api/identities/Tony Blair")
    assert r.status_code == 200 and r.json()["removed"] > 1
    assert list(r.json()["gallery"]["identities"]) == ["Colin Powell"]
    assert client.delete("/api/identities/Tony Blair").status_code == 404
    r = client.post("/api/identify", files={"file": ("b.png", png(blair), "image/png")})
    assert r.json()["faces"][0]["identity"] != "Tony Blair"


def test_failed_enrolments_leave_the_gallery_as_it_was(gallery_client, lfw: Path,
                                                       astronaut: np.ndarray):
    from maskface.gallery import Gallery

    client, folder = gallery_client
    before = client.get("/api/gallery").json()
    cases = [
        ({"name": "Ada"}, [("files", ("notes.png", b"x" * 300, "image/png"))], 415,
         "not an image"),
        ({"name": "Ada"}, [("files", ("wall.png", png(np.full((200, 200, 3), 90, np.uint8)),
                                      "image/png"))], 422, "no face"),
        ({"name": "unknown"}, [("files", ("a.png", png(astronaut), "image/png"))], 400,
         "not 'unknown'"),
        ({"name": "a/b"}, [("files", ("a.png", png(astronaut), "image/png"))], 400, "slashes"),
        ({"name": "Ada"}, [], 422, "files"),
    ]
    for data, files, status, message in cases:
        r = client.post("/api/enrol", data=data, files=files or None)
        assert r.status_code == status, (data, r.text)
        assert message in r.json()["error"]
    assert client.get("/api/gallery").json() == before
    # What is on disk reloads to the same gallery.
    reopened = Gallery.open(folder, readonly=True)
    assert reopened.identities() == before["identities"] and len(reopened) == before["templates"]
    # Enrolling the same photo twice adds nothing and says why.
    r = client.post("/api/enrol", data={"name": "Colin Powell"},
                    files=[("files", ("again.jpg", _lfw_bytes(lfw, "Colin_Powell", 1),
                                      "image/jpeg"))])
    assert r.status_code == 422 and "already enrolled" in r.json()["error"]
    assert client.get("/api/gallery").json() == before
