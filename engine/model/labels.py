"""Artist and genre ids, and the label vector ``y`` that conditions every prior (paper section 3.3).

Two layers, kept apart on purpose:

* the **reference rules** (``reference_artist_id``, ``reference_genre_ids``, ``label_vector``,
  ``window_label``) reproduce ``artist_genre_processor.py`` and ``labels.py`` bit for bit, unknown
  names silently becoming id 0 included, because parity with the trained embeddings depends on it;
* the **forgiving lookup** (``resolve_artist``, ``resolve_genre``, ``search``) is for people. It tries
  the reference rule first, then accent-, case- and punctuation-insensitive matching, and otherwise
  fails loudly with suggestions. A silent 0 means "unknown artist" to the model, which is almost
  never what a user who made a typo wanted.

Vocabulary versions: v2 (5b, 5b_lyrics and all upsamplers) and v3 (the 1b_lyrics top level).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from unidecode import unidecode

from .lyrics import VOCAB_DIR, load_lyric_vocab, lyric_window

Kind = Literal["artist", "genre"]
LABEL_VERSIONS = (2, 3)
MAX_BOW_GENRE_SIZE = {2: 5, 3: 1}  # v2 genres are a bag of words, v3 genres one whole string
INVISIBLE_MARKS = frozenset("\u200e\u200f")  # LRM/RLM inside 31 v3 genre names
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_RUNS_OF_UNDERSCORES = re.compile("_+")
_NOT_ALNUM = re.compile("[^a-z0-9]+")


class UnknownLabelError(ValueError):
    """A user-supplied artist or genre that is not in the vocabulary, with close known names."""

    def __init__(self, kind: str, name: str, suggestions: Sequence[str] = ()) -> None:
        self.kind, self.name, self.suggestions = kind, name, list(suggestions)
        message = f"Unknown {kind} {name!r}."
        if self.suggestions:
            message += f" Did you mean: {', '.join(self.suggestions)}?"
        super().__init__(f"{message} Use `jukebox-bridge {kind}s --search` to browse.")


def norm(s: str) -> str:
    """The reference v2 normaliser: lowercase, every char outside [a-z0-9] to '_', collapse, strip.

    The test runs *after* ``lower()``, so e.g. the Kelvin sign becomes 'k' while 'é' becomes '_'.
    """
    s = "".join(c if c in _ASCII_ALNUM else "_" for c in s.lower())
    return _RUNS_OF_UNDERSCORES.sub("_", s).strip("_")


def fold(s: str) -> str:
    """The forgiving key: transliterate accents, case-fold, and treat all punctuation, spaces and
    underscores as one separator. 'Beyoncé', 'BEYONCE' and 'beyonce' all fold to 'beyonce'."""
    return _NOT_ALNUM.sub(" ", unidecode(s).casefold()).strip()


def _has_marks(name: str) -> bool:
    return any(c in INVISIBLE_MARKS for c in name)


def _check_version(version: int) -> None:
    if version not in LABEL_VERSIONS:
        raise ValueError(f"label vocabulary version must be one of {LABEL_VERSIONS}, got {version!r}")


@dataclass(frozen=True)
class LabelVocab:
    """One id file as the reference loads it: ``name.lower() -> id``, the last line winning.

    ``folded`` maps each fold() key to one preferred name. When several names share a key, the
    preference is: no invisible marks, reachable by the reference rule (11 v2 artists such as
    'beyonc_' end in '_' and never are), regular spacing, then file order.
    """

    kind: str
    version: int
    ids: Mapping[str, int]
    names: tuple[str, ...]  # distinct names in order of first appearance
    folded: Mapping[str, str] = field(repr=False)
    listing: tuple[tuple[str, str], ...] = field(repr=False)  # (fold key, name), sorted, browsable

    def reference_key(self, name: str) -> str:
        """What the reference looks up: ``norm(name)`` in v2, ``name.lower()`` in v3."""
        return norm(name) if self.version == 2 else name.lower()

    def name_of(self, label_id: int) -> str:
        """The reference reverse lookup: the sorted names of an id joined with '_' (KeyError if none,
        e.g. v3 artist 3675, the first 'speaker', which the second line overwrote)."""
        names = sorted(n for n, i in self.ids.items() if i == label_id)
        if not names:
            raise KeyError(label_id)
        return "_".join(names)

    def resolve(self, name: str) -> int:
        """Reference rule, then the fold() index; otherwise UnknownLabelError with suggestions."""
        label_id = self.ids.get(self.reference_key(name))
        if label_id is None:
            key = fold(name)
            if key in self.folded:
                return self.ids[self.folded[key]]
            raise UnknownLabelError(self.kind, name, self.suggest(name))
        return label_id

    def suggest(self, name: str, n: int = 5) -> list[str]:
        """Up to ``n`` known names whose fold() keys are closest to the input's (difflib ratio)."""
        key = fold(name)
        if not key:
            return ["unknown"] if "unknown" in self.ids else []
        return [self.folded[k] for k in difflib.get_close_matches(key, list(self.folded), n=n)]


