"""Conditioning: the label vector (artist, genre, timing, lyrics) each level's prior sees, window by window."""

from __future__ import annotations

import torch

from engine.errors import ErrorCode
from engine.model import labels
from engine.model.lyrics import load_lyric_vocab
from engine.request import RenderRequest, RequestError
from engine.weights.bundle import Models


def _model_vocab_label(models: Models, cfg, req: RenderRequest, total_len: int, top: bool) -> list[int]:
    """y for a model with its own artists.txt/genres.txt: [total, 0, window, artist, genre, -1...].

    Unknown names are an error at the top level (the user typed them) and 'unknown' (id 0) below."""
    ids = []
    for kind, name in (("artist", req.artist), ("genre", req.genre)):
        try:
            ids.append(models.vocab[kind].resolve(name or "unknown"))
        except labels.UnknownLabelError as e:
            if top:
                raise RequestError(ErrorCode.UNKNOWN_LABEL, str(e), e.kind) from None
            ids.append(0)
    genre = [ids[1]] + [-1] * (cfg.max_bow_genre_size - 1)
    return [total_len, 0, cfg.n_ctx * cfg.raw_to_tokens, ids[0], *genre]


def _label_vector(models: Models, cfg, level: int, version: int, req: RenderRequest, total_len: int) -> list[int]:
    """y at the song's start for one level; unknown names are an error at the top, 'unknown' (0) below."""
    if models.vocab is not None:  # a model with its own vocabulary (the embedded default model)
        return _model_vocab_label(models, cfg, req, total_len, level == models.levels - 1)
    window = cfg.n_ctx * cfg.raw_to_tokens
    try:
        return labels.label_vector(req.artist or "unknown", req.genre or "unknown", req.lyrics, total_len, 0, window,
                                   version, cfg.max_bow_genre_size, cfg.n_tokens, forgiving=True)
    except labels.UnknownLabelError as e:
        if level == models.levels - 1:
            raise RequestError(ErrorCode.UNKNOWN_LABEL, str(e), e.kind) from None
        return labels.label_vector(req.artist or "", req.genre or "", req.lyrics, total_len, 0, window, version,
                                   cfg.max_bow_genre_size, cfg.n_tokens)


def label_fn(models: Models, level: int, req: RenderRequest, total: int, batch: int):
    """Window start -> y (batch, y_len) for one level's prior, names resolved forgivingly."""
    cfg = models.priors[level].cfg
    version = models.label_version(level)
    total_len = int(total)
    if models.song_seconds is not None:  # a region of a song, not a whole piece of this length
        total_len = max(total_len, int(models.song_seconds * cfg.sample_rate))
    if cfg.has_timing and cfg.min_duration is not None:  # the timing embedding covers [min, max] only
        total_len = int(min(max(total_len, cfg.min_duration * cfg.sample_rate), cfg.max_duration * cfg.sample_rate - 1))
    try:
        y0 = _label_vector(models, cfg, level, version, req, total_len)
    except RequestError:
        raise
    except ValueError as e:  # e.g. more genre words than the model's bag holds
        raise RequestError(ErrorCode.BAD_VALUE, str(e), "genre") from None
    full_lyrics = load_lyric_vocab(version).encode(req.lyrics) if cfg.n_tokens else []

    def labels_at(start: int) -> torch.Tensor:
        y = labels.window_label(y0, start, cfg.raw_to_tokens, cfg.n_ctx, full_lyrics, cfg.n_tokens)
        return torch.tensor([y] * batch, dtype=torch.long, device=models.device)

    return labels_at


def check_labels(models: Models, req: RenderRequest) -> None:
    """Resolve the request's artist and genre for the top prior now; raises ``RequestError`` (unknown_label)."""
    label_fn(models, models.levels - 1, req, models.vqvae.hop_lengths[-1], 1)
