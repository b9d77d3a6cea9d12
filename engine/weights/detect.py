"""Which Jukebox model a checkpoint holds, from its key set and shapes alone: any folder or file name works.

``detect_kind`` reads the structure (official or HuggingFace-mirror names, without the mirror's
``vqvae.``/``priors.N.`` prefix): a codebook means the VQ-VAE, an upper-level conditioner an upsampler, a
separate lyric encoder 5b_lyrics, a token embedding wider than the music codebook (lyric characters in
front) 1b_lyrics, any other top prior 5b. ``prior_config`` then picks the config: the official one when every
key and shape is the official model's, else the file's own description (the reference hparams an official
container carries, or the mirror's ``config.json``). ``--top`` only confirms: a different detected type is an
error naming what the file holds.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping, Sequence

import torch

from engine.model.config import OFFICIAL_PRIORS, PriorConfig, VQVAEConfig, prior_kind
from engine.model.transformer import Conv1D

from .hf_keys import PRIOR_PREFIX, official_to_hf

TOP_KINDS = ("5b", "5b_lyrics", "1b_lyrics")
KINDS = ("vqvae", "upsampler", *TOP_KINDS)
_LAYER = re.compile(r"^prior\.transformer\._attn_mods\.(\d+)\.")

Shapes = Mapping[str, Sequence[int]]


class DetectError(ValueError):
    """The checkpoint is not the model its slot (or ``--top``) needs; the message names what was found."""


def component(shapes: Shapes, layout: str, level: int | None) -> dict[str, tuple[int, ...]]:
    """One model's keys of a file: a mirror's ``vqvae.`` or ``priors.N.`` part with the prefix removed."""
    if layout != "hf":
        return {k: tuple(v) for k, v in shapes.items()}
    prefix = "vqvae." if level is None else PRIOR_PREFIX[level]
    return {k[len(prefix):]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}


def detect_kind(shapes: Shapes, bins: int = 2048) -> str | None:
    """vqvae, upsampler, 5b, 5b_lyrics, 1b_lyrics, or None for none of them (official or mirror key names)."""
    keys = list(shapes)
    if any("bottleneck.level_blocks" in k for k in keys):
        return "vqvae"
    if any(k.startswith("conditioner_blocks") for k in keys):
        return "upsampler"
    emb = shapes.get("prior.x_emb.weight") or shapes.get("prior.embed_tokens.weight")
    if emb is None:
        return None
    if any(k.startswith(("prime_prior.", "prime_state_", "encoder.")) for k in keys):
        return "5b_lyrics"
    return "1b_lyrics" if emb[0] > bins else "5b"


def describe(kind: str | None, shapes: Shapes) -> str:
    """``a 1b_lyrics top prior (width 2048, 72 layers, 943 M parameters)`` and the like."""
    params = sum(_numel(s) for k, s in shapes.items() if not k.endswith(("x_out.weight", "fc_proj_out.weight")))
    size = f"{params / 1e6:,.0f} M parameters" if params >= 1e6 else f"{params:,} parameters"
    if kind is None:
        return f"no Jukebox model ({len(shapes)} tensors, {size})"
    if kind == "vqvae":
        return f"a Jukebox VQ-VAE ({size})"
    emb = shapes.get("prior.x_emb.weight") or shapes.get("prior.embed_tokens.weight")
    layers = len({m[1] for k in shapes if (m := _LAYER.match(k))})
    what = "an upsampler prior" if kind == "upsampler" else f"a {kind} top prior"
    return f"{what} (width {emb[1] if emb else '?'}, {layers} layers, {size})"


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


@functools.lru_cache(maxsize=16)
def expected_state(cfg: PriorConfig, layout: str = "official") -> tuple[tuple[str, tuple[int, ...], torch.dtype, bool], ...]:
    """(file key, shape, stored dtype, is a tied alias) for every key of ``cfg``'s prior in ``layout``
    ("official" or "hf", prefix included): built on the meta device, so official sizes cost nothing."""
    from engine.model.prior import Prior

    from .keymaps import prior_official_keys

    with torch.device("meta"):
        prior = Prior(cfg)
    own = prior.state_dict()
    half = fp16_keys(prior)
    aliases = tied_aliases(prior)
    out = []
    for native, fk in prior_official_keys(prior).items():
        name = official_to_hf(fk.name, cfg.level) if layout == "hf" else fk.name
        shape = tuple(own[native].shape)
        dtype = torch.float16 if native in half else own[native].dtype
        out.append((name, shape[::-1] if fk.transpose else shape, dtype, native in aliases))
    return tuple(out)


def fp16_keys(prior: torch.nn.Module) -> frozenset[str]:
    """Native keys the reference keeps in fp16 (``fp16_params``): every ``Conv1D`` weight of the prior."""
    if not getattr(getattr(prior, "cfg", None), "fp16_params", False):
        return frozenset()
    return conv_weight_keys(prior)


def conv_weight_keys(prior: torch.nn.Module) -> frozenset[str]:
    """Native keys of every ``Conv1D`` weight: the tensors a checkpoint may hold in fp16 (kept so in memory)."""
    return frozenset(f"{name}.w" if name else "w" for name, m in prior.named_modules() if isinstance(m, Conv1D))


def tied_aliases(model: torch.nn.Module) -> dict[str, str]:
    """Names of parameters that are another parameter (an output head tied to its embedding) -> that one."""
    first: dict[int, str] = {}
    aliases = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            aliases[name] = first[id(p)]
        else:
            first[id(p)] = name
    return aliases


def matches(cfg: PriorConfig, shapes: Shapes, layout: str) -> bool:
    """Every key and shape of ``cfg``'s prior, and nothing else (a tied head may be stored once)."""
    want = {name: shape for name, shape, _, _ in expected_state(cfg, layout)}
    optional = {name for name, _, _, alias in expected_state(cfg, layout) if alias}
    have = {k: tuple(v) for k, v in shapes.items()}
    return all(have.get(k) == s for k, s in want.items() if k not in optional or k in have) and set(have) <= set(want)


