"""Batch rendering: many stems with one setting, a resumable manifest, locally or on a Dask cluster.

``run_batch`` renders every stem (``rerender`` or ``continue``) and publishes its takes in the output
folder as ``<stem>-take<n>-<mode>.wav`` plus the usual sidecar (``render.publish_take``). Outputs are
aligned to their sources: a re-render starts where its stem starts and has exactly its length (plus
the chain's ``tail``); a continuation starts where its stem ends (``position`` in the sidecar and the
manifest = the stem's length in seconds).

The manifest (``jukebox-batch.json`` in the output folder, replaced atomically after every stem)
records the settings, the seed and, per stem, its content hash, state, outputs and error. A re-run
skips stems that are done (same content, outputs present), retries failed and unfinished ones with
the same seed, and refuses to mix other settings into the folder. One bad stem is reported and the
batch goes on. Only the process that runs ``run_batch`` writes files: with ``cluster`` the workers
receive each stem's bytes, render, and send the takes back, so workers need no shared folder, and
VST3 plugins of the chain only need to exist on this machine. docs/batch.md has the cluster set-up.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import soundfile as sf

from engine.errors import ErrorCode, LocalErrorCode
from engine.io import publish as render
from engine.io.audio import AudioError
from engine.io.effects import Chain, ChainError, resolve_chain
from engine.io.files import atomic_write_text, file_sha256
from engine.request import RenderRequest, RequestError
from engine.runtime.records import from_dict

from .report import PlainReporter
from .stems import StemJob, StemResult, run_local

MANIFEST = "jukebox-batch.json"
MANIFEST_VERSION = 1
MODES = ("rerender", "continue")
STATE_DIR = ".jukebox-batch"  # staging for atomic publishing, inside the output folder


class BatchError(ValueError):
    """The batch as a whole cannot run (bad settings, a folder holding another batch, a bad chain)."""


# ------------------------------------------------------------------ the manifest

@dataclass
class StemEntry:
    source: str  # absolute path
    sha256: str = ""
    state: str = "pending"  # pending | done | failed
    outputs: list[dict[str, Any]] = field(default_factory=list)  # {"file", "take", "seed", "position", "length"}
    error: dict[str, str] | None = None  # {"code", "message"}
    seconds: float = 0.0  # render time


@dataclass
class Manifest:
    path: Path
    settings: dict[str, Any]
    seed: int
    stems: dict[str, StemEntry] = field(default_factory=dict)  # output base name -> entry

    @classmethod
    def open(cls, out: Path, settings: dict[str, Any], seed: int | None) -> "Manifest":
        """The folder's manifest, or a new one; ``BatchError`` if the folder holds a batch made otherwise."""
        path = out / MANIFEST
        if not path.exists():
            return cls(path, settings, secrets.randbelow(2**31) if seed is None else seed)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            stems = {k: from_dict(StemEntry, v) for k, v in data["stems"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BatchError(f"{path} is damaged ({exc}); move it away to start the batch afresh") from None
        if data.get("version") != MANIFEST_VERSION:
            raise BatchError(f"{path} was written by another version of the batch runner; use a new --out folder")
        before = data["settings"]
        changed = [f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in sorted(set(before) | set(settings))
                   if before.get(k) != settings.get(k)]
        if seed is not None and seed != data["seed"]:
            changed.append(f"seed: {data['seed']} -> {seed}")
        if changed:
            raise BatchError(f"{out} holds a batch made with other settings ({'; '.join(changed)}); "
                             "use another --out folder, or the same settings to resume it")
        return cls(path, data["settings"], int(data["seed"]), stems)

    def save(self) -> None:
        """Write the whole manifest to a temporary file and rename it over the old one (atomic)."""
        body = {"version": MANIFEST_VERSION, "settings": self.settings, "seed": self.seed,
                "stems": {k: dataclasses.asdict(v) for k, v in self.stems.items()}}
        atomic_write_text(self.path, json.dumps(body, indent=1, ensure_ascii=False), overwrite=True)


# ------------------------------------------------------------------ the batch

@dataclass(frozen=True)
class BatchSummary:
    rendered: list[str]
    skipped: list[str]
    failed: dict[str, str]  # name -> message
    manifest: Path

    @property
    def ok(self) -> bool:
        return not self.failed


def output_name(source: Path) -> str:
    return source.stem


def _plan(stems: list[Path], out: Path, mode: str, fields: dict[str, Any],
          manifest: Manifest) -> tuple[list[StemJob], list[str], dict[str, str]]:
    """Jobs for the stems not done yet; skipped names; stems that fail before rendering (name -> message)."""
    jobs, skipped, failed = [], [], {}

    def fail(entry: StemEntry, code: str, message: str) -> None:
        entry.state, entry.error = "failed", {"code": code, "message": message}
        failed[output_name(Path(entry.source))] = message

    for src in stems:
        entry = manifest.stems.setdefault(output_name(src), StemEntry(str(src)))
        old_sha, entry.source = entry.sha256, str(src)
        try:
            entry.sha256 = file_sha256(src)
        except OSError as exc:
            fail(entry, ErrorCode.SOURCE_NOT_FOUND, f"{src}: {exc}")
            continue
        present = [o["file"] for o in entry.outputs if (out / o["file"]).exists()]
        if old_sha and old_sha != entry.sha256 and present:
            fail(entry, "source_changed", f"{src} changed since {', '.join(present)} were rendered from it; "
                 "delete those files to render it again")
            continue
        if entry.state == "done" and len(present) == len(entry.outputs):
            skipped.append(output_name(src))
            continue
        try:
            info = sf.info(str(src))
        except Exception as exc:  # libsndfile raises several types for files that are not audio
            fail(entry, ErrorCode.NOT_AUDIO, f"{src} is not audio the engine can read: {exc}")
            continue
        stem_fields = {"source": str(Path(src).resolve()), "sample_rate": int(info.samplerate), "channels": min(int(info.channels), 8),
                       "seed": manifest.seed}
        jobs.append(StemJob(output_name(src), mode, {**fields, **stem_fields}))
    return jobs, skipped, failed


def _publish(result: StemResult, job: StemJob, out: Path, manifest: Manifest, chain: Chain | None) -> None:
    """Apply the chain (here, where its plugins are), publish the takes, record them in the manifest."""
    entry = manifest.stems[result.name]
    entry.seconds = round(result.seconds, 3)
    if result.error is None and chain is not None:
        try:
            result = dataclasses.replace(result, takes=chain.apply(result.takes, job.fields["sample_rate"]))
        except ChainError as exc:
            result = dataclasses.replace(result, error=(ErrorCode.RENDER_FAILED, str(exc)))
    if result.error is not None:
        entry.state, entry.error = "failed", {"code": result.error[0], "message": result.error[1]}
        return
    req = RenderRequest.from_fields(job.mode, job.fields)
    entry.outputs = []
    try:
        for take in result.takes:
            path = out / f"{result.name}-take{take.take}-{job.mode}.wav"
            meta = render.provenance(f"batch-{manifest.seed}", req, take, result.model, result.licence)
            render.publish_take(path, out / STATE_DIR / "staging", take, req, meta)
            entry.outputs.append({"file": path.name, "take": take.take, "seed": take.seed,
                                  "position": take.position, "length": len(take.audio) / req.sample_rate})
    except (OSError, AudioError) as exc:  # a full disk or a read-only folder: this stem fails, a re-run retries it
        entry.state, entry.error = "failed", {"code": LocalErrorCode.WRITE_FAILED,
                                              "message": f"cannot write {path}: {exc}"}
        return
    entry.state, entry.error = "done", None


def finished_stems(out: str | Path) -> tuple[int, int]:
    """(stems done, stems recorded) in the manifest of the batch folder ``out``; (0, 0) if it has none."""
    try:
        stems = json.loads((Path(out).expanduser() / MANIFEST).read_text(encoding="utf-8"))["stems"]
        return sum(1 for v in stems.values() if v.get("state") == "done"), len(stems)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0, 0


def run_batch(stems: Iterable[str | Path], out: str | Path, mode: str, fields: dict[str, Any] | None = None,
              model: str | None = None, cluster: str | None = None, reporter: Any = None,
              top: str | None = None) -> BatchSummary:
    """Render ``stems`` into ``out``; see the module docstring. ``fields``: shared render fields (artist,
    genre, takes, seed, quality, seconds, temperature, chain, ...). ``reporter``: see ``PlainReporter``.
    ``top``: the official top prior the model folder must hold (detected from it anyway)."""
    reporter = reporter or PlainReporter()
    if mode not in MODES:
        raise BatchError(f"batch mode must be one of {', '.join(MODES)}; got {mode!r}")
    stems = [Path(s).expanduser().resolve() for s in stems]
    names = [output_name(s) for s in stems]
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise BatchError(f"several stems are named {', '.join(twins)}; outputs are named after their stems, "
                         "so rename them or run them as separate batches")
    fields = {k: v for k, v in (fields or {}).items() if v is not None}
    seed = fields.pop("seed", None)
    try:  # validate the shared fields once, with a stand-in source
        RenderRequest.from_fields(mode, {**fields, "source": "/stem.wav", "seed": seed or 0})
        chain = resolve_chain(fields.get("chain"))
    except (RequestError, ChainError) as exc:
        raise BatchError(str(exc)) from None
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.open(out, {"mode": mode, "model": model, **fields}, seed)
    jobs, skipped, failed = _plan(stems, out, mode, fields, manifest)
    manifest.save()
    reporter.start([j.name for j in jobs], skipped, failed)
    by_name = {j.name: j for j in jobs}
    if cluster is None:
        run = run_local(jobs, model, reporter.progress, top)
    else:
        from .cluster import run_cluster

        run = run_cluster(jobs, model, reporter.progress, cluster, top)
    rendered = []
    try:
        for result in run:
            _publish(result, by_name[result.name], out, manifest, chain)
            manifest.save()
            entry = manifest.stems[result.name]
            if entry.state == "done":
                rendered.append(result.name)
            else:
                failed[result.name] = entry.error["message"] if entry.error else "failed"
            reporter.finished(result.name, entry)
    except BaseException:  # Ctrl-C: the manifest already records every finished stem; a re-run resumes
        getattr(reporter, "abort", lambda: None)()
        raise
    finally:
        getattr(run, "close", lambda: None)()  # a cluster run shuts its client down now, not at GC
        for leftover in (out / STATE_DIR / "staging", out / STATE_DIR):  # publishing leaves them empty
            if leftover.is_dir() and not any(leftover.iterdir()):
                leftover.rmdir()
    summary = BatchSummary(rendered, skipped, failed, manifest.path)
    reporter.close(summary)
    return summary

