"""Freely licensed game-music recordings from Debian packages: the package table and its build.

``PACKAGES`` is the reviewed table: for each Debian (bookworm) package, which files hold music, the
licence(s) its copyright file gives them (as reviewed by hand), and how artist and genre labels are read.
The build, for each package:

1. ``apt-get download`` the .deb into ``<cache>/debs`` (unless one is there) and ``dpkg -x`` it into
   ``<cache>/extract/<package>`` (removed again once the package is converted);
2. picks the music files (plain files, or members of zip/pk3 archives) and skips byte-identical copies;
3. decodes each file (``decode``): ffmpeg, with libsndfile when ffmpeg rejects a file (three hyperrogue
   Ogg files from a buggy encoder); tracker modules (.mod/.xm/.it/.s3m) through ``openmpt123``; XBlast's
   headerless ``.raw`` songs as unsigned 8-bit stereo at 22050 Hz (the format ``xbsndsrv.c`` plays);
   then a mono average (the left channel alone when L and R cancel, as in pingus ``rough_journey.it``),
   resampled to ``SAMPLE_RATE`` with soxr;
4. keeps the excerpt (``excerpt``): leading and trailing audio below -50 dBFS trimmed (512-sample frames),
   files shorter than 15 s after trimming skipped, longer ones cut to their middle 180 s;
5. writes ``<cache>/converted/<package>/<name>.flac`` (16-bit) and a record of every file (licence,
   labels, source path, the source's and the FLAC's sha256) to ``<cache>/records/<package>.json``.

``select`` then keeps, per package, files in a fixed hash order of their ids while the package's total
stays under ``PACKAGE_CAP_SECONDS``, so no soundtrack dominates. Everything is deterministic (sorted
inputs, hash order); a rerun reuses finished FLACs and records, so an interrupted build resumes.

Packages reserved for evaluation (``RESERVED_FOR_EVALUATION``) can never be downloaded or used.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.io.files import atomic_write, atomic_write_text, file_sha256

SAMPLE_RATE = 22050
EXCERPT_SECONDS = 180.0  # longer files keep their middle 180 s
MIN_SECONDS = 15.0  # shorter files (after trimming) are skipped
SILENCE_DBFS = -50.0  # silence: trimmed at a file's ends here, down-weighted in prior training, a gap in evaluation
TRIM_FRAME = 512
PACKAGE_CAP_SECONDS = 27 * 60.0  # a package's selected files stay under this total
DEBIAN_RELEASE = "bookworm"
# bump when decoding/excerpt rules change, so cached conversions are redone
AUDIO_RULES = f"v1 sr={SAMPLE_RATE} cap={EXCERPT_SECONDS} min={MIN_SECONDS} silence={SILENCE_DBFS} frame={TRIM_FRAME}"

# Never downloaded, never used: the evaluation set is drawn from these projects' recordings.
RESERVED_FOR_EVALUATION: tuple[str, ...] = ("0ad*", "fretsonfire*", "singularity*", "hedgewars*")

# Checked and left out (the table must not list them); the reasons are in docs/default-model.md.
REJECTED: dict[str, str] = {
    "drascula-music": "custom Drascula licence: 'You may not charge a fee for the game itself' restricts "
                      "commercial use (DFSG-accepted, left out to stay conservative)",
    "fb-music-high": "its only file is the same composition as frozen-bubble-data's frozen-mainzik-2p.ogg",
}

MODULE_RX = r"\.(mod|xm|it|s3m)$"
TOOLS_APT = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "openmpt123": "openmpt123", "dpkg-deb": "dpkg",
             "apt-get": "apt"}


class DataBuildError(ValueError):
    """The corpus cannot be built as asked (a missing tool, an unknown or reserved package...)."""


def is_reserved(package: str) -> bool:
    return any(fnmatch.fnmatchcase(package, pat) for pat in RESERVED_FOR_EVALUATION)


# --------------------------------------------------------------------------------------- the table

# Artist rules, tried in order until one gives a name (see ``_artist``):
#   "tag"           the file's artist/composer/author tag     "artist-tag"  its artist tag only
#   "module"        a tracker module's artist field           "holder"      the matching copyright stanza's holder
#   "holder~WORD"   the holder, if it contains WORD           "holder+tag"  holder, with the tag in brackets
#   "default"       the package's default_artist              "package"     the package name
#   "album"         album.json author (warzone2100 layout)    "before:SEP"  the file name before SEP
#   "=NAME"         NAME itself
#   ("prefix", {k: a})  file stem (cut at - _ or a digit, lower case) starts with k
#   ("suffix", {k: a})  the part of the stem after its last "-" is k
#   ("stem", {rx: a})   the stem matches regex rx            ("title", {t: a})  the lower-cased title tag is t
ArtistRule = str | tuple[str, dict[str, str]]
DEFAULT_ARTIST_RULES: tuple[ArtistRule, ...] = ("module", "tag", "default", "holder", "package")


@dataclass(frozen=True)
class Package:
    """One reviewed Debian package and how its music files become corpus items."""

    name: str
    version: str  # the reviewed version (another one is used with a warning when this is gone)
    files: tuple[str, ...]  # regexes over paths inside the extracted package
    genre: str  # the package's style label
    licences: tuple[str, ...]  # every licence a selected file may carry (reviewed); others are skipped
    why: str = ""
    licence: str = ""  # read by hand, for a copyright file that is not machine-readable (DEP-5)
    default_artist: str = ""
    artist: tuple[ArtistRule, ...] = DEFAULT_ARTIST_RULES
    archives: tuple[tuple[str, str], ...] = ()  # (archive regex, member regex) for zip/pk3 archives
    exclude: str = ""  # regex over paths: files left out
    raw_u8_stereo_22050: bool = False  # headerless unsigned 8-bit stereo PCM at 22050 Hz
    copyright_path: tuple[str, str] | None = None  # (regex, replacement): package path -> copyright file path
    genre_rules: tuple[tuple[str, str], ...] = ()  # (regex over the lower-cased path, genre)
    licence_rules: tuple[tuple[str, str], ...] = ()  # (regex over the path, licence), before the copyright
    artist_by_name: dict[str, str] = field(default_factory=dict)  # output name -> artist, overrides rules
    albums: bool = False  # warzone2100 layout: album folders with album.json and license.txt
    catch_all_note: bool = False  # the copyright's "Files: *" stanza is no per-file credit: say so
    tracker: bool = False  # has tracker modules (.mod/.xm/.it/.s3m), rendered with openmpt123

    def __hash__(self) -> int:
        return hash(self.name)


UFOAI_ARTISTS = {"psymong": "Simon Green (Psymong)", "crystan": "Christian Hoffmann (Crystan)",
                 "marine": "Marine Baklund", "david": "David Reeves (Destructavator)", "ufo": "PaulB",
                 "van": "Manuel Marino (Vanethian)", "azrael": "azrael1322", "karlmacklin": "Karl Macklin",
                 "alex": "Alex (UFO:AI team)"}
UFOAI_TEAM = "UFO:AI composers (Marine Baklund, Gren, Christian Hoffmann, Slippycurb)"
ETR_ARTISTS = {"ks": "Karl Schroeder", "jt": "Joseph Toscano", "cp": "Christian Picon"}
TUXMATH_MODULES = {"beyond the horizon": "Mystra of Stone Arts", "cccp main": "Groo of CNCD",
                   "soft brilliance": "Tjoppbass"}
OPENCLONK_KPONE = r"^@?(IslandDreams|Motorway|TheSkylands|UrbanBolero|LucidDream|Offshore|CrushedIceCocktail)$"
STK_CATCH_ALL = "GPL-3+ (Debian copyright catch-all stanza; no per-file stanza)"
OPENCLONK_LICENCE = "CC-BY-3.0 (Music.ocg/authors.txt; Debian copyright: OpenClonk ISC, content partly CC-BY-3.0/CC0)"
WZ_LICENCES = ("CC-BY-SA-3.0+ OR GPL-2+ (album license.txt)",
               "GPL-2+ (album license.txt: derived from the original soundtrack)",
               "GPL-2+ (Debian copyright, Files: *)")


def _p(name: str, version: str, files: str | Sequence[str], genre: str, licences: str | Sequence[str],
       **kw) -> Package:
    def as_tuple(v: str | Sequence[str]) -> tuple[str, ...]:
        return (v,) if isinstance(v, str) else tuple(v)

    return Package(name, version, as_tuple(files), genre, as_tuple(licences), **kw)


PACKAGES: tuple[Package, ...] = (
    _p("asc-music", "1.3-6", r"usr/share/games/asc/music/.*\.mp3$", "orchestral", "GPL-2+",
       default_artist="Michael Kievernagel", why="three long orchestral/electronic strategy-game pieces"),
    _p("extremetuxracer-data", "0.8.2-1", r"usr/share/games/etr/music/.*\.ogg$", "electronic", "GPL-2+",
       default_artist="Extreme Tux Racer team", artist=("tag", ("suffix", ETR_ARTISTS), "default"),
       why="racing-game music"),
    _p("freeciv-data", "3.0.6-1+deb12u1", r"usr/share/games/freeciv/stdmusic/.*\.ogg$", "orchestral", "GPL-2+",
       default_artist="Cullam Bruce-Lockhart"),
    _p("freedroidrpg-data", "1.0-1", r"usr/share/freedroidrpg/data/sound/music/.*\.ogg$", "electronic", "GPL-2+",
       default_artist="FreedroidRPG contributors", why="sci-fi RPG music"),
    _p("frozen-bubble-data", "2.212-11",
       r"usr/share/games/frozen-bubble/snd/(frozen-mainzik-1p|frozen-mainzik-2p|introzik)\.ogg$", "electronic",
       "GPL-2", default_artist="Matthias Le Bidan", why="puzzle-game music"),
    _p("holotz-castle-data", "1.3.14-12", r"usr/share/games/holotz-castle/game/sound/(HCCredits|HCMainTitle)\.wav$",
       "game pop", "GPL-2+", default_artist="Juan Carlos Seijo Pérez (Holotz Castle)",
       why="only the two full themes (tempo variants and jingles skipped)"),
    _p("hyperrogue-music", "12.0q-1", r"usr/share/hyperrogue/music/.*\.ogg$", "ambient", "CC-BY-SA-3.0",
       artist=("holder+tag",), why="ambient/world pieces with per-file credits"),
    _p("megaglest-data", "3.13.0-3", r"usr/share/games/megaglest/.*/music/.*\.ogg$", "orchestral", "CC-BY-SA-3.0",
       default_artist="MegaGlest team", why="catch-all copyright stanza"),
    _p("nexuiz-music", "2.5.2-12", (), "electronic", "GPL-2+", licence="GPL-2+",
       archives=((r"usr/share/games/nexuiz/data/music\.pk3$", r"sound/cdtracks/.*\.ogg$"),),
       default_artist="Nexuiz team (Alientrap)", why="electronic/industrial arena-shooter tracks"),
    _p("openarena-088-data", "0.8.8-12", (), "electronic", "GPL-2+",
       archives=((r"baseoa/pak6-patch088\.pk3$", r"music/.*\.ogg$"),), default_artist="jute gyte",
       why="CREDITS: jute gyte - Music (OA##.ogg)"),
    _p("openclonk-data", "8.1-3", r"usr/share/games/openclonk/Music\.ocg/.*\.ogg$", "orchestral", OPENCLONK_LICENCE,
       licence=OPENCLONK_LICENCE, artist=("tag", ("stem", {OPENCLONK_KPONE: "K-Pone"}), "=OpenClonk team"),
       why="Music.ocg/authors.txt: CC BY 3.0 unless noted otherwise"),
    _p("pathological", "1.1.3-17", r"usr/share/games/pathological/music/.*\.ogg$", "electronic", "GPL-2+",
       default_artist="John-Paul Gignac"),
    _p("pingus-data", "0.7.6-5.1", r"usr/share/games/pingus/data/music/.*\.(mod|xm|it|s3m)$", "tracker", "GPL-2+",
       licence="GPL-2+", tracker=True, default_artist="Pingus contributors", why="tracker modules (.it/.s3m)"),
    _p("planetblupi-music-ogg", "1.14.2-3", r"usr/share/planetblupi/music/.*\.ogg$", "electronic", "GPL-3+",
       default_artist="Daniel Roux, EPSITEC SA & Denis Dumoulin", why="1997 game soundtrack (synth/pop)"),
    _p("pushover-data", "0.0.5+git20180909-4", r"usr/share/pushover/themes/.*\.ogg$", "world", "GPL-3+",
       default_artist="Roberto Lorenz", why="themed puzzle-game music"),
    _p("supertux-data", "0.6.3-2", r"usr/share/games/supertux2/music/.*\.ogg$", "game pop", "GPL-2+",
       copyright_path=(r"^usr/share/games/supertux2/", "data/"), genre_rules=((r"/retro/", "chiptune"),),
       why="Debian copyright data/music/*; the tracks' own tags name several composers"),
    _p("supertuxkart-data", "1.4+dfsg-2", r"usr/share/games/supertuxkart/data/music/.*\.ogg$", "electronic",
       ("CC-BY-SA-3.0", "CC-BY-SA-4.0", "GPL", STK_CATCH_ALL), exclude=r"(_fast|farm_f)\.ogg$",
       artist=("holder", "artist-tag", "=SuperTuxKart team (uncredited)"), catch_all_note=True,
       artist_by_name={"Penguin_Party": "SuperTuxKart team (uncredited)"},
       why="per-file stanzas; '_fast' variants skipped (duplicates)"),
    _p("tecnoballz-data", "0.93.1-10", r"usr/share/games/tecnoballz/musics/.*\.mod$", "chiptune", "GPL-3+",
       tracker=True, default_artist="TLK Games", why="Amiga-style .mod tracks"),
    _p("tuxmath-data", "2.0.3-9", r"usr/share/tuxmath/sounds/.*\.(ogg|mod)$", "electronic",
       ("CC-BY-SA-3.0", "public-domain"), tracker=True, copyright_path=(r"^usr/share/tuxmath/", "data/"),
       genre_rules=((r"\.mod$", "tracker"),), licence_rules=((r"(^|/)tuxi\.[^/]*$|\.mod$", "public-domain"),),
       artist=(("stem", {r"^tuxi$": "Emmett Plant", r"^0[13]_": "Serberis", r"^02_": "Synthaurion"}),
               ("title", TUXMATH_MODULES), "=unknown (public-domain 1994 module)"),
       why="public-domain modules and CC BY-SA 3.0 tracks (per-file stanzas)"),
    _p("ufoai-music", "2.5-2", (), "ambient", ("GPL-2", "CC-BY-SA-3.0", "CC-BY-3.0", "public-domain"),
       archives=((r"usr/share/games/ufoai/base/0music\.pk3$", r"music/.*\.ogg$"),),
       artist=("tag", ("prefix", UFOAI_ARTISTS), "holder", "=UFO:AI team"),
       artist_by_name={**{f"PsymongR{i}": "Simon Green (Psymong)" for i in range(1, 6)},
                       "TheThings-Slippycurb": "Slippycurb", "returnjourney": UFOAI_TEAM,
                       "dynamictest-battle-41-74sec": UFOAI_TEAM, "dbsea": "UFO:AI team"},
       why="per-file copyright stanzas"),
    _p("warmux-data", "1:11.04.1+repack2-4", r"usr/share/games/warmux/music/.*\.ogg$", "game pop", "GPL-2+",
       licence="GPL-2+", default_artist="WarMUX contributors", artist=("before:.-.",) + DEFAULT_ARTIST_RULES),
    _p("warzone2100-music", "4.3.3-3", r"usr/share/games/warzone2100/music/albums/.*\.opus$", "electronic",
       WZ_LICENCES, albums=True, artist=("album", "=Warzone 2100 Project"),
       why="CC BY-SA 3.0+/GPL-2+ newer albums, GPL-2+ original 1999 score"),
    _p("wesnoth-1.16-music", "1:1.16.9-1", r"usr/share/games/wesnoth/1\.16/data/core/music/.*\.ogg$", "orchestral",
       "GPL-2+", licence="GPL-2+", exclude=r"silence", default_artist="Wesnoth composers",
       why="orchestral fantasy soundtrack"),
    _p("widelands-data", "2:1.1-3", r"usr/share/games/widelands/data/music/.*\.ogg$", "orchestral",
       ("GPL-2+", "CC-BY-SA-3.0"), default_artist="Widelands team",
       artist=("holder~Stuart",) + DEFAULT_ARTIST_RULES, why="orchestral strategy music"),
    _p("xblast-tnt-musics", "20050106-3.1", r"usr/share/games/xblast-tnt/sounds/xbsng\d\.raw$", "electronic",
       "GPL-2", licence="GPL-2", raw_u8_stereo_22050=True, default_artist="XBlast team (Oliver Vogel & others)",
       why="background songs (raw 8-bit stereo 22050 Hz, format from xbsndsrv.c)"),
    _p("xmoto-data", "0.6.1+repack-9", r"usr/share/games/xmoto/Textures/Musics/.*\.ogg$", "rock", "GPL-2+",
       default_artist="X-Moto contributors"),
)
PACKAGE_BY_NAME = {p.name: p for p in PACKAGES}

# One spelling per composer (tags and copyright files spell names many ways).
ARTIST_ALIASES = {
    "Wansti": "Marek Moeckel (Wansti)", "Marek Moeckel <wansti@gmx.de>": "Marek Moeckel (Wansti)",
    "http://zhaymusic.com/": "Joseph G. Toscano (Zhaytee)", "Joseph Toscano": "Joseph G. Toscano (Zhaytee)",
    'Braden Walters;Braden "meoblast001" Walters': "Braden Walters (meoblast001)",
    "www.elysis.de": "Gerd Raudenbusch (elysis)", "elysis": "Gerd Raudenbusch (elysis)",
    "Gerd (elysis) Raudenbusch": "Gerd Raudenbusch (elysis)",
    "cullam Bruce-Lockhart": "Cullam Bruce-Lockhart",
    "Klaus Halfmann aka Hasi50": "Klaus Halfmann (Hasi50)", "Klaus Halfmann": "Klaus Halfmann (Hasi50)",
    'Christian "Crystan" Hoffmann': "Christian Hoffmann (Crystan)",
    "www.indiedb.com/members/crystan": "Christian Hoffmann (Crystan)",
    "Manuel 'Vanethian' Marino": "Manuel Marino (Vanethian)", "paulb": "PaulB",
    "0zone0ne": "Max Freeman (0zone0ne)", "Max Freeman": "Max Freeman (0zone0ne)",
    "0zone0ne and Krobonil": "Max Freeman (0zone0ne) & Chris Leutwyler (Krobonil)",
    "Ozoneone & Krobonil": "Max Freeman (0zone0ne) & Chris Leutwyler (Krobonil)",
    "2017 0zone0ne and Krobonil": "Max Freeman (0zone0ne) & Chris Leutwyler (Krobonil)",
    "Chris Leutwyler & Max Freeman": "Max Freeman (0zone0ne) & Chris Leutwyler (Krobonil)",
    "Chris Leutwyler": "Chris Leutwyler (Krobonil)",
    "2021 Heuchi1": "Heuchi1", "2016, 2022 GeekPenguinBR, Heuchi1": "GeekPenguinBR & Heuchi1",
    "commissioned by Bart Kelsey (http://opengameart.org)": "Bart Kelsey (commissioned, OpenGameArt)",
    "Keith Baylis aka Vim": "Keith Baylis (Vim)", "DJHelium": "DJ Helium",
}

# A file's genre tag, when it names one of these, wins over the package's label.
TAG_GENRES = {"house": "electronic", "electronic": "electronic", "electronica": "electronic", "dnb": "electronic",
              "techno": "electronic", "trance": "electronic", "industrial": "electronic", "ambient": "ambient",
              "reggae": "reggae", "rock": "rock", "metal": "metal", "orchestral": "orchestral",
              "classical": "orchestral", "classique": "classical", "folk": "folk", "jazz": "jazz",
              "chiptune": "chiptune"}


def check_table(packages: Iterable[Package] = PACKAGES) -> None:
    """Refuse a table that lists a reserved or rejected package, or one twice."""
    names = [p.name for p in packages]
    bad = [n for n in names if is_reserved(n)]
    if bad:
        raise DataBuildError(f"package(s) {', '.join(bad)} are reserved for evaluation and may never be used")
    bad = [n for n in names if n in REJECTED]
    if bad:
        raise DataBuildError(f"package(s) {', '.join(bad)} were rejected: " + "; ".join(REJECTED[n] for n in bad))
    if len(set(names)) != len(names):
        raise DataBuildError("a package is listed twice")


check_table()


def resolve(names: Iterable[str] | None) -> tuple[Package, ...]:
    """The table's packages named (all when None), in table order; reserved and unknown names are refused."""
    if names is None:
        return PACKAGES
    names = [n.strip() for n in names if n.strip()]
    reserved = [n for n in names if is_reserved(n)]
    if reserved:
        raise DataBuildError(f"{', '.join(reserved)}: reserved for evaluation, never downloaded or used")
    unknown = [n for n in names if n not in PACKAGE_BY_NAME]
    if unknown:
        raise DataBuildError(f"unknown package(s) {', '.join(unknown)}; the table (engine/train/recordings.py) "
                             f"lists {', '.join(PACKAGE_BY_NAME)}")
    return tuple(p for p in PACKAGES if p.name in names)


