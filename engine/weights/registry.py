"""Named model checkpoints: list, download (resumable), verify, convert to safetensors.

The official files are listed with the URLs of the reference hparams (``checkpoint_url``). Their sizes
and sha256 are **not pinned**: they were not available where this was written, so ``verify`` can only
check what is recorded (a missing size or hash is reported as "not pinned", never as "ok"). A pinned
entry is checked on every download. HuggingFace mirrors are resolved through their weight index.

Downloads go to ``platformdirs.user_cache_dir("jukebox-bridge")/models/<name>`` (or ``--dir``) as
``<file>.part`` and resume with an HTTP ``Range`` request; only a complete, verified file is renamed
into place. ``convert`` writes the project's safetensors folder (memory-mappable, fast to load).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.io.files import file_sha256

OFFICIAL_BASE = "https://openaipublic.azureedge.net/jukebox/models"
HF_BASE = "https://huggingface.co"
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    name: str  # file name in the model folder
    url: str
    size: int | None = None  # bytes, when known
    sha256: str | None = None  # when known


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    licence: str
    files: tuple[RemoteFile, ...] = ()
    hf_repo: str | None = None  # resolved through its weight index at download time
    top: str | None = None  # official top prior name, for load_models(top=...)
    extra: dict = field(default_factory=dict)


def _official(top: str) -> ModelEntry:
    files = [RemoteFile("vqvae.pth.tar", f"{OFFICIAL_BASE}/5b/vqvae.pth.tar")]
    files += [RemoteFile(f"prior_level_{lv}.pth.tar", f"{OFFICIAL_BASE}/5b/prior_level_{lv}.pth.tar") for lv in (0, 1)]
    files.append(RemoteFile("prior_level_2.pth.tar", f"{OFFICIAL_BASE}/{top}/prior_level_2.pth.tar"))
    return ModelEntry(top, f"official Jukebox {top} (VQ-VAE, two upsamplers, {top} top prior)",
                      "CC BY-NC 4.0 (non-commercial)", tuple(files), top=top)


REGISTRY: dict[str, ModelEntry] = {
    "default": ModelEntry("default", "the embedded Jukebox Bridge model (ships inside the package)",
                          "see docs/default-model.md", extra={"embedded": True}),
    **{t: _official(t) for t in ("5b", "5b_lyrics", "1b_lyrics")},
    "hf-1b_lyrics": ModelEntry("hf-1b_lyrics", "HuggingFace mirror openai/jukebox-1b-lyrics", "CC BY-NC 4.0",
                               hf_repo="openai/jukebox-1b-lyrics", top="1b_lyrics"),
    "hf-5b_lyrics": ModelEntry("hf-5b_lyrics", "HuggingFace mirror openai/jukebox-5b-lyrics", "CC BY-NC 4.0",
                               hf_repo="openai/jukebox-5b-lyrics", top="5b_lyrics"),
}


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("jukebox-bridge")) / "models"


def model_dir(name: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / name


# ------------------------------------------------------------------------------------------ download


def download_file(url: str, dest: Path, size: int | None = None, sha256: str | None = None,
                  progress: Callable[[int, int | None], None] = lambda done, total: None, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part`` with an HTTP Range request; verify, then rename."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if have and resp.status != 206:  # the server ignored Range: start again
            have = 0
        length = resp.headers.get("Content-Length")
        total = size or (have + int(length) if length is not None else None)
        done = have
        with open(part, "ab" if have else "wb") as f:
            try:
                while block := resp.read(CHUNK):
                    f.write(block)
                    done += len(block)
                    progress(done, total)
            except (OSError, http.client.HTTPException) as e:
                raise ConnectionError(f"{url}: interrupted after {done} bytes ({e}); run again to resume") from e
    if total is not None and done < total:  # the connection dropped: keep the .part to resume
        raise ConnectionError(f"{url}: got {done} of {total} bytes; run the download again to resume")
    problem = check_file(part, size, sha256)
    if problem:
        part.unlink()
        raise ValueError(f"{url}: {problem}; the partial file was removed, run the download again")
    os.replace(part, dest)
    return dest


def check_file(path: Path, size: int | None, sha256: str | None) -> str | None:
    """None if ``path`` matches what is pinned, else what is wrong."""
    if size is not None and path.stat().st_size != size:
        return f"size {path.stat().st_size} != pinned {size}"
    if sha256 is not None and file_sha256(path) != sha256:
        return "sha256 does not match the pinned value"
    return None


def resolve_files(entry: ModelEntry, dest: Path, base: str = HF_BASE) -> list[RemoteFile]:
    """The entry's files; a HuggingFace mirror's come from its index (or the single weights file)."""
    if not entry.hf_repo:
        return list(entry.files)
    url = lambda f: f"{base}/{entry.hf_repo}/resolve/main/{f}"  # noqa: E731
    files = [RemoteFile("config.json", url("config.json"))]
    try:
        index = download_file(url("pytorch_model.bin.index.json"), dest / "pytorch_model.bin.index.json")
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files += [RemoteFile("pytorch_model.bin.index.json", url("pytorch_model.bin.index.json"))]
        files += [RemoteFile(s, url(s)) for s in shards]
    except OSError:  # no index: one file
        files.append(RemoteFile("pytorch_model.bin", url("pytorch_model.bin")))
    return files


def download(name: str, root: Path | None = None, base: str = HF_BASE,
             log: Callable[[str], None] = print) -> Path:
    entry = _entry(name)
    if entry.extra.get("embedded"):
        raise ValueError("the default model ships with the package; nothing to download")
    dest = model_dir(name, root)
    for rf in resolve_files(entry, dest, base):
        last = [-1]

        def show(done: int, total: int | None, rf=rf) -> None:
            pct = int(100 * done / total) if total else -1
            if pct != last[0] and (pct % 5 == 0 or pct < 0):
                last[0] = pct
                log(f"{rf.name}: {done / 1e6:.1f} MB" + (f" ({pct}%)" if total else ""))

        download_file(rf.url, dest / rf.name, rf.size, rf.sha256, show)
        log(f"{rf.name}: done")
    return dest


def verify(name: str, path: Path | None = None, root: Path | None = None) -> list[tuple[str, str]]:
    """(file, status) for every file: ok, missing, 'not pinned (size N)', or the mismatch."""
    entry = _entry(name)
    if entry.extra.get("embedded"):
        from .bundle import DEFAULT_MODEL_DIR

        path = path or DEFAULT_MODEL_DIR
        pins = json.loads((path / "SHA256SUMS.json").read_text()) if (path / "SHA256SUMS.json").exists() else {}
        files = [RemoteFile(n, "", p.get("size"), p.get("sha256")) for n, p in pins.items()]
    else:
        path = path or model_dir(name, root)
        files = list(entry.files) if not entry.hf_repo else [RemoteFile(p.name, "") for p in sorted(path.glob("*"))]
    out = []
    for rf in files:
        f = path / rf.name
        if not f.exists():
            out.append((rf.name, "missing"))
        elif rf.size is None and rf.sha256 is None:
            out.append((rf.name, f"not pinned (size {f.stat().st_size}, sha256 {file_sha256(f)[:16]}...)"))
        else:
            out.append((rf.name, check_file(f, rf.size, rf.sha256) or "ok"))
    return out


def convert(name: str, out: Path, path: Path | None = None, root: Path | None = None) -> Path:
    """Load a downloaded (or local) official/mirror model and write it as a safetensors model folder."""
    from .bundle import load_models, save_models

    entry = _entry(name)
    models = load_models(path or model_dir(name, root), top=entry.top)
    return save_models(models, out)


def _entry(name: str) -> ModelEntry:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


# ------------------------------------------------------------------------------------------ CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "download", "verify", "convert"])
    p.add_argument("name", nargs="?", help="model name (see `models list`)")
    p.add_argument("--dir", type=Path, help="cache folder (default: the user cache directory)")
    p.add_argument("--path", type=Path, help="verify/convert: a local model folder instead of the cache")
    p.add_argument("--out", type=Path, help="convert: the safetensors model folder to write")


def main(args: argparse.Namespace) -> int:
    if args.action == "list":
        for e in REGISTRY.values():
            where = model_dir(e.name, args.dir)
            state = "embedded" if e.extra.get("embedded") else ("downloaded" if where.exists() else "not downloaded")
            print(f"{e.name:<14} {state:<15} {e.licence:<32} {e.description}")
        return 0
    if not args.name:
        raise ValueError(f"`models {args.action}` needs a model name")
    if args.action == "download":
        print(f"downloaded to {download(args.name, args.dir)}")
    elif args.action == "verify":
        results = verify(args.name, args.path, args.dir)
        for f, status in results:
            print(f"{f}: {status}")
        return 1 if any(s == "missing" or not (s == "ok" or s.startswith("not pinned")) for _, s in results) else 0
    else:
        if args.out is None:
            raise ValueError("`models convert` needs --out DIR")
        print(f"wrote {convert(args.name, args.out, args.path, args.dir)}")
    return 0
