"""Artist/genre ids and label vectors: exact reference parity, plus the forgiving user-facing lookup."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from engine.model.labels import (
    INVISIBLE_MARKS,
    UnknownLabelError,
    fold,
    label_vector,
    load_label_vocab,
    norm,
    reference_artist_id,
    reference_genre_ids,
    resolve_artist,
    resolve_genre,
    search,
    window_label,
)
from engine.model.lyrics import load_lyric_vocab

from . import shared

REPO = Path(__file__).resolve().parents[2]
SHARED = shared.SHARED.parent
VOCAB = REPO / "engine" / "data" / "vocab"
PRIORS = ("upsampler_l1_tiny", "1b_lyrics_tiny", "5b_tiny")


@pytest.fixture(scope="module")
def reference() -> Path:
    path = SHARED / "jukebox_reference"
    if not (path / "labels" / "label_examples.json").is_file():
        pytest.fail(f"reference fixtures missing under {path} (the shared folder must sit next to the repo)")
    return path


@pytest.fixture(scope="module")
def cases(reference) -> list[dict]:
    return json.loads((reference / "labels" / "label_examples.json").read_text(encoding="utf-8"))["cases"]


@pytest.fixture(scope="module")
def facts() -> dict:
    return json.loads((VOCAB / "vocab_facts.json").read_text(encoding="utf-8"))


def _call(case: dict) -> list[int]:
    inp = case["input"]
    return label_vector(inp["artist"], inp["genre"], inp["lyrics"], inp["total_length"], inp["offset"],
                        case["sample_length"], 3 if case["labels_version"] == "v3" else 2,
                        case["max_genre_words"], case["n_tokens"])


# ---------------------------------------------------------------- reference parity


@pytest.mark.parity
def test_every_labeller_case(cases):
    assert len(cases) == 13
    for case in cases:
        version = 3 if case["labels_version"] == "v3" else 2
        inp = case["input"]
        if "error" in case:
            with pytest.raises(ValueError, match="at most 5"):
                _call(case)
            continue
        y = _call(case)
        assert y == case["y"], case["case"]
        assert len(y) == 4 + case["max_genre_words"] + case["n_tokens"]
        assert reference_artist_id(inp["artist"], version) == case["artist_id"], case["case"]
        genre_ids = reference_genre_ids(inp["genre"], version)
        assert genre_ids + [-1] * (case["max_genre_words"] - len(genre_ids)) == case["genre_ids"], case["case"]
        key = load_label_vocab("artist", version).reference_key(inp["artist"])
        assert key == case["normalised_artist"], case["case"]
        words = norm(inp["genre"]).split("_") if version == 2 else [inp["genre"].lower()]
        assert words == case["normalised_genre_words"], case["case"]


@pytest.mark.parity
@pytest.mark.parametrize("name", PRIORS)
def test_prior_window_label_reproduces_y_npy(reference, name):
    folder = reference / "priors" / name
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    hp = json.loads((folder / "hparams.json").read_text(encoding="utf-8"))
    h, derived = hp["hparams_all"], hp["derived"]
    version = 3 if h["labels_v3"] else 2
    song = meta["metas"][0]
    full = load_lyric_vocab(version).encode(song["lyrics"])
    assert full == meta["full_lyric_tokens"][0]
    assert load_lyric_vocab(version).clean(song["lyrics"]) == meta["labels_info"][0]["cleaned_lyrics"]
    y0 = label_vector(song["artist"], song["genre"], song["lyrics"], song["total_length"], song["offset"],
                      derived["sample_length_samples"], version, h["max_bow_genre_size"], h["n_tokens"])
    y = window_label(y0, meta["window_start_tokens"], derived["raw_to_tokens"], h["n_ctx"], full, h["n_tokens"])
    expected = np.load(folder / "y.npy")
    assert expected.dtype == np.int64 and expected.shape == (1, len(y))
    assert y == expected[0].tolist()


def test_window_label_rule():
    y = [1323000, 1000, 999, 5, 7, *([0] * 4)]
    out = window_label(y, 10, 128, 256, list(range(1, 101)), 4)
    assert out[:5] == [1323000, 1000 + 1280, 256 * 128, 5, 7]
    # mid = int(100 * (2280 + 16384) / 1323000) = 1 -> clamped to 2 -> tokens[0:4]
    assert out[5:] == [1, 2, 3, 4]
    assert y[1] == 1000  # input untouched
    assert window_label(y[:5], 3, 32, 8, [], 0) == [1323000, 1096, 256, 5, 7]


def test_window_label_uses_float32_midpoint():
    """SimplePrior.get_y works on int64 tensors, so its midpoint is float32; this case shows it."""
    n, total, start, n_tokens = 2954, 3880800, 1824384 // 128, 384
    y = [total, 0, 0, 0, 0, *([0] * n_tokens)]
    out = window_label(y, start, 128, 6144, list(range(1, n + 1)), n_tokens)
    assert out[5] == 1687 - 192 + 1  # midpoint 1687 in float32 (float64 would give 1688)


def test_label_vector_rejects_offset_outside_song():
    with pytest.raises(ValueError, match="offset"):
        label_vector("Alan Jackson", "Country", "", 1000, 1000, 10, 2, 5, 0)


# ---------------------------------------------------------------- vocab_facts.json


def test_vocab_files_are_the_reference_copies(facts):
    for name, info in facts["files"].items():
        data = (VOCAB / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]


@pytest.mark.parametrize("key", ["v2_artist", "v2_genre", "v3_artist", "v3_genre"])
def test_vocab_counts_and_reverse_lookup(facts, key):
    fact = facts["facts"][key]
    version, kind = int(key[1]), key.split("_")[1]
    vocab = load_label_vocab(kind, version)
    lines = (VOCAB / fact["file"]).read_text(encoding="utf-8").splitlines()
    assert len(lines) == fact["n_lines"]
    assert len({int(line.rsplit(";", 1)[1]) for line in lines}) == fact["n_distinct_ids"]
    assert max(vocab.ids.values()) == fact["max_id"]
    assert len(vocab.ids) == fact["n_names_after_lowercase_dict"]
    assert sum(not n.isascii() for n in vocab.ids) == fact["non_ascii_names"]
    for label_id, names in fact["ids_with_several_names"].items():
        assert all(vocab.ids[n] == int(label_id) for n in names)
    for label_id, reverse in fact["reverse_lookup_of_multi_name_ids"].items():
        assert vocab.name_of(int(label_id)) == reverse
    for label_id in fact["ids_without_reverse_lookup"]:
        with pytest.raises(KeyError):
            vocab.name_of(label_id)
    for name, ids in fact["names_listed_twice"].items():
        assert vocab.ids[name] == ids[-1]  # the last line wins


def test_v2_aliases_of_zero_and_v3_speaker():
    assert [reference_artist_id(a, 2) for a in ("unknown", "Various", "", "???")] == [0, 0, 0, 0]
    assert load_label_vocab("artist", 2).name_of(0) == "_unknown_various"
    assert reference_artist_id("Speaker", 3) == 7896
    assert resolve_artist("speaker", 3) == 7896


def test_invisible_mark_genres_only_reachable_with_the_marks(facts):
    marked = facts["facts"]["v3_genre"]["names_with_invisible_format_chars"]
    assert len(marked) == 31
    vocab = load_label_vocab("genre", 3)
    listed = set(search("", "genre", 3, limit=None))
    for name in marked:
        plain = "".join(c for c in name if c not in INVISIBLE_MARKS)
        assert vocab.ids[plain] != vocab.ids[name]
        assert reference_genre_ids(name, 3) == [vocab.ids[name]]  # typed with the marks
        assert reference_genre_ids(plain.upper(), 3) == [vocab.ids[plain]]
        assert resolve_genre(plain.replace(" ", "_").replace("-", "_"), 3) == [vocab.ids[plain]]
        assert name not in listed and plain in listed
    assert reference_genre_ids("jazz fusion\u200e", 3) == [107] and resolve_genre("Jazz-Fusion", 3) == [295]


# ---------------------------------------------------------------- forgiving lookup


@pytest.mark.parametrize("spelling", ["THE BEATLES", "the-beatles", "the_beatles", " The  Beatles! "])
def test_resolve_artist_spellings(spelling):
    assert resolve_artist(spelling, 2) == 278
    assert resolve_artist(spelling, 3) == 7026


def test_forgiving_differs_from_reference_only_where_reference_gives_zero():
    assert reference_artist_id("the_beatles", 3) == 0 and resolve_artist("the_beatles", 3) == 7026
    assert reference_artist_id("beyonce", 3) == 0 and resolve_artist("beyonce", 3) == 6553
    assert reference_artist_id("Beyoncé", 3) == resolve_artist("BEYONCÉ", 3) == 6553
    # v2 turned the accent into '_' ('beyonc'); typed 'beyonce' reaches it through the v3 spelling
    assert reference_artist_id("Beyoncé", 2) == resolve_artist("beyonce", 2) == 957
    assert reference_artist_id("beyonce", 2) == 0
    assert resolve_artist("bjork", 2) == reference_artist_id("Björk", 2) == 1070


def test_collisions_prefer_plain_reachable_regular_names():
    genres = load_label_vocab("genre", 3).ids
    assert resolve_genre("Underground Hip-Hop", 3) == [genres["underground hip hop"]]
    assert resolve_genre("underground hip  hop", 3) == [genres["underground hip  hop"]]  # exact rule first
    assert resolve_artist("B O B", 3) == 442  # 'b.o.b' (first line) rather than 'b.o.b.'
    v2 = load_label_vocab("artist", 2)
    assert v2.folded["beyonc"] == "beyonc" and v2.ids["beyonc_"] != 957  # 'beyonc_' is unreachable


def test_resolve_genre_v2_bag_of_words():
    assert resolve_genre("Pop/Rock & Soul", 2) == [14, 8, 6]
    assert resolve_genre("Hip-Hop", 2) == [3, 4]
    with pytest.raises(ValueError, match="at most 5"):
        resolve_genre("rock pop soul jazz blues funk", 2)
    with pytest.raises(UnknownLabelError, match="'zzzz'"):
        resolve_genre("Rock Zzzz", 2)
    with pytest.raises(UnknownLabelError, match="Did you mean: unknown"):
        resolve_genre("", 2)


def test_unknown_artist_message_and_suggestions():
    with pytest.raises(UnknownLabelError) as info:
        resolve_artist("Beatels", 3)
    err = info.value
    assert isinstance(err, ValueError) and err.name == "Beatels" and err.kind == "artist"
    assert "the beatles" in err.suggestions and 1 <= len(err.suggestions) <= 5
    message = str(err)
    assert message.startswith("Unknown artist 'Beatels'. Did you mean: ")
    assert message.endswith("? Use `jukebox-bridge artists --search` to browse.")
    assert ", ".join(err.suggestions) in message
    with pytest.raises(UnknownLabelError) as info:
        resolve_artist("Qzxwv Qzxwv", 2)
    assert info.value.suggestions == [] and "Did you mean" not in str(info.value)


def test_label_vector_forgiving_mode():
    y = label_vector("the_beatles", "Jazz-Fusion", "", 100, 0, 10, 3, 1, 0, forgiving=True)
    assert y == [100, 0, 10, 7026, 295]
    assert label_vector("the_beatles", "Jazz-Fusion", "", 100, 0, 10, 3, 1, 0) == [100, 0, 10, 0, 0]
    with pytest.raises(UnknownLabelError):
        label_vector("Beatels", "rock", "", 100, 0, 10, 2, 5, 0, forgiving=True)


# ---------------------------------------------------------------- search


def test_search_substring_and_paging():
    assert search("beatles", "artist", 3) == ["the beatles"]
    everything = search("rock", "genre", 3, limit=None)
    assert len(everything) > 20 and all("rock" in fold(n) for n in everything)
    assert [fold(n) for n in everything] == sorted(fold(n) for n in everything)
    pages = [search("rock", "genre", 3, limit=7, offset=o) for o in range(0, len(everything) + 7, 7)]
    assert all(len(p) <= 7 for p in pages) and sum(pages, []) == everything
    assert search("rock", "genre", 3, limit=7, offset=len(everything)) == []
    assert "post-rock" in everything and "alternative rock" in everything
    with pytest.raises(ValueError):
        search("rock", "genre", 3, offset=-1)


def test_search_listing_contents():
    assert len(search("", "genre", 3, limit=None)) == 604 - 31
    artists_v2 = search("", "artist", 2, limit=None)
    assert "" not in artists_v2 and "unknown" in artists_v2 and len(artists_v2) == 4110
    assert search("BEYONCÉ", "artist", 3) == ["beyoncé"] and "beyonc" in search("beyonc", "artist", 2)
    assert search("!!!", "artist", 3) == ["!!!"]
    assert search("", "genre", 2, limit=3, offset=1) == ["alternative", "ambient", "american"]
