"""Checkpoint loading and saving: official ``.pth.tar``, the HuggingFace mirror, and our safetensors.

Loading never executes pickled code: torch files go through ``torch.load(weights_only=True)`` with
an allow-list holding only the reference's ``Hyperparams`` dict (read as a plain dict). Every load is
strict: the file must hold exactly the keys and shapes the model expects, or ``CheckpointError`` lists
the first missing, unexpected and mis-shaped keys. Our own checkpoints are ``NAME.safetensors`` plus
``NAME.json`` (kind and config), so a model can be rebuilt from the files alone.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model
from torch import nn

from engine.io.files import atomic_write
from engine.model.config import OFFICIAL_VQVAE, VQVAEConfig
from engine.model.vqvae import VQVAE

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


def _hf_files(directory: Path) -> list[Path]:
    """The weight files of a HuggingFace model directory, sharded or not."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.exists():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [directory / s for s in shards]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (directory / single).exists():
            return [directory / single]
    raise CheckpointError(
        f"{directory}: no weights found (expected model.safetensors, pytorch_model.bin, or a sharded index). "
        f"Point --vqvae/--model at the folder you downloaded from the HuggingFace mirror."
    )


def read_checkpoint(path: str | os.PathLike) -> LoadedFile:
    """Read any supported checkpoint into a flat CPU state dict without building a model."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found. Check the path, or run `jukebox-bridge models list`.")
    if path.is_dir():
        tensors: dict[str, torch.Tensor] = {}
        for f in _hf_files(path):
            tensors.update(_load_safetensors(f) if f.suffix == ".safetensors" else _torch_load(f))
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
    obj = _torch_load(path)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        tensors = {k.removeprefix("module."): v for k, v in obj["model"].items()}
        hps = dict(obj["hps"]) if isinstance(obj.get("hps"), dict) else None
        return LoadedFile(tensors, "official", path, hps=hps)
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        layout = "hf" if any(k.startswith(("vqvae.", "priors.")) for k in obj) else "official"
        return LoadedFile({k.removeprefix("module."): v for k, v in obj.items()}, layout, path)
    raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a Jukebox state dict or checkpoint container.")


def _guess_kind(keys: set[str]) -> str:
    if any("bottleneck.level_blocks" in k or k.startswith("vqvae.") for k in keys):
        return "a VQ-VAE"
    if any("conditioner_blocks" in k for k in keys):
        return "an upsampler prior"
    if any(k.startswith(("prior.", "priors.", "y_emb.")) for k in keys):
        return "a top-level prior"
    return "an unknown model"


def mismatch_report(path: Path, what: str, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str | None:
    """A readable list of the first missing / unexpected / mis-shaped keys, or None when all match."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k}: file {list(found[k])} vs model {list(expected[k])}"
              for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    if not (missing or unexpected or shapes):
        return None
    lines = [f"{path}: does not match {what} (the file looks like {_guess_kind(set(found))})."]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
            lines.append(f"  {len(items)} {label}: " + ", ".join(items[:_SHOW]) + more)
    lines.append("  Check that the file is the model you meant (e.g. --vqvae vs --model) and that it downloaded fully.")
    return "\n".join(lines)


def load_into(model: nn.Module, loaded: LoadedFile, official_keys: Callable[[nn.Module], dict[str, OfficialKey]],
              what: str, hf_level: int | None = None, hf_prefix_check: bool = True) -> nn.Module:
    """Strictly copy a file's tensors into ``model`` by explicit key map; casts dtype, transposes where marked."""
    own = model.state_dict()
    aliases = _tied_aliases(model)
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
    report = mismatch_report(loaded.path, what, expected, {k: tuple(v.shape) for k, v in tensors.items()})
    if report:
        raise CheckpointError(report)
    state = {}
    for native, fk in file_names.items():
        t = tensors[fk.name]
        state[native] = (t.t() if fk.transpose else t).to(own[native].dtype)
    for alias, canonical in aliases.items():
        state.setdefault(alias, state[canonical])
    # A model built on the meta device takes the loaded tensors as its own: no second copy in RAM.
    model.load_state_dict(state, strict=True, assign=any(p.is_meta for p in model.parameters()))
    return model


def _tied_aliases(model: nn.Module) -> dict[str, str]:
    """Names of parameters that are another parameter (e.g. an output layer tied to the embedding)."""
    first: dict[int, str] = {}
    aliases = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            aliases[name] = first[id(p)]
        else:
            first[id(p)] = name
    return aliases


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
        (tmp_dir / meta.name).write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp_dir / st.name, st)
        os.replace(tmp_dir / meta.name, meta)
    finally:
        for f in tmp_dir.iterdir():
            f.unlink()
        tmp_dir.rmdir()
    return st


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
    loaded = read_checkpoint(path)
    if loaded.layout == "native":
        if loaded.native_meta.get("kind") != "vqvae":
            raise CheckpointError(f"{loaded.path}: is a {loaded.native_meta.get('kind')!r} checkpoint, not a VQ-VAE.")
        cfg = VQVAEConfig.from_dict(loaded.native_meta["config"])
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
