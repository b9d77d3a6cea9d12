"""Checkpoint loading and saving: official ``.pth.tar``, the HuggingFace mirror, and our safetensors.

Loading never executes pickled code: torch files go through ``torch.load(weights_only=True)`` with
an allow-list holding only the reference's ``Hyperparams`` dict (read as a plain dict). Every load is
strict: the file must hold exactly the keys and shapes the model expects, or ``CheckpointError`` lists
the first missing, unexpected and mis-shaped keys. Our own checkpoints are ``NAME.safetensors`` plus
``NAME.json`` (kind and config), so a model can be rebuilt from the files alone.

Nothing is read whole that can be memory-mapped: zip-format torch files and safetensors are mapped, and a
pre-zip ``.pth.tar`` (torch < 1.6, the format of the official release) is converted once into a mapped
safetensors cache (``mmap_cache_dir()``), with a message saying so and how long it took. Weights keep the
file's precision where the reference kept it (``half``: fp16 Conv1D weights of the 5b tops) and go to their
device tensor by tensor, never as a whole fp32 copy in RAM. A tied output head must equal its embedding.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import sys
import tempfile
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_model
from torch import nn

from engine.io.files import atomic_write
from engine.model.config import OFFICIAL_VQVAE, VQVAEConfig
from engine.model.vqvae import VQVAE

from .detect import describe, detect_kind, tied_aliases
from .hf_keys import official_to_hf
from .keymaps import OfficialKey, vqvae_official_keys

FORMAT_NAME = "jukebox-bridge"
FORMAT_VERSION = 1
_SHOW = 5  # keys listed per category in a mismatch report


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with a message naming the file, the problem and the fix."""


# Official checkpoints pickle ``hps`` as ``jukebox.hparams.Hyperparams``, a dict subclass; read it as a
# plain (ordered) dict: the restricted unpickler only fills dict types, and nothing of the class is run.
torch.serialization.add_safe_globals([(OrderedDict, "jukebox.hparams.Hyperparams")])


@dataclass(frozen=True)
class LoadedFile:
    """A flat state dict read from disk, the layout it was found in, and any embedded hparams."""

    tensors: dict[str, torch.Tensor]
    layout: str  # "official" | "hf" | "native"
    path: Path
    hps: dict[str, Any] | None = None
    native_meta: dict[str, Any] | None = None


def _torch_load(path: Path) -> Any:
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # legacy (pre-zip) files cannot be memory-mapped
            if "mmap" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint, probably truncated or corrupted "
                                  f"(the unpickler stopped on invalid data). Download it again.") from None
        detail = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "")
        raise CheckpointError(
            f"{path}: refused to load: the file asks to run code or build objects outside the allow-list "
            f"({detail.split(' was not')[0]}). Only use checkpoints from a source you trust; official Jukebox "
            f"and HuggingFace-mirror files load without this."
        ) from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint, probably truncated or corrupted ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'no detail'}). Download it again (`jukebox-bridge models "
            f"verify` checks sizes and sha256)."
        ) from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e}). Download or convert it again.") from None


def _hf_files(directory: Path, prefix: str | None = None) -> list[Path]:
    """The weight files of a HuggingFace model directory, sharded or not (with ``prefix``: only the shards
    holding keys that start with it, e.g. ``vqvae.`` for the codec alone)."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.exists():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{index}: not a readable weight index ({e}). Download it again.") from None
            shards = sorted({s for k, s in weight_map.items() if prefix is None or k.startswith(prefix)})
            return [directory / s for s in shards]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (directory / single).exists():
            return [directory / single]
    raise CheckpointError(
        f"{directory}: no weights found (expected model.safetensors, pytorch_model.bin, or a sharded index). "
        f"Point --vqvae/--model at the folder you downloaded from the HuggingFace mirror."
    )


def is_hf_dir(directory: Path) -> bool:
    names = ("config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json", "model.safetensors",
             "pytorch_model.bin")
    return any((directory / n).exists() for n in names)


def hf_config(directory: Path) -> dict[str, Any] | None:
    """A mirror folder's ``config.json`` (None when it has none)."""
    path = directory / "config.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise CheckpointError(f"{path}: not readable JSON ({e}). Download it again.") from None


