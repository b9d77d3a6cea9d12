"""One level's prior (paper section 3.2-3.4): an autoregressive transformer over that level's codes.

The input at position t is the embedding of token t-1 (at t = 0 the start token: the artist/genre
embedding), plus a learned position embedding and a per-position ``x_cond`` (upper-level codes for the
upsamplers, timing for the top level). The output at t scores token t.

Level variants (all from ``PriorConfig``):
- upsamplers and 1b_lyrics: ``x_out`` tied to ``x_emb`` and x_cond added again after the stack;
- 5b / 5b_lyrics ("merged decoder"): untied ``x_out``, no second add;
- 1b_lyrics: one stream [lyrics | music + 79] over a merged vocabulary of 79 + 2048 ids; PRIME layers
  attend to the lyric prefix;
- 5b_lyrics: a separate lyric encoder whose projected states are the keys/values of ENC_DEC layers.

Two ways to run it: ``forward`` (teacher forcing over a whole window) and ``start_cache``/``step``
(incremental, with per-layer KV caches) for a sampling loop. Both agree to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import KVCache
from .conditioners import LabelConditioner, UpperLevelConditioner
from .config import PriorConfig
from .transformer import Conv1D, LayerNorm, Transformer

START = -1
"""Marks the input of position 0, where the start token (label embedding) goes instead of a code."""


class AutoregressiveLM(nn.Module):
    """The reference ``ConditionalAutoregressive2D``: embeddings, a ``Transformer`` and the output head."""

    def __init__(self, bins: int, width: int, depth: int, heads: int, attn_order: int, blocks: int, n_ctx: int,
                 m_attn: float, m_mlp: float, *, learned_start: bool = False, head: bool = True,
                 tied_head: bool = False, add_cond_after: bool = False, prime_len: int | None = None):
        super().__init__()
        if learned_start:  # only the lyric encoder; priors start from their label embedding
            self.start_token = nn.Parameter(torch.randn(1, width))
        self.x_emb = nn.Embedding(bins, width)
        self.pos_emb = nn.Embedding(n_ctx, width)  # learned absolute positions 0..n_ctx-1 of the window
        self.transformer = Transformer(width, depth, heads, attn_order, blocks, n_ctx, m_attn, m_mlp, prime_len)
        if head:
            self.x_out = nn.Linear(width, bins, bias=False)
            if tied_head:
                self.x_out.weight = self.x_emb.weight
        self.bins, self.n_ctx, self.add_cond_after = bins, n_ctx, add_cond_after

    def forward(self, inputs: Tensor, start: Tensor | None = None, x_cond: Tensor | None = None,
                encoder_kv: Tensor | None = None, cache: list[KVCache] | None = None, t0: int = 0,
                dtype: torch.dtype | None = None, *, validate: bool = True) -> Tensor:
        """inputs (N, C): the tokens entering positions [t0, t0 + C), START at position 0.

        start (N, 1, width): the start token (default: the learned one). x_cond (N, C, width) for these
        positions or None. ``dtype`` (e.g. float16) runs the stack in that precision, as the reference's
        fp16 sampling does; embeddings, LayerNorm, softmax and the head stay fp32. Returns fp32 logits
        (N, C, bins), or the final states without a head.

        ``validate=False`` skips the token checks (each costs a device sync): for a sampling loop feeding
        back tokens it drew itself, after the window's first, validated call.
        """
        n, c = inputs.shape
        if t0 + c > self.n_ctx:
            raise ValueError(f"positions up to {t0 + c} exceed the context of {self.n_ctx}")
        if validate:
            self.check_inputs(inputs, t0)
        m = self._modules  # per-token hot path: dict lookups and forward calls, not nn.Module machinery
        if t0 == 0:  # START can only enter position 0
            is_start = inputs == START
            start = self.start_token if start is None else start
            x = m["x_emb"].forward(inputs.clamp(min=0))
            x = torch.where(is_start[..., None], start.view(-1, 1, x.shape[-1]).to(x.dtype), x)
        else:
            x = m["x_emb"].forward(inputs)
        x = x + m["pos_emb"]._parameters["weight"][t0 : t0 + c]
        if x_cond is not None:
            x = x + x_cond
        if dtype is not None and dtype != x.dtype:
            x = x.to(dtype)
        x = m["transformer"].forward(x, encoder_kv, cache, t0)
        if x.dtype != torch.float32:
            x = x.float()
        if x_cond is not None and self.add_cond_after:
            x = x + x_cond
        return m["x_out"].forward(x) if "x_out" in m else x

    def check_inputs(self, inputs: Tensor, t0: int) -> None:
        """START exactly at position 0 and every other token in [0, bins); raises ValueError."""
        is_start = inputs == START
        start_ok = bool(is_start[:, 0].all()) if t0 == 0 else not bool(is_start[:, 0].any())
        if not start_ok or bool(is_start[:, 1:].any()):
            raise ValueError("START must be the input of position 0 and only there")
        if not bool(((inputs >= 0) & (inputs < self.bins) | is_start).all()):
            raise ValueError(f"tokens must lie in [0, {self.bins})")


class LyricEncoder(nn.Module):
    """5b_lyrics: a causal transformer over the window's lyric tokens -> keys/values of the ENC_DEC layers."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.lm = AutoregressiveLM(cfg.n_vocab, cfg.prime_width, cfg.prime_depth, cfg.prime_heads,
                                   cfg.prime_attn_order, cfg.prime_blocks, cfg.n_tokens, cfg.prime_m_attn,
                                   cfg.prime_m_mlp, learned_start=True, head=False)
        self.proj = Conv1D(cfg.prime_width, cfg.width)
        self.ln = LayerNorm(cfg.width)
        self.lm_head = nn.Linear(cfg.width, cfg.n_vocab, bias=False)  # lyric loss (training only)

    def forward(self, lyrics: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """(N, n_tokens) -> encoder_kv (N, n_tokens, width), fp32 (cast by the ENC_DEC layers)."""
        inputs = F.pad(lyrics[:, :-1], (1, 0), value=START)
        return self.ln(self.proj(self.lm(inputs, dtype=dtype))).float()


@dataclass
class Conditioning:
    """Everything a window's tokens are conditioned on, computed once per window."""

    y_cond: Tensor  # (N, 1, width) start token
    x_cond: Tensor | None  # (N, n_ctx_total, width) per position (zeros on 1b's lyric prefix)
    encoder_kv: Tensor | None = None  # (N, n_tokens, width): 5b_lyrics lyric encoder states
    lyrics: Tensor | None = None  # (N, n_tokens) the window's lyric tokens


@dataclass
class DecodeCache:
    """State of an incremental decode: conditioning, per-layer KV caches and the next position ``t``."""

    cond: Conditioning
    layers: list[KVCache] = field(repr=False)
    t: int = 0
    dtype: torch.dtype | None = None  # transformer precision (None: the weights' own, fp32)


class Prior(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.has_upper_conditioner:
            self.x_cond_net = UpperLevelConditioner(cfg)
        self.labels = LabelConditioner(cfg)
        if cfg.has_lyric_encoder:
            self.lyric_encoder = LyricEncoder(cfg)
        self.lm = AutoregressiveLM(cfg.model_bins, cfg.width, cfg.depth, cfg.heads, cfg.attn_order, cfg.blocks,
                                   cfg.n_ctx_total, cfg.m_attn, cfg.m_mlp, tied_head=not cfg.merged_decoder,
                                   add_cond_after=not cfg.merged_decoder,
                                   prime_len=cfg.n_prime or None)

    # ------------------------------------------------------------------------------------ conditioning

    def conditioning(self, y: Tensor, upper_codes: Tensor | None = None,
                     dtype: torch.dtype | None = None) -> Conditioning:
        """y (N, y_len) int64, already windowed; upper_codes (N, T_up): the upsamplers' level-above codes.

        ``dtype`` is the precision of the 5b_lyrics lyric encoder's transformer (see ``AutoregressiveLM``).
        """
        cfg = self.cfg
        if y.dim() != 2 or y.shape[1] != cfg.y_len:
            raise ValueError(f"y must be (N, {cfg.y_len}) for this prior; got {tuple(y.shape)}")
        n_labels = 4 + cfg.max_bow_genre_size
        labels, lyrics = y[:, :n_labels], y[:, n_labels:]
        y_cond, x_cond = self.labels(labels)
        if cfg.has_upper_conditioner:
            if upper_codes is None:
                raise ValueError(f"the level-{cfg.level} upsampler needs the codes of level {cfg.level + 1}")
            x_cond = self.x_cond_net(upper_codes)
        if cfg.single_enc_dec:  # no conditioning on the lyric prefix
            x_cond = torch.cat([x_cond.new_zeros(x_cond.shape[0], cfg.n_prime, x_cond.shape[2]), x_cond], dim=1)
        encoder_kv = self.lyric_encoder(lyrics, dtype) if cfg.has_lyric_encoder else None
        return Conditioning(y_cond, x_cond, encoder_kv, lyrics if cfg.n_tokens else None)

    # ------------------------------------------------------------------------------ token vocabularies

    def to_model_tokens(self, tokens: Tensor, y: Tensor) -> Tensor:
        """Music codes (N, T) -> the transformer's sequence: for 1b_lyrics [lyrics | codes + 79]."""
        if not self.cfg.single_enc_dec:
            return tokens
        return torch.cat([y[:, y.shape[1] - self.cfg.n_tokens :], tokens + self.cfg.music_shift], dim=1)

    def from_model_tokens(self, seq: Tensor) -> Tensor:
        """Inverse of ``to_model_tokens``; like the reference, a lyric id sampled as music clamps to code 0."""
        if not self.cfg.single_enc_dec:
            return seq
        return (seq[:, self.cfg.n_prime :] - self.cfg.music_shift).clamp(min=0)

    # -------------------------------------------------------------------------------- teacher forcing

    def forward(self, tokens: Tensor, y: Tensor, x_cond_codes: Tensor | None = None) -> Tensor:
        """Music codes (N, T), labels y, upper codes -> logits (N, T_model, model_bins); T_model = n_prime + T."""
        cond = self.conditioning(y, x_cond_codes)
        return self.logits(self.to_model_tokens(tokens, y), cond)

    def logits(self, seq: Tensor, cond: Conditioning, dtype: torch.dtype | None = None) -> Tensor:
        """Teacher-forced logits over a model-vocabulary sequence (N, T) starting at position 0."""
        inputs = F.pad(seq[:, :-1], (1, 0), value=START)
        x_cond = None if cond.x_cond is None else cond.x_cond[:, : seq.shape[1]]
        return self.lm(inputs, cond.y_cond, x_cond, cond.encoder_kv, dtype=dtype)

    def losses(self, tokens: Tensor, y: Tensor, x_cond_codes: Tensor | None = None,
               weights: Tensor | None = None) -> dict[str, Tensor]:
        """Cross-entropies in bits per token, weighted as the reference's training loss.

        ``weights`` (N, T), optional: how much each music token counts in ``loss`` (training down-weights the
        codes of near-silence, which otherwise teach a continuation to fade out); ``bpd`` is always the plain mean,
        the figure held-out evaluation reports."""
        cfg = self.cfg
        cond = self.conditioning(y, x_cond_codes)
        seq = self.to_model_tokens(tokens, y)
        logits = self.logits(seq, cond)
        bits = lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1)) / math.log(2.0)  # noqa: E731
        n_prime = cfg.n_prime
        gen_logits, gen_targets = logits[:, n_prime:], seq[:, n_prime:]
        per_token = F.cross_entropy(gen_logits.transpose(1, 2), gen_targets, reduction="none") / math.log(2.0)
        gen = per_token.mean()
        fit = gen if weights is None else (per_token * weights).sum() / weights.sum().clamp(min=1e-8)
        if cfg.single_enc_dec:
            prime = bits(logits[:, :n_prime], seq[:, :n_prime])
        elif cfg.has_lyric_encoder:
            prime = bits(self.lyric_encoder.lm_head(cond.encoder_kv), cond.lyrics)
        else:
            prime = gen.new_zeros(())
        n_gen, n_tok = tokens.shape[1], cfg.n_tokens
        loss = (cfg.prime_loss_fraction * prime * n_tok + fit * n_gen) / (n_tok + n_gen)
        return {"loss": loss, "bpd": gen, "prime_loss": prime, "gen_loss": gen}

    # ------------------------------------------------------------------------------- incremental use

    def start_cache(self, cond: Conditioning, dtype: torch.dtype | None = None) -> DecodeCache:
        """An empty decode state for one window; feed it with ``step`` (or ``prefill``).

        ``dtype=torch.float16`` gives the reference's sampling precision: fp16 activations and KV cache.
        """
        return DecodeCache(cond, self.lm.transformer.new_cache(), dtype=dtype)

    @torch.no_grad()
    def step(self, cache: DecodeCache, inputs: Tensor, *, validate: bool = True) -> Tensor:
        """Feed the inputs of the next C positions and return their fp32 logits (N, C, model_bins).

        inputs (N, C) are the tokens *entering* positions [t, t + C): START at position 0, then each
        position's previous token. Row i scores the token at position t + i, so after feeding
        [START, x_0 .. x_{k-1}] the last row is the distribution of x_k; sample it (temperature, top-k/p
        outside) and feed it back as a (N, 1) step. Any chunking gives the same logits as ``forward``.

        ``validate=False`` skips the input checks (see ``AutoregressiveLM.forward``); a sampling loop uses it
        for the tokens it drew itself. Gradients are off either way.
        """
        return self.step_unchecked(cache, inputs, validate=validate)

    def step_unchecked(self, cache: DecodeCache, inputs: Tensor, *, validate: bool = False) -> Tensor:
        """``step`` without its ``no_grad`` wrapper (call it under ``torch.no_grad``/``inference_mode``)."""
        t, c = cache.t, inputs.shape[1]
        x_cond = None if cache.cond.x_cond is None else cache.cond.x_cond[:, t : t + c]
        logits = self.lm(inputs, cache.cond.y_cond, x_cond, cache.cond.encoder_kv, cache.layers, t, cache.dtype,
                         validate=validate)
        cache.t += c
        return logits

    @torch.no_grad()
    def prefill(self, cache: DecodeCache, tokens: Tensor, chunk_size: int = 32) -> Tensor:
        """Feed START and the known tokens (N, L) of a fresh cache in chunks -> logits (N, L + 1, model_bins).

        Row L is the distribution of the first new token. The reference's chunk sizes are 32 for the
        upsamplers and 1b_lyrics, 16 for 5b.
        """
        if cache.t != 0:
            raise ValueError("prefill starts a window; use step() to continue one")
        inputs = F.pad(tokens, (1, 0), value=START)
        return torch.cat([self.step(cache, chunk) for chunk in inputs.split(chunk_size, dim=1)], dim=1)
