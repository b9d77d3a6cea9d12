"""Assemble the default model's training corpus offline, from freely licensed sources on this machine.

Two kinds of source, both recorded per file (licence, artist, genre, origin) in ``manifest.json``:

* scores from the music21 package's bundled corpus (centuries-old public-domain compositions; pieces
  whose encoding carries a non-commercial notice, and the non-commercial Essen folksong set, are left
  out), rendered with FluidSynth and the MIT-licensed FluidR3 General MIDI soundfont; each part gets a
  General MIDI program chosen deterministically from a per-style palette, so one chorale is heard on
  organ, strings or winds;
* recorded game soundtracks from Debian packages (warzone2100-music, wesnoth-1.16-music,
  ufoai-music), whose licences are read from each package's ``copyright`` file / licence notes.

Output is mono FLAC at ``SAMPLE_RATE``. The build is deterministic (sorted inputs, hash-based choices) and
cached: an item whose FLAC already exists is skipped, so an interrupted build resumes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

from engine.io import audio
from engine.io.files import atomic_write, atomic_write_text
from engine.runtime.records import from_dict

SAMPLE_RATE = 22050
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SOUNDFONT_LICENCE = "FluidR3_GM soundfont (Debian fluid-soundfont-gm): MIT"
HELD_OUT_FRACTION = 0.1
MAX_SCORE_SECONDS = 40.0
MAX_TRACK_SECONDS = 45.0

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


# ------------------------------------------------------------------------------------- game music

# File-name prefix -> composer, from the holders in /usr/share/doc/ufoai-music/copyright and the files' tags
# (the copyright stanzas list several holders per group of files, so per-file credit is best effort).
UFOAI_ARTISTS = {"psymong": "simon green (psymong)", "crystan": "christian hoffmann (crystan)",
                 "marine": "marine baklund", "david": "david reeves (destructavator)", "ufo": "paulb",
                 "van": "manuel marino (vanethian)", "azrael": "azrael1322", "karlmacklin": "karl macklin"}
WZ = Path("/usr/share/games/warzone2100/music/albums")
WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/music")
UFOAI = Path("/usr/share/games/ufoai/base/0music.pk3")


def _debian_licences(package: str) -> dict[str, str]:
    """basename -> License of the copyright-file stanza listing it explicitly ('*' for the catch-all)."""
    path = Path(f"/usr/share/doc/{package}/copyright")
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for stanza in path.read_text(errors="ignore").split("\n\n"):
        files = re.search(r"^Files:(.*?)(?=^\S)", stanza + "\nX", re.S | re.M)
        lic = re.search(r"^License:\s*(\S+)", stanza, re.M)
        if files and lic:
            for f in files.group(1).split():
                out.setdefault(Path(f).name if f != "*" else "*", lic.group(1))
    return out


def game_items() -> Iterator[tuple[Item, Callable[[], tuple[np.ndarray, int]]]]:
    """(item, loader) for the chosen soundtrack files; the loader returns (mono audio, rate)."""
    def reader(src) -> Callable[[str], tuple[np.ndarray, int]]:
        def load(item_id: str) -> tuple[np.ndarray, int]:
            """Decode only the excerpt that is kept (a whole 7-minute track takes far longer)."""
            with sf.SoundFile(io.BytesIO(src()) if callable(src) else src) as f:
                start = excerpt_start(round(f.frames * SAMPLE_RATE / f.samplerate), MAX_TRACK_SECONDS, item_id)
                f.seek(start * f.samplerate // SAMPLE_RATE)
                x = f.read(int((MAX_TRACK_SECONDS + 0.5) * f.samplerate), dtype="float32", always_2d=True)
                return x.mean(axis=1), f.samplerate
        return load

    if WZ.is_dir():
        for album in sorted(p for p in WZ.iterdir() if p.is_dir()):
            notes = (album / "license.txt").read_text(errors="ignore") if (album / "license.txt").exists() else ""
            meta = json.loads((album / "album.json").read_text()) if (album / "album.json").exists() else {}
            if "CC-BY-SA" not in notes:  # the original 1999 score has no such notice; keep only the clear ones
                continue
            excluded = set(re.findall(r"\*except\* (\S+?):", notes))
            tracks = {t["filename"]: t for t in meta.get("tracks", [])}
            files = [p for p in sorted(album.glob("*.opus")) if p.stem not in excluded]
            for p in _pick(files, 6, album.name):
                author = tracks.get(p.name, {}).get("author", meta.get("author", "unknown")).lower()
                yield (Item(f"wz2100-{album.name}-{p.stem}", author, "electronic",
                            f"CC-BY-SA-3.0+ or GPL-2+ ({album / 'license.txt'}), Debian warzone2100-music",
                            str(p)), reader(p))
    if WESNOTH.is_dir():
        deb = _debian_licences("wesnoth-1.16-music").get("*", "GPL-2+")
        for p in _pick(sorted(WESNOTH.glob("*.ogg")), 12, "wesnoth"):
            if p.stem == "silence":
                continue
            tags = sf.SoundFile(p).copy_metadata()
            yield (Item(f"wesnoth-{p.stem}", tags.get("artist", "wesnoth composers").lower(), "orchestral",
                        f"{deb} (Debian wesnoth-1.16-music copyright; file tag: {tags.get('license', 'n/a')})",
                        str(p)), reader(p))
    if UFOAI.exists():
        lic = _debian_licences("ufoai-music")
        with zipfile.ZipFile(UFOAI) as z:
            names = sorted(n for n in z.namelist() if n.endswith(".ogg") and Path(n).name in lic)
        for n in _pick([Path(x) for x in names], 10, "ufoai"):
            prefix = re.split(r"[-_0-9]", n.stem)[0].lower()
            artist = next((a for k, a in UFOAI_ARTISTS.items() if prefix.startswith(k)), "the ufo:ai team")
            def blob(name=str(n)) -> bytes:
                with zipfile.ZipFile(UFOAI) as z:
                    return z.read(name)
            yield (Item(f"ufoai-{n.stem}", artist, "ambient", f"{lic[n.name]} (Debian ufoai-music copyright)",
                        f"{UFOAI}:{n}"), reader(blob))


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


def build(out: Path, log: Callable[[str], None] = print) -> list[Item]:
    """Build (or complete) the corpus in ``out``; returns the manifest's items."""
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None or not SOUNDFONT.exists():
        raise RuntimeError("needs Debian packages fluidsynth and fluid-soundfont-gm (apt-get install ...)")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    sources: list[tuple[Item, Callable[[], tuple[np.ndarray, tuple[int, ...]]]]] = []
    for item, path in music21_items():
        sources.append((item, lambda p=path, it=item: render_score(p, it.id, it.genre, fluidsynth)))
    for item, load in game_items():
        sources.append((item, lambda ld=load, i=item.id: (lambda xs: (audio.resample(xs[0], xs[1], SAMPLE_RATE), ()))(ld(i))))
    items: list[Item] = []
    old = {}
    if (out / "manifest.json").exists():
        old = {d["id"]: d for d in json.loads((out / "manifest.json").read_text())["items"]}
    for i, (item, load) in enumerate(sources):
        flac = out / "audio" / f"{item.id}.flac"
        item = Item(**{**asdict(item), "split": split_of(item.id)})
        if flac.exists() and item.id in old:
            items.append(Item(**{**asdict(item), "seconds": old[item.id]["seconds"],
                                 "programs": tuple(old[item.id].get("programs", ()))}))
            log(f"[{i + 1}/{len(sources)}] cached  {item.id}")
            continue
        try:
            x, programs = load()
        except Exception as e:  # a score music21 cannot parse is skipped, not fatal
            log(f"[{i + 1}/{len(sources)}] skipped {item.id}: {type(e).__name__}: {e}")
            continue
        limit = MAX_SCORE_SECONDS if item.id.startswith("m21-") else MAX_TRACK_SECONDS
        x = _excerpt(x, limit, item.id)
        atomic_write(flac, lambda fh: sf.write(fh, x, SAMPLE_RATE, subtype="PCM_16", format="FLAC"), overwrite=True)
        item = Item(**{**asdict(item), "seconds": round(len(x) / SAMPLE_RATE, 3), "programs": programs})
        items.append(item)
        log(f"[{i + 1}/{len(sources)}] built   {item.id} ({item.seconds:.1f} s, {item.split})")
        _write_manifest(out, items)
    _write_manifest(out, items)
    total = sum(it.seconds for it in items)
    log(f"corpus: {len(items)} files, {total / 60:.1f} minutes at {SAMPLE_RATE} Hz in {out}")
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
