"""Assemble the default model's training corpus from freely licensed sources.

Two kinds of source (``build(sources=...)``), both recorded per file (licence, artist, genre, origin) in
``manifest.json``:

* ``debian``: recorded game soundtracks from 26 reviewed Debian packages (``engine/train/recordings.py``
  holds the package table, its licences and the decoding/excerpt rules): downloaded with ``apt-get
  download``, unpacked with ``dpkg -x`` into a cache folder, decoded with ffmpeg/openmpt123, cut to at most
  180 s each, at most 27 minutes per package. ``provenance.json`` records each file's package version,
  path, sha256 and copyright holder; ``copyrights/`` keeps each package's Debian copyright file;
* ``scores``: scores from the music21 package's bundled corpus (centuries-old public-domain compositions;
  pieces whose encoding carries a non-commercial notice, and the non-commercial Essen folksong set, are left
  out), rendered with FluidSynth and the MIT-licensed FluidR3 General MIDI soundfont; each part gets a
  General MIDI program chosen deterministically from a per-style palette, so one chorale is heard on
  organ, strings or winds. Needs music21 and the Debian packages fluidsynth and fluid-soundfont-gm.

Output is mono FLAC at ``SAMPLE_RATE``. The build is deterministic (sorted inputs, hash-based choices) and
cached: an item whose FLAC already exists is skipped, so an interrupted build resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.io import audio
from engine.io.files import atomic_write, atomic_write_text, file_sha256
from engine.runtime.records import from_dict
from engine.train import recordings
from engine.train.recordings import SAMPLE_RATE, DataBuildError

SOURCES = ("debian", "scores")
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SOUNDFONT_LICENCE = "FluidR3_GM soundfont (Debian fluid-soundfont-gm): MIT"
HELD_OUT_FRACTION = 0.1
MAX_SCORE_SECONDS = 40.0

# GM programs (0-based) per style: the palette each part's instrument is drawn from.
PALETTES: dict[str, list[int]] = {
    "chorale": [19, 48, 52, 68, 70, 71, 42, 0],  # church organ, strings, choir, oboe, bassoon, clarinet, cello, piano
    "renaissance": [52, 53, 19, 73, 74, 71, 68],  # choir aahs/oohs, organ, flute, recorder, clarinet, oboe
    "madrigal": [52, 53, 24, 46, 73, 40],  # voices, nylon guitar, harp, flute, violin
    "string quartet": [40, 40, 41, 42, 48, 0],
    "ragtime": [0, 1, 2, 6],  # pianos, harpsichord
    "folk": [40, 73, 21, 105, 24, 110, 22],  # fiddle, flute, accordion, banjo, guitar, bagpipe, harmonica
}


@dataclass(frozen=True)
class Item:
    """One corpus file: where it came from, its labels and licence, and its split."""

    id: str
    artist: str
    genre: str
    licence: str
    source: str
    seconds: float = 0.0
    split: str = "train"
    programs: tuple[int, ...] = ()


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def _pick(paths: list[Path], n: int, salt: str) -> list[Path]:
    """A deterministic 'random' subset: the n paths with the smallest hash."""
    return sorted(paths, key=lambda p: _h(f"{salt}/{p.name}"))[:n]


def split_of(item_id: str) -> str:
    return "heldout" if _h(f"split/{item_id}") % 1000 < HELD_OUT_FRACTION * 1000 else "train"


# ------------------------------------------------------------------------------------------ music21


def _music21_dir() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


MUSIC21_PD = ("public-domain composition; encoding from the music21 corpus (BSD-3 package; corpus/license.txt: "
              "distributed with the encoders' permission)")

# (folder, glob, artist, genre, how many)
MUSIC21_GROUPS: list[tuple[str, str, str, str, int]] = [
    ("bach", "bwv*.mxl", "johann sebastian bach", "chorale", 22),
    ("palestrina", "*.krn", "giovanni pierluigi da palestrina", "renaissance", 6),
    ("monteverdi", "madrigal.*.mxl", "claudio monteverdi", "madrigal", 6),
    ("haydn", "**/*.mxl", "joseph haydn", "string quartet", 2),
    ("mozart", "**/*.mxl", "wolfgang amadeus mozart", "string quartet", 2),
    ("joplin", "*.mxl", "scott joplin", "ragtime", 1),
    ("ryansMammoth", "*.abc", "traditional", "folk", 8),
    ("oneills1850", "*.abc", "traditional", "folk", 2),
]


def _score_rights(path: Path) -> str:
    """The <rights> text of a MusicXML file (zipped .mxl or plain), '' if none."""
    try:
        if path.suffix == ".mxl":
            with zipfile.ZipFile(path) as z:
                text = " ".join(z.read(n).decode("utf8", "ignore") for n in z.namelist() if n.endswith("xml"))
        else:
            text = path.read_text(errors="ignore")[:20000]
    except (OSError, zipfile.BadZipFile):
        return ""
    return " ".join(re.findall(r"<rights[^>]*>([^<]*)<", text))


def music21_items() -> Iterator[tuple[Item, Path]]:
    root = _music21_dir()
    for folder, pattern, artist, genre, n in MUSIC21_GROUPS:
        paths = sorted(p for p in (root / folder).glob(pattern) if p.is_file())
        paths = [p for p in paths if "commercial" not in _score_rights(p).lower()]
        for p in _pick(paths, n, folder):
            rel = p.relative_to(root / folder).with_suffix("")
            item_id = f"m21-{folder}-{'-'.join(rel.parts)}".replace(".", "_")
            rights = _score_rights(p)
            licence = MUSIC21_PD + (f"; encoding rights: {rights.strip()}" if rights.strip() else "")
            yield Item(item_id, artist, genre, f"{licence}; rendered with {SOUNDFONT_LICENCE}",
                       f"music21:{folder}/{p.relative_to(root / folder)}"), p


def _parse_score(path: Path):
    """A music21 score; for an ABC collection (many tunes), one tune chosen by hash."""
    import music21

    parsed = music21.converter.parse(path)
    if isinstance(parsed, music21.stream.Opus):
        scores = list(parsed.scores)
        parsed = scores[_h(path.name) % len(scores)]
    return parsed


def render_score(path: Path, item_id: str, genre: str, fluidsynth: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Score -> MIDI (one GM program per part, by hash) -> FluidSynth -> mono float32 at SAMPLE_RATE."""
    import mido

    score = _parse_score(path)
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "score.mid"
        score.write("midi", fp=str(mid))
        midi = mido.MidiFile(mid)
        palette = PALETTES[genre]
        programs: list[int] = []
        for i, track in enumerate(midi.tracks):
            channels = sorted({m.channel for m in track if m.type == "note_on" and m.channel != 9})
            if not channels:
                continue
            prog = palette[_h(f"{item_id}/{i}") % len(palette)]
            programs.append(prog)
            kept = [m for m in track if m.type != "program_change"]
            delta = kept[0].time if kept else 0
            if kept:
                kept[0] = kept[0].copy(time=0)
            track[:] = [mido.Message("program_change", channel=c, program=prog, time=0) for c in channels]
            if kept:
                kept[0] = kept[0].copy(time=delta)
            track.extend(kept)
        _truncate(midi, MAX_SCORE_SECONDS + 1.0)
        midi.save(mid)
        wav = Path(tmp) / "out.wav"
        subprocess.run([fluidsynth, "-ni", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-F", str(wav),
                        str(SOUNDFONT), str(mid)], check=True, capture_output=True, timeout=600)
        x, sr = sf.read(wav, dtype="float32", always_2d=True)
    return audio.resample(x.mean(axis=1), sr, SAMPLE_RATE), tuple(programs)


