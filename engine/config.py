"""Frozen configuration dataclasses and the official hyperparameter sets.

Configs travel explicitly into every module; nothing reads globals. ``to_dict``/``from_dict`` let a
checkpoint describe itself (the JSON written beside a safetensors file).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

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
        return _from_dict(cls, d)


def _from_dict(cls, d: dict[str, Any]):
    """Build a frozen dataclass from JSON, turning lists back into tuples and refusing unknown keys."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields are {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


OFFICIAL_VQVAE = VQVAEConfig()
