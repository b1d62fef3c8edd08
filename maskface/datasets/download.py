"""Resumable, checksummed downloads and safe unpacking, for datasets with public direct URLs.

Only the standard library is used (``urllib``): a download is one streamed GET, resumed with an
HTTP ``Range`` request from the ``.part`` file a broken run left behind (a server that ignores
``Range`` answers 200 and the file starts over). A finished file is checked against its pinned
SHA-256 before it takes its final name; a mismatch deletes it. Archives (``.tgz``, ``.tar.*``,
``.zip``) are unpacked only after every member was checked to land inside the target folder
(no absolute paths, no ``..``, no links or device files). Datasets whose terms need a sign-up or
whose hosts have no direct link are listed with instructions instead.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from maskface.datasets.base import DatasetError

_CHUNK = 1 << 20
_FIGSHARE = "https://ndownloader.figshare.com/files/"
_UMASS = "http://vis-www.cs.umass.edu/lfw/"


class DownloadError(DatasetError):
    """A download, checksum or unpacking step failed, or the dataset has no direct URL."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch; ``optional`` ones only warn when they cannot be fetched."""

    url: str
    filename: str
    sha256: str | None
    optional: bool = False


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from: direct files, or (``files`` empty) how to obtain it."""

    name: str
    files: tuple[RemoteFile, ...]
    instructions: str


CATALOGUE: dict[str, Source] = {
    "lfw": Source("lfw", (
        # scikit-learn's figshare mirror of the UMass files; checksums pinned from the originals.
        RemoteFile(_FIGSHARE + "5976015", "lfw-funneled.tgz",
                   "b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a"),
        RemoteFile(_FIGSHARE + "5976006", "pairs.txt",
                   "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"),
        RemoteFile(_FIGSHARE + "5976012", "pairsDevTrain.txt",
                   "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa"),
        RemoteFile(_FIGSHARE + "5976009", "pairsDevTest.txt",
                   "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c"),
        RemoteFile(_UMASS + "people.txt", "people.txt",
                   "bc8fa2b7f25c895cf7efb6de4f4fc27ca8b8d1cfa63350ad8b96eae2b198d365", True),
        RemoteFile(_UMASS + "peopleDevTrain.txt", "peopleDevTrain.txt",
                   "2e58df13ba4cc143189336e001cc2c195f1dfa5b29a6475c02857be353c2a2fa", True),
        RemoteFile(_UMASS + "peopleDevTest.txt", "peopleDevTest.txt",
                   "c3ed1f90499473401542101a56c14c1d82396bb8218c67a356d7460601047555", True),
    ), "The funneled images and pairs come from scikit-learn's figshare mirror; the "
       "deep-funneled archive (lfw-deepfunneled.tgz) only from http://vis-www.cs.umass.edu/lfw/."),
    "mfr2": Source("mfr2", (), (
        "MFR2 is shared through a Google Drive link in the MaskTheFace repository "
        "(https://github.com/aqeelanwar/MaskTheFace, section MFR2); download mfr2.zip there and "
        "unpack it into ROOT.")),
    "celeba": Source("celeba", (), (
        "CelebA is distributed through Google Drive and Baidu links on "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html after accepting its non-commercial "
        "terms; put img_align_celeba/ and identity_CelebA.txt (from Anno/) into ROOT.")),
    "utkface": Source("utkface", (), (
        "UTKFace (non-commercial research only) is linked from https://susanqq.github.io/UTKFace/ "
        "(Google Drive); unpack UTKFace.tar.gz into ROOT so that ROOT/UTKFace/ holds the images.")),
    "casia-webface": Source("casia-webface", (), (
        "CASIA-WebFace is no longer distributed by its authors; use a copy your institution "
        "obtained under its licence and point ROOT at its <identity>/<image> folder.")),
    "vggface2": Source("vggface2", (), (
        "VGGFace2 was withdrawn by its authors (https://www.robots.ox.ac.uk/~vgg/data/vgg_face2/);"
        " use a copy obtained under its licence and point ROOT at its train/ or test/ folder.")),
    "folder": Source("folder", (), "A folder dataset is your own <identity>/<image> tree."),
    "table": Source("table", (), "A table dataset is your own CSV/Parquet list of images."),
}


def download_dataset(
    name: str, root: str | os.PathLike[str], *, keep_archives: bool = False,
    progress: bool = True, timeout: float = 60.0,
) -> Iterator[str]:
    """Fetch and unpack dataset ``name`` into ``root``, yielding one message per step.

    Raises :class:`DownloadError` for a dataset without direct URLs (the message says where
    and how to obtain it) and for a failed download, checksum or unpacking.
    """
    source = CATALOGUE.get(name.lower())
    if source is None:
        raise DownloadError(f"Unknown dataset {name!r}; choose from {', '.join(CATALOGUE)}.")
    if not source.files:
        raise DownloadError(f"{source.name} has no public direct URL. {source.instructions}")
    root = Path(root)
    for remote in source.files:
        target = root / remote.filename
        try:
            fetch(remote.url, target, sha256=remote.sha256, progress=progress, timeout=timeout)
        except DownloadError as exc:
            if not remote.optional:
                raise
            yield f"skipped optional {remote.filename}: {exc}"
            continue
        yield f"fetched {target}"
        if is_archive(target):
            yield f"unpacked {len(extract(target, root))} entries from {target.name}"
            if not keep_archives:
                target.unlink()


def fetch(
    url: str, target: str | os.PathLike[str], *, sha256: str | None = None,
    progress: bool = False, timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``target``, resuming ``<target>.part``; verify ``sha256`` if given.

    A ``target`` that already exists (and matches ``sha256``) is not fetched again.
    """
    target = Path(target)
    if target.is_file() and (sha256 is None or file_sha256(target) == sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code != 416 or not start:  # 416: the .part file is already complete
            raise DownloadError(f"{url} answered HTTP {exc.code} ({exc.reason}).") from None
    except (URLError, OSError) as exc:
        raise DownloadError(f"Could not reach {url}: {getattr(exc, 'reason', exc)}.") from None
    else:
        _stream(response, url, part, start, progress)
    if sha256 is not None:
        digest = file_sha256(part)
        if digest != sha256:
            part.unlink()
            raise DownloadError(
                f"The checksum of {target.name} is wrong (sha256 {digest}, expected {sha256}); "
                "the file was deleted: run again to download it afresh."
            )
    os.replace(part, target)
    return target


def _stream(response: http.client.HTTPResponse, url: str, part: Path, start: int,
            progress: bool) -> None:
    with response:
        if start and response.status == 206:
            if not response.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                raise DownloadError(f"{url} resumed at the wrong offset; delete {part} and retry.")
            mode = "ab"
        else:  # a full answer: no .part yet, or a server that ignores Range
            start, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        written = start
        with open(part, mode) as f, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                         disable=not progress, file=sys.stderr,
                                         desc=part.name[:-5]) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException):
                pass  # reported below, with what was kept
        if total is not None and written < total:
            raise DownloadError(
                f"The download of {url} stopped after {written} of {total} bytes; "
                "run again to resume it."
            )


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like an archive :func:`extract` unpacks."""
    name = os.fspath(path).lower()
    return name.endswith((".zip", ".tgz", ".tar", ".tar.gz", ".tar.bz2", ".tar.xz"))


def extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[str]:
    """Unpack a tar or zip archive into ``dest`` after checking every member; return names."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            for name in names:
                _check_member(archive, name)
            z.extractall(dest)
        return names
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(archive, member.name)
                if not (member.isfile() or member.isdir()):
                    raise DownloadError(
                        f"{archive.name} holds {member.name!r}, a link or special file; "
                        "refusing to unpack it."
                    )
            tar.extractall(dest, members=members, **_tar_filter())
    except tarfile.TarError as exc:
        raise DownloadError(f"{archive.name} is not a readable archive ({exc}).") from None
    return [m.name for m in members]


def _check_member(archive: Path, name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise DownloadError(
            f"{archive.name} holds {name!r}, which points outside the target folder; "
            "refusing to unpack it."
        )


def _tar_filter() -> dict[str, str]:
    # The 'data' filter (Python 3.12, backported to 3.11.4) re-checks what we checked above.
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