def read_checkpoint(path: str | os.PathLike, prefix: str | None = None) -> LoadedFile:
    """Read any supported checkpoint into a flat CPU state dict without building a model (memory-mapped).

    ``prefix`` (HuggingFace folders): read only the shards holding those keys."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found. Check the path, or run `jukebox-bridge models list`.")
    if path.is_dir():
        tensors: dict[str, torch.Tensor] = {}
        for f in _hf_files(path, prefix):
            if not f.exists():
                raise CheckpointError(f"{f}: shard named in the weight index is missing. Download it again "
                                      f"(`jukebox-bridge models download` resumes).")
            tensors.update(_load_safetensors(f) if f.suffix == ".safetensors" else _container(_torch_load(f), f).tensors)
        return LoadedFile(tensors, "hf", path)
    if path.suffix in (".safetensors", ".json"):
        st = path.with_suffix(".safetensors")
        meta_path = st.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
        if meta is not None and meta.get("format") == FORMAT_NAME:
            if meta.get("version") != FORMAT_VERSION:
                raise CheckpointError(f"{meta_path}: format version {meta.get('version')} is not supported "
                                      f"(this engine reads version {FORMAT_VERSION}); update Jukebox Bridge.")
            return LoadedFile(_load_safetensors(st), "native", st, native_meta=meta)
        tensors = _load_safetensors(st)
        return LoadedFile(tensors, "hf" if any(k.startswith(("vqvae.", "priors.")) for k in tensors) else "official", st)
    if is_legacy_torch_file(path):
        return _read_legacy(path)
    return _container(_torch_load(path), path)


def _container(obj: Any, path: Path) -> LoadedFile:
    """The state dict (and hparams) of what ``torch.load`` returned."""
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        tensors = {k.removeprefix("module."): v for k, v in obj["model"].items()}
        hps = dict(obj["hps"]) if isinstance(obj.get("hps"), dict) else None
        return LoadedFile(tensors, "official", path, hps=hps)
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        layout = "hf" if any(k.startswith(("vqvae.", "priors.")) for k in obj) else "official"
        return LoadedFile({k.removeprefix("module."): v for k, v in obj.items()}, layout, path)
    raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a Jukebox state dict or checkpoint container.")


# --- pre-zip torch files: converted once to a memory-mapped cache ------------------------------------

MMAP_CACHE_ENV = "JUKEBOX_BRIDGE_MMAP_CACHE"
_CACHE_FORMAT = "jukebox-bridge-mmap-cache"


def is_legacy_torch_file(path: Path) -> bool:
    """A torch file in the pre-1.6 (non-zip) format, which ``torch.load(mmap=True)`` cannot map."""
    return path.is_file() and not zipfile.is_zipfile(path)


def mmap_cache_dir() -> Path:
    """Where converted pre-zip checkpoints live: ``$JUKEBOX_BRIDGE_MMAP_CACHE``, else the user cache folder."""
    if os.environ.get(MMAP_CACHE_ENV):
        return Path(os.environ[MMAP_CACHE_ENV])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("jukebox-bridge")) / "mmap"


def legacy_cache_path(path: Path) -> Path:
    """The cache file of ``path`` as it is now (a changed, moved or replaced file gets a new one)."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return mmap_cache_dir() / f"{path.name}-{key}.safetensors"


def _notice(message: str) -> None:
    print(f"jukebox-bridge: {message}", file=sys.stderr, flush=True)


def _read_legacy(path: Path) -> LoadedFile:
    cache = legacy_cache_path(path)
    if cache.exists():
        try:
            with safe_open(str(cache), "pt") as f:
                meta = f.metadata() or {}
            if meta.get("format") == _CACHE_FORMAT:
                tensors = _load_safetensors(cache)
                for alias, first in json.loads(meta.get("aliases", "{}")).items():
                    tensors[alias] = tensors[first]
                hps = json.loads(meta["hps"]) if meta.get("hps") else None
                return LoadedFile(tensors, meta["layout"], path, hps=hps)
        except (SafetensorError, OSError, ValueError, KeyError, CheckpointError):
            pass  # a broken cache is rebuilt below
    size = path.stat().st_size
    _notice(f"{path}: saved in PyTorch's pre-1.6 format, which cannot be memory-mapped; converting it once "
            f"({size / 1e9:.1f} GB read whole this time) to a memory-mapped cache in {cache.parent}")
    t0 = time.monotonic()
    loaded = _container(_torch_load(path), path)
    read_s = time.monotonic() - t0
    try:
        write_cache(cache, loaded)
    except (OSError, ValueError, KeyError) as e:  # no room or no permission: this start still works
        _notice(f"{path}: read in {read_s:.1f} s, but the cache could not be written ({e}); the next start will "
                f"read it whole again")
        return loaded
    _notice(f"{path}: converted in {time.monotonic() - t0:.1f} s (read {read_s:.1f} s); later starts map "
            f"{cache.name} instead")
    for old in cache.parent.glob(f"{path.name}-*.safetensors"):  # caches of earlier versions of this file
        if old != cache and _cache_source(old) == str(path.resolve()):
            old.unlink(missing_ok=True)
    return loaded


