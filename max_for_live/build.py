#!/usr/bin/env python3
"""Build the Max for Live device from its text sources.

    python max_for_live/build.py [--out DIR]            # frozen: one self-contained .amxd (to share)
    python max_for_live/build.py --unfrozen [--out DIR] # the patcher only, scripts beside it (to edit)
    python max_for_live/build.py --extract "SAVED.amxd" # after editing the device in Max

The text sources stay the truth: the patcher ``src/JukeboxBridge.maxpat`` (JSON) and its JavaScript
``src/*.js``. Both builds write ``DIR/Jukebox Bridge.amxd`` (default ``max_for_live/build/``), in the
chunk layout Live reads, as Ableton's maxdevtools parses it (``maxdiff/amxd_textconv.py``,
``frozen_device_printer.py``, ``freezing_utils.py``)::

    b"ampf" <u32 LE 4> <device type, 4 ASCII bytes: "aaaa" = Audio Effect>
    b"meta" <u32 LE 4> <u32 LE 7 frozen | 1 unfrozen>
    b"ptch" <u32 LE n> <n bytes of payload>

Unfrozen, the payload is the patcher JSON and a NUL, and Max finds the scripts beside the device.
Frozen (the default), the payload is Max's frozen container, every size in it big-endian::

    b"mx@c" <u32 16: header size> <u64: offset of the directory, from the start of b"mx@c">
    the files, one after the other: the device's patcher JSON (NUL-terminated) first, then each script
    b"dlst" <u32: directory size, header included>
      b"dire" <u32: entry size, header included>, one per file, holding fields
        b"type" "JSON" | "TEXT"   b"fnam" file name, NUL-padded to 4 bytes
        b"sz32" <u32 size>        b"of32" <u32 offset from b"mx@c">
        b"vers" <u32 0>           b"flag" <u32>      b"mdat" <u32 HFS+ seconds (since 1904)>
      (each field: 4-byte tag, u32 size including its 8-byte header, data)

so the device keeps working when a Set is moved to another computer ("Collect All and Save" copies
the .amxd only). The scripts are embedded byte for byte, and the device's dependency list names them.
``--extract`` reads either kind back: the patcher to ``src/JukeboxBridge.maxpat`` and, from a frozen
device, the embedded scripts beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
PATCHER = SRC / "JukeboxBridge.maxpat"
DEVICE_NAME = "Jukebox Bridge.amxd"
META_UNFROZEN = 1
META_FROZEN = 7
FROZEN_MAGIC = b"mx@c"
FROZEN_HEADER_SIZE = 16
FLAG_DEVICE = 0x11  # the device's own patcher entry (as in the frozen devices maxdevtools reads)
FLAG_DEPENDENCY = 0x00
HFS_EPOCH_OFFSET = 2082844800  # seconds from 1904-01-01 (HFS+) to 1970-01-01 (Unix)
DEVICE_TYPES = {"aaaa": "Audio Effect", "mmmm": "MIDI Effect", "iiii": "Instrument"}


def device_type(patcher: dict) -> bytes:
    """The 4-byte type code, from ``patcher.project.amxdtype`` (the same four bytes as an integer)."""
    code = patcher["patcher"]["project"]["amxdtype"].to_bytes(4, "big")
    if code.decode("ascii", "replace") not in DEVICE_TYPES:
        raise ValueError(f"{PATCHER.name}: project.amxdtype {code!r} is not a known device type")
    return code


def _parse(patcher_text: str) -> dict:
    try:
        return json.loads(patcher_text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{PATCHER.name} is not valid JSON: {e}") from None


def _chunks(device_type_code: bytes, meta: int, payload: bytes) -> bytes:
    return b"".join([
        b"ampf", struct.pack("<I", 4), device_type_code,
        b"meta", struct.pack("<I", 4), struct.pack("<I", meta),
        b"ptch", struct.pack("<I", len(payload)), payload,
    ])


def amxd_bytes(patcher_text: str) -> bytes:
    """Unfrozen: header chunks + the patcher JSON + NUL. Raises ValueError if the JSON does not parse."""
    patcher = _parse(patcher_text)
    return _chunks(device_type(patcher), META_UNFROZEN, patcher_text.encode("utf-8") + b"\0")


def _field(tag: bytes, data: bytes) -> bytes:
    return tag + struct.pack(">I", 8 + len(data)) + data


def _name_field(name: str) -> bytes:
    raw = name.encode("utf-8")
    return _field(b"fnam", raw + b"\0" * (4 - len(raw) % 4))  # NUL-terminated, padded to 4 bytes


def _u32(tag: bytes, value: int) -> bytes:
    return _field(tag, struct.pack(">I", value))


def hfs_time(unix_seconds: float) -> int:
    return max(0, min(0xFFFFFFFF, int(unix_seconds) + HFS_EPOCH_OFFSET))


def frozen_container(files: list[tuple[str, str, bytes, int]]) -> bytes:
    """Max's ``mx@c`` container of (name, type, data, mdat) files; the first one is the device."""
    body, entries, offset = [], [], FROZEN_HEADER_SIZE
    for i, (name, kind, data, mdat) in enumerate(files):
        entries.append(_field(b"dire", b"".join([
            _field(b"type", kind.encode("ascii")), _name_field(name),
            _u32(b"sz32", len(data)), _u32(b"of32", offset), _u32(b"vers", 0),
            _u32(b"flag", FLAG_DEVICE if i == 0 else FLAG_DEPENDENCY), _u32(b"mdat", mdat),
        ])))
        body.append(data)
        offset += len(data)
    directory = _field(b"dlst", b"".join(entries))
    header = FROZEN_MAGIC + struct.pack(">I", FROZEN_HEADER_SIZE) + struct.pack(">Q", offset)
    return header + b"".join(body) + directory


