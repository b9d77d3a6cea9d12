"""Conditioning of the Jukebox priors (paper section 3.3): labels, timing, and the codes of the level above.

- ``LabelConditioner``: artist + bag of genres -> the start token ``y_cond`` (the input at position 0),
  and at the top level three timing ``RangeEmbedding``s summed into a per-position ``x_cond``.
- ``UpperLevelConditioner``: an upsampler's view of the level above: embed those codes, upsample them
  to this level's rate with a VQ-VAE-style ``DecoderBlock``, LayerNorm -> per-position ``x_cond``.

All take the label vector ``y`` already windowed (``SimplePrior.get_y`` in the reference):
[total_length, offset, sample_length (all in samples), artist, genre x max_bow_genre_size (-1 = empty)].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import PriorConfig
from .transformer import LayerNorm
from .vqvae import DecoderBlock


class RangeEmbedding(nn.Module):
    """Embed where a window lies in [pos_min, pos_max): ``n_time`` interpolated positions, each binned.

    Positions are start + (end - start)·k/n_time for k < n_time, binned as floor(bins·(pos - min)/(max - min)),
    all in float32 as in the reference (float64 gives different bins at some edges).
    """

    def __init__(self, n_time: int, bins: int, pos_min: float, pos_max: float, width: int, clamp: bool = False):
        super().__init__()
        self.n_time, self.n_bins, self.pos_min, self.pos_max, self.clamp = n_time, bins, pos_min, pos_max, clamp
        self.emb = nn.Embedding(bins, width)

    def bins(self, start: Tensor, end: Tensor | None = None) -> Tensor:
        """start, end: float32 (N, 1) -> int64 bins (N, n_time). Only the relative range clamps ``end``."""
        if not ((self.pos_min <= start) & (start < self.pos_max)).all():
            raise ValueError(f"window start {start.flatten().tolist()} outside [{self.pos_min}, {self.pos_max}) "
                             "(lengths and offsets are in samples, not seconds)")
        if self.n_time == 1:
            position = start
        else:
            if self.clamp:
                end = end.clamp(self.pos_min, self.pos_max)
            if not ((self.pos_min <= end) & (end <= self.pos_max)).all():
                raise ValueError(f"window end {end.flatten().tolist()} outside [{self.pos_min}, {self.pos_max}]")
            frac = torch.arange(self.n_time, dtype=torch.float32, device=start.device).view(1, -1) / self.n_time
            position = start + (end - start) * frac  # (N, n_time)
        normalised = (position - self.pos_min) / (self.pos_max - self.pos_min)
        return (self.n_bins * normalised).floor().long()

    def forward(self, start: Tensor, end: Tensor | None = None) -> Tensor:
        return self.emb(self.bins(start, end))  # (N, n_time, width)


class LabelConditioner(nn.Module):
    """y[:, :4 + max_bow_genre_size] -> (start token (N, 1, width), timing x_cond (N, n_ctx, width) or None)."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.max_bow_genre_size = cfg.max_bow_genre_size
        self.genre_emb = nn.Embedding(cfg.genre_bins, cfg.width)
        self.artist_emb = nn.Embedding(cfg.artist_bins, cfg.width)
        self.has_timing = cfg.has_timing
        if self.has_timing:
            sr, n, bins, w = cfg.sample_rate, cfg.n_ctx, cfg.t_bins, cfg.width
            self.total_length_emb = RangeEmbedding(1, bins, cfg.min_duration * sr, cfg.max_duration * sr, w)
            self.absolute_pos_emb = RangeEmbedding(n, bins, 0.0, cfg.max_duration * sr, w)
            self.relative_pos_emb = RangeEmbedding(n, bins, 0.0, 1.0, w, clamp=True)

    def start_embedding(self, labels: Tensor) -> Tensor:
        """artist_emb + sum of genre_emb over the slots that are not -1: the input at position 0."""
        artist, genre = labels[:, 3:4], labels[:, 4 : 4 + self.max_bow_genre_size]
        mask = (genre >= 0).float().unsqueeze(2)  # (N, n_genre_slots, 1)
        genre_emb = (self.genre_emb(genre.clamp(min=0)) * mask).sum(dim=1, keepdim=True)
        return genre_emb + self.artist_emb(artist)

    def timing_bins(self, labels: Tensor) -> dict[str, Tensor]:
        """Bin indices of the three timing embeddings: total length (N, 1), absolute and relative (N, n_ctx)."""
        total, start = labels[:, 0:1].float(), labels[:, 1:2].float()
        end = (labels[:, 1:2] + labels[:, 2:3]).float()
        return {"total_length_emb": self.total_length_emb.bins(total),
                "absolute_pos_emb": self.absolute_pos_emb.bins(start, end),
                "relative_pos_emb": self.relative_pos_emb.bins(start / total, end / total)}

    def timing_embedding(self, labels: Tensor) -> Tensor:
        bins = self.timing_bins(labels)
        return (self.total_length_emb.emb(bins["total_length_emb"]) + self.absolute_pos_emb.emb(bins["absolute_pos_emb"])
                + self.relative_pos_emb.emb(bins["relative_pos_emb"]))

    def forward(self, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        if labels.dim() != 2 or labels.shape[1] != 4 + self.max_bow_genre_size:
            raise ValueError(f"labels must be (N, {4 + self.max_bow_genre_size}); got {tuple(labels.shape)}")
        return self.start_embedding(labels), self.timing_embedding(labels) if self.has_timing else None


class UpperLevelConditioner(nn.Module):
    """Codes of the level above (N, T_up) -> x_cond (N, T_up·stride**down_t, width): embed, upsample, LayerNorm.

    The upsampling stack is a VQ-VAE decoder block (3-tap conv, then per stage a dilated resnet and a
    transposed conv) with dilations 3^(i mod cycle) *not* reversed.
    """

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.x_emb = nn.Embedding(cfg.bins, cfg.width)
        self.decoder = DecoderBlock(cfg.width, cfg.cond_down_t, cfg.cond_stride, cfg.cond_width, cfg.cond_depth,
                                    cfg.cond_m_conv, cfg.cond_dilation_growth_rate, cfg.cond_dilation_cycle,
                                    scale_residual=cfg.cond_res_scale, reverse_dilation=False)
        self.ln = LayerNorm(cfg.width)
        self.upsampling = cfg.upsampling

    def forward(self, codes: Tensor) -> Tensor:
        x = self.x_emb(codes).transpose(1, 2)  # (N, width, T_up)
        return self.ln(self.decoder(x).transpose(1, 2))  # (N, T_up * upsampling, width)
