"""Explicit maps from this project's parameter names to the official Jukebox checkpoint names.

The project's modules are named after the paper (``downs``, ``ups``, ``proj_in``, ``codebook``); the
official checkpoints use the reference code's ``nn.Sequential`` indices (``model.1.0.model.3``). Each
function here walks a model's own ``state_dict`` keys and returns ``{native_key: OfficialKey}``; the
loader (``checkpoints.py``) uses it for strict key/shape checks and to read either layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class OfficialKey:
    name: str
    transpose: bool = False  # official Conv1D ``.w`` is (in, out); a native nn.Linear weight is (out, in)


def _resnet(rest: str, container: str) -> str:
    """``blocks.R.conv_dilated.P`` -> ``{container}.R.model.1.P`` (ReLU, conv3, ReLU, conv1 in a Sequential)."""
    m = re.fullmatch(r"blocks\.(\d+)\.conv_(dilated|pointwise)\.(\w+)", rest)
    if not m:
        raise KeyError(rest)
    conv = "1" if m[2] == "dilated" else "3"
    return f"{container}.{m[1]}.model.{conv}.{m[3]}"


def encoder_block_name(rest: str, down_t: int) -> str:
    """Native EncoderBlock key (relative) -> reference EncoderConvBlock key (relative)."""
    if m := re.fullmatch(r"downs\.(\d+)\.conv\.(\w+)", rest):
        return f"model.{m[1]}.0.{m[2]}"
    if m := re.fullmatch(r"downs\.(\d+)\.resnet\.(.+)", rest):
        return f"model.{m[1]}.1.{_resnet(m[2], 'model')}"
    if m := re.fullmatch(r"proj_out\.(\w+)", rest):
        return f"model.{down_t}.{m[1]}"
    raise KeyError(rest)


def decoder_block_name(rest: str, resnet_container: str = "model") -> str:
    """Native DecoderBlock key (relative) -> reference DecoderConvBock key (relative).

    ``resnet_container`` is ``model`` in the VQ-VAE and ``blocks`` in the upsamplers' conditioner,
    whose reference Resnet1D was built with ``checkpoint_res=1``.
    """
    if m := re.fullmatch(r"proj_in\.(\w+)", rest):
        return f"model.0.{m[1]}"
    if m := re.fullmatch(r"ups\.(\d+)\.resnet\.(.+)", rest):
        return f"model.{int(m[1]) + 1}.0.{_resnet(m[2], resnet_container)}"
    if m := re.fullmatch(r"ups\.(\d+)\.conv_t\.(\w+)", rest):
        return f"model.{int(m[1]) + 1}.1.{m[2]}"
    raise KeyError(rest)


def vqvae_official_keys(model: nn.Module) -> dict[str, OfficialKey]:
    """Every key of a native ``VQVAE`` state dict -> its official ``vqvae.pth.tar`` name."""
    downs_t = model.cfg.downs_t
    out: dict[str, OfficialKey] = {}
    for key in model.state_dict():
        if m := re.fullmatch(r"encoders\.(\d+)\.blocks\.(\d+)\.(.+)", key):
            name = f"encoders.{m[1]}.level_blocks.{m[2]}.{encoder_block_name(m[3], downs_t[int(m[2])])}"
        elif m := re.fullmatch(r"decoders\.(\d+)\.blocks\.(\d+)\.(.+)", key):
            name = f"decoders.{m[1]}.level_blocks.{m[2]}.{decoder_block_name(m[3])}"
        elif m := re.fullmatch(r"bottleneck\.levels\.(\d+)\.codebook", key):
            name = f"bottleneck.level_blocks.{m[1]}.k"
        else:
            name = key  # decoders.D.out.{weight,bias} keep their names
        out[key] = OfficialKey(name)
    return out


def _lm_name(rest: str, prefix: str) -> str:
    """Native ``AutoregressiveLM`` key (relative) -> reference ``ConditionalAutoregressive2D`` key."""
    if m := re.fullmatch(r"transformer\.layers\.(\d+)\.(.+)", rest):
        return f"{prefix}.transformer._attn_mods.{m[1]}.{m[2]}"  # attn.c_attn.w, ln_0.weight, mlp.c_fc.b, ...
    if rest == "pos_emb.weight":
        return f"{prefix}.pos_emb.pos_emb"
    if rest in ("x_emb.weight", "x_out.weight", "start_token"):
        return f"{prefix}.{rest}"
    raise KeyError(rest)


_PRIOR_FIXED = {
    "labels.genre_emb.weight": "y_emb.bow_genre_emb.emb.weight",
    "labels.artist_emb.weight": "y_emb.artist_emb.emb.weight",
    "lyric_encoder.lm_head.weight": "prime_x_out.weight",
}


def prior_official_keys(prior: nn.Module) -> dict[str, OfficialKey]:
    """Every key of a native ``Prior`` state dict -> its official ``prior_level_*.pth.tar`` name.

    Conv1D weights keep the official (in, out) layout, so nothing is transposed. The tied head appears
    under both ``prior.x_emb.weight`` and ``prior.x_out.weight``, as in the official files.
    """
    out: dict[str, OfficialKey] = {}
    for key in prior.state_dict():
        if key in _PRIOR_FIXED:
            name = _PRIOR_FIXED[key]
        elif m := re.fullmatch(r"labels\.(\w+_emb)\.emb\.weight", key):  # timing RangeEmbeddings
            name = f"y_emb.{m[1]}.emb.weight"
        elif m := re.fullmatch(r"x_cond_net\.decoder\.(.+)", key):
            name = f"conditioner_blocks.0.cond.{decoder_block_name(m[1], resnet_container='blocks')}"
        elif m := re.fullmatch(r"x_cond_net\.(x_emb|ln)\.(\w+)", key):
            name = f"conditioner_blocks.0.{m[1]}.{m[2]}"
        elif m := re.fullmatch(r"lyric_encoder\.lm\.(.+)", key):
            name = _lm_name(m[1], "prime_prior")
        elif m := re.fullmatch(r"lyric_encoder\.(proj|ln)\.(\w+)", key):
            name = f"prime_state_{m[1]}.{m[2]}"
        elif m := re.fullmatch(r"lm\.(.+)", key):
            name = _lm_name(m[1], "prior")
        else:
            raise KeyError(f"no official name for prior key {key!r}")
        out[key] = OfficialKey(name)
    return out
