"""Held-out metrics of a model folder: what the default model's card and its test report.

* VQ-VAE: spectral convergence (``losses.spectral_convergence``, the paper's Table 1 metric) of each
  level's reconstruction; lower is better.
* Priors: bits per token of held-out codes under teacher forcing (``Prior.losses``), the top level
  against two unigram baselines over the same codes: the codes' own empirical entropy (the best any
  context-free model could do, optimistic on few tokens) and the cross-entropy of the training set's
  code frequencies (what a context-free model trained on the same data actually gets).

Held-out clips are stored as FLAC beside a JSON of their labels, so a test needs only the repository.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from engine.model.losses import spectral_convergence
from engine.weights.bundle import Models


def entropy_bits(codes: np.ndarray, bins: int) -> float:
    p = np.bincount(codes.ravel(), minlength=bins).astype(np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


def cross_entropy_bits(codes: np.ndarray, counts: np.ndarray) -> float:
    """Bits per token of ``codes`` under add-one-smoothed frequencies ``counts``."""
    q = (counts.astype(np.float64) + 1.0) / (counts.sum() + len(counts))
    return float(-np.log2(q[codes.ravel()]).mean())


def save_clips(folder: Path, clips: list[dict], train_top_counts: np.ndarray) -> None:
    """clips: {"id", "audio" (T,), "sr", "artist", "genre", "total", "offset"} -> FLACs + heldout.json."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = []
    for c in clips:
        sf.write(folder / f"{c['id']}.flac", c["audio"], c["sr"], subtype="PCM_16")
        meta.append({k: c[k] for k in ("id", "sr", "artist", "genre", "total", "offset")})
    (folder / "heldout.json").write_text(json.dumps({"clips": meta, "train_top_counts": train_top_counts.tolist()}))


def load_clips(folder: Path) -> tuple[list[dict], np.ndarray]:
    doc = json.loads((folder / "heldout.json").read_text())
    clips = []
    for m in doc["clips"]:
        x, _ = sf.read(folder / f"{m['id']}.flac", dtype="float32")
        clips.append({**m, "audio": x})
    return clips, np.array(doc["train_top_counts"])


def _y(models: Models, level: int, clip: dict, start_token: int) -> torch.Tensor:
    cfg = models.priors[level].cfg
    ids = [models.vocab[k].ids.get(clip[k], 0) if models.vocab else 0 for k in ("artist", "genre")]
    offset = clip["offset"] + start_token * cfg.raw_to_tokens
    return torch.tensor([[clip["total"], offset, cfg.n_ctx * cfg.raw_to_tokens, ids[0],
                          ids[1], *[-1] * (cfg.max_bow_genre_size - 1)]])


@torch.no_grad()
def evaluate(models: Models, clips: list[dict], train_top_counts: np.ndarray | None = None) -> dict:
    """Per-level spectral convergence and bits per token over the clips (token-weighted means)."""
    vq, levels = models.vqvae, models.levels
    top_hop = vq.hop_lengths[-1]
    sc = [[] for _ in range(levels)]
    bits = [[0.0, 0] for _ in range(levels)]
    top_codes = []
    for clip in clips:
        x = torch.from_numpy(clip["audio"][: len(clip["audio"]) // top_hop * top_hop])[None]
        zs = vq.encode(x)
        for lv in range(levels):
            rec = vq.decode(zs[lv], lv)
            sc[lv].append(float(spectral_convergence(x, rec)))
        top_codes.append(zs[-1].numpy())
        for lv, prior in enumerate(models.priors):
            cfg = prior.cfg
            up = cfg.cond_stride**cfg.cond_down_t if cfg.has_upper_conditioner else 1
            n = zs[lv].shape[1]
            for s in range(0, n, cfg.n_ctx):
                e = min(n, s + cfg.n_ctx) // up * up
                if e - s < up:
                    continue
                upper = zs[lv + 1][:, s // up: e // up] if cfg.has_upper_conditioner else None
                b = float(prior.losses(zs[lv][:, s:e], _y(models, lv, clip, s), upper)["bpd"])
                bits[lv][0] += b * (e - s)
                bits[lv][1] += e - s
    codes = np.concatenate([c.ravel() for c in top_codes])
    out = {"spectral_convergence": [float(np.mean(v)) for v in sc],
           "spectral_convergence_db": [20 * math.log10(max(float(np.mean(v)), 1e-9)) for v in sc],
           "bits_per_token": [b / max(1, n) for b, n in bits],
           "top_unigram_entropy": entropy_bits(codes, vq.cfg.l_bins), "top_tokens": int(codes.size)}
    if train_top_counts is not None:
        out["top_unigram_train_cross_entropy"] = cross_entropy_bits(codes, train_top_counts)
    return out
