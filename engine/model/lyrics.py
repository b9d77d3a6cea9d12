"""Lyric characters and their alignment to audio windows (paper section 3.3, "lyrics conditioning").

Jukebox reads lyrics one character at a time from a small fixed vocabulary. There is no learned
alignment at sampling time. Characters are spread *linearly* over the whole song, and each audio
window sees the ``n_tokens`` characters centred on its midpoint. This module reproduces the reference
``TextProcessor`` (``text_processor.py``) and ``get_relevant_lyric_tokens`` (``labels.py:7-20``) exactly,
because the prior was trained on exactly these ids and windows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from unidecode import unidecode

VOCAB_DIR = Path(__file__).resolve().parents[1] / "data" / "vocab"
LYRIC_VOCAB_VERSIONS = (2, 3)  # v2: 5b_lyrics (80 ids, has '+'); v3: 1b_lyrics (79 ids, no '+')
PAD_ID = 0  # id 0 is <unk>/padding and reads back as the empty string


@dataclass(frozen=True)
class LyricVocab:
    """One character vocabulary: character ``chars[i]`` has id ``i + 1`` and id 0 is padding.

    ``not_vocab`` is the reference's own deletion regex (kept verbatim from the JSON rather than
    derived from ``chars``, so that cleaning matches the reference character for character).
    """

    version: int
    chars: str
    not_vocab: re.Pattern[str]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {c: i + 1 for i, c in enumerate(self.chars)})

    @property
    def n_vocab(self) -> int:
        """Number of ids including padding (80 for v2, 79 for v3): the prior's lyric bins."""
        return len(self.chars) + 1

    def clean(self, text: str) -> str:
        """The reference cleaning, in its order: unidecode, backslash -> newline, drop the rest.

        A backslash is the reference's line-break marker (command-line lyrics cannot hold newlines).
        Everything unidecode cannot turn into a vocabulary character (``&``, ``*``, ``+`` in v3, ...)
        is deleted, not replaced, so the character count, and with it the alignment, changes.
        """
        text = unidecode(text)
        text = text.replace("\\", "\n")
        return self.not_vocab.sub("", text)

    def tokenize(self, text: str) -> list[int]:
        """Ids of already-cleaned text. A character outside the vocabulary is an error, as in the
        reference (which raises KeyError), instead of becoming a silent padding id."""
        try:
            return [self._ids[c] for c in text]
        except KeyError as exc:
            raise ValueError(
                f"character {exc.args[0]!r} is not in the v{self.version} lyric vocabulary; "
                "call clean() first (or use encode())"
            ) from None

    def encode(self, text: str) -> list[int]:
        """Raw lyrics to ids: ``tokenize(clean(text))``, what the reference ``Labeller`` does."""
        return self.tokenize(self.clean(text))

    def detokenize(self, ids: Iterable[int]) -> str:
        """Ids back to text; padding (0) reads as the empty string, as in the reference ``textise``."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.n_vocab:
                raise ValueError(f"lyric id {i} is outside [0, {self.n_vocab}) for v{self.version}")
            out.append(self.chars[i - 1] if i else "")
        return "".join(out)


@lru_cache(maxsize=None)
def load_lyric_vocab(version: int) -> LyricVocab:
    """Load ``lyrics_vocab_v{version}.json`` once (v2 for 5b_lyrics, v3 for 1b_lyrics)."""
    if version not in LYRIC_VOCAB_VERSIONS:
        raise ValueError(f"lyric vocabulary version must be one of {LYRIC_VOCAB_VERSIONS}, got {version!r}")
    data = json.loads((VOCAB_DIR / f"lyrics_vocab_v{version}.json").read_text(encoding="utf-8"))
    vocab = LyricVocab(version, data["chars_in_id_order"], re.compile(data["not_vocab_regex"]))
    if vocab.n_vocab != data["n_vocab"]:
        raise ValueError(f"lyrics_vocab_v{version}.json is inconsistent: n_vocab {data['n_vocab']}")
    return vocab


def lyric_window(
    full_tokens: Sequence[int],
    n_tokens: int,
    total_length: int,
    offset: int,
    duration: int,
    *,
    float32: bool = False,
) -> tuple[list[int], list[int]]:
    """The ``n_tokens`` lyric ids a window [offset, offset + duration) of a song sees, and their
    source indices (-1 for padding). All lengths are in samples.

    Short lyrics are left-padded with 0, so the real characters sit next to the music. Otherwise
    the window is centred on character ``int(len * (offset + duration/2) / total_length)``, clamped
    so that it stays inside the lyrics. ``total_length`` therefore sets the lyric *speed*; it is
    not the length that is generated.

    ``float32=True`` evaluates the midpoint in float32, one rounding per operation, as the reference
    does when it recomputes the window inside ``SimplePrior.get_y`` (the label vector is then an
    int64 tensor and ``duration / 2.0`` promotes to float32). ``Labeller.get_label`` works on Python
    ints, that is in float64 (the default here). For long songs the two can pick different windows.
    """
    full = [int(t) for t in full_tokens]
    n, half = len(full), n_tokens // 2
    if n < n_tokens:
        pad = n_tokens - n
        return [PAD_ID] * pad + full, [-1] * pad + list(range(n))
    if not 0 <= offset < total_length:
        # The reference asserts this (only on this branch); a window must start inside the song.
        raise ValueError(f"offset {offset} must lie in [0, total_length={total_length})")
    if float32:
        f = np.float32
        pos = f(offset) + f(duration) / f(2.0)
        mid = int(f(n) * pos / f(total_length))
    else:
        mid = int(n * (offset + duration / 2.0) / total_length)
    mid = min(max(mid, half), n - half)
    indices = list(range(mid - half, mid + half))
    if len(indices) != n_tokens:
        raise ValueError(f"n_tokens must be even, got {n_tokens}")  # the reference asserts the length
    return full[mid - half : mid + half], indices
