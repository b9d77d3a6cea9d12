"""A repeatable listening check: continuations and re-renders of the bundled prime, with spectrograms.

``jukebox-bridge listen --out DIR`` renders, through the same ``generate.render.render`` a DAW request uses,
a few takes from ``engine/data/examples/pluck_phrase.flac`` (a freely licensed phrase shipped with the
package): the prime itself, draft and full continuations, and re-renders from the middle and top
levels. Each WAV gets a log-magnitude spectrogram PNG beside it, so changes to the model or the
sampler can be judged by eye as well as by ear.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.generate.render import render
from engine.io import audio
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.weights.bundle import load_models

from .demo import example_path

SETS: list[tuple[str, str, dict]] = [
    ("continue-draft", "continue", {"quality": "draft", "seconds": 8.0}),
    ("continue-full", "continue", {"quality": "full", "seconds": 8.0}),
    ("rerender-level1", "rerender", {"level": 1}),
    ("rerender-level2", "rerender", {"level": 2}),
]


def spectrogram_png(x: np.ndarray, sr: int, path: Path, title: str) -> Path:
    """Log-magnitude STFT of mono ``x`` as a PNG (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import stft

    f, t, z = stft(x, sr, nperseg=1024, noverlap=768)
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    ax.pcolormesh(t, f, 20 * np.log10(np.abs(z) + 1e-6), vmin=-100, vmax=0, shading="auto", cmap="magma")
    ax.set(title=title, xlabel="seconds", ylabel="Hz")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def listen(out: Path, model: str | None = None, seed: int = 0, prime: Path | None = None,
           top: str | None = None) -> list[Path]:
    models = load_models(model, top)
    prime = prime or example_path()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    region = audio.read_region(prime, 0.0, 5.0)
    x = audio.to_model_input(region, region.sample_rate)
    wav = audio.write_audio(audio.unique_path(out, "prime"), x, region.sample_rate, source_rate=region.sample_rate)
    written += [wav, spectrogram_png(x, region.sample_rate, wav.with_suffix(".png"), "prime (5 s)")]
    for name, mode, fields in SETS:
        req = RenderRequest.from_fields(mode, {"source": str(Path(prime).resolve()), "start": 0.0, "length": 5.0, "seed": seed,
                                               "takes": 1, "sample_rate": 44100, "channels": 1, **fields})
        take = render(models, req, lambda p: None, CancelToken())[0]
        y = take.audio[:, 0]
        wav = audio.write_audio(audio.unique_path(out, name), y, req.sample_rate, source_rate=req.sample_rate)
        written += [wav, spectrogram_png(y, req.sample_rate, wav.with_suffix(".png"), f"{name} ({models.name})")]
    return written
