"""Publishing rendered takes: file names, WAV files at the DAW's rate, and provenance.

Each take becomes ``<job8>-take<n>-<mode>[-<artist>][-<genre>].wav`` in the render directory, written
through ``audio.write_audio`` (the one resampler and writer), plus a ``.json`` sidecar. Both carry the
provenance (model, labels, seed, temperature, source region, engine version, and the loaded model's own
licence and the attribution it asks for): the sidecar in full, the WAV as compact JSON in its comment
chunk, so a clip dragged elsewhere still says how it was made and under which licence.

Publishing is crash-safe and idempotent: the WAV and its sidecar are prepared in a staging folder on the
same filesystem, then hard-linked into place (never overwriting), the sidecar first, so a take whose
sidecar cannot be written leaves no WAV. ``publish_take`` called again only completes whichever of the two
is missing, so a resumed job publishes each file exactly once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import soundfile as sf
from unidecode import unidecode

from engine import __version__
from engine.request import RenderRequest

from .audio import AudioError, AudioExistsError, unique_path, write_audio
from .files import short_write_error

if TYPE_CHECKING:
    from engine.io.takes import RenderedTake

SUBTYPE = "PCM_24"
COMMENT_OMITS = ("lyrics",)  # long text stays in the sidecar; WAV INFO chunks should stay small
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str, max_len: int = 40) -> str:
    """ASCII, lower-case, words joined by '-': safe in file names on every OS ('' for empty input)."""
    return _NOT_SLUG.sub("-", unidecode(text).lower()).strip("-")[:max_len].strip("-")


def take_stem(job_id: str, take: int, req: RenderRequest) -> str:
    parts = [job_id[:8], f"take{take}", req.mode] + [slug(x) for x in (req.artist, req.genre) if x]
    return "-".join(p for p in parts if p)


def take_path(render_dir: Path, job_id: str, take: int, req: RenderRequest) -> Path:
    """A fresh ``.wav`` path in ``render_dir`` for this take (``-2``, ``-3``... if the name is taken)."""
    return unique_path(render_dir, take_stem(job_id, take, req), ".wav")


def sidecar_path(wav: Path) -> Path:
    return wav.with_suffix(".json")


def provenance(job_id: str, req: RenderRequest, rendered: "RenderedTake", name: str,
               terms: dict[str, str | None]) -> dict[str, Any]:
    """How this take was made, as plain JSON values. ``name`` and ``terms`` are the model's (``Models.name``
    and ``Models.licence()``: its licence and the attribution it asks for), passed explicitly so a take
    rendered on a cluster worker is described exactly like one rendered here."""
    source = None if req.source is None else {"path": req.source, "start": req.start, "length": req.length}
    return {
        "job_id": job_id, "take": rendered.take, "mode": req.mode, "model": name,
        "artist": req.artist, "genre": req.genre, "lyrics": req.lyrics,
        "seed": rendered.seed, "temperature": req.temperature, "top_k": req.top_k, "top_p": req.top_p,
        "adherence": req.adherence,
        "quality": req.quality, "level": req.level, "source": source,
        "position": rendered.position, "length": len(rendered.audio) / req.sample_rate,
        "sample_rate": req.sample_rate, "channels": req.channels, "tempo": req.tempo, "bars": req.bars,
        "chain": req.chain, "loudness": rendered.loudness or None, "engine": f"jukebox-bridge {__version__}",
        "licence": terms.get("licence"), "attribution": terms.get("attribution"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "warnings": list(rendered.warnings),
    }


def publish_take(path: Path, staging: Path, rendered: "RenderedTake", req: RenderRequest,
                 meta: dict[str, Any]) -> Path:
    """Write ``rendered`` as a tagged WAV at ``path`` and its sidecar; skip whatever already exists.

    Both files are prepared in ``staging`` first, then the sidecar is linked into place and the WAV after it: a
    sidecar that cannot be written (disk full, a value JSON cannot carry) leaves no WAV behind, and a WAV that cannot
    be published takes its new sidecar away again. A crash between the two links leaves the sidecar alone, and the
    resumed job adds the WAV."""
    side = sidecar_path(path)
    want_wav, want_side = not path.exists(), not side.exists()
    if not (want_wav or want_side):
        return path
    staging.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(6)
    staged_side, staged_wav = staging / f".{side.name}.{token}.part", staging / f"take{rendered.take}.{token}.wav"
    try:
        if want_side:
            text = json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8")  # raises before anything exists
            with open(staged_side, "xb") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        if want_wav:
            write_audio(staged_wav, rendered.audio, req.sample_rate, source_rate=req.sample_rate,
                        channels=req.channels, subtype=SUBTYPE)
            _tag(staged_wav, path.stem, meta)
        if want_side:
            _link_into_place(staged_side, side)
        if want_wav:
            try:
                _link_into_place(staged_wav, path)
            except BaseException:
                if want_side:  # no sidecar without its take
                    side.unlink(missing_ok=True)
                raise
    finally:
        staged_side.unlink(missing_ok=True)
        staged_wav.unlink(missing_ok=True)
    return path


def read_provenance(path: Path) -> dict[str, Any]:
    """The provenance stored in a rendered WAV's comment chunk."""
    with sf.SoundFile(path) as f:
        return json.loads(f.comment)


def _tag(path: Path, title: str, meta: dict[str, Any]) -> None:
    """Store title, software and the compact provenance JSON in the WAV's LIST/INFO chunk."""
    compact = {k: v for k, v in meta.items() if k not in COMMENT_OMITS}
    try:
        with sf.SoundFile(path, "r+") as f:
            f.title = title
            f.software = f"Jukebox Bridge {__version__}"
            f.comment = json.dumps(compact, separators=(",", ":"), ensure_ascii=True)
    except (AssertionError, sf.LibsndfileError):  # libsndfile says "unknown error" for a full disk
        raise short_write_error(path) from None
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _link_into_place(tmp: Path, path: Path) -> None:
    """Publish a finished file atomically; refuses to overwrite (the hard link fails if ``path`` exists)."""
    try:
        os.link(tmp, path)
    except FileExistsError as exc:
        raise AudioExistsError(f"{path} already exists; it was not overwritten.") from exc
    except OSError as exc:
        raise AudioError(f"could not publish {path}: {exc}. The render folder must be writable.") from exc
    if os.name == "posix":
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
