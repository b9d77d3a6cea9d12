"""Frozen configuration dataclasses and the official hyperparameter sets.

Configs travel explicitly into every module; nothing reads globals. ``to_dict``/``from_dict`` let a
checkpoint describe itself (the JSON written beside a safetensors file).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.runtime.records import from_dict

SAMPLE_RATE = 44100


@dataclass(frozen=True)
class VQVAEConfig:
    """Hierarchical VQ-VAE (paper section 3.1). Defaults are the official ``vqvae`` hparam set."""

    levels: int = 3
    downs_t: tuple[int, ...] = (3, 2, 2)  # stride-2 downsamplings per level: hops 8, 32, 128
    strides_t: tuple[int, ...] = (2, 2, 2)
    emb_width: int = 64  # code vector dimension
    l_bins: int = 2048  # codebook size per level
    width: int = 32
    depth: int = 4
    m_conv: float = 1.0
    dilation_growth_rate: int = 3
    dilation_cycle: int | None = None
    multipliers: tuple[int, ...] = (2, 1, 1)  # per-level factor on width *and* depth
    reverse_decoder_dilation: bool = True
    input_channels: int = 1
    sample_rate: int = SAMPLE_RATE
    # Training
    mu: float = 0.99  # EMA decay of the codebook
    commit: float = 0.02
    revival_threshold: float = 1.0
    multispectral: float = 1.0
    lmix_l2: float = 1.0
    lmix_linf: float = 0.02
    linf_k: int = 2048
    multispec_n_fft: tuple[int, ...] = (2048, 1024, 512)
    multispec_hop: tuple[int, ...] = (240, 120, 50)
    multispec_win: tuple[int, ...] = (1200, 600, 240)
    # Inference: per level, the decoder's output EQ as (Hz, dB) points (``output_eq.py``); () or an empty
    # level: flat. Fitted after training (``jukebox-bridge train eq``); the official models have none.
    output_eq: tuple[tuple[tuple[float, float], ...], ...] = ()

    def __post_init__(self) -> None:  # JSON gives nested lists; keep the config hashable and comparable
        object.__setattr__(self, "output_eq", tuple(tuple(tuple(map(float, p)) for p in lv) for lv in self.output_eq))

    def level_output_eq(self, level: int) -> tuple[tuple[float, float], ...]:
        return self.output_eq[level] if level < len(self.output_eq) else ()

    def with_level_output_eq(self, level: int, points: tuple[tuple[float, float], ...]) -> "VQVAEConfig":
        """This config with ``level``'s output EQ replaced (``()``: flat)."""
        rows = [self.level_output_eq(lv) for lv in range(self.levels)]
        rows[level] = points
        return dataclasses.replace(self, output_eq=tuple(rows) if any(rows) else ())

    @property
    def hop_lengths(self) -> tuple[int, ...]:
        """Raw samples per code at each level (8, 32, 128 for the official model)."""
        hops, hop = [], 1
        for down, stride in zip(self.downs_t, self.strides_t):
            hop *= stride**down
            hops.append(hop)
        return tuple(hops)

    def level_width(self, level: int) -> int:
        return self.width * self.multipliers[level]

    def level_depth(self, level: int) -> int:
        return self.depth * self.multipliers[level]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VQVAEConfig":
        return from_dict(cls, d)


OFFICIAL_VQVAE = VQVAEConfig()