def slot_template(level: int, levels: int, kind: str) -> PriorConfig:
    return OFFICIAL_PRIORS[kind] if level == levels - 1 else OFFICIAL_PRIORS[f"upsampler_level_{level}"]


def prior_config(shapes: Shapes, layout: str, level: int, vqvae: VQVAEConfig, *, top: str | None = None,
                 hps: dict[str, Any] | None = None, hf_config: dict[str, Any] | None = None,
                 where: str = "the checkpoint") -> PriorConfig:
    """The config of the level-``level`` prior whose file keys/shapes are ``shapes`` (the whole file, mirror
    prefixes included); raises ``DetectError`` naming what the file holds when it does not fit the slot."""
    own = component(shapes, layout, level)
    kind = detect_kind(own, vqvae.l_bins)
    found = describe(kind, own)
    is_top = level == vqvae.levels - 1
    if not is_top and kind != "upsampler":
        raise DetectError(f"{where}: the level-{level} slot needs an upsampler prior, but it holds {found}.")
    if is_top and kind not in TOP_KINDS:
        raise DetectError(f"{where}: the top (level-{level}) slot needs a top-level prior (5b, 5b_lyrics or 1b_lyrics), "
                          f"but it holds {found}.")
    if is_top and top is not None and top != kind:
        raise DetectError(f"{where}: --top {top} was given, but the top prior is {found}. The type is detected from "
                          f"the checkpoint: leave out --top (or pass --top {kind}).")
    template = slot_template(level, vqvae.levels, kind)
    if matches(template, shapes if layout != "hf" else _with_prefix(own, level), layout):
        return template
    cfg = None
    if hps and "prior_width" in hps and hps.get("level", level) == level:
        cfg = PriorConfig.from_hparams({**hps, "level": level}, vqvae)
    elif hf_config is not None:
        from .hf_config import prior_config_from_hf

        try:
            cfg = prior_config_from_hf(hf_config, level, vqvae)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise DetectError(f"{where}: its config.json does not describe the level-{level} prior ({e}).") from None
    if cfg is None:
        raise DetectError(f"{where}: holds {found}, but not at the official {kind}'s sizes, and carries no "
                          f"hyperparameters (hps, config.json) to build it from.")
    if prior_kind(cfg) != kind:
        raise DetectError(f"{where}: its hyperparameters describe a {prior_kind(cfg)} prior, but its tensors are "
                          f"{found}.")
    return cfg


def _with_prefix(own: dict[str, tuple[int, ...]], level: int) -> dict[str, tuple[int, ...]]:
    return {PRIOR_PREFIX[level] + k: v for k, v in own.items()}