def _cache_source(path: Path) -> str | None:
    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("source")
    except (SafetensorError, OSError):
        return None


def write_cache(cache: Path, loaded: LoadedFile) -> None:
    """The file's tensors as safetensors (a tensor stored twice, like a tied head, is written once)."""
    first: dict[tuple, str] = {}
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for k, t in loaded.tensors.items():
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() and ident in first:
            aliases[k] = first[ident]
        else:
            first[ident] = k
            unique[k] = t
    meta = {"format": _CACHE_FORMAT, "source": str(loaded.path.resolve()), "layout": loaded.layout,
            "aliases": json.dumps(aliases),
            "hps": json.dumps(loaded.hps, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o))
            if loaded.hps is not None else ""}
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(cache, unique, meta)


_ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
              torch.bool: "BOOL"}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file written tensor by tensor (no second copy of the weights in RAM), atomically, with the
    user's normal file mode."""
    header: dict[str, Any] = {}
    offset = 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for t in tensors.values():
                if t.numel():
                    f.write(memoryview(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, user_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def user_file_mode(directory: bool = False) -> int:
    """0666 (0777 for a folder) less the process umask: the mode ``open()`` would give (safetensors and
    ``mkdtemp`` create 0600/0700)."""
    try:  # Linux: read it without changing it (os.umask is process-wide, racing other threads' file creation)
        status = Path("/proc/self/status").read_text()
        mask = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def _guess_kind(found: dict[str, tuple[int, ...]]) -> str:
    if any(k.startswith("vqvae.") for k in found):
        return "a HuggingFace mirror file (every model in one state dict)"
    return describe(detect_kind(found), found)


def mismatch_report(path: Path, what: str, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]],
                    optional: frozenset[str] = frozenset()) -> str | None:
    """A readable list of the first missing / unexpected / mis-shaped keys, or None when all match.

    ``optional`` keys may be absent (a tied head stored once)."""
    missing = [k for k in expected if k not in found and k not in optional]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k}: file {list(found[k])} vs model {list(expected[k])}"
              for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    if not (missing or unexpected or shapes):
        return None
    lines = [f"{path}: does not match {what} (the file looks like {_guess_kind(found)})."]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
            lines.append(f"  {len(items)} {label}: " + ", ".join(items[:_SHOW]) + more)
    lines.append("  Check that the file is the model you meant (e.g. --vqvae vs --model) and that it downloaded fully.")
    return "\n".join(lines)


def _place(t: torch.Tensor, device: torch.device | None, dtype: torch.dtype) -> torch.Tensor:
    """One tensor to its device and dtype: moved first, then cast there (a memory-mapped tensor that already has
    the right dtype stays mapped on the CPU: no copy at all)."""
    if device is not None and device.type != "cpu":
        t = t.to(device, non_blocking=False)
    return t.to(dtype)


def _exact_in_fp16(t: torch.Tensor) -> bool:
    """True when every value of ``t`` is an fp16 value (the HF mirror's fp32 copies of the 5b tops' weights)."""
    return t.is_floating_point() and bool(torch.equal(t.to(torch.float16).to(t.dtype), t))