@lru_cache(maxsize=None)
def load_label_vocab(kind: Kind, version: int) -> LabelVocab:
    """Read ``v{version}_{kind}_ids.txt`` exactly as the reference does (text mode, strip, split on ';')."""
    _check_version(version)
    if kind not in ("artist", "genre"):
        raise ValueError(f"kind must be 'artist' or 'genre', got {kind!r}")
    return _vocab_from_file(VOCAB_DIR / f"v{version}_{kind}_ids.txt", kind, version)


def load_label_vocab_file(path: str | os.PathLike, kind: Kind) -> LabelVocab:
    """A model's own vocabulary (``artists.txt``/``genres.txt`` beside its weights, official ``name;id``
    format). Looked up with the v3 rules: whole lowercased names, one genre id, then fold()."""
    if kind not in ("artist", "genre"):
        raise ValueError(f"kind must be 'artist' or 'genre', got {kind!r}")
    return _vocab_from_file(Path(path), kind, 3)


def _vocab_from_file(path: Path, kind: Kind, version: int) -> LabelVocab:
    ids: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            name, label_id = line.strip().split(";")
            ids[name.lower()] = int(label_id)

    def rank(item: tuple[int, str]) -> tuple[bool, bool, bool, int]:
        order, name = item
        unreachable = version == 2 and norm(name) != name
        return (_has_marks(name), unreachable, name != " ".join(name.split()), order)

    candidates: dict[str, list[tuple[int, str]]] = {}
    for order, name in enumerate(ids):
        if key := fold(name):  # '!!!' (a v3 artist) folds to '' and stays reachable only exactly
            candidates.setdefault(key, []).append((order, name))
    folded = {key: min(items, key=rank)[1] for key, items in candidates.items()}
    listing = sorted((fold(n), n) for n in ids if n and not _has_marks(n))
    return LabelVocab(kind, version, MappingProxyType(ids), tuple(ids), MappingProxyType(folded), tuple(listing))


# ---------------------------------------------------------------- reference rules (parity)


def reference_artist_id(artist: str, version: int) -> int:
    """``ArtistGenreProcessor.get_artist_id``: unknown names give 0 (the reference only prints)."""
    vocab = load_label_vocab("artist", version)
    return vocab.ids.get(vocab.reference_key(artist), 0)


def reference_genre_ids(genre: str, version: int) -> list[int]:
    """``ArtistGenreProcessor.get_genre_ids``, unpadded: v2 looks up each word of
    ``norm(genre).split('_')`` (unknown words give 0 and are kept; '' gives [0]); v3 looks up the
    whole lowercased string."""
    vocab = load_label_vocab("genre", version)
    words = norm(genre).split("_") if version == 2 else [genre.lower()]
    return [vocab.ids.get(w, 0) for w in words]


# ---------------------------------------------------------------- forgiving lookup (users)


def resolve_artist(name: str, version: int) -> int:
    """The artist id for a user's spelling, or UnknownLabelError naming close known artists.

    v2 names lost their accents to '_' ('beyonc' is Beyoncé), so typed 'beyonce' cannot match them
    directly. The accented v3 spelling bridges the gap: 'beyonce' -> v3 'beyoncé' -> norm -> 'beyonc'.
    This is the id the reference gives when the accent is typed.
    """
    vocab = load_label_vocab("artist", version)
    try:
        return vocab.resolve(name)
    except UnknownLabelError:
        if version == 2:
            v3_name = load_label_vocab("artist", 3).folded.get(fold(name))
            if v3_name is not None and norm(v3_name) and norm(v3_name) in vocab.ids:
                return vocab.ids[norm(v3_name)]
        raise


