"""Recompute a shared prior parity fixture (``jukebox_reference/priors/<name>/``) with our ``Prior``.

``fixture_outputs(dir)`` returns our values under the fixture's own file names, so a parity runner only
has to compare like with like:

- ``logits_teacher_forced``, ``logits_incremental_first64`` (one-token KV-cache calls), ``cond_y_start_token``,
  ``cond_x_cond`` (music positions), ``tokens_merged_lyrics_then_music`` (1b only): arrays;
- ``timing_bins``: {name: int array} as in ``timing_bins.npz`` (top-level priors only);
- ``losses``: {loss, bpd, prime_loss, gen_loss} in bits, as ``results.json``;
- ``logits_prefill_100_plus_1``: positions 0..100 from a chunked prefill of 100 positions plus one step
  (chunk 32, 16 for 5b), to compare with ``logits_teacher_forced[:, :101]``;
- ``logits_incremental_first64_fp16``: the same one-token calls in the official fp16 sampling precision;
  compare with ``logits_teacher_forced[:, :64]`` (within 3 % of its std; see ``results.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine.model.config import PriorConfig
from engine.model.prior import START, Prior
from engine.weights.bundle import load_prior


def load_fixture_prior(fixture_dir: str | Path, checkpoint: str | Path | None = None) -> Prior:
    """Build the fixture's prior from its ``hparams.json`` and load its checkpoint (official or HF layout)."""
    d = Path(fixture_dir)
    hps = json.loads((d / "hparams.json").read_text())
    cfg = PriorConfig.from_hparams(hps["hparams_consulted_by_make_prior"])
    if checkpoint is None:
        found = sorted(d.glob("*.pth.tar"))
        if len(found) != 1:
            raise ValueError(f"{d}: expected one *.pth.tar checkpoint, found {[p.name for p in found]}; pass --checkpoint.")
        checkpoint = found[0]
    return load_prior(checkpoint, cfg)


def _array(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


@torch.no_grad()
def fixture_outputs(fixture_dir: str | Path, prior: Prior | None = None) -> dict[str, object]:
    d = Path(fixture_dir)
    prior = load_fixture_prior(d) if prior is None else prior
    cfg = prior.cfg
    tokens = torch.from_numpy(np.load(d / "tokens.npy"))
    y = torch.from_numpy(np.load(d / "y.npy"))
    upper = d / "z_cond_upper_level_codes.npy"
    upper_codes = torch.from_numpy(np.load(upper)) if upper.exists() else None

    cond = prior.conditioning(y, upper_codes)
    seq = prior.to_model_tokens(tokens, y)
    out: dict[str, object] = {
        "logits_teacher_forced": _array(prior.logits(seq, cond)),
        "cond_y_start_token": _array(cond.y_cond),
        "cond_x_cond": _array(cond.x_cond[:, cfg.n_prime :]),
        "losses": {k: float(v) for k, v in prior.losses(tokens, y, upper_codes).items()},
    }
    if cfg.single_enc_dec:
        out["tokens_merged_lyrics_then_music"] = _array(seq)
    if cfg.has_timing:
        n_labels = 4 + cfg.max_bow_genre_size
        out["timing_bins"] = {k: _array(v) for k, v in prior.labels.timing_bins(y[:, :n_labels]).items()}

    inputs = torch.nn.functional.pad(seq, (1, 0), value=START)  # the input entering each position
    cache = prior.start_cache(cond)
    out["logits_incremental_first64"] = _array(torch.cat([prior.step(cache, inputs[:, t : t + 1]) for t in range(64)], 1))
    cache = prior.start_cache(cond)
    chunk = 16 if cfg.merged_decoder else 32
    prefill = prior.prefill(cache, seq[:, :99], chunk_size=chunk)  # positions 0..99
    out["logits_prefill_100_plus_1"] = _array(torch.cat([prefill, prior.step(cache, seq[:, 99:100])], dim=1))
    cond16 = prior.conditioning(y, upper_codes, torch.float16)
    cache = prior.start_cache(cond16, torch.float16)  # the official sampling precision
    out["logits_incremental_first64_fp16"] = _array(torch.cat([prior.step(cache, inputs[:, t : t + 1])
                                                               for t in range(64)], 1))
    return out
