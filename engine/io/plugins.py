"""Hosting VST3 plugins through pedalboard: loading, configuring, and listing their parameters.

JUCE (inside pedalboard) creates a plugin, and re-creates it to reset its state before each
``process`` call, only on its "message thread", which is the first thread that loads a plugin.
Everything here therefore runs on one dedicated thread (``on_plugin_thread``), whichever thread
asks: the job worker, the batch runner, the CLI or a test. ``effects`` builds chains from these.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HOST_THREAD = "vst3-host"
_host: ThreadPoolExecutor | None = None
_host_lock = threading.Lock()


class PluginError(ValueError):
    """A plugin that cannot be loaded or configured; the message says what to fix."""


def on_plugin_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on the plugin thread and return its result (or raise its exception)."""
    global _host
    if threading.current_thread().name.startswith(HOST_THREAD):
        return fn(*args)
    with _host_lock:
        if _host is None:
            _host = ThreadPoolExecutor(1, thread_name_prefix=HOST_THREAD)
    return _host.submit(fn, *args).result()


def load_plugin(path: Path) -> Any:
    """A VST3 plugin by its ``.vst3`` bundle path."""
    import pedalboard

    if not path.exists():
        raise PluginError(f"VST3 plugin {path} not found (give the .vst3 bundle's path)")
    try:
        return on_plugin_thread(pedalboard.load_plugin, str(path))
    except ImportError as exc:
        raise PluginError(f"{path} is not a VST3 plugin pedalboard can load "
                          f"({str(exc).splitlines()[-1].strip()})") from None


def configure(plugin: Any, params: dict[str, Any], preset: Path | None = None) -> None:
    """Load a ``.vstpreset`` (if given), then set ``params`` by name, in the plugin's units."""
    unknown = sorted(set(params) - set(plugin.parameters))
    if unknown:
        raise PluginError(f"no parameter {', '.join(map(repr, unknown))}; valid: {', '.join(plugin.parameters)}")

    def apply() -> None:
        if preset is not None:
            try:
                plugin.load_preset(str(preset))
            except Exception as exc:  # pedalboard raises RuntimeError/ValueError for missing or foreign presets
                raise PluginError(f"cannot load preset {preset}: {exc}") from None
        for name, value in params.items():
            try:
                setattr(plugin, name, value)
            except (TypeError, ValueError) as exc:
                raise PluginError(f"parameter {name} = {value!r} was refused: {exc}") from None

    on_plugin_thread(apply)


@dataclass(frozen=True)
class PluginParam:
    name: str
    value: str  # the plugin's own display string
    minimum: float | None
    maximum: float | None
    units: str
    choices: tuple[str, ...] = ()  # for switch and list parameters

    def line(self) -> str:
        span = " | ".join(self.choices) if self.choices else \
            f"{self.minimum:g}..{self.maximum:g}" if self.minimum is not None else ""
        return f"{self.name:<24} {self.value:<14} {span} {self.units}".rstrip()


def plugin_parameters(path: str | Path) -> tuple[str, list[PluginParam]]:
    """The plugin's name and its parameters, named as a chain's ``params`` table takes them."""
    plugin = load_plugin(Path(path).expanduser())
    return plugin.name, on_plugin_thread(lambda: [_describe(name, p) for name, p in plugin.parameters.items()])


def _describe(name: str, p: Any) -> PluginParam:
    numeric = p.type in (float, int) and p.min_value is not None
    shown = str(p.string_value).strip()
    try:
        shown = f"{float(shown):g}"
    except ValueError:
        pass
    choices = tuple(map(str, p.valid_values))[:16] if not numeric and p.valid_values else ()
    return PluginParam(name, shown, p.min_value if numeric else None, p.max_value if numeric else None,
                       str(p.units or p.label or ""), choices)
