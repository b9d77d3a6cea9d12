"""A rendered take: what the renderer hands to publishing and effects (audio, timeline position, seed, codes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .codes import CodesFile

FADE_SECONDS = 0.01  # the fade at a take's free edges (a generated take's start, every take's end but re-renders')


@dataclass(frozen=True)
class RenderedTake:
    take: int  # 1-based
    audio: np.ndarray  # (T, channels) float32 at the request's sample rate
    position: float  # timeline seconds where the DAW should place it
    seed: int
    codes: dict[int, np.ndarray]  # level -> (T_level,) codes of the whole sampled span (prompt included)
    # what the mix step did (io.loudness.LoudnessReport.to_json) and the source's gain before encoding (input_gain_db)
    loudness: dict = field(default_factory=dict)
    # model-rate samples of the decoded span (``codes``' span) that form the clip, and the levels sampled (top
    # first; the last one was decoded): what ``refine`` needs to upsample a draft to the same clip
    keep: tuple[int, int] | None = None
    levels: tuple[int, ...] = ()
    reference_lufs: float | None = None  # the loudness "match" aimed at (the source region's), if any
    warnings: tuple[str, ...] = ()  # what the producer allowed and must know (a truncated source), for the sidecar
    reference_tone: list[float | None] | None = None  # the region's octave balance the tone match aimed at, if any


CODES_RETENTION = 500  # published takes whose codes a render folder keeps (the newest; ServeConfig.codes_retention)


def save_take_codes(folder: Path, stem: str, rendered: RenderedTake, hop_lengths: tuple[int, ...], sample_rate: int,
                    model: str, request: dict[str, Any], job_id: str = "") -> Path:
    """Save a published take's codes (every level, the whole sampled span) as ``folder/<stem>.npz``, with what
    ``refine`` needs in ``extra``: the clip's slice of the decoded span (``keep``), its timeline position, the levels
    sampled, the loudness aimed at and the request's fields. Overwrites: a resumed job saves the same codes again."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"job_id": job_id, "take": rendered.take, "seed": rendered.seed, "position": float(rendered.position),
             "keep": None if rendered.keep is None else [int(k) for k in rendered.keep],
             "levels": [int(lv) for lv in rendered.levels], "reference_lufs": rendered.reference_lufs,
             "reference_tone": rendered.reference_tone,
             "input_gain_db": (rendered.loudness or {}).get("input_gain_db", 0.0), "request": request}
    codes = {lv: np.asarray(z)[None] if np.ndim(z) == 1 else np.asarray(z) for lv, z in rendered.codes.items()}
    return CodesFile(codes, tuple(hop_lengths), sample_rate, model=model, extra=extra).save(
        folder / f"{stem}.npz", overwrite=True)


def prune_take_codes(folder: Path, retention: int = CODES_RETENTION) -> list[Path]:
    """Delete all but the ``retention`` newest codes files in ``folder`` (by modification time); returns the
    deleted paths. A take whose codes are gone can no longer be refined (``refine`` says so)."""
    try:
        files = [(p.stat().st_mtime_ns, p.name, p) for p in folder.glob("*.npz")]
    except OSError:
        return []
    files.sort(reverse=True)
    gone = []
    for _, _, path in files[max(retention, 0):]:
        try:
            path.unlink()
            gone.append(path)
        except FileNotFoundError:
            pass
    return gone
