"""The loaded model: the VQ-VAE and one prior per level, held warm and shared read-only."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.model import labels
from engine.model.prior import Prior
from engine.model.vqvae import VQVAE

UNSTATED_LICENCE = ("not stated: this model's folder names no licence (model.json \"meta\": {\"licence\": ...}); "
                    "ask whoever trained it")

@dataclass
class Models:
    name: str
    vqvae: VQVAE
    priors: list[Prior]  # indexed by level, bottom (0) first
    meta: dict = field(default_factory=dict)
    vocab: dict[str, labels.LabelVocab] | None = None  # the model's own {"artist", "genre"} vocabularies

    def licence(self) -> dict[str, str | None]:
        """The terms of this model's outputs, as every take's sidecar records them: ``licence`` and the
        ``attribution`` the model asks for (None if it asks none), both from ``meta`` (``model.json``'s
        ``meta`` for a Jukebox Bridge model folder; set by the loader for official and debug models)."""
        return {"licence": str(self.meta.get("licence") or UNSTATED_LICENCE),
                "attribution": str(self.meta["attribution"]) if self.meta.get("attribution") else None}

    @property
    def input_rms_dbfs(self) -> float | None:
        """The RMS level (dBFS) of the music this model was trained on, which sources are gained to before encoding
        (``io.loudness.input_gain_db``); ``model.json``'s ``meta``. None (the official models): sources as they are."""
        value = self.meta.get("input_rms_dbfs")
        return None if value is None else float(value)

    @property
    def song_seconds(self) -> float | None:
        """The length of the song the top prior's timing labels describe, at least (``model.json``'s ``meta``).

        A prior with timing labels learned how pieces of each length begin and end. Told the truth about a
        9-s request (a 5-s region and 4 s more), it renders the end of a 9-s piece: a fade into near-silence
        within a tenth of a second of the join. A model that states this length is told that its renders sit
        at the start of a song this long. None (official models): the reference's rule, the length rendered."""
        value = self.meta.get("song_seconds")
        return None if value is None else float(value)

    @property
    def is_debug(self) -> bool:
        """The tiny random models of the tests (``load_models("debug")``): nothing about them is worth caching."""
        return self.name == "debug"

    @property
    def levels(self) -> int:
        return len(self.priors)

    @property
    def device(self) -> torch.device:
        return next(self.vqvae.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.vqvae.cfg.sample_rate

    @property
    def top(self) -> Prior:
        return self.priors[-1]

    def label_version(self, level: int) -> int:
        return 3 if self.priors[level].cfg.labels_v3 else 2

    def info(self) -> dict:
        top = self.top.cfg
        return {"model": self.name, "levels": self.levels, "sample_rate": self.sample_rate,
                "hop_lengths": list(self.vqvae.hop_lengths), "lyrics": top.n_tokens > 0,
                "context_seconds": top.n_ctx * top.raw_to_tokens / self.sample_rate,
                "label_version": self.label_version(self.levels - 1),
                "label_vocab": "model" if self.vocab else "official", **self.meta}

    def search_labels(self, kind: str, query: str, offset: int = 0, limit: int = 50) -> tuple[int, list[str]]:
        """Artists or genres of the top prior's vocabulary matching ``query``: (total, one page of names)."""
        vocab = self.vocab[kind] if self.vocab else None
        everything = labels.search(query, kind, self.label_version(self.levels - 1), limit=None, vocab=vocab)
        return len(everything), everything[offset: offset + limit]