def _mdat(path: Path) -> int:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds
    return hfs_time(float(epoch) if epoch else path.stat().st_mtime)


def frozen_amxd_bytes(patcher_text: str, scripts: list[Path]) -> bytes:
    """Frozen: the patcher and every script inside the device file."""
    patcher = _parse(patcher_text)
    files = [(DEVICE_NAME, "JSON", patcher_text.encode("utf-8") + b"\0", _mdat(PATCHER))]
    files += [(js.name, "TEXT", js.read_bytes(), _mdat(js)) for js in scripts]
    return _chunks(device_type(patcher), META_FROZEN, frozen_container(files))


def script_files(patcher: dict) -> list[Path]:
    """The JavaScript files the device needs (its dependency cache), checked to exist in src/."""
    names = [d["name"] for d in patcher["patcher"].get("dependency_cache", []) if d["name"].endswith(".js")]
    missing = [n for n in names if not (SRC / n).is_file()]
    if missing:
        raise ValueError(f"missing in {SRC}: {', '.join(missing)}")
    return [SRC / n for n in names]


def read_chunks(amxd: bytes) -> dict[str, bytes]:
    """The .amxd's chunks (4-byte tag, u32 LE size, payload)."""
    offset, chunks = 0, {}
    while offset + 8 <= len(amxd):
        tag = amxd[offset:offset + 4].decode("ascii", "replace")
        (size,) = struct.unpack("<I", amxd[offset + 4:offset + 8])
        chunks[tag] = amxd[offset + 8:offset + 8 + size]
        offset += 8 + size
    if "ptch" not in chunks:
        raise ValueError("no ptch chunk: not a Max for Live device")
    if "ciph" in chunks:
        raise ValueError("the device is encrypted")
    return chunks


