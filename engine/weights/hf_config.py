"""The HuggingFace mirror's ``config.json`` (transformers' ``JukeboxConfig``) <-> this project's configs.

A mirror folder of an official model is recognised from its tensors' shapes alone; its ``config.json`` is
only needed for sizes no official model has. Field names are transformers 4.40's (``prior_config_list``,
numbered top-down like the mirror's ``priors.N`` prefixes; ``vqvae_config``). The translation back
(``hf_model_config``) writes what the loader reads, for tests and for tools that build mirror folders.
"""

from __future__ import annotations

from typing import Any

from engine.model.config import OFFICIAL_VQVAE, PriorConfig, VQVAEConfig

# transformers' attention_pattern names -> the reference's attn_order
ATTN_PATTERNS = {"all_fine_attention": 0, "raw_column_previous_attention": 1, "raw_column_previous_row_attention": 2,
                 "large_separated_enc_dec_w_lyrics": 10, "enc_dec_with_lyrics": 12}
_PATTERN_NAMES = {v: k for k, v in ATTN_PATTERNS.items()}


def vqvae_config_from_hf(d: dict[str, Any] | None) -> VQVAEConfig:
    if not d:
        return OFFICIAL_VQVAE
    base = OFFICIAL_VQVAE.to_dict()
    base.update(levels=d.get("levels", base["levels"]), downs_t=tuple(d.get("res_downs_t", base["downs_t"])),
                strides_t=tuple(d.get("res_strides_t", base["strides_t"])), emb_width=d.get("embed_dim", base["emb_width"]),
                l_bins=d.get("nb_discrete_codes", base["l_bins"]), width=d.get("res_conv_width", base["width"]),
                depth=d.get("res_conv_depth", base["depth"]), m_conv=d.get("res_convolution_multiplier", base["m_conv"]),
                dilation_growth_rate=d.get("res_dilation_growth_rate", base["dilation_growth_rate"]),
                dilation_cycle=d.get("res_dilation_cycle", base["dilation_cycle"]),
                multipliers=tuple(d.get("multipliers", base["multipliers"])), mu=d.get("lmu", base["mu"]),
                commit=d.get("commit", base["commit"]))
    return VQVAEConfig.from_dict(base)


def hf_vqvae_config(cfg: VQVAEConfig) -> dict[str, Any]:
    return {"levels": cfg.levels, "res_downs_t": list(cfg.downs_t), "res_strides_t": list(cfg.strides_t),
            "embed_dim": cfg.emb_width, "nb_discrete_codes": cfg.l_bins, "res_conv_width": cfg.width,
            "res_conv_depth": cfg.depth, "res_convolution_multiplier": cfg.m_conv,
            "res_dilation_growth_rate": cfg.dilation_growth_rate, "res_dilation_cycle": cfg.dilation_cycle,
            "multipliers": list(cfg.multipliers), "lmu": cfg.mu, "commit": cfg.commit, "conv_input_shape": 1,
            "model_type": "jukebox_vqvae"}


