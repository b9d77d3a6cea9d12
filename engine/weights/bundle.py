"""A loaded Jukebox: the VQ-VAE and one prior per level, held warm and shared read-only.

``load_models`` takes a model directory (official file names, a HuggingFace mirror folder, or the
project's own safetensors), the name ``debug`` (tiny random-weight models for tests), or None for the
embedded default model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from engine import LICENCE_NOTE
from engine.model import labels
from engine.model.config import OFFICIAL_PRIORS, PriorConfig
from engine.model.prior import Prior
from engine.model.vqvae import VQVAE
from engine.runtime.device import pick_device, set_threads, threads_for

from .checkpoints import CheckpointError, LoadedFile, load_into, load_vqvae, read_checkpoint, save_native
from .keymaps import prior_official_keys
from .models import Models

OFFICIAL_TOP_PRIORS = ("5b", "5b_lyrics", "1b_lyrics")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "default_model"


def load_prior(path: str | os.PathLike, cfg: PriorConfig | None, device: str | torch.device = "cpu") -> Prior:
    """Load one prior (official ``prior_level_N.pth.tar``, HF mirror, or ours) strictly into ``cfg``'s shape."""
    loaded = read_checkpoint(path)
    return _prior_from(loaded, cfg).to(device).eval()


def _prior_from(loaded: LoadedFile, cfg: PriorConfig | None) -> Prior:
    if loaded.layout == "native":
        cfg = PriorConfig.from_dict(loaded.native_meta["config"])
    if cfg is None:
        raise CheckpointError(f"{loaded.path}: an official or mirror prior needs its model named (5b, 5b_lyrics, 1b_lyrics).")
    with torch.device("meta"):  # no random init and no second copy: the file's tensors become the weights
        prior = Prior(cfg)
    return load_into(prior, loaded, prior_official_keys, f"the level-{cfg.level} Jukebox prior", hf_level=cfg.level)


def _official_dir(directory: Path, top: str, device: torch.device) -> Models:
    vqvae = load_vqvae(directory / "vqvae.pth.tar", device)
    cfgs = [OFFICIAL_PRIORS["upsampler_level_0"], OFFICIAL_PRIORS["upsampler_level_1"], OFFICIAL_PRIORS[top]]
    priors = [load_prior(directory / f"prior_level_{lv}.pth.tar", cfg, device) for lv, cfg in enumerate(cfgs)]
    return Models(top, vqvae, priors, {"licence": LICENCE_NOTE})


def _native_dir(directory: Path, device: torch.device) -> Models:
    manifest = json.loads((directory / "model.json").read_text())
    vqvae = load_vqvae(directory / "vqvae.safetensors", device)
    priors = [load_prior(directory / f"prior_level_{lv}.safetensors", None, device) for lv in range(vqvae.cfg.levels)]
    vocab = None
    if (directory / "artists.txt").exists() and (directory / "genres.txt").exists():
        vocab = {kind: labels.load_label_vocab_file(directory / f"{kind}s.txt", kind) for kind in ("artist", "genre")}
    return Models(manifest.get("name", directory.name), vqvae, priors, manifest.get("meta", {}), vocab)


def save_models(models: Models, directory: str | os.PathLike) -> Path:
    """Write a model directory in the project's format (safetensors + JSON configs, ``model.json``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=False)
    save_native(models.vqvae, directory / "vqvae", "vqvae", models.vqvae.cfg.to_dict())
    for level, prior in enumerate(models.priors):
        save_native(prior, directory / f"prior_level_{level}", "prior", prior.cfg.to_dict())
    if models.vocab:  # official name;id format, ids in file order
        for kind, vocab in models.vocab.items():
            (directory / f"{kind}s.txt").write_text("".join(f"{n};{vocab.ids[n]}\n" for n in vocab.names))
    (directory / "model.json").write_text(json.dumps({"name": models.name, "meta": models.meta}, indent=1))
    return directory


def load_models(spec: str | os.PathLike | None = None, top: str | None = None,
                device: str | torch.device | None = None) -> Models:
    """``None``: the embedded default model; ``"debug"``: tiny random models; else a model directory.

    An official directory holds ``vqvae.pth.tar`` and ``prior_level_{0,1,2}.pth.tar``; name its top
    prior (5b, 5b_lyrics or 1b_lyrics) with ``top`` or by the folder's name. ``device``: see
    ``device.pick_device`` (CUDA, then MPS, then CPU); on a CPU the thread count suits the model's width.
    """
    models = _load(spec, top, pick_device(device))
    if models.device.type == "cpu":
        set_threads(threads_for(models.top.cfg.width))
    return models


def load_model_vqvae(spec: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> tuple[str, VQVAE]:
    """(name, VQ-VAE) of the model ``load_models(spec)`` would load, without its priors: for encoding and
    decoding, where loading an official 5B prior would only cost minutes and memory."""
    if spec == "debug":
        from .debug import debug_vqvae

        return "debug", debug_vqvae().to(device)  # the VQ-VAE of debug_models()
    directory = _model_dir(spec)
    if (directory / "model.json").exists():
        name = json.loads((directory / "model.json").read_text()).get("name", directory.name)
        return name, load_vqvae(directory / "vqvae.safetensors", device)
    if (directory / "vqvae.pth.tar").exists():
        return directory.name, load_vqvae(directory / "vqvae.pth.tar", device)
    raise CheckpointError(f"{directory}: holds neither model.json (Jukebox Bridge) nor vqvae.pth.tar (official).")


def _model_dir(spec: str | os.PathLike | None) -> Path:
    directory = DEFAULT_MODEL_DIR if spec is None else Path(spec)
    if spec is None and not (directory / "model.json").exists():
        raise CheckpointError("no embedded default model is installed yet; start with --model DIR (an official "
                              "Jukebox folder or a Jukebox Bridge model folder) or --model debug for a test model")
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: model folder not found. Pass a folder holding the checkpoints.")
    return directory


def _load(spec: str | os.PathLike | None, top: str | None, device: torch.device) -> Models:
    if spec == "debug":
        from .debug import debug_models

        models = debug_models()
        models.vqvae.to(device)
        for prior in models.priors:
            prior.to(device)
        return models
    directory = _model_dir(spec)
    if (directory / "model.json").exists():
        return _native_dir(directory, device)
    if (directory / "vqvae.pth.tar").exists():
        top = top or next((n for n in OFFICIAL_TOP_PRIORS if n == directory.name), None)
        if top not in OFFICIAL_TOP_PRIORS:
            raise CheckpointError(f"{directory}: say which official model this is (--top 5b, 5b_lyrics or 1b_lyrics).")
        return _official_dir(directory, top, device)
    raise CheckpointError(f"{directory}: holds neither model.json (Jukebox Bridge) nor vqvae.pth.tar (official).")