@dataclass(frozen=True)
class PriorConfig:
    """One level's prior (paper section 3.2-3.4): a sparse transformer over that level's VQ-VAE codes.

    Field names follow the reference hparams (``prior_width`` -> ``width`` etc.) so ``from_hparams`` is a
    plain rename. Parts a level does not have keep their defaults and are ignored: the upper-level
    conditioner exists only below the top level, timing only at the top, the lyric encoder only for
    5b_lyrics (``n_tokens > 0`` and not ``single_enc_dec``).
    """

    level: int
    n_ctx: int  # music tokens per window
    width: int
    depth: int
    heads: int
    attn_order: int  # per-layer attention pattern, see attention.ATTN_ORDERS
    blocks: int  # the transformer context is viewed as `blocks` rows of block_ctx tokens
    raw_to_tokens: int  # audio samples per token at this level (VQ-VAE hop)
    levels: int = 3
    bins: int = 2048  # music codebook size
    m_attn: float = 0.25  # attention width = m_attn * width
    m_mlp: float = 1.0  # MLP hidden width = m_mlp * width (not 4x)
    merged_decoder: bool = False  # True (5b, 5b_lyrics): untied x_out, x_cond not re-added after the stack
    fp16_params: bool = False  # the official file stores Conv1D .w in fp16
    # Labels: artist + bag of genres -> start token; timing (top level only) -> per-position x_cond
    genre_bins: int = 120
    artist_bins: int = 4111
    max_bow_genre_size: int = 5
    labels_v3: bool = False
    t_bins: int = 128
    min_duration: float | None = None  # seconds; total-length range of the timing embedding
    max_duration: float | None = None
    sample_rate: int = SAMPLE_RATE
    # Upper-level conditioner (upsamplers): embed upper codes, upsample x(stride**down_t), LayerNorm
    cond_down_t: int = 2
    cond_stride: int = 2
    cond_width: int = 1024
    cond_depth: int = 16
    cond_m_conv: float = 1.0
    cond_dilation_growth_rate: int = 3
    cond_dilation_cycle: int | None = 8
    cond_res_scale: bool = False  # residual scale 1/sqrt(cond_depth) (level 1) instead of 1 (level 0)
    # Lyrics
    n_tokens: int = 0  # lyric tokens per window (0: no lyrics)
    n_vocab: int = 80  # lyric characters incl. id 0
    single_enc_dec: bool = False  # 1b_lyrics: one stream [lyrics | music + n_vocab]
    prime_loss_fraction: float = 0.0
    prime_width: int = 1280  # 5b_lyrics lyric encoder ("prime_prior")
    prime_depth: int = 18
    prime_heads: int = 4
    prime_attn_order: int = 2
    prime_blocks: int = 32
    prime_m_attn: float = 0.25
    prime_m_mlp: float = 1.0
    alignment_layer: int | None = None  # attention layer/head that aligns lyrics (visualisation only)
    alignment_head: int | None = None

    @property
    def is_top(self) -> bool:
        return self.level == self.levels - 1

    @property
    def has_upper_conditioner(self) -> bool:
        return not self.is_top

    @property
    def upsampling(self) -> int:
        """Tokens of this level per token of the level above (1 at the top)."""
        return self.cond_stride**self.cond_down_t if self.has_upper_conditioner else 1

    @property
    def has_timing(self) -> bool:
        return self.is_top

    @property
    def has_lyric_encoder(self) -> bool:
        return self.n_tokens > 0 and not self.single_enc_dec

    @property
    def n_prime(self) -> int:
        """Lyric positions in front of the music in the single-stream model's sequence."""
        return self.n_tokens if self.single_enc_dec else 0

    @property
    def n_ctx_total(self) -> int:
        return self.n_ctx + self.n_prime

    @property
    def block_ctx(self) -> int:
        return self.n_ctx_total // self.blocks

    @property
    def model_bins(self) -> int:
        """Vocabulary of the transformer: music codes, plus the lyric characters in front for 1b_lyrics."""
        return self.bins + (self.n_vocab if self.single_enc_dec else 0)

    @property
    def music_shift(self) -> int:
        """Offset of music code 0 in the transformer's vocabulary (79 for 1b_lyrics)."""
        return self.n_vocab if self.single_enc_dec else 0

    @property
    def y_len(self) -> int:
        """[total_length, offset, sample_length, artist, genre x max_bow_genre_size, lyrics x n_tokens]."""
        return 4 + self.max_bow_genre_size + self.n_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PriorConfig":
        return from_dict(cls, d)

    @classmethod
    def from_hparams(cls, hps: dict[str, Any], vqvae: VQVAEConfig = OFFICIAL_VQVAE) -> "PriorConfig":
        """Reference hparams (e.g. ``hparams_consulted_by_make_prior``) -> config.

        The hop and the conditioner's upsampling come from the VQ-VAE, as in the reference ``make_prior``.
        """
        level, levels = hps["level"], vqvae.levels
        lyrics = bool(hps.get("use_tokens")) and hps.get("n_tokens", 0) > 0
        kw: dict[str, Any] = dict(
            level=level, n_ctx=hps["n_ctx"], width=hps["prior_width"], depth=hps["prior_depth"],
            heads=hps["heads"], attn_order=hps["attn_order"], blocks=hps["blocks"],
            raw_to_tokens=vqvae.hop_lengths[level], levels=levels, bins=vqvae.l_bins,
            m_attn=hps["m_attn"], m_mlp=hps["m_mlp"], merged_decoder=hps["merged_decoder"],
            fp16_params=hps["fp16_params"], genre_bins=hps["y_bins"][0], artist_bins=hps["y_bins"][1],
            max_bow_genre_size=hps["max_bow_genre_size"], labels_v3=hps["labels_v3"], sample_rate=hps["sr"],
            alignment_layer=hps.get("alignment_layer"), alignment_head=hps.get("alignment_head"),
        )
        if level == levels - 1:
            kw.update(t_bins=hps["t_bins"], min_duration=hps["min_duration"], max_duration=hps["max_duration"])
        else:
            kw.update(cond_down_t=vqvae.downs_t[level + 1], cond_stride=vqvae.strides_t[level + 1],
                      cond_width=hps["cond_width"], cond_depth=hps["cond_depth"], cond_m_conv=hps["cond_m_conv"],
                      cond_dilation_growth_rate=hps["cond_dilation_growth_rate"],
                      cond_dilation_cycle=hps["cond_dilation_cycle"], cond_res_scale=hps["cond_res_scale"])
        if lyrics:
            kw.update(n_tokens=hps["n_tokens"], n_vocab=hps["n_vocab"], single_enc_dec=hps["single_enc_dec"],
                      prime_loss_fraction=hps["prime_loss_fraction"])
            if not hps["single_enc_dec"]:
                kw.update({k: hps[k] for k in ("prime_width", "prime_depth", "prime_heads", "prime_attn_order",
                                               "prime_blocks", "prime_m_attn", "prime_m_mlp")})
        return cls(**kw)

    def to_hparams(self, vqvae: VQVAEConfig = OFFICIAL_VQVAE) -> dict[str, Any]:
        """The reference hparams that ``from_hparams`` reads back into this config (with ``vqvae``'s hops and
        bins): what a checkpoint in the official container carries so that it describes itself."""
        hps: dict[str, Any] = dict(
            level=self.level, n_ctx=self.n_ctx, prior_width=self.width, prior_depth=self.depth, heads=self.heads,
            attn_order=self.attn_order, blocks=self.blocks, m_attn=self.m_attn, m_mlp=self.m_mlp,
            merged_decoder=self.merged_decoder, fp16_params=self.fp16_params,
            y_bins=[self.genre_bins, self.artist_bins], max_bow_genre_size=self.max_bow_genre_size,
            labels_v3=self.labels_v3, sr=self.sample_rate, alignment_layer=self.alignment_layer,
            alignment_head=self.alignment_head, use_tokens=self.n_tokens > 0, n_tokens=self.n_tokens,
            t_bins=self.t_bins, min_duration=self.min_duration, max_duration=self.max_duration,
            cond_width=self.cond_width, cond_depth=self.cond_depth, cond_m_conv=self.cond_m_conv,
            cond_dilation_growth_rate=self.cond_dilation_growth_rate, cond_dilation_cycle=self.cond_dilation_cycle,
            cond_res_scale=self.cond_res_scale, n_vocab=self.n_vocab, single_enc_dec=self.single_enc_dec,
            prime_loss_fraction=self.prime_loss_fraction, prime_width=self.prime_width,
            prime_depth=self.prime_depth, prime_heads=self.prime_heads, prime_attn_order=self.prime_attn_order,
            prime_blocks=self.prime_blocks, prime_m_attn=self.prime_m_attn, prime_m_mlp=self.prime_m_mlp,
            l_bins=vqvae.l_bins, levels=vqvae.levels)
        return hps


