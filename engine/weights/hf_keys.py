"""Official Jukebox key names -> the HuggingFace mirror's names (transformers' ``convert_jukebox.py``).

The hub mirrors (``openai/jukebox-1b-lyrics``, ``openai/jukebox-5b-lyrics``) hold one flat state dict:
``vqvae.*`` plus ``priors.{0,1,2}.*`` numbered top-down. The rules below are the converter's, in its
order; ``tests/engine/test_hf_keys.py`` checks them against every key of the six official checkpoints.
"""

from __future__ import annotations

import re

# HF numbers the priors top-down: level 2 (top) is priors.0.
PRIOR_PREFIX = {2: "priors.0.", 1: "priors.1.", 0: "priors.2."}
VQVAE_PREFIX = "vqvae."


def _conv_index(c: str) -> str:
    return "1" if c == "1" else "2"


def _structural(key: str) -> str:
    """Sequential indices of the codec and conditioner blocks -> HF's flat block lists."""
    rules: list[tuple[str, object]] = [
        (r"(encoders\.\d+\.level_blocks\.\d+)\.model\.(\d+)\.(\d+)\.(weight|bias)",
         lambda m: f"{m[1]}.downsample_block.{2 * int(m[2]) + int(m[3])}.{m[4]}"),
        (r"(encoders\.\d+\.level_blocks\.\d+)\.model\.(\d+)\.(\d+)\.model\.(\d+)\.model\.(\d+)\.(weight|bias)",
         lambda m: f"{m[1]}.downsample_block.{2 * int(m[2]) + int(m[3])}.resnet_block.{m[4]}.conv1d_{_conv_index(m[5])}.{m[6]}"),
        (r"(encoders\.\d+\.level_blocks\.\d+)\.model\.(\d+)\.(weight|bias)", lambda m: f"{m[1]}.proj_out.{m[3]}"),
        (r"(decoders\.\d+\.level_blocks\.\d+)\.model\.(\d+)\.(\d+)\.(weight|bias)",
         lambda m: f"{m[1]}.upsample_block.{2 * int(m[2]) + int(m[3]) - 2}.{m[4]}"),
        (r"(decoders\.\d+\.level_blocks\.\d+)\.model\.(\d+)\.(\d+)\.model\.(\d+)\.model\.(\d+)\.(weight|bias)",
         lambda m: f"{m[1]}.upsample_block.{2 * int(m[2]) + int(m[3]) - 2}.resnet_block.{m[4]}.conv1d_{_conv_index(m[5])}.{m[6]}"),
        (r"(decoders\.\d+\.level_blocks\.\d+)\.model\.0\.(weight|bias)", lambda m: f"{m[1]}.proj_in.{m[2]}"),
        (r"conditioner_blocks\.0\.cond\.model\.(\d+)\.(\d+)\.(weight|bias)",
         lambda m: f"conditioner_blocks.upsampler.upsample_block.{2 * int(m[1]) + int(m[2]) - 2}.{m[3]}"),
        (r"conditioner_blocks\.0\.cond\.model\.(\d+)\.(\d+)\.model\.(\d+)\.model\.(\d+)\.(weight|bias)",
         lambda m: f"conditioner_blocks.upsampler.upsample_block.{2 * int(m[1]) + int(m[2]) - 2}.resnet_block.{m[3]}.conv1d_{_conv_index(m[4])}.{m[5]}"),
        (r"conditioner_blocks\.0\.cond\.model\.0\.(weight|bias)", lambda m: f"conditioner_blocks.upsampler.proj_in.{m[1]}"),
    ]
    for pattern, build in rules:
        if m := re.fullmatch(pattern, key):
            return build(m)  # type: ignore[operator]
    return key


# (substring, replacement, stop-after-match) in the converter's order.
_STRING_RULES: list[tuple[str, str, bool]] = [
    ("conditioner_blocks.0", "conditioner_blocks", False),
    ("prime_prior", "encoder", False),
]
_STOP_RULES: list[tuple[str, str]] = [
    ("y_emb.", "metadata_embedding."),
    ("prime_state_ln", "encoder.final_layer_norm"),
    (".ln", ".layer_norm"),
    ("_ln", "_layer_norm"),
    ("prime_state_proj", "encoder.proj_in"),
    ("prime_x_out", "encoder.lm_head"),
    ("prior.x_out", "prior.fc_proj_out"),
]


def official_to_hf(key: str, level: int | None) -> str:
    """One official key -> its HF key, with prefix. ``level`` is None for the VQ-VAE, else the prior's level."""
    if key.endswith(".b"):
        key = key[:-2] + ".bias"
    elif key.endswith(".w"):
        key = key[:-2] + ".weight"
    elif level is not None and level != 2 and "cond.model." in key:
        key = key.replace(".blocks.", ".model.")  # undo checkpoint_res naming in the upsamplers
    key = _structural(key)
    for old, new, _ in _STRING_RULES:
        key = key.replace(old, new)
    if ".emb." in key and not any(w in key for w in ("total", "absolute", "relative")):
        key = key.replace(".emb.", ".")
    prefix = VQVAE_PREFIX if level is None else PRIOR_PREFIX[level]
    if key.endswith("k"):
        return prefix + key.replace(".k", ".codebook")
    for old, new in _STOP_RULES:
        if old in key:
            return prefix + key.replace(old, new)
    return prefix + key.replace("x_emb", "embed_tokens")
