"""Effect chains applied to rendered takes: built-in effects and VST3 plugins, through Spotify's pedalboard.

A chain is a TOML file (or a built-in name such as ``polish``)::

    description = "room reverb, then a safety limiter"
    tail = 1.5                                  # seconds added after the clip (default 0)

    [[effect]]
    type = "vst3"
    path = "/usr/lib/vst3/DragonflyRoomReverb.vst3"   # absolute, or relative to this file
    preset = "room.vstpreset"                   # optional saved plugin state, applied first
    params = { decay_s = 2.0, dry_level = 80 }  # values in the plugin's units

    [[effect]]
    type = "limiter"
    ceiling_db = -1.0

``type`` is one of ``BUILTIN_EFFECTS`` (pedalboard's filters, dynamics and modulation, plus this
module's ``denoise`` and ``limiter``) or ``vst3``; the other keys of a built-in are its parameters.
Everything is checked when the chain is loaded: a bad path, type or parameter raises ``ChainError``
naming the chain, the effect and the valid names, before any audio is rendered.

Tails. Reverbs and delays ring past the clip's last sample. A chain's ``tail`` (seconds, default 0)
says how much of that to keep: the take is processed with ``tail`` seconds of silence appended and
the result is exactly ``round(tail * sample_rate)`` samples longer than the take. With ``tail = 0``
the clip keeps the requested length. Either way the last ``FADE_SECONDS`` (10 ms) fade out, so a
cut-off tail never clicks. The clip's start never moves (plugin latency is compensated by pedalboard).

Where chains come from (``resolve_chain``): a built-in name, a ``NAME.toml`` in the user's chain
folder (``chain_dir()``), or a path to a TOML file. docs/effects.md has the full reference.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from scipy import ndimage, signal

from engine.errors import ErrorCode, RequestError
from engine.io.takes import FADE_SECONDS

from . import plugins

if TYPE_CHECKING:
    from engine.io.takes import RenderedTake

MAX_TAIL = 60.0
MAX_CHAIN_BYTES = 256 * 1024  # a chain file is a few lines; anything larger is not read
PLUGIN_SUFFIXES = (".vst3",)
CHAIN_KEYS = ("description", "tail", "effect")
Stage = Callable[[np.ndarray, int], np.ndarray]  # (channels, frames) float32 at a sample rate -> same shape


class ChainError(ValueError):
    """A chain that cannot be loaded or applied; the message names the chain, the effect and the fix."""


# ------------------------------------------------------------------ this module's own effects

@dataclass(frozen=True)
class Denoise:
    """Spectral gate for the steady hiss Jukebox's decoder lays under everything, above ``above_hz`` only.

    Per frequency bin the noise floor is a low ``percentile`` of its level over the clip. Bins that
    rise ``margin_db`` above their floor (music) pass untouched, so the highs of the music survive;
    bins at the floor (hiss in gaps and under quiet passages) are pulled down by up to ``reduction_db``.
    The gain is smoothed over time and frequency to avoid the "musical noise" of hard spectral gates.
    """

    above_hz: float = 3000.0
    reduction_db: float = 12.0
    margin_db: float = 6.0
    percentile: float = 10.0

    def __post_init__(self) -> None:
        if not (0 < self.reduction_db <= 60 and 0 <= self.margin_db <= 40 and 0 < self.percentile < 100
                and self.above_hz >= 0):
            raise ValueError("denoise needs 0 < reduction_db <= 60, 0 <= margin_db <= 40, 0 < percentile < 100 "
                             "and above_hz >= 0")

    def __call__(self, x: np.ndarray, sr: int) -> np.ndarray:
        n = 2048 if sr > 32000 else 1024
        if x.shape[1] < 2 * n:
            return x
        freqs, _, z = signal.stft(x, sr, nperseg=n)  # (C, F, frames), Hann, 50 % overlap: exact resynthesis
        # channels linked (one gain for all keeps the stereo image); smoothing over 3 bins x 5 frames steadies
        # the noise's random level, so the floor and the gate see its mean, not its fluctuations
        level = ndimage.uniform_filter(np.abs(z).mean(axis=0), size=(3, 5))
        floor = np.percentile(level, self.percentile, axis=1, keepdims=True)
        ratio = level / np.maximum(floor * 10 ** (self.margin_db / 20), 1e-9)
        gain = ndimage.uniform_filter(np.clip(ratio**2, 10 ** (-self.reduction_db / 20), 1.0), size=(3, 5))
        band = np.clip((freqs - self.above_hz / 2) / max(self.above_hz / 2, 1.0), 0.0, 1.0)[:, None]
        _, y = signal.istft(z * (1.0 - band * (1.0 - gain)), sr, nperseg=n)
        return y[:, : x.shape[1]].astype(np.float32)


@dataclass(frozen=True)
class PeakLimiter:
    """Brick-wall peak limiter: no sample exceeds ``ceiling_db``, with ``release_ms`` gain ramps.

    pedalboard's ``Limiter`` (JUCE's) adds make-up gain and clips at 0 dBFS, so it cannot hold a target
    peak; this one only ever turns down. The gain needed at each sample is min-filtered over
    +-``release_ms`` and then averaged over half that, so it is smooth and provably at or below what each
    sample needs (the ramp starts before a peak: look-ahead).
    """

    ceiling_db: float = -1.0
    release_ms: float = 20.0

    def __post_init__(self) -> None:
        if not (-60 <= self.ceiling_db <= 0 and 0.1 <= self.release_ms <= 1000):
            raise ValueError("limiter needs -60 <= ceiling_db <= 0 and 0.1 <= release_ms <= 1000")

    def __call__(self, x: np.ndarray, sr: int) -> np.ndarray:
        ceiling = 10 ** (self.ceiling_db / 20)
        need = np.minimum(1.0, ceiling / np.maximum(np.abs(x).max(axis=0), 1e-12))
        if need.min() >= 1.0:
            return x
        n = max(2, int(sr * self.release_ms / 1000))
        held = ndimage.minimum_filter1d(need, 2 * n + 1, mode="nearest")
        gain = ndimage.uniform_filter1d(held, n + 1, mode="nearest")
        return np.clip(x * gain, -ceiling, ceiling).astype(np.float32)


PEDALBOARD_EFFECTS: dict[str, str] = {  # type -> pedalboard class; JUCE's Limiter is left out on purpose
    "highpass": "HighpassFilter", "lowpass": "LowpassFilter", "high_shelf": "HighShelfFilter",
    "low_shelf": "LowShelfFilter", "peak_eq": "PeakFilter", "gain": "Gain", "compressor": "Compressor",
    "noise_gate": "NoiseGate", "reverb": "Reverb", "delay": "Delay", "chorus": "Chorus", "phaser": "Phaser",
    "distortion": "Distortion"}
OWN_EFFECTS: dict[str, type] = {"denoise": Denoise, "limiter": PeakLimiter}
BUILTIN_EFFECTS: tuple[str, ...] = (*PEDALBOARD_EFFECTS, *OWN_EFFECTS)

BUILTIN_CHAINS: dict[str, str] = {
    "polish": """
