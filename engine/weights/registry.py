"""Named model checkpoints: list, download (resumable), verify, convert to safetensors.

The official files are listed with the URLs of the reference hparams (``checkpoint_url``). Their sha256
were not published where this was written, so ``verify`` checks what can be checked: each file's size
against the one its keys, shapes and dtypes imply (the official manifests, rebuilt on the meta device),
its key set, and its sha256 against the one recorded at download or conversion time, or at the first
verify (trust on first use). A pinned size or hash is checked on every download. HuggingFace mirrors
are resolved through their weight index.

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

        existed = (dest / rf.name).exists()
        download_file(rf.url, dest / rf.name, rf.size, rf.sha256, show)
        if not existed:  # trust on first use: `models verify` compares later runs against this
            from .bundle import record_sha256

            record_sha256(dest, [rf.name], "download")
        log(f"{rf.name}: done")
    return dest


def verify(name: str, path: Path | None = None, root: Path | None = None) -> list[tuple[str, str]]:
    """(file, status) for every file of a model folder; a status starting with ``ok`` is fine, anything else is
    the problem.

    What can be checked is: the file's size against the one its model's keys, shapes and dtypes imply (the
    official manifests: ``expected_files``), its key set and shapes (read memory-mapped), any pinned size or
    sha256, and its sha256 against the one recorded when it was downloaded or converted. A file without a
    record gets one now (trust on first use), so later runs notice any change."""
    entry = _entry(name)
    if entry.extra.get("embedded"):
        from .bundle import DEFAULT_MODEL_DIR

        path = path or DEFAULT_MODEL_DIR
        pins = json.loads((path / "SHA256SUMS.json").read_text()) if (path / "SHA256SUMS.json").exists() else {}
        files = [RemoteFile(n, "", p.get("size"), p.get("sha256")) for n, p in pins.items()]
        return [(rf.name, "missing" if not (path / rf.name).exists() else
                 check_file(path / rf.name, rf.size, rf.sha256) or "ok (matches the shipped SHA256SUMS.json)")
                for rf in files]
    path = path or model_dir(name, root)
    if not path.is_dir():
        return [(str(path), "missing (no such folder; `jukebox-bridge models download` fetches it)")]
    from .bundle import SHA256SUMS, folder_layout

    try:
        layout = folder_layout(path)
    except ValueError:
        layout = "hf" if entry.hf_repo else "official"
    if layout == "native":
        checks = _native_checks(path)
    elif layout == "hf":
        checks = _hf_checks(path, entry)
    else:
        checks = _official_checks(path, entry)
    sums_path = path / SHA256SUMS
    sums = json.loads(sums_path.read_text()) if sums_path.exists() else {}
    out, trust = [], []
    for rf, problem in checks:
        f = path / rf.name
        if problem is None:
            problem = check_file(f, rf.size, rf.sha256)
        if problem is not None:
            out.append((rf.name, problem))
            continue
        rec = sums.get(rf.name)
        if rec is None:
            trust.append(rf.name)
            out.append((rf.name, "ok (size and keys as expected; sha256 recorded now, later runs compare against it)"))
        elif rec.get("size") != f.stat().st_size or rec.get("sha256") != file_sha256(f):
            out.append((rf.name, f"changed since its sha256 was recorded ({rec.get('recorded', 'earlier')} "
                                 f"{rec.get('date', '')}".rstrip() + "): damaged or replaced; download or convert it again"))
        else:
            out.append((rf.name, f"ok (sha256 as recorded at {rec.get('recorded', 'an earlier run')})"))
    if trust:
        from .bundle import record_sha256

        record_sha256(path, trust, "first verify")
    return out


# bytes a torch file holds besides its tensors' data: the pickle, zip headers and 64-byte alignment per record
_TORCH_OVERHEAD = (64 * 1024, 1024)  # fixed, per tensor
VQVAE_CONFIG = None  # the official VQ-VAE's config (tests substitute a tiny one): None = OFFICIAL_VQVAE


@dataclass(frozen=True)
class Expected:
    """A file's keys -> (shape, dtype) as its model implies them; ``optional``: tied duplicates."""

    keys: dict[str, tuple[tuple[int, ...], str]]
    optional: frozenset[str] = frozenset()

    @property
    def data_bytes(self) -> int:
        import torch

        total = 0
        for k, (shape, dtype) in self.keys.items():
            if k not in self.optional:
                n = 1
                for d in shape:
                    n *= d
                total += n * torch.empty(0, dtype=getattr(torch, dtype)).element_size()
        return total


