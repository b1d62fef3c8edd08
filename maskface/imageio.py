"""Image files in and out.

:func:`read_image` turns every image a camera, a phone, a scanner or an editor may produce into
a plain RGB (or RGBA) ``uint8`` array, upright, or fails with an :class:`ImageReadError` whose
``reason`` says what is wrong in a word a manifest can carry. :func:`write_image` writes
atomically and byte-for-byte reproducibly. :func:`iter_images` lists a tree deterministically.

Decoding is Pillow's only: OpenCV decodes plain 8-bit JPEGs about 30 % faster on large photos
but silently fills truncated files with grey, which is exactly what must not happen here.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from maskface.atomic import write_bytes_atomic
from maskface.errors import ImageReadError, InvalidInputError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Extensions whose files keep an alpha channel when written.
ALPHA_EXTENSIONS: tuple[str, ...] = (".png", ".webp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 100_000_000
# The longest side maskface accepts: OpenCV code inside MediaPipe aborts the whole process
# (SIGABRT, no exception) on an image 32,767 pixels wide or high, as its coordinates are shorts.
MAX_SIDE = 32_766

# Pillow's JPEG plugin also opens the multi-picture (MPO) JPEGs many cameras write.
_READ_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
_FORMAT_NAMES = "JPEG, PNG, BMP, WebP and TIFF"
_WRITE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_EXIF_ORIENTATION = 0x0112
# Exceptions Pillow's decoders raise on damaged data, besides OSError.
_DATA_ERRORS = (SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def read_image(
    path: str | os.PathLike[str],
    *,
    keep_alpha: bool | str = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read an image file as a writable, C-contiguous ``uint8`` array, upright per its EXIF.

    Returns (H, W, 3) RGB, or (H, W, 4) RGBA when ``keep_alpha`` is true (alpha 255 where the
    file has none) or ``"auto"`` and the file has transparency. Otherwise the alpha channel
    is dropped, not composited. Images with a side of more than :data:`MAX_SIDE` pixels are
    refused (``too_large``): native code further on would abort the process.
    Grayscale, palette, 1-bit and CMYK images become RGB; 16-bit samples are scaled to 8 bits
    (``round(v / 257)``; 32-bit integer samples are taken as 16-bit, float ones as [0, 1]).
    Images with more than ``max_pixels`` pixels are refused (``None``: no limit of ours;
    Pillow's own decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``, still applies).
    Multi-frame files give their first frame. Colour profiles are not applied.

    Raises :class:`ImageReadError` for anything that is not a readable image.
    """
    name = os.fspath(path)
    _check_file(name)
    # Pillow warns about big images (the size is checked below) and about odd metadata,
    # neither of which stops a read; in a batch of millions the noise would drown real errors.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = Image.open(name, formats=_READ_FORMATS)
        except UnidentifiedImageError:
            raise _unidentified(name) from None
        except (OSError, Image.DecompressionBombError, *_DATA_ERRORS) as exc:
            raise _decode_error(name, exc) from None
        with im:
            width, height = im.size
            if max(width, height) > MAX_SIDE:
                raise ImageReadError(
                    name,
                    "too_large",
                    f"Cannot read {name}: it is {width}x{height} pixels, and maskface takes "
                    f"at most {MAX_SIDE:,} pixels a side.",
                )
            if max_pixels is not None and width * height > max_pixels:
                raise ImageReadError(
                    name,
                    "too_large",
                    f"Cannot read {name}: it has {width}x{height} = {width * height:,} "
                    f"pixels, more than the limit of {max_pixels:,}.",
                )
            try:
                im.load()
                orientation = _orientation(im)
                alpha = _has_alpha(im) if keep_alpha == "auto" else bool(keep_alpha)
                pixels = _to_uint8(im, alpha)
            except (OSError, MemoryError, Image.DecompressionBombError, *_DATA_ERRORS) as exc:
                raise _decode_error(name, exc) from None
    return _apply_orientation(pixels, orientation)


def write_image(path: str | os.PathLike[str], image: np.ndarray, *, quality: int = 95) -> None:
    """Write a ``uint8`` gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4) image atomically.

    The format follows the extension (one of :data:`IMAGE_EXTENSIONS`); ``quality`` applies to
    JPEG and WebP. No metadata is written, so equal pixels always give equal bytes.
    """
    write_bytes_atomic(path, encode_image(path, image, quality=quality))


