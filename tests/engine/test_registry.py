"""Model registry: resumable downloads (HTTP Range) against a local server, verification, listing."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from engine.weights import registry

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; the first full request is cut off half-way."""

    cut_first = True
    ranges: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        if self.path.endswith("missing"):
            self.send_error(404)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        if type(self).cut_first and not rng:
            type(self).cut_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops mid-file
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    _Handler.cut_first, _Handler.ranges = True, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_interrupted_download_resumes_with_range(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "weights.bin"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(ConnectionError, match="run (the download )?again to resume"):
        registry.download_file(f"{server}/weights.bin", dest, len(PAYLOAD), sha)
    part = dest.with_name(dest.name + ".part")
    assert part.exists() and 0 < part.stat().st_size < len(PAYLOAD) and not dest.exists()
    registry.download_file(f"{server}/weights.bin", dest, len(PAYLOAD), sha)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert _Handler.ranges[-1] == f"bytes={len(PAYLOAD) // 2}-"


def test_pinned_hash_mismatch_is_rejected(server: str, tmp_path: Path) -> None:
    _Handler.cut_first = False
    dest = tmp_path / "weights.bin"
    with pytest.raises(ValueError, match="sha256"):
        registry.download_file(f"{server}/weights.bin", dest, None, "0" * 64)
    assert not dest.exists()


def test_official_entries_and_verify(tmp_path: Path) -> None:
    entry = registry.REGISTRY["5b_lyrics"]
    assert [f.name for f in entry.files] == ["vqvae.pth.tar", "prior_level_0.pth.tar", "prior_level_1.pth.tar",
                                             "prior_level_2.pth.tar"]
    assert entry.files[-1].url.endswith("/5b_lyrics/prior_level_2.pth.tar")
    folder = tmp_path / "5b_lyrics"
    folder.mkdir()
    (folder / "vqvae.pth.tar").write_bytes(b"x")
    status = dict(registry.verify("5b_lyrics", folder))
    assert status["vqvae.pth.tar"].startswith("size 1 bytes, but the model's shapes and dtypes imply 7,515,916")
    assert status["prior_level_2.pth.tar"] == "missing"


def test_default_cache_dir_is_the_user_cache() -> None:
    from platformdirs import user_cache_dir

    assert registry.cache_dir() == Path(user_cache_dir("jukebox-bridge")) / "models"


def test_download_records_each_files_sha256_for_verify(server: str, tmp_path: Path, monkeypatch) -> None:
    """Trust on first use: the sha256 of what was downloaded is what later `models verify` runs compare against."""
    import json

    _Handler.cut_first = False
    entry = registry.ModelEntry("fake", "a test entry", "none", (registry.RemoteFile("weights.bin", f"{server}/w"),))
    monkeypatch.setitem(registry.REGISTRY, "fake", entry)
    folder = registry.download("fake", tmp_path, log=lambda m: None)
    sums = json.loads((folder / "SHA256SUMS.json").read_text())
    assert sums["weights.bin"]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert sums["weights.bin"]["recorded"] == "download" and sums["weights.bin"]["size"] == len(PAYLOAD)
