"""Dataclasses from JSON-like data: the one place that refuses unknown keys and restores tuples.

Configs, manifests and settings files all come back from JSON; a typo'd or stale key must fail loudly,
naming the known keys, rather than vanish or raise a bare ``TypeError`` from the constructor.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class RecordError(ValueError):
    """The data does not fit the dataclass: unknown keys, or required ones missing."""


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """``cls(**data)`` with JSON lists turned back into tuples; ``where`` (a file, a setting) prefixes errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    prefix = f"{where}: " if where else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RecordError(f"{prefix}unknown field(s) {', '.join(unknown)} for {cls.__name__}; "
                          f"known: {', '.join(sorted(fields))}")
    missing = sorted(n for n, f in fields.items() if n not in data and f.init
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise RecordError(f"{prefix}{cls.__name__} lacks field(s) {', '.join(missing)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