def prior_kind(cfg: PriorConfig) -> str:
    """The official model family a prior config belongs to: ``upsampler``, ``1b_lyrics`` (one stream of lyrics
    and music), ``5b_lyrics`` (a separate lyric encoder) or ``5b`` (any other top prior)."""
    if not cfg.is_top:
        return "upsampler"
    if cfg.single_enc_dec:
        return "1b_lyrics"
    return "5b_lyrics" if cfg.has_lyric_encoder else "5b"


_UPSAMPLER = dict(n_ctx=8192, width=1920, depth=72, heads=1, attn_order=2, blocks=128)
_TOP = dict(level=2, raw_to_tokens=128, fp16_params=True, merged_decoder=True, max_duration=600.0)

OFFICIAL_PRIORS: dict[str, PriorConfig] = {
    "upsampler_level_0": PriorConfig(level=0, raw_to_tokens=8, **_UPSAMPLER),
    "upsampler_level_1": PriorConfig(level=1, raw_to_tokens=32, cond_res_scale=True, **_UPSAMPLER),
    "5b": PriorConfig(n_ctx=8192, width=4800, depth=72, heads=8, attn_order=2, blocks=128, min_duration=60.0,
                      **_TOP),
    "5b_lyrics": PriorConfig(n_ctx=8192, width=4800, depth=79, heads=8, attn_order=10, blocks=128,
                             min_duration=23.8, n_tokens=512, n_vocab=80, prime_loss_fraction=0.4,
                             alignment_layer=68, alignment_head=2, **_TOP),
    "1b_lyrics": PriorConfig(level=2, raw_to_tokens=128, n_ctx=6144, width=2048, depth=72, heads=2, attn_order=12,
                             blocks=64, genre_bins=604, artist_bins=7898, max_bow_genre_size=1, labels_v3=True,
                             t_bins=64, min_duration=17.84, max_duration=600.0, n_tokens=384, n_vocab=79,
                             single_enc_dec=True, prime_loss_fraction=0.4, alignment_layer=63, alignment_head=0),
}
"""The official top-level priors ("5b", "5b_lyrics", "1b_lyrics") and the two upsamplers they share."""
