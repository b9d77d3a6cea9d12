"""A loaded Jukebox: the VQ-VAE and one prior per level, held warm and shared read-only.

``load_models`` takes a model directory (official file names, a HuggingFace mirror folder, or the
project's own safetensors) under any name (the model's type is read from its checkpoints), the name
``debug`` (tiny random-weight models for tests), or None for the embedded default model.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from engine import LICENCE_NOTE
from engine.io.files import atomic_write_text, file_sha256
from engine.model import labels
from engine.model.config import OFFICIAL_VQVAE, PriorConfig, VQVAEConfig, prior_kind
from engine.model.prior import Prior
from engine.model.vqvae import VQVAE
from engine.runtime.device import pick_device, set_threads, threads_for

from .checkpoints import (
    CheckpointError,
    LoadedFile,
    hf_config,
    is_hf_dir,
    load_into,
    load_vqvae,
    read_checkpoint,
    save_native,
    user_file_mode,
)
from .detect import DetectError, conv_weight_keys, prior_config
from .keymaps import prior_official_keys
from .models import Models

OFFICIAL_TOP_PRIORS = ("5b", "5b_lyrics", "1b_lyrics")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "default_model"
SHA256SUMS = "SHA256SUMS.json"  # {file: {"size", "sha256", "recorded"}}: what `models verify` compares against


def load_prior(path: str | os.PathLike, cfg: PriorConfig | None, device: str | torch.device = "cpu", *,
               level: int | None = None, top: str | None = None, vqvae: VQVAEConfig = OFFICIAL_VQVAE) -> Prior:
    """Load one prior (official ``prior_level_N.pth.tar``, HF mirror, or ours) strictly into ``cfg``'s shape.

    Without ``cfg`` an official or mirror file's config is detected from its keys and shapes (``level``: its
    slot, default the top; ``top``: the top type it must be)."""
    loaded = read_checkpoint(path)
    if cfg is None and loaded.layout != "native":
        cfg = _detected_config(loaded, vqvae.levels - 1 if level is None else level, vqvae, top, None)
    return _prior_from(loaded, cfg, device).eval()


def _detected_config(loaded: LoadedFile, level: int, vqvae: VQVAEConfig, top: str | None,
                     hf_cfg: dict | None) -> PriorConfig:
    shapes = {k: tuple(v.shape) for k, v in loaded.tensors.items()}
    try:
        return prior_config(shapes, loaded.layout, level, vqvae, top=top, hps=loaded.hps, hf_config=hf_cfg,
                            where=str(loaded.path))
    except DetectError as e:
        raise CheckpointError(str(e)) from None


def _prior_from(loaded: LoadedFile, cfg: PriorConfig | None, device: str | torch.device = "cpu") -> Prior:
    if loaded.layout == "native":
        cfg = PriorConfig.from_dict(loaded.native_meta["config"])
    if cfg is None:
        raise CheckpointError(f"{loaded.path}: an official or mirror prior needs its model named (5b, 5b_lyrics, 1b_lyrics).")
    with torch.device("meta"):  # no random init and no second copy: the file's tensors become the weights
        prior = Prior(cfg)
    # fp16 where the reference keeps fp16 (the 5b tops' Conv1D weights), each tensor straight to its device
    return load_into(prior, loaded, prior_official_keys, f"the level-{cfg.level} Jukebox prior", hf_level=cfg.level,
                     half=conv_weight_keys(prior), narrow=cfg.fp16_params, device=device)


def _official_dir(directory: Path, top: str | None, device: torch.device) -> Models:
    vqvae = load_vqvae(directory / "vqvae.pth.tar", device)
    priors = []
    for level in range(vqvae.cfg.levels):  # each file's type and size from its own keys and shapes
        loaded = read_checkpoint(directory / f"prior_level_{level}.pth.tar")
        cfg = _detected_config(loaded, level, vqvae.cfg, top, None)
        priors.append(_prior_from(loaded, cfg, device).eval())
        del loaded
    return Models(prior_kind(priors[-1].cfg), vqvae, priors, {"licence": LICENCE_NOTE})


def _hf_dir(directory: Path, top: str | None, device: torch.device) -> Models:
    """A HuggingFace mirror folder: ``config.json`` and ``vqvae.*`` + ``priors.{0,1,2}.*`` (top first) in one
    state dict, sharded or not, ``.bin`` or ``.safetensors`` (all memory-mapped)."""
    hf_cfg = hf_config(directory)
    vqvae = load_vqvae(directory, device)
    loaded = read_checkpoint(directory)
    priors = []
    for level in range(vqvae.cfg.levels):
        cfg = _detected_config(loaded, level, vqvae.cfg, top, hf_cfg)
        priors.append(_prior_from(loaded, cfg, device).eval())
    return Models(prior_kind(priors[-1].cfg), vqvae, priors, {"licence": LICENCE_NOTE})


def _native_dir(directory: Path, device: torch.device, top: str | None = None) -> Models:
    manifest = json.loads((directory / "model.json").read_text())
    vqvae = load_vqvae(directory / "vqvae.safetensors", device)
    priors = [load_prior(directory / f"prior_level_{lv}.safetensors", None, device) for lv in range(vqvae.cfg.levels)]
    if top is not None and prior_kind(priors[-1].cfg) != top:
        raise CheckpointError(f"{directory}: --top {top} was given, but its top prior is a {prior_kind(priors[-1].cfg)} "
                              f"prior. Leave out --top (the type is read from the folder).")
    vocab = None
    if (directory / "artists.txt").exists() and (directory / "genres.txt").exists():
        vocab = {kind: labels.load_label_vocab_file(directory / f"{kind}s.txt", kind) for kind in ("artist", "genre")}
    return Models(manifest.get("name", directory.name), vqvae, priors, manifest.get("meta", {}), vocab)


def save_models(models: Models, directory: str | os.PathLike) -> Path:
    """Write a model directory in the project's format (safetensors + JSON configs, ``model.json``).

    The files go to a hidden folder beside ``directory``, are read back (every file's keys and shapes against
    its own config, without loading weights), get their sha256 recorded in ``SHA256SUMS.json`` and the
    user's normal file modes, and only then is the folder renamed into place: a folder that would not load is
    never published."""
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(errno.EEXIST, "already exists; choose another folder (nothing is overwritten)",
                              str(directory))
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        save_native(models.vqvae, tmp / "vqvae", "vqvae", models.vqvae.cfg.to_dict())
        for level, prior in enumerate(models.priors):
            save_native(prior, tmp / f"prior_level_{level}", "prior", prior.cfg.to_dict())
        if models.vocab:  # official name;id format, ids in file order
            for kind, vocab in models.vocab.items():
                (tmp / f"{kind}s.txt").write_text("".join(f"{n};{vocab.ids[n]}\n" for n in vocab.names))
        (tmp / "model.json").write_text(json.dumps({"name": models.name, "meta": models.meta}, indent=1))
        record_sha256(tmp, [p.name for p in sorted(tmp.iterdir()) if p.suffix in (".safetensors", ".json")],
                      "conversion")
        os.chmod(tmp, user_file_mode(directory=True))  # mkdtemp makes it 0700
        os.rename(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def record_sha256(folder: Path, names: list[str], how: str) -> dict[str, dict]:
    """Add (or replace) ``names``' size and sha256 in ``folder/SHA256SUMS.json``; ``how`` says when (download,
    conversion, first verify): later ``models verify`` runs compare against it (trust on first use)."""
    path = folder / SHA256SUMS
    sums = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        if name == SHA256SUMS:
            continue
        f = folder / name
        sums[name] = {"size": f.stat().st_size, "sha256": file_sha256(f), "recorded": how,
                      "date": time.strftime("%Y-%m-%d")}
    atomic_write_text(path, json.dumps(sums, indent=1, sort_keys=True), overwrite=True)
    return sums


def load_models(spec: str | os.PathLike | None = None, top: str | None = None,
                device: str | torch.device | None = None) -> Models:
    """``None``: the embedded default model; ``"debug"``: tiny random models; else a model directory.

    A model directory is an official one (``vqvae.pth.tar`` and ``prior_level_{0,1,2}.pth.tar``), a HuggingFace
    mirror (``config.json`` and its weights) or a Jukebox Bridge folder (``model.json``), under any name: each
    prior's type (5b, 5b_lyrics, 1b_lyrics, upsampler) is read from its keys and shapes. ``top`` confirms the top
    prior's type; a different one is an error naming what the folder holds. ``device``: see
    ``device.pick_device`` (CUDA, then MPS, then CPU); on a CPU the thread count suits the model's width.
    """
    if top is not None and top not in OFFICIAL_TOP_PRIORS:
        raise CheckpointError(f"--top must be one of {', '.join(OFFICIAL_TOP_PRIORS)}; got {top!r}")
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
    layout = folder_layout(directory)
    if layout == "native":
        name = json.loads((directory / "model.json").read_text()).get("name", directory.name)
        return name, load_vqvae(directory / "vqvae.safetensors", device)
    if layout == "official":
        return directory.name, load_vqvae(directory / "vqvae.pth.tar", device)
    return directory.name, load_vqvae(directory, device)  # a mirror: only the shards holding vqvae.*


def folder_layout(directory: Path) -> str:
    """``native`` (model.json), ``official`` (vqvae.pth.tar / prior_level_N.pth.tar) or ``hf`` (a mirror)."""
    if (directory / "model.json").exists():
        return "native"
    if (directory / "vqvae.pth.tar").exists() or any(directory.glob("prior_level_[0-9].pth.tar")):
        return "official"
    if is_hf_dir(directory):
        return "hf"
    raise CheckpointError(
        f"{directory}: holds no Jukebox model. Expected an official folder (vqvae.pth.tar, prior_level_0/1/2.pth.tar), "
        f"a HuggingFace mirror (config.json with pytorch_model*.bin or model*.safetensors) or a Jukebox Bridge folder "
        f"(model.json; `jukebox-bridge models convert` writes one).")


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
    layout = folder_layout(directory)
    if layout == "native":
        return _native_dir(directory, device, top)
    if layout == "official":
        return _official_dir(directory, top, device)
    return _hf_dir(directory, top, device)