def _truncate(midi, seconds: float) -> None:
    """Drop MIDI events after ``seconds`` (first tempo), so a long score renders only what is kept."""
    import mido

    tempo = next((m.tempo for t in midi.tracks for m in t if m.type == "set_tempo"), 500000)
    limit = mido.second2tick(seconds, midi.ticks_per_beat, tempo)
    for track in midi.tracks:
        tick, kept, last = 0, [], 0
        channels = sorted({m.channel for m in track if m.type == "note_on"})
        for m in track:
            tick += m.time
            if tick <= limit and m.type != "end_of_track":
                kept.append(m)
                last = tick
        # silence every channel at the cut: a hanging note would keep FluidSynth rendering forever
        cut = int(limit) - last
        for c in channels:
            kept.append(mido.Message("control_change", channel=c, control=120, value=0, time=cut))
            cut = 0
        kept.append(mido.MetaMessage("end_of_track", time=cut))
        track[:] = kept


def excerpt_start(n_samples: int, seconds: float, item_id: str) -> int:
    """First sample (at SAMPLE_RATE) of a long file's kept excerpt: a whole second chosen by hash."""
    spare = (n_samples - int(seconds * SAMPLE_RATE)) // SAMPLE_RATE
    return (_h(item_id) % spare) * SAMPLE_RATE if spare > 0 else 0