def load_into(model: nn.Module, loaded: LoadedFile, official_keys: Callable[[nn.Module], dict[str, OfficialKey]],
              what: str, hf_level: int | None = None, hf_prefix_check: bool = True, *,
              half: frozenset[str] = frozenset(), narrow: bool = False,
              device: torch.device | str | None = None) -> nn.Module:
    """Strictly copy a file's tensors into ``model`` by explicit key map; casts dtype, transposes where marked.

    ``half``: native keys that stay fp16 when the file holds them in fp16 (the Conv1D weights: the 5b tops'
    official files do); with ``narrow`` (the config's ``fp16_params``) an fp32 file's values become fp16 too
    when fp16 holds them exactly, as the HF mirror's copies do. Everything else takes the model's dtype (fp32). A model built on the meta device takes the tensors as its own, each
    placed on ``device`` as it is read. A tied head (e.g. ``prior.x_out.weight`` = ``prior.x_emb.weight``)
    may be stored once or twice, but twice only if equal; it is tied again after loading."""
    device = torch.device(device) if device is not None else None
    own = model.state_dict()
    aliases = tied_aliases(model)
    if loaded.layout == "native":  # safetensors stores a tied tensor once, under its first name
        file_names = {k: OfficialKey(k) for k in own if k not in aliases}
    else:
        file_names = official_keys(model)
        if loaded.layout == "hf":
            file_names = {k: OfficialKey(official_to_hf(v.name, hf_level), v.transpose) for k, v in file_names.items()}
    tensors = loaded.tensors
    if loaded.layout == "hf":  # a mirror file holds every component; keep the one asked for
        prefix = official_to_hf("x", hf_level).removesuffix("x")
        tensors = {k: v for k, v in tensors.items() if k.startswith(prefix)} or tensors
    expected = {}
    for native, fk in file_names.items():
        shape = tuple(own[native].shape)
        expected[fk.name] = shape[::-1] if fk.transpose else shape
    optional = frozenset(file_names[a].name for a in aliases if a in file_names)
    report = mismatch_report(loaded.path, what, expected, {k: tuple(v.shape) for k, v in tensors.items()}, optional)
    if report:
        raise CheckpointError(report)
    for alias, canonical in aliases.items():  # a tied head stored twice must be the same tensor twice
        if alias in file_names and file_names[alias].name in tensors:
            a, c = tensors[file_names[alias].name], tensors[file_names[canonical].name]
            if a.data_ptr() != c.data_ptr() and not torch.equal(a, c):
                diff = float((a.float() - c.float()).abs().max())
                raise CheckpointError(
                    f"{loaded.path}: {file_names[alias].name} must be the same tensor as {file_names[canonical].name} "
                    f"(this model ties its output head to its token embedding), but the file stores them untied and "
                    f"different (max difference {diff:.3g}). It was re-saved by a tool that untied the head, or is "
                    f"damaged: download the original file again.")
    meta = any(p.is_meta for p in model.parameters())
    state = {}
    for native, fk in file_names.items():
        if native in aliases:
            continue
        t = tensors[fk.name]
        t = t.t() if fk.transpose else t
        dtype = own[native].dtype
        if native in half and (t.dtype == torch.float16 or narrow and _exact_in_fp16(t)):
            dtype = torch.float16  # as the reference holds it (a mirror's fp32 copy of fp16 weights: lossless)
        state[native] = _place(t, device if meta else None, dtype)
    for alias, canonical in aliases.items():
        state[alias] = state[canonical]
    # A model built on the meta device takes the loaded tensors as its own: no second copy in RAM.
    model.load_state_dict(state, strict=True, assign=meta)
    for alias, canonical in aliases.items():  # assign=True gives each name its own Parameter: tie them again
        owner, _, attr = alias.rpartition(".")
        setattr(model.get_submodule(owner), attr, model.get_parameter(canonical))
    return model


_tied_aliases = tied_aliases  # the name this module used before detect.py held it


