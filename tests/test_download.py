"""Downloads against a local HTTP server on 127.0.0.1 serving archives built by the test."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskface.cli_datasets import datasets
from maskface.datasets import download as dl
from maskface.datasets.download import DownloadError, RemoteFile, Source, extract, fetch


class Server:
    """Serves ``files`` with Range support; ``cut`` makes the next answers stop early."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: int | None = None
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                wanted = self.headers.get("Range")
                server.ranges.append(wanted)
                start = int(wanted[len("bytes="):].split("-")[0]) if wanted else 0
                if start >= len(data) and wanted:
                    self.send_error(416)
                    return
                self.send_response(206 if wanted else 200)
                if wanted:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut is not None:
                    body = body[: server.cut]  # then close: the client sees a short body
                self.wfile.write(body)
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


def _tgz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_interrupted_download_resumes_with_a_range_request(server: Server, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000
    server.files["/big.bin"] = data
    server.cut = 300_000
    target = tmp_path / "big.bin"
    with pytest.raises(DownloadError, match="stopped after 300000 of 1024000 bytes; run again"):
        fetch(server.url + "/big.bin", target, sha256=_sha(data))
    assert not target.exists()
    assert (tmp_path / "big.bin.part").stat().st_size == 300_000
    server.cut = None
    fetch(server.url + "/big.bin", target, sha256=_sha(data))
    assert target.read_bytes() == data and not (tmp_path / "big.bin.part").exists()
    assert server.ranges == [None, "bytes=300000-"]
    fetch(server.url + "/big.bin", target, sha256=_sha(data))  # present and valid: no request
    assert len(server.ranges) == 2


def test_bad_checksum_fails_clearly_and_deletes_the_file(server: Server, tmp_path: Path) -> None:
    server.files["/f.txt"] = b"hello"
    with pytest.raises(DownloadError, match=r"checksum of f.txt is wrong \(sha256 2cf24dba"):
        fetch(server.url + "/f.txt", tmp_path / "f.txt", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DownloadError, match="answered HTTP 404"):
        fetch(server.url + "/nothing", tmp_path / "n")
    with pytest.raises(DownloadError, match="Could not reach"):
        fetch("http://127.0.0.1:1/x", tmp_path / "x", timeout=5)


def test_download_dataset_fetches_and_unpacks(server: Server, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _tgz({"lfw_funneled/Ann_A/Ann_A_0001.jpg": b"not really a jpeg"})
    server.files["/lfw.tgz"] = archive
    server.files["/pairs.txt"] = b"1\t1\n"
    monkeypatch.setitem(dl.CATALOGUE, "lfw", Source("lfw", (
        RemoteFile(server.url + "/lfw.tgz", "lfw-funneled.tgz", _sha(archive)),
        RemoteFile(server.url + "/pairs.txt", "pairs.txt", _sha(b"1\t1\n")),
        RemoteFile(server.url + "/gone.txt", "people.txt", None, optional=True),
    ), "test"))
    result = CliRunner().invoke(datasets, ["download", "lfw", "--root", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "unpacked 1 entries from lfw-funneled.tgz" in result.output
    assert "skipped optional people.txt: " in result.output
    assert (tmp_path / "lfw_funneled" / "Ann_A" / "Ann_A_0001.jpg").is_file()
    assert (tmp_path / "pairs.txt").is_file() and not (tmp_path / "lfw-funneled.tgz").exists()


def test_datasets_without_public_url_say_where_to_get_them() -> None:
    result = CliRunner().invoke(datasets, ["download", "celeba", "--root", "x"])
    assert result.exit_code == 1
    assert "celeba has no public direct URL" in result.output
    assert "mmlab.ie.cuhk.edu.hk" in result.output and "Traceback" not in result.output
    assert "unknown dataset" in CliRunner().invoke(
        datasets, ["download", "nope", "--root", "x"]).output.lower()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_unsafe_archive_members_are_refused(tmp_path: Path, name: str) -> None:
    tgz = tmp_path / "bad.tgz"
    tgz.write_bytes(_tgz({"ok.txt": b"1", name: b"2"}))
    with pytest.raises(DownloadError, match="points outside the target folder"):
        extract(tgz, tmp_path / "out")
    assert not (tmp_path / "out" / "ok.txt").exists()  # nothing unpacked before the check
    zipped = tmp_path / "bad.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr(name, b"2")
    with pytest.raises(DownloadError, match="points outside"):
        extract(zipped, tmp_path / "out")


def test_links_in_archives_are_refused_and_zip_unpacks(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    (tmp_path / "l.tar").write_bytes(buffer.getvalue())
    with pytest.raises(DownloadError, match="a link or special file"):
        extract(tmp_path / "l.tar", tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "g.zip", "w") as z:
        z.writestr("mfr2/A/A_0001.png", b"x")
    assert extract(tmp_path / "g.zip", tmp_path / "out") == ["mfr2/A/A_0001.png"]
    (tmp_path / "junk.tgz").write_bytes(b"junk")
    with pytest.raises(DownloadError, match="not a readable archive"):
        extract(tmp_path / "junk.tgz", tmp_path / "out")