def resolve_genre(name: str, version: int) -> list[int]:
    """The unpadded genre ids for a user's spelling (v2: one id per word, at most 5 words; v3: one id).

    In v2 accents are transliterated before ``norm`` so that 'Électronique' keeps its 'e'.
    """
    vocab = load_label_vocab("genre", version)
    if version == 3:
        return [vocab.resolve(name)]
    words = norm(name).split("_")
    if all(w in vocab.ids for w in words):
        ids = [vocab.ids[w] for w in words]
    else:
        ids = [vocab.resolve(w) for w in norm(unidecode(name)).split("_")]
    if len(ids) > MAX_BOW_GENRE_SIZE[2]:
        raise ValueError(f"genre {name!r} has {len(ids)} words; v2 models take at most {MAX_BOW_GENRE_SIZE[2]}")
    return ids


def search(query: str, kind: Kind, version: int, limit: int | None = 50, offset: int = 0,
           vocab: LabelVocab | None = None) -> list[str]:
    """One page of known names containing ``query`` (compared after fold()), in folded alphabetical
    order. Names carrying invisible marks are left out: each has a plain twin that typing reaches.
    ``vocab``: a model's own vocabulary instead of the official one of ``version``."""
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError("limit and offset must be non-negative")
    vocab = vocab or load_label_vocab(kind, version)
    key, raw = fold(query), query.strip().casefold()
    if key or not raw:
        hits = [name for folded_name, name in vocab.listing if key in folded_name]
    else:  # punctuation-only queries such as '!!!' fold to ''; match them literally
        hits = [name for _, name in vocab.listing if raw in name.casefold()]
    return hits[offset:] if limit is None else hits[offset : offset + limit]


# ---------------------------------------------------------------- the label vector y


def label_vector(
    artist: str,
    genre: str,
    lyrics: str,
    total_length: int,
    offset: int,
    sample_length: int,
    version: int,
    max_genre_words: int,
    n_tokens: int,
    *,
    forgiving: bool = False,
) -> list[int]:
    """``Labeller.get_label(...)['y']``: [total_length, offset, sample_length, artist_id,
    genre_ids padded with -1 to ``max_genre_words``, ``n_tokens`` lyric ids], lengths in samples.

    The lyric window uses ``duration = sample_length``, the Labeller's own length; a prior replaces
    it per window with ``window_label``. v3 labels pair with the v3 lyric vocabulary. With
    ``forgiving=True`` names go through ``resolve_*`` (errors instead of silent zeros).
    """
    _check_version(version)
    if forgiving:
        artist_id, genre_ids = resolve_artist(artist, version), resolve_genre(genre, version)
    else:
        artist_id, genre_ids = reference_artist_id(artist, version), reference_genre_ids(genre, version)
    full_tokens = load_lyric_vocab(version).encode(lyrics)
    window, _ = lyric_window(full_tokens, n_tokens, total_length, offset, sample_length)
    if len(genre_ids) > max_genre_words:  # the reference asserts here
        raise ValueError(f"genre {genre!r} gives {len(genre_ids)} ids; at most {max_genre_words} allowed")
    genre_slots = genre_ids + [-1] * (max_genre_words - len(genre_ids))
    return [int(total_length), int(offset), int(sample_length), artist_id, *genre_slots, *window]


def window_label(
    y: Sequence[int],
    start_token: int,
    raw_to_tokens: int,
    n_ctx: int,
    full_lyric_tokens: Sequence[int],
    n_tokens: int,
) -> list[int]:
    """``SimplePrior.get_y``: the label a prior sees for the window starting at token ``start_token``.

    The offset advances by ``start_token * raw_to_tokens`` samples, the length becomes this level's
    window (``n_ctx * raw_to_tokens``), and the last ``n_tokens`` entries are the lyric window
    recomputed for it, with the midpoint in float32 as the reference's tensor arithmetic does.
    """
    out = [int(v) for v in y]
    out[2] = int(n_ctx * raw_to_tokens)
    out[1] = out[1] + int(start_token * raw_to_tokens)
    if n_tokens > 0:
        window, _ = lyric_window(full_lyric_tokens, n_tokens, out[0], out[1], out[2], float32=True)
        out[-n_tokens:] = window
    return out
