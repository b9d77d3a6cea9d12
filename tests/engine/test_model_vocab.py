"""A model's own label vocabulary (artists.txt / genres.txt beside its weights) and how renders use it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.generate.conditioning import label_fn
from engine.model import labels
from engine.request import RenderRequest, RequestError
from engine.weights.bundle import load_models, save_models


def _vocab_files(folder: Path) -> dict[str, labels.LabelVocab]:
    (folder / "artists.txt").write_text("unknown;0\njohann sebastian bach;1\nlupusmechanicus;2\n")
    (folder / "genres.txt").write_text("unknown;0\nchorale;1\nstring quartet;2\n")
    return {k: labels.load_label_vocab_file(folder / f"{k}s.txt", k) for k in ("artist", "genre")}


def test_vocab_file_lookup_is_forgiving(tmp_path: Path) -> None:
    vocab = _vocab_files(tmp_path)
    assert vocab["artist"].resolve("Johann Sebastian BACH") == 1
    assert vocab["genre"].resolve("String-Quartet") == 2  # whole names, not v2 word bags
    with pytest.raises(labels.UnknownLabelError, match="lupusmechanicus"):
        vocab["artist"].resolve("lupusmechanicos")
    assert labels.search("bach", "artist", 3, vocab=vocab["artist"]) == ["johann sebastian bach"]


def test_saved_model_keeps_its_vocab_and_renders_use_it(tmp_path: Path) -> None:
    models = load_models("debug")
    models.vocab = _vocab_files(tmp_path)
    loaded = load_models(save_models(models, tmp_path / "model"))
    assert loaded.vocab["genre"].ids == models.vocab["genre"].ids
    assert loaded.search_labels("genre", "quartet") == (1, ["string quartet"])
    req = RenderRequest.from_fields("generate", {"artist": "LupusMechanicus", "genre": "chorale", "seconds": 1})
    y = label_fn(loaded, 2, req, 44100, 2)(0)
    assert y.shape == (2, loaded.priors[2].cfg.y_len) and y[0, 3] == 2 and y[0, 4] == 1
    with pytest.raises(RequestError):
        label_fn(loaded, 2, RenderRequest.from_fields("generate", {"artist": "nobody at all", "seconds": 1}), 44100, 1)
    assert label_fn(loaded, 0, RenderRequest.from_fields("generate", {"artist": "nobody", "seconds": 1}), 44100, 1)(0)[0, 3] == 0


def test_official_behaviour_without_a_vocab() -> None:
    models = load_models("debug")
    assert models.vocab is None and models.info()["label_vocab"] == "official"