def expected_files(entry: ModelEntry) -> dict[str, Expected]:
    """Every file of an official entry -> its keys, shapes and stored dtypes (as the official manifests list
    them: fp32, with the 5b tops' Conv1D weights fp16), from the models built on the meta device."""
    import torch

    from engine.model.config import OFFICIAL_PRIORS, OFFICIAL_VQVAE
    from engine.model.vqvae import VQVAE

    from .detect import expected_state
    from .keymaps import vqvae_official_keys

    with torch.device("meta"):
        vqvae = VQVAE(VQVAE_CONFIG or OFFICIAL_VQVAE)
    own = vqvae.state_dict()
    out = {"vqvae.pth.tar": Expected({fk.name: (tuple(own[k].shape), str(own[k].dtype).removeprefix("torch."))
                                      for k, fk in vqvae_official_keys(vqvae).items()})}
    cfgs = {0: OFFICIAL_PRIORS["upsampler_level_0"], 1: OFFICIAL_PRIORS["upsampler_level_1"], 2: OFFICIAL_PRIORS[entry.top]}
    for level, cfg in cfgs.items():
        state = expected_state(cfg, "official")
        out[f"prior_level_{level}.pth.tar"] = Expected(
            {k: (shape, str(dtype).removeprefix("torch.")) for k, shape, dtype, _ in state},
            frozenset(k for k, _, _, alias in state if alias))
    return out


def _keys_problem(path: Path, expected: dict[str, tuple[int, ...]], optional: frozenset[str] = frozenset(),
                  prefix: str | None = None) -> str | None:
    from .checkpoints import CheckpointError, mismatch_report, read_checkpoint

    try:
        loaded = read_checkpoint(path, prefix)
    except CheckpointError as e:
        return str(e).split("\n")[0]
    report = mismatch_report(path, "the model it should hold", expected,
                             {k: tuple(v.shape) for k, v in loaded.tensors.items()}, optional)
    return None if report is None else "keys: " + " ".join(report.split("\n")[1:-1]).strip()


def _official_checks(path: Path, entry: ModelEntry) -> list[tuple[RemoteFile, str | None]]:
    want = expected_files(entry)
    out = []
    for rf in entry.files:
        f = path / rf.name
        if not f.exists():
            out.append((rf, "missing"))
            continue
        exp = want[rf.name]
        data, size = exp.data_bytes, f.stat().st_size
        high = data + _TORCH_OVERHEAD[0] + _TORCH_OVERHEAD[1] * len(exp.keys)
        if not data <= size <= high:
            what = "truncated (an interrupted download?)" if size < data else "larger than its model"
            out.append((rf, f"size {size:,} bytes, but the model's shapes and dtypes imply {data:,} to {high:,}: {what}; "
                            f"download it again"))
            continue
        out.append((rf, _keys_problem(f, {k: s for k, (s, _) in exp.keys.items()}, exp.optional)))
    return out