def save_native(model: nn.Module, path: str | os.PathLike, kind: str, config: dict[str, Any],
                extra: dict[str, Any] | None = None) -> Path:
    """Write ``path.safetensors`` and ``path.json`` atomically (temp files, then rename; never overwrite)."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix in (".safetensors", ".json") else base
    st, meta = base.with_suffix(".safetensors"), base.with_suffix(".json")
    for target in (st, meta):
        if target.exists():
            raise CheckpointError(f"{target}: already exists; choose another name (checkpoints are never overwritten).")
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": kind, "config": config, **(extra or {})}
    tmp_dir = Path(tempfile.mkdtemp(prefix=".ckpt-", dir=base.parent))
    try:
        save_model(model, str(tmp_dir / st.name))
        os.chmod(tmp_dir / st.name, user_file_mode())  # safetensors creates 0600; a model folder is shared
        (tmp_dir / meta.name).write_text(json.dumps(doc, indent=1, sort_keys=True))
        check_native(tmp_dir / st.name)  # only what loads back is published
        os.replace(tmp_dir / st.name, st)
        os.replace(tmp_dir / meta.name, meta)
    finally:
        for f in tmp_dir.iterdir():
            f.unlink()
        tmp_dir.rmdir()
    return st


def _meta_model(kind: str, config: dict[str, Any]) -> nn.Module:
    from engine.model.config import PriorConfig
    from engine.model.prior import Prior

    with torch.device("meta"):
        if kind == "vqvae":
            return VQVAE(VQVAEConfig.from_dict(config))
        if kind == "prior":
            return Prior(PriorConfig.from_dict(config))
    raise CheckpointError(f"unknown checkpoint kind {kind!r}")


def check_native(path: str | os.PathLike) -> None:
    """Raise ``CheckpointError`` unless ``NAME.safetensors`` + ``NAME.json`` load: the JSON builds a model (on the
    meta device) whose every key and shape the safetensors header holds, and nothing else. Reads no weights."""
    st = Path(path).with_suffix(".safetensors")
    try:
        meta = json.loads(st.with_suffix(".json").read_text())
        with safe_open(str(st), "pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        model = _meta_model(meta["kind"], meta["config"])
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise CheckpointError(f"{st}: written, but does not read back ({type(e).__name__}: {e})") from None
    aliases = tied_aliases(model)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in aliases}
    report = mismatch_report(st, f"its own {meta['kind']} config (the file would not load)", expected, found)
    if report:
        raise CheckpointError(report)


# --- the VQ-VAE -------------------------------------------------------------------------------------

_HPS_TO_VQVAE = {"levels": "levels", "downs_t": "downs_t", "strides_t": "strides_t", "emb_width": "emb_width",
                 "l_bins": "l_bins", "width": "width", "depth": "depth", "m_conv": "m_conv",
                 "dilation_growth_rate": "dilation_growth_rate", "dilation_cycle": "dilation_cycle",
                 "hvqvae_multipliers": "multipliers", "vqvae_reverse_decoder_dilation": "reverse_decoder_dilation",
                 "l_mu": "mu", "commit": "commit"}


def vqvae_config_from_hps(hps: dict[str, Any] | None) -> VQVAEConfig:
    """The official VQ-VAE config, overridden by whatever VQ-VAE hparams a checkpoint carries."""
    if not hps:
        return OFFICIAL_VQVAE
    found = {ours: hps[theirs] for theirs, ours in _HPS_TO_VQVAE.items() if hps.get(theirs) is not None}
    return VQVAEConfig.from_dict({**OFFICIAL_VQVAE.to_dict(), **found})


def load_vqvae(path: str | os.PathLike, device: torch.device | str = "cpu") -> VQVAE:
    """Load a VQ-VAE from an official ``vqvae.pth.tar``, a HuggingFace mirror folder/file, or our safetensors."""
    path = Path(path)
    loaded = read_checkpoint(path, prefix="vqvae.")  # of a mirror folder, only the shards holding the codec
    if loaded.layout == "native":
        if loaded.native_meta.get("kind") != "vqvae":
            raise CheckpointError(f"{loaded.path}: is a {loaded.native_meta.get('kind')!r} checkpoint, not a VQ-VAE.")
        cfg = VQVAEConfig.from_dict(loaded.native_meta["config"])
    elif path.is_dir():  # a mirror folder: its config.json, else the official codec
        from .hf_config import vqvae_config_from_hf

        cfg = vqvae_config_from_hf((hf_config(path) or {}).get("vqvae_config"))
    else:
        is_vqvae = any("bottleneck.level_blocks" in k for k in loaded.tensors)  # else its hps describe another model
        cfg = vqvae_config_from_hps(loaded.hps if is_vqvae else None)
    model = load_into(VQVAE(cfg), loaded, vqvae_official_keys, "the Jukebox VQ-VAE")
    return model.to(device).eval()


def save_vqvae(model: VQVAE, path: str | os.PathLike) -> Path:
    return save_native(model, path, "vqvae", model.cfg.to_dict())


def save_official(model: nn.Module, official_keys: Callable[[nn.Module], dict[str, OfficialKey]],
                  path: str | os.PathLike, hps: dict[str, Any]) -> Path:
    """Write a checkpoint in the official container ``{'hps', 'model', 'opt', 'step'}`` (never overwrites).

    For fixtures and for tools that expect the reference layout; the engine itself prefers safetensors.
    """
    path = Path(path)
    if path.exists():
        raise CheckpointError(f"{path}: already exists; choose another name.")
    own = model.state_dict()
    state = {fk.name: (own[k].t() if fk.transpose else own[k]).contiguous() for k, fk in official_keys(model).items()}
    container = {"hps": dict(hps), "model": state, "opt": None, "step": 0}
    return atomic_write(path, lambda f: torch.save(container, f), overwrite=False)
