"""The codec demo the README's main command runs until the engine and its default model exist.

It trains a small VQ-VAE on the bundled example for a short while (so there is something real to hear),
then encodes the example and decodes it from each level, writing one WAV per level and printing the
spectral convergence of each: level 0 should sound and measure best, level 2 coarsest.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from engine.generate.codec import decode_codes, encode_audio
from engine.io import audio
from engine.io.codes import CodesFile
from engine.model.config import VQVAEConfig
from engine.model.losses import spectral_convergence
from engine.model.vqvae import VQVAE
from engine.train.vqvae import TrainConfig, VQVAETrainer

EXAMPLE = "pluck_phrase.flac"
DEMO_CONFIG = VQVAEConfig(width=16, depth=3, multipliers=(1, 1, 1), emb_width=32, l_bins=256, linf_k=512)


def example_path() -> Path:
    return Path(str(resources.files("engine") / "data" / "examples" / EXAMPLE))


def run_demo(out_dir: Path, seconds: float = 60.0, seed: int = 0, log=print) -> dict[int, float]:
    """Train for ``seconds`` of wall time, then round-trip the example; returns level -> spectral convergence."""
    torch.manual_seed(seed)
    x = audio.to_model_input(audio.read_region(example_path()))
    model = VQVAE(DEMO_CONFIG)
    trainer = VQVAETrainer(model, TrainConfig(lr=3e-3, seed=seed))
    rng = np.random.default_rng(seed)
    crop, t0 = 8192, time.monotonic()
    while time.monotonic() - t0 < seconds:
        starts = rng.integers(0, len(x) - crop, size=4)
        m = trainer.step(torch.from_numpy(np.stack([x[s:s + crop] for s in starts])))
        if trainer.steps % 10 == 0:
            log(f"step {trainer.steps:4d}  loss {m['loss']:.1f}  codes alive {m['alive_l1']}/{m['alive_l3']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    codes = CodesFile(encode_audio(model, x), model.hop_lengths, n_samples=len(x), model="demo")
    scores = {}
    for level in sorted(codes.codes):
        y = decode_codes(model, codes, level)[0]
        scores[level] = float(spectral_convergence(torch.from_numpy(x)[None], torch.from_numpy(y)[None]))
        path = audio.write_audio(audio.unique_path(out_dir, f"example-level{level}"), y, 44100)
        log(f"level {level}: spectral convergence {scores[level]:.3f} -> {path}")
    return scores