# ----------------------------------------------------------------------------------------- tools


def missing_tools(tools: Iterable[str]) -> list[str]:
    return [t for t in dict.fromkeys(tools) if shutil.which(t) is None]


def require_tools(tools: Iterable[str], what: str = "the Debian recordings") -> None:
    """Raise ``DataBuildError`` naming the missing programs and the apt command that installs them."""
    missing = missing_tools(tools)
    if missing:
        apt = " ".join(dict.fromkeys(TOOLS_APT.get(t, t) for t in missing))
        raise DataBuildError(f"{what} need {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                             f"not installed; install with: sudo apt-get install {apt}")


def tools_for(packages: Iterable[Package]) -> list[str]:
    tools = ["ffmpeg", "ffprobe"]
    if any(p.tracker for p in packages):
        tools.append("openmpt123")
    return tools


def _run(*cmd: str, timeout: float = 900, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), check=True, capture_output=True, timeout=timeout, cwd=cwd)


# ------------------------------------------------------------------------------- audio processing


def decode(path: Path, *, module: bool = False, raw_u8_stereo_22050: bool = False) -> tuple[np.ndarray, list[str]]:
    """Mono float32 at ``SAMPLE_RATE`` and notes on how it was decoded."""
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        src, fmt = path, []
        if module:
            src = Path(tmp) / "module.wav"
            _run("openmpt123", "--batch", "--quiet", "--no-details", "--samplerate", "44100", "--channels", "2",
                 "--no-float", "--end-time", "900", "-o", str(src), "--force", "--", str(path))
        elif raw_u8_stereo_22050:
            fmt = ["-f", "u8", "-ar", "22050", "-ac", "2"]
        out = Path(tmp) / "decoded.wav"
        try:
            _run("ffmpeg", "-nostdin", "-v", "error", "-threads", "1", *fmt, "-i", str(src), "-vn", "-map", "0:a:0",
                 "-af", "aresample=resampler=soxr", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_f32le", "-f", "wav",
                 str(out))
            x, sr = sf.read(out, dtype="float32", always_2d=True)
            notes.append("ffmpeg+soxr")
        except subprocess.CalledProcessError:
            # Ogg files from a buggy encoder (negative granule positions) that ffmpeg rejects: libsndfile + soxr
            import soxr

            x, sr = sf.read(src, dtype="float32", always_2d=True)
            x = soxr.resample(x, sr, SAMPLE_RATE, quality="VHQ").astype(np.float32)
            sr = SAMPLE_RATE
            notes.append("libsndfile+soxr (ffmpeg rejected the file)")
    if sr != SAMPLE_RATE:
        raise DataBuildError(f"{path}: decoded at {sr} Hz, expected {SAMPLE_RATE}")
    return to_mono(x, notes), notes