def _excerpt(x: np.ndarray, seconds: float, item_id: str) -> np.ndarray:
    """At most ``seconds`` of a long track, from a hash-chosen offset past the intro; peak-normalised."""
    n = int(seconds * SAMPLE_RATE)
    if len(x) > n:
        start = excerpt_start(len(x), seconds, item_id)
        x = x[start:start + n]
    peak = float(np.abs(x).max()) if len(x) else 0.0
    return (x * (0.9 / peak) if peak > 0 else x).astype(np.float32)


# ------------------------------------------------------------------------------------------ build


def scores_missing() -> list[str]:
    """What the music21/FluidSynth scores need and this machine lacks (empty when they can be built)."""
    import importlib.util

    missing = [] if importlib.util.find_spec("music21") else ["music21 (pip install 'jukebox-bridge[data]')"]
    if shutil.which("fluidsynth") is None:
        missing.append("fluidsynth (apt-get install fluidsynth)")
    if not SOUNDFONT.exists():
        missing.append(f"{SOUNDFONT} (apt-get install fluid-soundfont-gm)")
    return missing


def default_sources(log: Callable[[str], None] = print) -> tuple[str, ...]:
    """Both sources when the scores' dependencies are installed, else the Debian recordings alone (with a note)."""
    missing = scores_missing()
    if missing:
        log(f"note: building the Debian recordings only; the music21 scores need {', '.join(missing)} "
            "(pass --sources debian to silence this note)")
        return ("debian",)
    return SOURCES


def build(out: Path, log: Callable[[str], None] = print, *, sources: Iterable[str] | None = None,
          cache: Path | None = None, packages: Iterable[str] | None = None,
          cap_seconds: float = recordings.PACKAGE_CAP_SECONDS) -> list[Item]:
    """Build (or complete) the corpus in ``out``; returns the manifest's items.

    ``sources``: "debian" and/or "scores" (default: ``default_sources``). ``cache``: where .deb files,
    unpacked packages and converted recordings are kept (default ``out/cache``). ``packages``: a subset of
    the Debian package table (default: all of it). ``cap_seconds``: per-package total of recordings.
    """
    sources = tuple(dict.fromkeys(sources)) if sources is not None else default_sources(log)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise DataBuildError(f"unknown source(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SOURCES)}")
    if "scores" in sources and scores_missing():
        raise DataBuildError(f"the music21 scores need {', '.join(scores_missing())}; or pass --sources debian")
    if packages is not None and "debian" not in sources:
        raise DataBuildError("--packages selects Debian packages: add debian to --sources")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    items: list[Item] = []
    if "debian" in sources:
        items += build_recordings(out, cache if cache is not None else out / "cache", packages, cap_seconds, log)
    if "scores" in sources:
        items += build_scores(out, log, done=items)
    _write_manifest(out, items)
    total = sum(it.seconds for it in items)
    held = [it for it in items if it.split == "heldout"]
    log(f"corpus: {len(items)} files, {total / 60:.1f} minutes at {SAMPLE_RATE} Hz in {out} "
        f"({len(held)} files, {sum(it.seconds for it in held) / 60:.1f} minutes held out)")
    return items


def recording_item(rec: dict) -> Item:
    """The manifest item of one converted Debian recording (labels lower-cased, as training expects)."""
    return Item(id=rec["id"], artist=rec["artist"].lower(), genre=rec["genre"].lower(), licence=rec["licence"],
                source=f"Debian {rec['package']} {rec['version']}: {rec['source']}", seconds=float(rec["seconds"]),
                split=split_of(rec["id"]))


