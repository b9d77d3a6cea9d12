"""Synthesise the bundled example phrase (engine/data/examples/pluck_phrase.flac).

Karplus-Strong plucked strings over a simple bass line, 8 s, 44.1 kHz mono. Made here from numbers
only, so it carries no third-party licence (CC0, like the rest of the project's data).
"""

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100


def pluck(freq: float, seconds: float, rng: np.random.Generator, decay: float = 0.996) -> np.ndarray:
    n, period = int(seconds * SR), max(2, int(SR / freq))
    buf = rng.uniform(-1, 1, period)
    out = np.empty(n)
    for i in range(n):
        out[i] = buf[i % period]
        buf[i % period] = decay * 0.5 * (buf[i % period] + buf[(i + 1) % period])
    return out


def phrase() -> np.ndarray:
    rng = np.random.default_rng(2026)
    beat = 0.5
    melody = [64, 67, 71, 72, 71, 67, 64, 62, 60, 64, 67, 72, 71, 67, 69, 71]
    bass = [40, 40, 43, 43, 45, 45, 43, 38]
    out = np.zeros(int(10 * SR))
    for i, note in enumerate(melody):
        start = int(i * beat * SR)
        tone = pluck(440 * 2 ** ((note - 69) / 12), 1.2, rng)
        out[start:start + len(tone)] += 0.35 * tone
    for i, note in enumerate(bass):
        start = int(i * 2 * beat * SR)
        tone = pluck(440 * 2 ** ((note - 69) / 12), 1.5, rng, decay=0.998)
        out[start:start + len(tone)] += 0.45 * tone
    out = out[: 8 * SR]
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "engine" / "data" / "examples" / "pluck_phrase.flac"
    sf.write(target, phrase(), SR, subtype="PCM_16")
    print(f"wrote {target}")