def prior_configs_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-prior dicts of a ``config.json``, top first (as the mirror numbers them)."""
    return list(config.get("prior_config_list") or config.get("prior_configs") or [])


def prior_config_from_hf(config: dict[str, Any], level: int, vqvae: VQVAEConfig) -> PriorConfig:
    """Level ``level`` (ours: 0 = bottom) of a mirror's ``config.json``; raises KeyError/ValueError when absent."""
    priors = prior_configs_of(config)
    p = priors[len(priors) - 1 - level]
    if p.get("attention_pattern") not in ATTN_PATTERNS:
        raise ValueError(f"attention_pattern {p.get('attention_pattern')!r} is used by no official model")
    top = level == vqvae.levels - 1
    kw: dict[str, Any] = dict(
        level=level, n_ctx=p["n_ctx"], width=p["hidden_size"], depth=p["num_layers"], heads=p["n_heads"],
        attn_order=ATTN_PATTERNS[p["attention_pattern"]], blocks=p["blocks"], raw_to_tokens=vqvae.hop_lengths[level],
        levels=vqvae.levels, bins=p.get("music_vocab_size", vqvae.l_bins), m_attn=p.get("attention_multiplier", 0.25),
        m_mlp=p.get("mlp_multiplier", 1.0), merged_decoder=bool(p.get("merged_decoder")),
        # the mirror stores everything in fp32; the reference ran the merged-decoder (5b) tops with fp16 weights
        fp16_params=bool(p.get("merged_decoder")) and top,
        genre_bins=p["metadata_dims"][0], artist_bins=p["metadata_dims"][1],
        max_bow_genre_size=p.get("max_nb_genres", 5), labels_v3=bool(p.get("is_encoder_decoder")),
        sample_rate=p.get("sampling_rate", vqvae.sample_rate),
        alignment_layer=p.get("alignment_layer") if p.get("nb_relevant_lyric_tokens") else None,
        alignment_head=p.get("alignment_head") if p.get("nb_relevant_lyric_tokens") else None)
    if top:
        kw.update(t_bins=p["timing_dims"], min_duration=p["min_duration"], max_duration=p["max_duration"])
    else:
        kw.update(cond_down_t=vqvae.downs_t[level + 1], cond_stride=vqvae.strides_t[level + 1],
                  cond_width=p["res_conv_width"], cond_depth=p["res_conv_depth"],
                  cond_m_conv=p.get("res_convolution_multiplier", 1), cond_dilation_growth_rate=p["res_dilation_growth_rate"],
                  cond_dilation_cycle=p.get("res_dilation_cycle"), cond_res_scale=bool(p.get("conv_res_scale")))
    if p.get("nb_relevant_lyric_tokens"):
        kw.update(n_tokens=p["nb_relevant_lyric_tokens"], n_vocab=p["lyric_vocab_size"],
                  single_enc_dec=bool(p.get("is_encoder_decoder")),
                  prime_loss_fraction=p.get("encoder_loss_fraction", 0.0))
        enc = p.get("encoder_config")
        if enc and not p.get("is_encoder_decoder"):
            kw.update(prime_width=enc["hidden_size"], prime_depth=enc["num_layers"], prime_heads=enc["n_heads"],
                      prime_attn_order=ATTN_PATTERNS[enc["attention_pattern"]], prime_blocks=enc["blocks"],
                      prime_m_attn=enc.get("attention_multiplier", 0.25), prime_m_mlp=enc.get("mlp_multiplier", 1.0))
    return PriorConfig(**kw)


def hf_prior_config(cfg: PriorConfig) -> dict[str, Any]:
    """One ``prior_config_list`` entry for ``cfg`` (the fields ``prior_config_from_hf`` reads)."""
    d: dict[str, Any] = {
        "level": cfg.levels - 1 - cfg.level, "n_ctx": cfg.n_ctx, "hidden_size": cfg.width, "num_layers": cfg.depth,
        "n_heads": cfg.heads, "attention_pattern": _PATTERN_NAMES[cfg.attn_order], "blocks": cfg.blocks,
        "music_vocab_size": cfg.bins, "attention_multiplier": cfg.m_attn, "mlp_multiplier": cfg.m_mlp,
        "merged_decoder": cfg.merged_decoder, "metadata_dims": [cfg.genre_bins, cfg.artist_bins],
        "max_nb_genres": cfg.max_bow_genre_size, "is_encoder_decoder": cfg.single_enc_dec,
        "sampling_rate": cfg.sample_rate, "timing_dims": cfg.t_bins, "min_duration": cfg.min_duration,
        "max_duration": cfg.max_duration, "res_conv_width": cfg.cond_width, "res_conv_depth": cfg.cond_depth,
        "res_convolution_multiplier": cfg.cond_m_conv, "res_dilation_growth_rate": cfg.cond_dilation_growth_rate,
        "res_dilation_cycle": cfg.cond_dilation_cycle, "conv_res_scale": cfg.cond_res_scale,
        "nb_relevant_lyric_tokens": cfg.n_tokens, "lyric_vocab_size": cfg.n_vocab,
        "encoder_loss_fraction": cfg.prime_loss_fraction, "alignment_layer": cfg.alignment_layer,
        "alignment_head": cfg.alignment_head, "model_type": "jukebox_prior", "encoder_config": None}
    if cfg.has_lyric_encoder:
        d["encoder_config"] = {"hidden_size": cfg.prime_width, "num_layers": cfg.prime_depth, "n_heads": cfg.prime_heads,
                               "attention_pattern": _PATTERN_NAMES[cfg.prime_attn_order], "blocks": cfg.prime_blocks,
                               "attention_multiplier": cfg.prime_m_attn, "mlp_multiplier": cfg.prime_m_mlp}
    return d


def hf_model_config(vqvae: VQVAEConfig, priors: list[PriorConfig]) -> dict[str, Any]:
    """A mirror's ``config.json`` for these configs (priors bottom first, as ``Models.priors``)."""
    return {"model_type": "jukebox", "nb_priors": len(priors), "vqvae_config": hf_vqvae_config(vqvae),
            "prior_config_list": [hf_prior_config(p) for p in reversed(priors)]}