def encode_image(path: str | os.PathLike[str], image: np.ndarray, *, quality: int = 95) -> bytes:
    """The bytes :func:`write_image` would write to ``path`` (format from its extension)."""
    fmt = _WRITE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InvalidInputError(f"Cannot write {os.fspath(path)}: unknown image extension.")
    pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))
    ):
        raise InvalidInputError(
            f"Cannot write {os.fspath(path)}: expected a uint8 gray, RGB or RGBA image, "
            f"got {pixels.dtype} with shape {pixels.shape}."
        )
    if fmt == "JPEG" and pixels.ndim == 3 and pixels.shape[2] == 4:
        raise InvalidInputError(f"Cannot write {os.fspath(path)}: JPEG has no alpha channel.")
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    elif fmt == "TIFF":
        options["compression"] = "tiff_deflate"
    im = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous ``uint8`` gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4)
    array, or an :class:`~maskface.errors.InvalidInputError` that says what is wrong with it.

    (H, W, 1) becomes (H, W). Empty images and sides above :data:`MAX_SIDE` are refused.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"the {what} must be a numpy array, not {type(image).__name__}")
    pixels = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise InvalidInputError(
            f"the {what} must be gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4); "
            f"got shape {image.shape}")
    if pixels.dtype != np.uint8:
        hint = ""
        if np.issubdtype(pixels.dtype, np.floating):
            hint = ("; for floats in [0, 1] use "
                    "np.clip(image * 255, 0, 255).round().astype(np.uint8)")
        elif pixels.dtype == np.uint16:
            hint = "; for 16-bit samples use (image // 257).astype(np.uint8)"
        raise InvalidInputError(
            f"the {what} must be uint8 (0-255), not {pixels.dtype}{hint}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise InvalidInputError(f"the {what} is empty (shape {image.shape})")
    if max(height, width) > MAX_SIDE:
        raise InvalidInputError(
            f"the {what} is {width}x{height} pixels; maskface takes at most {MAX_SIDE:,} "
            "pixels a side (OpenCV cannot address more)")
    return np.ascontiguousarray(pixels)


def to_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """A checked (:func:`check_image`) image as RGB: gray is repeated, alpha dropped."""
    pixels = check_image(image, what)
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    return pixels if pixels.shape[2] == 3 else np.ascontiguousarray(pixels[..., :3])


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def iter_images(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield the image files under ``root`` recursively, in sorted order.

    Names starting with a dot (files and folders) are skipped, and symbolic links to folders
    are not followed (they could loop). ``root`` may also be a single image file.
    """
    root = Path(root)
    if root.is_dir():
        yield from _walk(root)
    elif is_image_path(root):
        yield root


def _walk(directory: Path) -> Iterator[Path]:
    # Only names are kept, one listing per level of depth, so huge trees stream in flat memory.
    with os.scandir(directory) as entries:
        listing = sorted(
            (entry.name, entry.is_dir(follow_symlinks=False))
            for entry in entries
            if not entry.name.startswith(".")
        )
    for name, is_dir in listing:
        if is_dir:
            yield from _walk(directory / name)
        elif is_image_path(name):
            # Broken links are yielded too, so that a batch reports them instead of losing them.
            yield directory / name


def _check_file(name: str) -> None:
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise ImageReadError(
            name, "missing", f"Cannot read {name}: the file does not exist."
        ) from None
    except OSError as exc:
        raise _io_error(name, exc) from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(name, "not_image", f"Cannot read {name}: it is a directory.")
    if info.st_size == 0:
        raise ImageReadError(name, "empty", f"Cannot read {name}: the file is empty (0 bytes).")


def _io_error(name: str, exc: OSError) -> ImageReadError:
    return ImageReadError(name, "io_error", f"Cannot read {name}: {exc.strerror or exc}.")


def _head(name: str) -> bytes:
    try:
        with open(name, "rb") as f:
            return f.read(16)
    except OSError:
        return b""


def _unidentified(name: str) -> ImageReadError:
    head = _head(name)
    if _cut_short(name, head):
        return _truncated(name)
    kind = _sniff(head)
    if kind is not None:
        return ImageReadError(
            name,
            "corrupt",
            f"Cannot read {name}: it starts like a {kind} file but its header is damaged "
            "or cut short.",
        )
    if head[4:8] == b"ftyp":
        # HEIF/HEIC (phones) and AVIF share this ISO-media header; Pillow reads neither here.
        other: str | None = "HEIF/AVIF"
    else:
        try:
            # Only to name the format in the message: any plugin may identify, none decodes.
            with Image.open(name) as im:
                other = im.format
        except Exception:
            other = None
    if other is not None:
        return ImageReadError(
            name,
            "unsupported",
            f"Cannot read {name}: it is a {other} image, and maskface reads only {_FORMAT_NAMES}.",
        )
    return ImageReadError(name, "not_image", f"Cannot read {name}: it is not an image file.")


def _decode_error(name: str, exc: BaseException) -> ImageReadError:
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, Image.DecompressionBombError):
        return ImageReadError(
            name,
            "too_large",
            f"Cannot read {name}: it is larger than Pillow's decompression-bomb limit "
            "(PIL.Image.MAX_IMAGE_PIXELS).",
        )
    if isinstance(exc, MemoryError):
        return ImageReadError(
            name, "too_large", f"Cannot read {name}: decoding it needs more memory than is free."
        )
    if isinstance(exc, OSError) and exc.errno is not None:
        # A real OS error (permissions, disk) rather than one of Pillow's decoding complaints.
        return _io_error(name, exc)
    head = _head(name)
    # Pillow words truncation in several ways ("image file is truncated", "Truncated File
    # Read"); libwebp just fails, so its header is checked against the file size.
    if "truncat" in lowered or _cut_short(name, head):
        return _truncated(name)
    if "not available" in lowered or "support" in lowered:
        return ImageReadError(
            name, "unsupported", f"Cannot read {name}: its encoding is not supported ({text})."
        )
    return ImageReadError(
        name, "corrupt", f"Cannot read {name}: the image data is damaged ({text})."
    )


def _truncated(name: str) -> ImageReadError:
    return ImageReadError(
        name,
        "truncated",
        f"Cannot read {name}: the file is truncated (it ends before its image data).",
    )


def _sniff(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES if head.startswith(magic)), None)


def _cut_short(name: str, head: bytes) -> bool:
    """Whether the header points past the end of the file (for formats where that is cheap)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        needed = struct.unpack("<I", head[4:8])[0] + 8
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        # The first IFD offset; Pillow's and libtiff's writers put the IFD after the pixels.
        needed = struct.unpack("<I" if head[:2] == b"II" else ">I", head[4:8])[0] + 2
    else:
        return False
    try:
        return os.path.getsize(name) < needed
    except OSError:
        return False


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:
        # Broken EXIF must not cost the pixels: the image is then taken as stored.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _has_alpha(im: Image.Image) -> bool:
    """Whether the decoded image carries transparency (an alpha band or a transparent colour)."""
    return "A" in im.getbands() or "transparency" in im.info


def _to_uint8(im: Image.Image, keep_alpha: bool) -> np.ndarray:
    if im.mode.startswith(("I", "F")):
        gray = _scale_to_uint8(np.asarray(im), im.mode)
        channels = [gray] * 3
        if keep_alpha:
            channels.append(np.full_like(gray, 255))
        return np.stack(channels, axis=-1)
    target = "RGBA" if keep_alpha else "RGB"
    # Modes Pillow cannot convert (LAB, HSV) raise ValueError("... not supported").
    return np.array(im if im.mode == target else im.convert(target))


def _scale_to_uint8(samples: np.ndarray, mode: str) -> np.ndarray:
    if mode == "F":
        return np.rint(np.clip(samples, 0.0, 1.0) * 255.0).astype(np.uint8)
    # Round-to-nearest of v * 255 / 65535 in integers: exact, and 65535 maps to 255.
    wide = np.clip(samples, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright: EXIF orientations 2-8 are flips and quarter turns."""
    if orientation in (5, 6, 7, 8):
        pixels = pixels.swapaxes(0, 1)
    if orientation in (2, 3, 6, 7):
        pixels = pixels[:, ::-1]
    if orientation in (3, 4, 7, 8):
        pixels = pixels[::-1]
    return np.ascontiguousarray(pixels)