def build_recordings(out: Path, cache: Path, packages: Iterable[str] | None = None,
                     cap_seconds: float = recordings.PACKAGE_CAP_SECONDS, log: Callable[[str], None] = print,
                     table: Sequence[recordings.Package] | None = None) -> list[Item]:
    """Convert the Debian packages (cached in ``cache``), select each one's files under the cap and place
    them in ``out/audio``; writes ``out/provenance.json`` and ``out/copyrights/``. ``table`` replaces the
    package table (tests); reserved packages are refused either way."""
    pkgs = recordings.resolve(packages) if table is None else tuple(table)
    recordings.check_table(pkgs)
    records = recordings.convert_all(pkgs, cache, log)
    items, prov = [], []
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "copyrights").mkdir(parents=True, exist_ok=True)
    for rec in records:
        chosen = recordings.select(rec["items"], cap_seconds)
        log(f"{rec['package']} {rec['version']}: {len(chosen)} of {len(rec['items'])} files, "
            f"{sum(c['seconds'] for c in chosen) / 60:.1f} minutes")
        copyright_file = cache / "records" / f"{rec['package']}.copyright"
        if copyright_file.exists():
            shutil.copyfile(copyright_file, out / "copyrights" / copyright_file.name)
        for c in chosen:
            flac = out / "audio" / f"{c['id']}.flac"
            if not (flac.exists() and file_sha256(flac) == c["flac_sha256"]):
                _place(cache / c["flac"], flac)
            items.append(recording_item(c))
            prov.append({"id": c["id"], "package": c["package"], "version": c["version"], "deb": rec["deb"],
                         "deb_sha256": rec["deb_sha256"],
                         **{k: c[k] for k in ("source", "source_sha256", "flac_sha256", "licence", "artist", "genre",
                                              "seconds", "original_seconds", "trimmed_seconds", "excerpt_start",
                                              "decode", "title", "tag_artist", "tag_genre", "tag_license",
                                              "copyright_holder")}})
    atomic_write_text(out / "provenance.json", json.dumps(prov, indent=1, ensure_ascii=False) + "\n", overwrite=True)
    return items


def _place(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src`` (a hard link when both are on one file system)."""
    tmp = dst.with_name(f".{dst.name}.part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def build_scores(out: Path, log: Callable[[str], None] = print, done: Sequence[Item] = ()) -> list[Item]:
    """Render the music21 scores into ``out/audio`` (finished files are kept); ``done``: items already built,
    written to the manifest along with each new score so an interrupted build keeps its progress."""
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None or not SOUNDFONT.exists():
        raise DataBuildError("needs Debian packages fluidsynth and fluid-soundfont-gm (apt-get install ...)")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    sources = list(music21_items())
    items: list[Item] = []
    old = {}
    if (out / "manifest.json").exists():
        old = {d["id"]: d for d in json.loads((out / "manifest.json").read_text())["items"]}
    for i, (item, path) in enumerate(sources):
        flac = out / "audio" / f"{item.id}.flac"
        item = Item(**{**asdict(item), "split": split_of(item.id)})
        if flac.exists() and item.id in old:
            items.append(Item(**{**asdict(item), "seconds": old[item.id]["seconds"],
                                 "programs": tuple(old[item.id].get("programs", ()))}))
            log(f"[{i + 1}/{len(sources)}] cached  {item.id}")
            continue
        try:
            x, programs = render_score(path, item.id, item.genre, fluidsynth)
        except Exception as e:  # a score music21 cannot parse is skipped, not fatal
            log(f"[{i + 1}/{len(sources)}] skipped {item.id}: {type(e).__name__}: {e}")
            continue
        x = _excerpt(x, MAX_SCORE_SECONDS, item.id)
        atomic_write(flac, lambda fh, x=x: sf.write(fh, x, SAMPLE_RATE, subtype="PCM_16", format="FLAC"),
                     overwrite=True)
        item = Item(**{**asdict(item), "seconds": round(len(x) / SAMPLE_RATE, 3), "programs": programs})
        items.append(item)
        log(f"[{i + 1}/{len(sources)}] built   {item.id} ({item.seconds:.1f} s, {item.split})")
        _write_manifest(out, [*done, *items])
    return items


def _write_manifest(out: Path, items: list[Item]) -> None:
    data = {"sample_rate": SAMPLE_RATE, "items": [asdict(it) for it in items]}
    atomic_write_text(out / "manifest.json", json.dumps(data, indent=1), overwrite=True)


def load_manifest(corpus: Path) -> list[Item]:
    path = corpus / "manifest.json"
    data = json.loads(path.read_text())
    return [from_dict(Item, d, where=str(path)) for d in data["items"]]


def write_vocab(items: list[Item], folder: Path) -> tuple[dict[str, int], dict[str, int]]:
    """``artists.txt`` / ``genres.txt`` in the official ``name;id`` format; id 0 is 'unknown'."""
    vocabs = []
    for kind, names in (("artists", sorted({it.artist for it in items})), ("genres", sorted({it.genre for it in items}))):
        ids = {"unknown": 0} | {n: i + 1 for i, n in enumerate(names)}
        (folder / f"{kind}.txt").write_text("".join(f"{n};{i}\n" for n, i in ids.items()))
        vocabs.append(ids)
    return vocabs[0], vocabs[1]
