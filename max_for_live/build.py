#!/usr/bin/env python3
"""Build the Max for Live device from its text sources.

    python max_for_live/build.py [--out DIR]
    python max_for_live/build.py --extract "SAVED.amxd"   # after editing the device in Max

writes ``DIR/Jukebox Bridge.amxd`` (default ``max_for_live/build/``) and copies the device's
JavaScript beside it, where Max finds it. ``--extract`` does the reverse for a device saved from
Max's editor: it writes the patcher JSON back to ``src/JukeboxBridge.maxpat``. The device is *unfrozen*: the .amxd is the patcher JSON
(``src/JukeboxBridge.maxpat``) behind the 32-byte chunk header that Live reads, as in Ableton's
maxdevtools (``maxdiff/amxd_textconv.py``)::

    b"ampf" <u32 LE 4> <device type, 4 ASCII bytes: "aaaa" = Audio Effect>
    b"meta" <u32 LE 4> <u32 LE 1>                  (1 in devices Max saves unfrozen)
    b"ptch" <u32 LE n> <n bytes: UTF-8 patcher JSON, then one NUL>

To share the device, open the built file in Max and freeze it (Max embeds the scripts); frozen
devices never go into git.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
PATCHER = SRC / "JukeboxBridge.maxpat"
DEVICE_NAME = "Jukebox Bridge.amxd"
META_UNFROZEN = 1
DEVICE_TYPES = {"aaaa": "Audio Effect", "mmmm": "MIDI Effect", "iiii": "Instrument"}


def device_type(patcher: dict) -> bytes:
    """The 4-byte type code, from ``patcher.project.amxdtype`` (the same four bytes as an integer)."""
    code = patcher["patcher"]["project"]["amxdtype"].to_bytes(4, "big")
    if code.decode("ascii", "replace") not in DEVICE_TYPES:
        raise ValueError(f"{PATCHER.name}: project.amxdtype {code!r} is not a known device type")
    return code


def amxd_bytes(patcher_text: str) -> bytes:
    """Header chunks + the patcher JSON + NUL. Raises ValueError if the JSON does not parse."""
    try:
        patcher = json.loads(patcher_text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{PATCHER.name} is not valid JSON: {e}") from None
    payload = patcher_text.encode("utf-8") + b"\0"
    return b"".join([
        b"ampf", struct.pack("<I", 4), device_type(patcher),
        b"meta", struct.pack("<I", 4), struct.pack("<I", META_UNFROZEN),
        b"ptch", struct.pack("<I", len(payload)), payload,
    ])


def script_files(patcher: dict) -> list[Path]:
    """The JavaScript files the device needs (its dependency cache), checked to exist in src/."""
    names = [d["name"] for d in patcher["patcher"].get("dependency_cache", []) if d["name"].endswith(".js")]
    missing = [n for n in names if not (SRC / n).is_file()]
    if missing:
        raise ValueError(f"missing in {SRC}: {', '.join(missing)}")
    return [SRC / n for n in names]


def read_patcher(amxd: bytes) -> str:
    """The patcher JSON of an unfrozen .amxd (chunks: 4-byte tag, u32 LE size, payload)."""
    offset, chunks = 0, {}
    while offset + 8 <= len(amxd):
        tag = amxd[offset:offset + 4].decode("ascii", "replace")
        (size,) = struct.unpack("<I", amxd[offset + 4:offset + 8])
        chunks[tag] = amxd[offset + 8:offset + 8 + size]
        offset += 8 + size
    if "ptch" not in chunks:
        raise ValueError("no ptch chunk: not a Max for Live device")
    if "ciph" in chunks or chunks["ptch"][:4] == b"mx@c":
        raise ValueError("the device is frozen or encrypted; save it unfrozen from Max first")
    text = chunks["ptch"].rstrip(b"\0").decode("utf-8")
    json.loads(text)
    return text


def build(out_dir: Path) -> Path:
    text = PATCHER.read_text(encoding="utf-8")
    data = amxd_bytes(text)
    out_dir.mkdir(parents=True, exist_ok=True)
    for js in script_files(json.loads(text)):
        shutil.copyfile(js, out_dir / js.name)
    target = out_dir / DEVICE_NAME
    tmp = target.with_suffix(".amxd.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build 'Jukebox Bridge.amxd' (unfrozen) from max_for_live/src/.")
    p.add_argument("--out", type=Path, default=HERE / "build", help="output folder (default: max_for_live/build)")
    p.add_argument("--extract", type=Path, metavar="AMXD",
                   help="write this unfrozen device's patcher back to src/JukeboxBridge.maxpat instead")
    p.add_argument("--to", type=Path, default=PATCHER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        if args.extract:
            args.to.write_text(read_patcher(args.extract.read_bytes()), encoding="utf-8")
            print(f"wrote {args.to} from {args.extract}")
            return 0
        target = build(args.out)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        print(f"build.py: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {target} ({target.stat().st_size} bytes) and its scripts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
