"""read_image / write_image / iter_images on files drawn by the tests themselves."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from maskface.atomic import (
    TEMP_SUFFIX,
    atomic_writer,
    remove_stale_temps,
    write_bytes_atomic,
    write_json_atomic,
)
from maskface.errors import READ_ERROR_REASONS, ImageReadError, MaskfaceError
from maskface.imageio import IMAGE_EXTENSIONS, iter_images, read_image, write_image


def _picture(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth RGB picture with no symmetry, so that every flip and turn shows."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + 2 * y) % 256], -1)
    image = image.astype(np.uint8)
    image[: height // 4, : width // 4] = (255, 0, 0)  # a marker in the top-left corner
    return image


def _reason(path: Path, **kwargs: object) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    error = info.value
    assert isinstance(error, MaskfaceError)
    assert error.reason in READ_ERROR_REASONS
    assert str(path) in str(error) and "\n" not in str(error)
    return error.reason


# --- pixel formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff", ".webp", ".PNG"])
def test_lossless_formats_round_trip(tmp_path: Path, ext: str) -> None:
    picture = _picture()
    path = tmp_path / f"p{ext}"
    options = {"lossless": True} if ext == ".webp" else {}
    Image.fromarray(picture).save(path, **options)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == picture.shape
    assert image.flags.c_contiguous and image.flags.writeable
    np.testing.assert_array_equal(image, picture)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".webp"])
def test_lossy_formats_read_close(tmp_path: Path, ext: str) -> None:
    picture = _picture()
    path = tmp_path / f"p{ext}"
    Image.fromarray(picture).save(path, quality=98)
    image = read_image(path)
    assert image.shape == picture.shape
    assert np.abs(image.astype(int) - picture).mean() < 4


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = _picture()[..., 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.shape == (*gray.shape, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], gray)


def test_gray_alpha_drops_or_keeps_alpha(tmp_path: Path) -> None:
    gray = _picture()[..., 1]
    alpha = _picture()[..., 2]
    Image.fromarray(np.stack([gray, alpha], -1), mode="LA").save(tmp_path / "la.png")
    rgb = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(rgb, np.stack([gray] * 3, -1))  # dropped, not composited
    rgba = read_image(tmp_path / "la.png", keep_alpha=True)
    np.testing.assert_array_equal(rgba, np.stack([gray, gray, gray, alpha], -1))


def test_rgba_drops_or_keeps_alpha(tmp_path: Path) -> None:
    picture = _picture()
    alpha = np.zeros(picture.shape[:2], np.uint8)
    alpha[:, ::2] = 255
    Image.fromarray(np.dstack([picture, alpha])).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), picture)
    rgba = read_image(tmp_path / "rgba.png", keep_alpha=True)
    assert rgba.shape == (*picture.shape[:2], 4)
    np.testing.assert_array_equal(rgba, np.dstack([picture, alpha]))


def test_keep_alpha_on_opaque_image_gives_255(tmp_path: Path) -> None:
    Image.fromarray(_picture()).save(tmp_path / "p.png")
    rgba = read_image(tmp_path / "p.png", keep_alpha=True)
    np.testing.assert_array_equal(rgba[..., :3], _picture())
    assert (rgba[..., 3] == 255).all()


def test_palette_with_transparency(tmp_path: Path) -> None:
    indices = np.zeros((8, 10), np.uint8)
    indices[:, 5:] = 1
    indices[0, 0] = 2
    im = Image.fromarray(indices, mode="P")
    im.putpalette([10, 20, 30, 200, 100, 50, 0, 255, 0] + [0] * (256 - 3) * 3)
    im.save(tmp_path / "p.png", transparency=2)
    rgb = read_image(tmp_path / "p.png")
    assert tuple(rgb[3, 2]) == (10, 20, 30) and tuple(rgb[3, 7]) == (200, 100, 50)
    rgba = read_image(tmp_path / "p.png", keep_alpha=True)
    assert rgba[0, 0, 3] == 0 and rgba[3, 2, 3] == 255


def test_one_bit_image(tmp_path: Path) -> None:
    bits = np.zeros((16, 24), bool)
    bits[4:10, 3:20] = True
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    image = read_image(tmp_path / "b.png")
    np.testing.assert_array_equal(image[..., 0], np.where(bits, 255, 0))
    assert set(np.unique(image)) <= {0, 255}


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # red
    cmyk.paste((255, 0, 255, 0), (16, 0, 32, 16))  # green on the right half
    cmyk.save(tmp_path / "c.jpg", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    image = read_image(tmp_path / "c.jpg")
    assert image.shape == (16, 32, 3)
    np.testing.assert_allclose(image[8, 4], (255, 0, 0), atol=6)
    np.testing.assert_allclose(image[8, 28], (0, 255, 0), atol=6)


def _gradient16() -> np.ndarray:
    return np.tile(np.linspace(0, 65535, 512).round().astype(np.uint16), (4, 1))


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_gray_is_scaled_not_clipped(tmp_path: Path, ext: str) -> None:
    samples = _gradient16()
    Image.fromarray(samples).save(tmp_path / f"g16{ext}")
    assert Image.open(tmp_path / f"g16{ext}").mode.startswith("I;16")
    image = read_image(tmp_path / f"g16{ext}")
    expected = np.round(samples / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(image[..., 0], expected)
    assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255 and 126 <= image[0, 256, 0] <= 128
    assert len(np.unique(image)) > 200  # a clipped read would be almost all 255


def _write_png_rgb16(path: Path, samples: np.ndarray) -> None:
    """A minimal 16-bit RGB PNG writer (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    height, width, _ = samples.shape
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_16_bit_rgb_png_is_scaled(tmp_path: Path) -> None:
    ramp = _gradient16()
    samples = np.stack([ramp, ramp[:, ::-1], ramp // 2], -1)
    _write_png_rgb16(tmp_path / "rgb16.png", samples)
    image = read_image(tmp_path / "rgb16.png")
    expected = np.round(samples / 257.0)
    assert np.abs(image - expected).max() <= 1


# The EXIF meaning of each orientation: where the stored first row and first column are shown.
_ROW0_COL0 = {
    1: ("top", "left"),
    2: ("top", "right"),
    3: ("bottom", "right"),
    4: ("bottom", "left"),
    5: ("left", "top"),
    6: ("right", "top"),
    7: ("right", "bottom"),
    8: ("left", "bottom"),
}


def _as_displayed(stored: np.ndarray, orientation: int) -> np.ndarray:
    """Place every stored pixel where a viewer honouring the EXIF orientation shows it."""
    row0, col0 = _ROW0_COL0[orientation]
    h, w = stored.shape[:2]
    r, c = np.mgrid[0:h, 0:w]
    if row0 in ("top", "bottom"):
        shown = np.zeros_like(stored)
        y = r if row0 == "top" else h - 1 - r
        x = c if col0 == "left" else w - 1 - c
    else:
        shown = np.zeros((w, h, *stored.shape[2:]), stored.dtype)
        x = r if row0 == "left" else h - 1 - r
        y = c if col0 == "top" else w - 1 - c
    shown[y, x] = stored[r, c]
    return shown


@pytest.mark.parametrize("ext", [".jpg", ".png"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path: Path, ext: str, orientation: int) -> None:
    stored = _picture(40, 64)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}{ext}"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=100)
    image = read_image(path)
    expected = _as_displayed(stored, orientation)
    assert image.shape == expected.shape
    assert image.flags.c_contiguous
    if ext == ".png":
        np.testing.assert_array_equal(image, expected)
    else:
        assert np.abs(image.astype(int) - expected).mean() < 3


def test_bad_orientation_values_are_ignored(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 42
    Image.fromarray(_picture()).save(tmp_path / "o.png", exif=exif.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), _picture())


def test_huge_image_reads(tmp_path: Path) -> None:
    big = Image.new("RGB", (8000, 8000), (40, 80, 120))
    big.paste((250, 10, 10), (7000, 100, 7100, 200))
    big.save(tmp_path / "big.jpg", quality=90)
    del big
    start = time.perf_counter()
    image = read_image(tmp_path / "big.jpg")
    seconds = time.perf_counter() - start
    assert image.shape == (8000, 8000, 3)
    np.testing.assert_allclose(image[4000, 4000], (40, 80, 120), atol=3)
    np.testing.assert_allclose(image[150, 7050], (250, 10, 10), atol=3)
    assert seconds < 10


# --- refusals ---------------------------------------------------------------------------------


def test_missing_and_empty_and_directory(tmp_path: Path) -> None:
    assert _reason(tmp_path / "nope.jpg") == "missing"
    (tmp_path / "empty.jpg").touch()
    assert _reason(tmp_path / "empty.jpg") == "empty"
    (tmp_path / "dir.png").mkdir()
    assert _reason(tmp_path / "dir.png") == "not_image"


def test_text_file_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("these are my holiday notes, not a photo\n")
    assert _reason(tmp_path / "notes.jpg") == "not_image"


def test_known_but_unsupported_format(tmp_path: Path) -> None:
    Image.fromarray(_picture()).save(tmp_path / "anim.png", format="GIF")
    assert _reason(tmp_path / "anim.png") == "unsupported"
    # The start of an iPhone photo: an ISO-media box of brand "heic".
    (tmp_path / "phone.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00" + bytes(64))
    assert _reason(tmp_path / "phone.jpg") == "unsupported"


@pytest.mark.parametrize(
    ("ext", "options"),
    [(".jpg", {}), (".jpg", {"progressive": True}), (".png", {}), (".webp", {}), (".tif", {})],
)
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.97])
def test_truncated_files_are_refused(
    tmp_path: Path, ext: str, options: dict[str, object], keep: float
) -> None:
    rng = np.random.default_rng(0)
    noisy = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    whole = tmp_path / f"whole{ext}"
    Image.fromarray(noisy).save(whole, **options)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert _reason(cut) == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_jpeg_missing_only_its_end_marker_is_truncated(tmp_path: Path) -> None:
    Image.fromarray(_picture()).save(tmp_path / "p.jpg")
    data = (tmp_path / "p.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:-1])
    assert _reason(tmp_path / "cut.jpg") == "truncated"


def test_corrupt_png_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.png")
    data = bytearray((tmp_path / "p.png").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    (tmp_path / "p.png").write_bytes(bytes(data))
    assert _reason(tmp_path / "p.png") in ("corrupt", "truncated")


def test_pixel_limit(tmp_path: Path) -> None:
    Image.fromarray(_picture(48, 64)).save(tmp_path / "p.png")
    assert _reason(tmp_path / "p.png", max_pixels=48 * 64 - 1) == "too_large"
    assert read_image(tmp_path / "p.png", max_pixels=48 * 64).shape == (48, 64, 3)
    assert read_image(tmp_path / "p.png", max_pixels=None).shape == (48, 64, 3)


def test_pillow_bomb_guard_becomes_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(_picture(48, 64)).save(tmp_path / "p.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses above twice this
    assert _reason(tmp_path / "p.png", max_pixels=None) == "too_large"


def test_read_error_pickles_with_its_fields(tmp_path: Path) -> None:
    error = ImageReadError(tmp_path / "x.jpg", "truncated", "Cannot read x.jpg: cut short.")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (
        str(tmp_path / "x.jpg"),
        "truncated",
        error.message,
    )


# --- writing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tif"])
def test_write_is_deterministic_and_atomic(tmp_path: Path, ext: str) -> None:
    picture = _picture()
    first, second = tmp_path / "a" / "b" / f"x{ext}", tmp_path / "c" / f"x{ext}"
    write_image(first, picture)
    write_image(second, picture)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(os.listdir(first.parent)) == [f"x{ext}"]  # no temp file left behind
    error = np.abs(read_image(first).astype(int) - picture).mean()
    assert error == 0 if ext in (".png", ".bmp", ".tif") else error < 4


def test_write_gray_and_rgba(tmp_path: Path) -> None:
    picture = _picture()
    write_image(tmp_path / "g.png", picture[..., 0])
    assert Image.open(tmp_path / "g.png").mode == "L"
    np.testing.assert_array_equal(read_image(tmp_path / "g.png")[..., 1], picture[..., 0])
    rgba = np.dstack([picture, picture[..., 1]])
    write_image(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", keep_alpha=True), rgba)


def test_write_quality(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    noisy = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    write_image(tmp_path / "low.jpg", noisy, quality=20)
    write_image(tmp_path / "high.jpg", noisy, quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("x.gif", np.zeros((4, 4, 3), np.uint8)),
        ("x.png", np.zeros((4, 4, 3), np.float32)),
        ("x.png", np.zeros((4, 4, 2), np.uint8)),
        ("x.jpg", np.zeros((4, 4, 4), np.uint8)),
    ],
)
def test_write_refuses_what_it_cannot_store(tmp_path: Path, name: str, image: np.ndarray) -> None:
    with pytest.raises(ValueError):
        write_image(tmp_path / name, image)
    assert not any(tmp_path.iterdir())


def test_atomic_writer_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"new, half written")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_write_json_atomic(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "sub" / "x.json", {"b": 1, "a": [1, 2], "c": "é"})
    text = (tmp_path / "sub" / "x.json").read_text("utf-8")
    assert text == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1,\n  "c": "é"\n}\n'
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "nan.json", {"x": float("nan")})
    assert not (tmp_path / "nan.json").exists()


def test_remove_stale_temps(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    stale = tmp_path / "d" / f".x.png.abc{TEMP_SUFFIX}"
    stale.write_bytes(b"partial")
    (tmp_path / "d" / "x.png").write_bytes(b"keep")
    (tmp_path / ".hidden.tmp").write_bytes(b"keep too")
    assert remove_stale_temps(tmp_path) == 1
    assert not stale.exists() and (tmp_path / "d" / "x.png").exists()
    assert (tmp_path / ".hidden.tmp").exists()


# --- listing ----------------------------------------------------------------------------------


def test_iter_images_is_sorted_recursive_and_skips_hidden(tmp_path: Path) -> None:
    names = [
        "b.jpg",
        "a.PNG",
        "z/c.tiff",
        "z/y/d.WebP",
        "m/e.bmp",
        "m/f.jpeg",
        "m/g.tif",
        "notes.txt",
        "m/h.gif",
        ".hidden.jpg",
        ".cache/i.jpg",
        "z/.j.png",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_images(tmp_path)]
    assert found == ["a.PNG", "b.jpg", "m/e.bmp", "m/f.jpeg", "m/g.tif", "z/c.tiff", "z/y/d.WebP"]
    assert list(iter_images(tmp_path / "b.jpg")) == [tmp_path / "b.jpg"]
    assert list(iter_images(tmp_path / "notes.txt")) == []
    assert {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} == set(IMAGE_EXTENSIONS)


def test_iter_images_does_not_follow_folder_links(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert [p.name for p in iter_images(tmp_path)] == ["x.png"]


def test_inputs_are_not_modified_by_reading(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_picture()).save(tmp_path / "p.jpg", exif=exif.tobytes())
    before = hashlib.sha256((tmp_path / "p.jpg").read_bytes()).hexdigest()
    read_image(tmp_path / "p.jpg")
    assert hashlib.sha256((tmp_path / "p.jpg").read_bytes()).hexdigest() == before