def to_mono(x: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Channel average; the left channel alone when the channels (nearly) cancel (antiphase stereo)."""
    mono = x.mean(axis=1)
    if x.shape[1] > 1:
        rms_ch = float(np.sqrt(np.mean(x ** 2)))
        rms_mono = float(np.sqrt(np.mean(mono ** 2)))
        if rms_ch > 0 and rms_mono < 0.3 * rms_ch:
            if notes is not None:
                notes.append(f"left channel only (L+R cancels: mono/stereo RMS {rms_mono / rms_ch:.3f})")
            return x[:, 0].copy()
    return mono


def excerpt(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(kept audio, trimmed duration s, excerpt start s in the trimmed audio): silence below
    ``SILENCE_DBFS`` trimmed at both ends in ``TRIM_FRAME`` frames, then the middle ``EXCERPT_SECONDS``."""
    n = len(x) // TRIM_FRAME
    if n == 0:
        return x[:0], 0.0, 0.0
    peaks = np.abs(x[: n * TRIM_FRAME]).reshape(n, TRIM_FRAME).max(axis=1)
    loud = np.nonzero(peaks >= 10 ** (SILENCE_DBFS / 20))[0]
    if len(loud) == 0:
        return x[:0], 0.0, 0.0
    x = x[loud[0] * TRIM_FRAME: min(len(x), (loud[-1] + 1) * TRIM_FRAME)]
    full = len(x) / SAMPLE_RATE
    cap = int(EXCERPT_SECONDS * SAMPLE_RATE)
    start = 0
    if len(x) > cap:
        start = (len(x) - cap) // 2
        x = x[start:start + cap]
    return np.clip(x, -1.0, 1.0), full, start / SAMPLE_RATE


def safe_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "track"


def item_id(package: str, name: str) -> str:
    """The corpus id of a package's file: ``<package>-<file stem made safe>``."""
    return f"{package}-{name}"


def hash_order(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


# ----------------------------------------------------------------------------------- labels


def parse_dep5(text: str) -> list[dict]:
    """Files stanzas of a machine-readable copyright file, in order: {patterns, copyright, license}."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s?(.*)$", line)
            if m and not line.startswith((" ", "\t")):
                key = m.group(1).lower()
                fields[key] = m.group(2)
            elif key and line.startswith((" ", "\t")):
                fields[key] += "\n" + line.strip()
        if "files" in fields:
            lic = fields.get("license", "")
            out.append({"patterns": fields["files"].split(),
                        "copyright": " ".join(s.strip() for s in fields.get("copyright", "").splitlines() if s.strip()),
                        "license": lic.splitlines()[0].strip() if lic else ""})
    return out


def dep5_match(stanzas: list[dict], path: str) -> dict | None:
    """The last stanza one of whose patterns matches a trailing part of ``path`` ('*' also matches '/')."""
    parts = path.strip("/").split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    hit = None
    for st in stanzas:
        for pat in st["patterns"]:
            rx = re.compile("^" + re.escape(pat.lstrip("./")).replace(r"\*", ".*").replace(r"\?", ".") + "$")
            if any(rx.match(s) for s in suffixes):
                hit = st
                break
    return hit


def tags_of(path: Path) -> dict[str, str]:
    """Lower-cased tag names -> values (stream tags first, then the container's)."""
    try:
        r = _run("ffprobe", "-v", "error", "-show_entries", "format_tags:stream_tags", "-of", "json", str(path),
                 timeout=120)
        d = json.loads(r.stdout)
    except Exception:
        try:
            with sf.SoundFile(path) as f:
                return {k.lower(): str(v) for k, v in f.copy_metadata().items()}
        except Exception:
            return {}
    out: dict[str, str] = {}
    for s in d.get("streams", []) + [d.get("format", {})]:
        for k, v in (s.get("tags") or {}).items():
            out.setdefault(k.lower(), str(v))
    return out


def module_info(path: Path) -> dict[str, str]:
    """openmpt123 --info fields (title, artist, ...), lower-cased names."""
    try:
        r = _run("openmpt123", "--info", str(path), timeout=60)
    except Exception:
        return {}
    out = {}
    for line in r.stdout.decode("utf8", "replace").splitlines():
        m = re.match(r"^(\w[\w ]*?)\.*:\s*(.*)$", line.strip())
        if m:
            out[m.group(1).strip().lower()] = m.group(2).strip()
    return out


def album_info(real: Path) -> dict[str, str]:
    """warzone2100 albums: the track's author and title (album.json) and its licence (license.txt)."""
    album = real.parent
    notes = (album / "license.txt").read_text(errors="ignore") if (album / "license.txt").exists() else ""
    meta = json.loads((album / "album.json").read_text()) if (album / "album.json").exists() else {}
    tracks = {t["filename"]: t for t in meta.get("tracks", [])}
    author = tracks.get(real.name, {}).get("author", meta.get("author", ""))
    excluded = set(re.findall(r"\*except\* (\S+?):", notes))
    if "CC-BY-SA" in notes and real.stem not in excluded:
        lic = WZ_LICENCES[0]
    elif "CC-BY-SA" in notes:
        lic = WZ_LICENCES[1]
    else:
        lic = WZ_LICENCES[2]
    return {"author": author, "licence": lic, "title": tracks.get(real.name, {}).get("title", "")}


def is_catch_all(stanza: dict | None) -> bool:
    return bool(stanza) and stanza["patterns"] == ["*"]


def artist_of(pkg: Package, path: str, name: str, tags: dict, stanza: dict | None, extra: dict) -> str:
    """The file's artist by the package's rules, then ``artist_by_name`` and one spelling per composer."""
    a = pkg.artist_by_name.get(name) or _artist(pkg, path, tags, stanza, extra)
    return ARTIST_ALIASES.get(a, a)


def _artist(pkg: Package, path: str, tags: dict, stanza: dict | None, extra: dict) -> str:
    stem, fname = Path(path).stem, Path(path).name
    tag = (tags.get("artist") or tags.get("composer") or tags.get("author") or "").strip()
    holder = "" if stanza is None or (pkg.catch_all_note and is_catch_all(stanza)) else stanza["copyright"]
    for rule in pkg.artist:
        a = ""
        if isinstance(rule, tuple):
            kind, table = rule
            if kind == "prefix":
                prefix = re.split(r"[-_0-9]", stem)[0].lower()
                a = next((v for k, v in table.items() if prefix.startswith(k)), "")
            elif kind == "suffix":
                a = table.get(stem.rsplit("-", 1)[-1], "") if "-" in stem else ""
            elif kind == "stem":
                a = next((v for rx, v in table.items() if re.search(rx, stem)), "")
            elif kind == "title":
                a = table.get((tags.get("title") or "").lower(), "")
            else:
                raise DataBuildError(f"{pkg.name}: unknown artist rule {kind!r}")
        elif rule.startswith("="):
            a = rule[1:]
        elif rule == "tag":
            a = tag
        elif rule == "artist-tag":
            a = (tags.get("artist") or "").strip()
        elif rule == "module":
            a = extra.get("module_artist", "")
        elif rule == "holder":
            a = holder
        elif rule.startswith("holder~"):
            a = holder if rule[7:] in holder else ""
        elif rule == "holder+tag":
            h = re.sub(r"\s*\(http[^)]*\)", "", holder)
            a = f"{h} ({tag})" if tag and tag.lower() not in h.lower() else (h or tag)
        elif rule == "default":
            a = pkg.default_artist
        elif rule == "package":
            a = pkg.name
        elif rule == "album":
            a = extra.get("author", "")
        elif rule.startswith("before:"):
            sep = rule[7:]
            a = fname.split(sep)[0].replace("_", " ") if sep in fname else ""
        else:
            raise DataBuildError(f"{pkg.name}: unknown artist rule {rule!r}")
        if a:
            return a
    return pkg.name


def genre_of(pkg: Package, path: str, tags: dict) -> str:
    tag = (tags.get("genre") or "").strip().lower()
    if tag in TAG_GENRES:
        return TAG_GENRES[tag]
    return next((g for rx, g in pkg.genre_rules if re.search(rx, path.lower())), pkg.genre)


def licence_of(pkg: Package, path: str, stanza: dict | None, extra: dict) -> str:
    """Album notes, then the table's per-path rules, then the by-hand licence, then the copyright stanza's."""
    if pkg.albums:
        return extra["licence"]
    for rx, lic in pkg.licence_rules:
        if re.search(rx, path):
            return lic
    if pkg.licence:
        return pkg.licence
    if stanza and stanza["license"]:
        if pkg.catch_all_note and is_catch_all(stanza):
            return f"{stanza['license']} (Debian copyright catch-all stanza; no per-file stanza)"
        return stanza["license"]
    return ""


# --------------------------------------------------------------------------------- fetching


EXTRACTED_MARK = ".jukebox-bridge-extracted.json"


def mark_extracted(folder: Path, version: str, deb: str = "", deb_sha256: str = "") -> None:
    """Record that ``folder`` holds a whole extracted package (version, .deb name and hash)."""
    atomic_write_text(folder / EXTRACTED_MARK, json.dumps({"version": version, "deb": deb, "deb_sha256": deb_sha256}),
                      overwrite=True)


def fetch(pkg: Package, cache: Path, log: Callable[[str], None]) -> tuple[Path, dict]:
    """The extracted package folder and its mark (version, deb, deb_sha256): downloads and extracts if needed."""
    if is_reserved(pkg.name):  # never, whatever table was passed in
        raise DataBuildError(f"{pkg.name} is reserved for evaluation")
    root = cache / "extract" / pkg.name
    if (root / EXTRACTED_MARK).exists():
        return root, json.loads((root / EXTRACTED_MARK).read_text())
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{pkg.name}_*.deb"))
    if not found:
        require_tools(["apt-get"], f"downloading {pkg.name}")
        log(f"{pkg.name}: apt-get download into {debs}")
        try:
            _run("apt-get", "download", f"{pkg.name}={pkg.version}", cwd=debs, timeout=3600)
        except subprocess.CalledProcessError:
            try:
                _run("apt-get", "download", pkg.name, cwd=debs, timeout=3600)
            except subprocess.CalledProcessError as e:
                why = e.stderr.decode(errors="replace").strip()[:200]
                raise DataBuildError(f"apt-get download {pkg.name} failed ({why}); needs a Debian {DEBIAN_RELEASE} "
                                     f"apt source and `sudo apt-get update`, or put the .deb in {debs}") from e
        found = sorted(debs.glob(f"{pkg.name}_*.deb"))
        if not found:
            raise DataBuildError(f"apt-get download {pkg.name} left no .deb in {debs}")
    deb = found[-1]
    require_tools(["dpkg-deb"], f"extracting {pkg.name}")
    version = _run("dpkg-deb", "-f", str(deb), "Version").stdout.decode().strip()
    if version != pkg.version:
        log(f"{pkg.name}: warning: version {version}, the table was reviewed for {pkg.version}")
    part = root.with_name(root.name + ".partial")
    shutil.rmtree(part, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    part.mkdir(parents=True)
    log(f"{pkg.name}: dpkg -x {deb.name}")
    _run("dpkg-deb", "-x", str(deb), str(part), timeout=3600)
    mark_extracted(part, version, deb.name, file_sha256(deb))
    part.rename(root)
    return root, json.loads((root / EXTRACTED_MARK).read_text())


def candidates(pkg: Package, root: Path, tmp: Path) -> list[tuple[str, Path]]:
    """(path inside the package, real file) for each selected file; archive members are copied to ``tmp``."""
    allfiles = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != EXTRACTED_MARK)
    out = [(rel, root / rel) for rel in allfiles if any(re.search(rx, rel) for rx in pkg.files)]
    for zrx, mrx in pkg.archives:
        for rel in allfiles:
            if not re.search(zrx, rel):
                continue
            with zipfile.ZipFile(root / rel) as z:
                for m in sorted(z.namelist()):
                    if re.search(mrx, m) and not m.endswith("/"):
                        dest = tmp / "archive" / m
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        with z.open(m) as src, open(dest, "wb") as dst:
                            shutil.copyfileobj(src, dst)
                        out.append((str(Path(rel).parent / m), dest))
    if pkg.exclude:
        out = [(v, p) for v, p in out if not re.search(pkg.exclude, v)]
    return out


# ---------------------------------------------------------------------------------- converting


def record_path(cache: Path, package: str) -> Path:
    return cache / "records" / f"{package}.json"


def load_record(cache: Path, package: str) -> dict | None:
    path = record_path(cache, package)
    return json.loads(path.read_text()) if path.exists() else None


def _fingerprint(pkg: Package) -> str:
    text = f"{AUDIO_RULES}|{pkg!r}|{sorted(ARTIST_ALIASES.items())}|{TAG_GENRES}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_is_current(cache: Path, pkg: Package) -> bool:
    rec = load_record(cache, pkg.name)
    return bool(rec and rec.get("complete") and rec.get("fingerprint") == _fingerprint(pkg)
                and all((cache / it["flac"]).exists() for it in rec["items"]))


def _skip(rec: dict, path: str, reason: str) -> None:
    rec["skipped"].append({"source": path, "reason": reason})


def _save(cache: Path, rec: dict) -> None:
    atomic_write_text(record_path(cache, rec["package"]), json.dumps(rec, indent=1, ensure_ascii=False),
                      overwrite=True)


def convert(pkg: Package, cache: Path, seen: dict[str, str], log: Callable[[str], None] = print,
            keep_extracted: bool = False) -> dict:
    """Convert one package's music files (reusing finished ones); returns and saves its record.

    ``seen`` maps source sha256 -> "package:path" of files already taken (byte-identical copies are skipped).
    """
    if record_is_current(cache, pkg):
        rec = load_record(cache, pkg.name)
        for it in rec["items"]:
            seen.setdefault(it["source_sha256"], f"{pkg.name}:{it['source']}")
        return rec
    old = {it["source"]: it for it in (load_record(cache, pkg.name) or {}).get("items", [])}
    root, mark = fetch(pkg, cache, log)
    cfile = next(iter(sorted(root.glob("usr/share/doc/*/copyright"))), None)
    stanzas = parse_dep5(cfile.read_text(errors="ignore")) if cfile else []
    (cache / "records").mkdir(parents=True, exist_ok=True)
    if cfile:
        shutil.copyfile(cfile, cache / "records" / f"{pkg.name}.copyright")
    outdir = cache / "converted" / pkg.name
    outdir.mkdir(parents=True, exist_ok=True)
    rec = {"package": pkg.name, "version": mark["version"], "deb": mark.get("deb", ""),
           "deb_sha256": mark.get("deb_sha256", ""), "fingerprint": _fingerprint(pkg), "complete": False,
           "items": [], "skipped": []}
    used: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        found = candidates(pkg, root, Path(tmp))
        for n, (path, real) in enumerate(found):
            src_sha = file_sha256(real)
            if src_sha in seen and seen[src_sha] != f"{pkg.name}:{path}":
                _skip(rec, path, f"byte-identical to {seen[src_sha]}")
                continue
            seen[src_sha] = f"{pkg.name}:{path}"
            module = bool(re.search(MODULE_RX, path, re.IGNORECASE))
            if module and not pkg.tracker:
                require_tools(["openmpt123"], f"{pkg.name}'s tracker modules")
            plain = not module and not pkg.raw_u8_stereo_22050
            tags = tags_of(real) if plain else {}
            extra: dict = {}
            if module:
                info = module_info(real)
                extra["module_artist"] = info.get("artist", "")
                tags = {"title": info.get("title", "")}
            if pkg.albums:
                extra.update(album_info(real))
            stem = f"{real.parent.name}-{Path(path).stem}" if pkg.albums else Path(path).stem
            name = safe_name(stem)
            while name in used:
                name += "_"
            cpath = re.sub(pkg.copyright_path[0], pkg.copyright_path[1], path) if pkg.copyright_path else path
            stanza = dep5_match(stanzas, cpath) if stanzas else None
            licence = licence_of(pkg, path, stanza, extra)
            if licence not in pkg.licences:
                _skip(rec, path, f"licence {licence or 'unknown'!r} is not one reviewed for {pkg.name}")
                continue
            flac = outdir / f"{name}.flac"
            prev = old.get(path)
            audio_key = f"{AUDIO_RULES} module={module} raw={pkg.raw_u8_stereo_22050}"
            if prev and prev["source_sha256"] == src_sha and prev["name"] == name and prev["audio"] == audio_key \
                    and flac.exists() and file_sha256(flac) == prev["flac_sha256"]:
                audio = {k: prev[k] for k in ("seconds", "flac_sha256", "original_seconds", "trimmed_seconds",
                                              "excerpt_start", "decode")}
                state = "cached"
            else:
                try:
                    x, notes = decode(real, module=module, raw_u8_stereo_22050=pkg.raw_u8_stereo_22050)
                except Exception as e:  # one undecodable file is recorded, not fatal
                    _skip(rec, path, f"decode failed: {type(e).__name__}: {str(e)[:200]}")
                    continue
                y, trimmed, start = excerpt(x)
                if len(y) < MIN_SECONDS * SAMPLE_RATE:
                    _skip(rec, path, f"shorter than {MIN_SECONDS:.0f} s after trimming ({trimmed:.1f} s)")
                    continue
                atomic_write(flac, lambda fh, y=y: sf.write(fh, y, SAMPLE_RATE, subtype="PCM_16", format="FLAC"),
                             overwrite=True)
                kind = ["module"] if module else ["raw_u8_stereo_22050"] if pkg.raw_u8_stereo_22050 else []
                audio = {"seconds": round(len(y) / SAMPLE_RATE, 3), "flac_sha256": file_sha256(flac),
                         "original_seconds": round(len(x) / SAMPLE_RATE, 3), "trimmed_seconds": round(trimmed, 3),
                         "excerpt_start": round(start, 3), "decode": "; ".join(kind + notes)}
                state = "built"
            used.add(name)
            item = {"id": item_id(pkg.name, name), "name": name, "package": pkg.name, "version": rec["version"],
                    "licence": licence, "artist": artist_of(pkg, path, name, tags, stanza, extra),
                    "genre": genre_of(pkg, path, tags), "source": path, "source_sha256": src_sha,
                    "flac": str(flac.relative_to(cache)), "audio": audio_key, **audio,
                    "title": tags.get("title") or extra.get("title") or "", "tag_artist": tags.get("artist", ""),
                    "tag_genre": tags.get("genre", ""),
                    "tag_license": tags.get("license") or tags.get("copyright") or "",
                    "copyright_holder": (stanza or {}).get("copyright", "")}
            rec["items"].append(item)
            log(f"{pkg.name} [{n + 1}/{len(found)}] {state} {item['id']} ({item['seconds']:.1f} s, {licence})")
            _save(cache, rec)
    rec["complete"] = True
    _save(cache, rec)
    if not keep_extracted:
        shutil.rmtree(root, ignore_errors=True)
    return rec


def select(items: Sequence[dict], cap_seconds: float = PACKAGE_CAP_SECONDS) -> list[dict]:
    """One package's kept files: in hash order of their ids, each that keeps the total under the cap."""
    chosen, total = [], 0.0
    for it in sorted(items, key=lambda it: hash_order(it["id"])):
        if total + it["seconds"] < cap_seconds:
            chosen.append(it)
            total += it["seconds"]
    return sorted(chosen, key=lambda it: it["id"])


def convert_all(packages: Sequence[Package], cache: Path, log: Callable[[str], None] = print,
                keep_extracted: bool = False) -> list[dict]:
    """Every package's record, in table order (byte-identical files are taken once, first package first)."""
    for pkg in packages:
        if is_reserved(pkg.name):
            raise DataBuildError(f"{pkg.name} is reserved for evaluation")
    todo = [p for p in packages if not record_is_current(cache, p)]
    if todo:
        require_tools(tools_for(todo))
    seen: dict[str, str] = {}
    return [convert(p, cache, seen, log, keep_extracted) for p in packages]