def _hf_checks(path: Path, entry: ModelEntry) -> list[tuple[RemoteFile, str | None]]:
    """A mirror folder: each weight file's size against its own header (safetensors: exact) or the tensors it
    holds (.bin), and the folder's key set against the official model's mirror names."""
    from .checkpoints import CheckpointError, _hf_files, read_checkpoint
    from .detect import expected_state
    from .hf_keys import official_to_hf

    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != "SHA256SUMS.json")
    out: list[tuple[RemoteFile, str | None]] = []
    try:
        weights = set(_hf_files(path))
    except CheckpointError as e:
        return [(RemoteFile(p.name, ""), None) for p in files] + [(RemoteFile("(weights)", ""), str(e))]
    for f in files:
        problem = None
        if f in weights:
            try:
                tensors = read_checkpoint(f).tensors
                data = sum(t.numel() * t.element_size() for t in {id(t.untyped_storage()): t for t in tensors.values()}.values())
                size = f.stat().st_size
                if size < data or size > data + _TORCH_OVERHEAD[0] + _TORCH_OVERHEAD[1] * len(tensors):
                    problem = f"size {size:,} bytes does not fit the {data:,} bytes of tensors it lists; download it again"
            except CheckpointError as e:
                problem = str(e).split("\n")[0]
        out.append((RemoteFile(f.name, ""), problem))
    if entry.top and not any(p for _, p in out):  # the whole state dict against the official model's names
        import torch

        from engine.model.config import OFFICIAL_PRIORS, OFFICIAL_VQVAE
        from engine.model.vqvae import VQVAE

        from .keymaps import vqvae_official_keys

        with torch.device("meta"):
            vqvae = VQVAE(VQVAE_CONFIG or OFFICIAL_VQVAE)
        own = vqvae.state_dict()
        expected = {official_to_hf(fk.name, None): tuple(own[k].shape) for k, fk in vqvae_official_keys(vqvae).items()}
        optional = set()
        for cfg in (OFFICIAL_PRIORS["upsampler_level_0"], OFFICIAL_PRIORS["upsampler_level_1"], OFFICIAL_PRIORS[entry.top]):
            for k, shape, _, alias in expected_state(cfg, "hf"):
                expected[k] = shape
                if alias:
                    optional.add(k)
        problem = _keys_problem(path, expected, frozenset(optional))
        if problem:
            out.append((RemoteFile("(all weights)", ""), problem))
    return out


def _native_checks(path: Path) -> list[tuple[RemoteFile, str | None]]:
    """A converted folder: every safetensors file's size is exactly its header's, and its keys its config's."""
    import struct

    from .checkpoints import CheckpointError, check_native

    out: list[tuple[RemoteFile, str | None]] = []
    for f in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != "SHA256SUMS.json"):
        problem = None
        if f.suffix == ".safetensors":
            try:
                with open(f, "rb") as fh:
                    n = struct.unpack("<Q", fh.read(8))[0]
                    header = json.loads(fh.read(n))
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
                if f.stat().st_size != 8 + n + end:
                    problem = f"size {f.stat().st_size:,} bytes, its header implies {8 + n + end:,}: truncated or damaged"
                else:
                    check_native(f)
            except (OSError, ValueError, struct.error) as e:
                problem = f"not a readable safetensors file ({e})" if not isinstance(e, CheckpointError) else \
                    str(e).split("\n")[0]
        out.append((RemoteFile(f.name, ""), problem))
    return out


def convert(name: str, out: Path, path: Path | None = None, root: Path | None = None, top: str | None = None) -> Path:
    """Load a downloaded (or local) official/mirror model and write it as a safetensors model folder (only a
    folder that reads back is published; its files' sha256 go to its SHA256SUMS.json)."""
    from .bundle import load_models, save_models

    entry = _entry(name)
    models = load_models(path or model_dir(name, root), top=top or entry.top)
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
    p.add_argument("--top", choices=["5b", "5b_lyrics", "1b_lyrics"],
                   help="convert: the top prior the folder must hold (detected from its checkpoints; default: the "
                        "named model's)")


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
        bad = [f for f, s in results if not s.startswith("ok")]
        print(f"{len(results) - len(bad)} of {len(results)} file(s) ok" + (f"; problems: {', '.join(bad)}" if bad else ""))
        return 1 if bad else 0
    else:
        if args.out is None:
            raise ValueError("`models convert` needs --out DIR")
        print(f"wrote {convert(args.name, args.out, args.path, args.dir, args.top)}")
    return 0
