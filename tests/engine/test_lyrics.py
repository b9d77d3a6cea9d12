"""Lyric vocabulary, cleaning and window alignment against the reference fixtures (exact equality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.model.lyrics import load_lyric_vocab, lyric_window

from . import shared

SHARED = shared.SHARED.parent


@pytest.fixture(scope="module")
def label_examples() -> dict:
    path = SHARED / "jukebox_reference" / "labels" / "label_examples.json"
    if not path.is_file():
        pytest.fail(f"reference fixture missing: {path} (the shared folder must sit next to the repo)")
    return json.loads(path.read_text(encoding="utf-8"))


def _version(case: dict) -> int:
    return 3 if case.get("labels_version", case.get("case", "")).startswith("v3") else 2


# ---------------------------------------------------------------- vocabulary


def test_vocab_sizes_and_ids():
    v2, v3 = load_lyric_vocab(2), load_lyric_vocab(3)
    assert (v2.n_vocab, v3.n_vocab) == (80, 79)
    assert "+" in v2.chars and "+" not in v3.chars
    assert v2.chars.replace("+", "") == v3.chars
    assert v2.tokenize("Aa0") == [1, 27, 53]  # id = 1 + index
    assert v2.tokenize("+") == [70] and v3.tokenize("'") == [70]  # '+' shifts everything after it in v2
    assert v2.tokenize("\n") == [79] and v3.tokenize("\n") == [78]


def test_vocab_matches_json_table():
    for version in (2, 3):
        data = json.loads((Path(__file__).resolve().parents[2] / "engine" / "data" / "vocab" /
                           f"lyrics_vocab_v{version}.json").read_text(encoding="utf-8"))
        vocab = load_lyric_vocab(version)
        assert [[i, c] for i, c in zip(range(1, vocab.n_vocab), vocab.chars)] == data["id_to_char"]


def test_load_is_cached_and_checks_version():
    assert load_lyric_vocab(2) is load_lyric_vocab(2)
    with pytest.raises(ValueError):
        load_lyric_vocab(1)


def test_clean_rules():
    v2, v3 = load_lyric_vocab(2), load_lyric_vocab(3)
    assert v2.clean("a\\b") == "a\nb"  # backslash is a line break
    assert v2.clean("Café “hi” & *x* + y") == 'Cafe "hi"  x + y'  # unidecode, then delete & and *
    assert v3.clean("1 + 1") == "1  1"  # '+' is not in v3
    assert v2.clean("naïve\trésumé") == "naive\tresume"


def test_tokenize_rejects_uncleaned_text_and_encode_cleans():
    vocab = load_lyric_vocab(3)
    with pytest.raises(ValueError, match="clean"):
        vocab.tokenize("é")
    assert vocab.encode("é") == vocab.tokenize("e")


def test_detokenize():
    vocab = load_lyric_vocab(2)
    text = "Hello, world!\n[x] (y) 'z' \"q\" +"
    assert vocab.detokenize(vocab.tokenize(text)) == text
    assert vocab.detokenize([0, 0, 8, 0, 35]) == "Hi"  # padding reads as ''
    with pytest.raises(ValueError):
        vocab.detokenize([80])


# ---------------------------------------------------------------- label_examples.json


@pytest.mark.parity
def test_cleaning_and_tokens_of_every_case(label_examples):
    checked = 0
    for case in label_examples["cases"]:
        if "error" in case:
            continue
        vocab = load_lyric_vocab(_version(case))
        cleaned = vocab.clean(case["input"]["lyrics"])
        assert cleaned == case["cleaned_lyrics"], case["case"]
        assert vocab.tokenize(cleaned) == case["full_tokens"], case["case"]
        checked += 1
    assert checked == 12


@pytest.mark.parity
def test_labeller_window_of_every_case(label_examples):
    """``Labeller.get_label`` uses duration = its own sample_length."""
    for case in label_examples["cases"]:
        if "error" in case:
            continue
        inp = case["input"]
        tokens, indices = lyric_window(case["full_tokens"], case["n_tokens"], inp["total_length"],
                                       inp["offset"], case["sample_length"])
        assert tokens == case["lyric_window"], case["case"]
        assert len(indices) == case["n_tokens"]


@pytest.mark.parity
def test_lyric_windows(label_examples):
    # The windows were computed from the 5b_lyrics_long input (9 verses); ``lyrics_used`` holds 3.
    lyrics = next(c for c in label_examples["cases"] if c["case"] == "v2_5b_lyrics_long")["input"]["lyrics"]
    windows = label_examples["lyric_windows"]
    assert len(windows) == 10
    for w in windows:
        full = load_lyric_vocab(_version(w)).encode(lyrics)
        assert len(full) == w["n_full_tokens"]
        assert w["offset"] == w["window_start_tokens"] * 128
        for f32 in (False, True):
            tokens, indices = lyric_window(full, w["n_tokens"], w["total_length"], w["offset"], w["duration"],
                                           float32=f32)
            assert tokens == w["tokens"], (w, f32)
            assert (indices[0], indices[-1]) == (w["first_index"], w["last_index"])
            assert tokens == [full[i] for i in indices]


# ---------------------------------------------------------------- the window rule itself


def test_short_lyrics_are_left_padded():
    tokens, indices = lyric_window([5, 6, 7], 6, 1000, 0, 100)
    assert tokens == [0, 0, 0, 5, 6, 7]
    assert indices == [-1, -1, -1, 0, 1, 2]


def test_midpoint_and_clamps():
    full = list(range(100, 200))  # 100 tokens
    # mid = int(100 * (500 + 50) / 1000) = 55 -> [51, 59)
    assert lyric_window(full, 8, 1000, 500, 100)[1] == list(range(51, 59))
    assert lyric_window(full, 8, 1000, 0, 10)[1] == list(range(0, 8))  # clamped to n/2
    assert lyric_window(full, 8, 1000, 999, 1000)[1] == list(range(92, 100))  # clamped to len - n/2


def test_offset_outside_song_is_rejected():
    with pytest.raises(ValueError, match="offset"):
        lyric_window(list(range(10)), 4, 1000, 1000, 100)
    assert lyric_window([1], 4, 1000, 5000, 100)[0] == [0, 0, 0, 1]  # the short branch never checks


def test_float32_midpoint_matches_reference_tensor_arithmetic():
    """Inside ``SimplePrior.get_y`` the midpoint is computed on int64 tensors, i.e. in float32."""
    torch = pytest.importorskip("torch")
    n, total, offset, duration, n_tokens = 2954, 3880800, 1824384, 786432, 384
    y = torch.tensor([total, offset, duration])
    ref_mid = int(n * (y[1] + y[2] / 2.0) / y[0])  # the reference expression, verbatim
    full = list(range(n))
    f32 = lyric_window(full, n_tokens, total, offset, duration, float32=True)[1]
    f64 = lyric_window(full, n_tokens, total, offset, duration)[1]
    assert f32[0] == ref_mid - n_tokens // 2
    assert f64 != f32  # this case really does depend on the precision