def read_frozen(container: bytes) -> list[dict]:
    """The files of a frozen container: [{name, type, data, flag, mdat}], the device first."""
    if container[:4] != FROZEN_MAGIC:
        raise ValueError("not a frozen device")
    (dir_offset,) = struct.unpack(">Q", container[8:16])
    directory = container[dir_offset:]
    if directory[:4] != b"dlst" or struct.unpack(">I", directory[4:8])[0] != len(directory):
        raise ValueError("the frozen device's directory is damaged")
    files, pos = [], 8
    while pos + 8 <= len(directory) and directory[pos:pos + 4] == b"dire":
        (size,) = struct.unpack(">I", directory[pos + 4:pos + 8])
        fields, fpos = {}, pos + 8
        while fpos + 8 <= pos + size:
            tag = directory[fpos:fpos + 4].decode("ascii")
            (fsize,) = struct.unpack(">I", directory[fpos + 4:fpos + 8])
            fields[tag] = directory[fpos + 8:fpos + fsize]
            fpos += fsize
        offset, length = (struct.unpack(">I", fields[k])[0] for k in ("of32", "sz32"))
        files.append({"name": fields["fnam"].rstrip(b"\0").decode("utf-8"),
                      "type": fields["type"].rstrip(b"\0").decode("ascii"),
                      "flag": struct.unpack(">I", fields["flag"])[0], "mdat": struct.unpack(">I", fields["mdat"])[0],
                      "data": container[offset:offset + length]})
        pos += size
    return files


def read_device(amxd: bytes) -> tuple[str, dict[str, bytes]]:
    """The patcher JSON of a device and the scripts frozen into it ({} for an unfrozen one)."""
    ptch = read_chunks(amxd)["ptch"]
    if ptch[:4] != FROZEN_MAGIC:
        text = ptch.rstrip(b"\0").decode("utf-8")
        json.loads(text)
        return text, {}
    files = read_frozen(ptch)
    text = files[0]["data"].rstrip(b"\0").decode("utf-8")
    json.loads(text)
    return text, {f["name"]: f["data"] for f in files[1:]}


def read_patcher(amxd: bytes) -> str:
    """The patcher JSON of a device, frozen or not."""
    return read_device(amxd)[0]


def _write(target: Path, data: bytes) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def build(out_dir: Path, frozen: bool = True) -> Path:
    text = PATCHER.read_text(encoding="utf-8")
    scripts = script_files(_parse(text))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / DEVICE_NAME
    if frozen:
        for js in scripts:  # a frozen device needs nothing beside it: stale copies would only mislead
            (out_dir / js.name).unlink(missing_ok=True)
        _write(target, frozen_amxd_bytes(text, scripts))
    else:
        for js in scripts:
            shutil.copyfile(js, out_dir / js.name)
        _write(target, amxd_bytes(text))
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build 'Jukebox Bridge.amxd' from max_for_live/src/.")
    p.add_argument("--out", type=Path, default=HERE / "build", help="output folder (default: max_for_live/build)")
    p.add_argument("--unfrozen", action="store_true",
                   help="write the patcher only and copy the scripts beside it (for editing in Max)")
    p.add_argument("--extract", type=Path, metavar="AMXD",
                   help="write this device's patcher back to src/JukeboxBridge.maxpat (and a frozen device's "
                        "scripts beside it) instead")
    p.add_argument("--to", type=Path, default=PATCHER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        if args.extract:
            text, scripts = read_device(args.extract.read_bytes())
            args.to.write_text(text, encoding="utf-8")
            for name, data in scripts.items():
                (args.to.parent / Path(name).name).write_bytes(data)
            print(f"wrote {args.to}" + (f" and {len(scripts)} scripts" if scripts else "") + f" from {args.extract}")
            return 0
        target = build(args.out, frozen=not args.unfrozen)
    except (ValueError, OSError, UnicodeDecodeError, KeyError, struct.error) as e:
        print(f"build.py: error: {e}", file=sys.stderr)
        return 2
    kind = "unfrozen, scripts beside it" if args.unfrozen else "frozen, scripts inside"
    print(f"wrote {target} ({target.stat().st_size} bytes, {kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