description = "Jukebox clean-up: rumble high-pass, hiss gate above 3 kHz, peak limiter at -1 dBFS"
[[effect]]
type = "highpass"
cutoff_frequency_hz = 30.0
[[effect]]
type = "denoise"
above_hz = 3000.0
reduction_db = 12.0
[[effect]]
type = "limiter"
ceiling_db = -1.0
""",
    "none": "",
}


# ------------------------------------------------------------------ building stages

def _pedalboard_params(cls: type) -> list[str]:
    return sorted(n for n, v in inspect.getmembers(cls) if isinstance(v, property)
                  and n not in ("is_effect", "is_instrument"))


def _builtin(kind: str, params: dict[str, Any], where: str) -> Stage:
    if kind in OWN_EFFECTS:
        cls = OWN_EFFECTS[kind]
        valid = [f.name for f in dataclasses.fields(cls)]
        _check_names(params, valid, where)
        wrong = [k for k, v in params.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
        if wrong:
            raise ChainError(f"{where}: {', '.join(wrong)} must be a number")
        try:
            return cls(**{k: float(v) for k, v in params.items()})
        except ValueError as exc:
            raise ChainError(f"{where}: {exc}") from None
    import pedalboard

    cls = getattr(pedalboard, PEDALBOARD_EFFECTS[kind])
    _check_names(params, _pedalboard_params(cls), where)
    effect = cls()
    for name, value in params.items():
        try:
            setattr(effect, name, value)
        except (TypeError, ValueError) as exc:
            raise ChainError(f"{where}: {name} = {value!r} was refused: {exc}") from None
    return effect  # pedalboard plugins are called as effect(x, sample_rate)


def _check_names(params: dict[str, Any], valid: list[str], where: str) -> None:
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ChainError(f"{where}: no parameter {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")


def _vst3(spec: dict[str, Any], base: Path, where: str) -> Stage:
    _check_names(spec, ["type", "path", "preset", "params"], where)
    if "path" not in spec:
        raise ChainError(f"{where}: a vst3 effect needs path = \"/path/to/Plugin.vst3\"")
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise ChainError(f"{where}: params must be a table, e.g. params = {{ decay_s = 2.0 }}")
    preset = (base / str(spec["preset"])).expanduser() if "preset" in spec else None
    try:
        plugin = plugins.load_plugin((base / str(spec["path"])).expanduser())
        where = where.replace("(vst3)", f"(VST3 {plugin.name!r})")
        plugins.configure(plugin, params, preset)
    except plugins.PluginError as exc:
        raise ChainError(f"{where}: {exc}") from None
    return lambda x, sr: plugins.on_plugin_thread(plugin, x, sr)


# ------------------------------------------------------------------ chains

@dataclass(frozen=True)
class Chain:
    """A loaded chain: its stages hold live plugins, so use one ``Chain`` from one thread at a time."""

    name: str
    stages: tuple[Stage, ...]
    tail: float = 0.0
    description: str = ""

    def process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(frames, channels) -> (frames + round(tail * rate), channels), float32, end faded; see the module doc."""
        frames = audio.shape[0]
        keep = frames + round(self.tail * sample_rate)
        x = np.zeros((audio.shape[1], keep), np.float32)
        x[:, :frames] = audio.T
        for i, stage in enumerate(self.stages):
            try:
                x = np.asarray(stage(x, sample_rate), dtype=np.float32)
            except Exception as exc:  # a plugin refusing the channel count or rate, or anything else
                raise ChainError(f"chain {self.name}, effect {i + 1}: {exc}") from None
            if x.shape[1] != keep:  # every stage must keep the length; pad/trim stray plugin output
                x = np.pad(x, ((0, 0), (0, max(0, keep - x.shape[1]))))[:, :keep]
        if not np.isfinite(x).all():
            raise ChainError(f"chain {self.name} produced NaN or infinite samples")
        fade = min(keep // 2, int(FADE_SECONDS * sample_rate))
        if fade and self.stages:
            x[:, keep - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return np.ascontiguousarray(x.T)

    def apply(self, takes: list["RenderedTake"], sample_rate: int) -> list["RenderedTake"]:
        return [dataclasses.replace(t, audio=self.process(t.audio, sample_rate)) for t in takes]


def _chain_table(text: str, name: str) -> dict[str, Any]:
    """The TOML table of a chain, or ``ChainError`` (never echoing the keys of a file that is not a chain)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # tomllib's messages give a position, never the text
        raise ChainError(f"chain {name}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(CHAIN_KEYS))
    if unknown:
        near = [k for k in unknown if difflib.get_close_matches(k, CHAIN_KEYS, n=1, cutoff=0.75)]
        if len(near) < len(unknown):  # never echo the keys of a file that is no chain (a config, a secret)
            raise ChainError(f"chain {name} is not an effect chain: it has {len(unknown)} key(s) other than "
                             "description, tail and [[effect]] tables (docs/effects.md shows the format)")
        raise ChainError(f"chain {name}: unknown key(s) {', '.join(unknown)}; use description, tail and [[effect]]")
    return data


def parse_chain(text: str, name: str, base: Path) -> Chain:
    """A chain from TOML text; relative plugin and preset paths resolve against ``base``."""
    data = _chain_table(text, name)
    tail = data.get("tail", 0.0)
    if isinstance(tail, bool) or not isinstance(tail, (int, float)) or not 0 <= tail <= MAX_TAIL:
        raise ChainError(f"chain {name}: tail must be seconds from 0 to {MAX_TAIL:g}; got {tail!r}")
    stages = []
    for i, spec in enumerate(data.get("effect", []), 1):
        kind = spec.get("type") if isinstance(spec, dict) else None
        where = f"chain {name}, effect {i} ({kind})"
        if kind == "vst3":
            stages.append(_vst3(spec, base, where))
        elif kind in BUILTIN_EFFECTS:
            stages.append(_builtin(kind, {k: v for k, v in spec.items() if k != "type"}, where))
        else:
            raise ChainError(f"chain {name}, effect {i}: type {kind!r} is unknown; use vst3 or one of "
                             f"{', '.join(BUILTIN_EFFECTS)}")
    return Chain(name, tuple(stages), float(tail), str(data.get("description", "")))


def chain_dir() -> Path:
    """The user's chain folder: ``NAME.toml`` there is selectable as ``chain = "NAME"``."""
    import platformdirs

    return platformdirs.user_config_path("jukebox-bridge") / "chains"


def chain_source(spec: str) -> Path | None:
    """Where a ``chain`` value points, checked without reading anything: None for a built-in, else a ``NAME.toml``
    in ``chain_dir()``, an existing ``.toml`` file or an existing plugin bundle (``.vst3``). Anything else (a
    folder, ``/etc/passwd``, a WAV) raises ``ChainError``: a chain value reads only chains."""
    if spec in BUILTIN_CHAINS:
        return None
    if not any(sep in spec for sep in ("/", "\\", os.sep)) and not spec.startswith("~"):
        path = chain_dir() / f"{spec}.toml"
        if not spec.endswith(".toml") and path.is_file():
            return path
        raise ChainError(f"chain {spec!r} is neither a built-in ({', '.join(BUILTIN_CHAINS)}), nor a .toml file in "
                         f"{chain_dir()}; give a chain name, or the full path of a .toml chain or a .vst3 plugin")
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".toml", *PLUGIN_SUFFIXES):
        raise ChainError(f"chain {spec!r} is not a chain: give a chain name, or the full path of a .toml chain file "
                         f"or a {'/'.join(PLUGIN_SUFFIXES)} plugin")
    if not path.is_absolute():
        raise ChainError(f"chain {spec!r}: a chain path must be absolute")
    if suffix == ".toml":
        if not path.is_file():
            raise ChainError(f"chain {spec!r} is neither a built-in ({', '.join(BUILTIN_CHAINS)}) nor an existing "
                             ".toml chain file")
        if path.stat().st_size > MAX_CHAIN_BYTES:
            raise ChainError(f"chain {spec!r} is larger than {MAX_CHAIN_BYTES // 1024} KiB: not an effect chain")
    elif not path.exists():
        raise ChainError(f"chain {spec!r}: no such plugin")
    return path


def _read_chain(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # the reason only: never the bytes that could not be decoded
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ChainError(f"chain {path}: cannot read it: {reason}") from None


def check_chain(spec: str) -> None:
    """At submission: ``chain_source``, and a .toml chain's table read (small, checked by ``chain_source``); its
    effects and plugins load when the job runs."""
    path = chain_source(spec)
    if path is not None and path.suffix.lower() == ".toml":
        _chain_table(_read_chain(path), str(path))


def resolve_chain(spec: str | None) -> Chain | None:
    """``None`` -> no chain; a built-in name; a NAME.toml in ``chain_dir()``; a .toml chain path; or a plugin bundle
    (a chain of that one plugin, at its default settings). Loads fully."""
    if spec is None:
        return None
    path = chain_source(spec)
    if path is None:
        return parse_chain(BUILTIN_CHAINS[spec], spec, Path.cwd())
    if path.suffix.lower() in PLUGIN_SUFFIXES:
        return Chain(path.stem, (_vst3({"type": "vst3", "path": str(path)}, path.parent,
                                       f"chain {path.name}, effect 1 (vst3)"),))
    return parse_chain(_read_chain(path), str(path), path.parent)


def request_chain(spec: str | None) -> Chain | None:
    """``resolve_chain`` for a render request: errors become the protocol's ``bad_value`` on ``chain``."""
    try:
        return resolve_chain(spec)
    except ChainError as exc:
        raise RequestError(ErrorCode.BAD_VALUE, str(exc), "chain") from None


def with_effects(renderer: Callable[..., list]) -> Callable[..., list]:
    """Wrap a renderer (``generate.render.render``'s signature) so each request's ``chain`` is applied to its takes.

    The chain is loaded before rendering, so a bad chain fails the job at once, not after minutes of sampling.
    """

    @functools.wraps(renderer)
    def render_with_effects(models: Any, req: Any, progress: Any, cancel: Any, workdir: Any = None,
                            **kwargs: Any) -> list:
        chain = request_chain(req.chain)
        takes = renderer(models, req, progress, cancel, workdir, **kwargs)
        if chain is None:
            return takes
        try:
            return chain.apply(takes, req.sample_rate)
        except ChainError as exc:
            raise RequestError(ErrorCode.RENDER_FAILED, str(exc), "chain") from None

    return render_with_effects
