"""``jukebox-bridge`` command line: parses arguments, calls one library function, prints.

No model logic lives here; every command maps to a function in ``pipeline``, ``parity`` or ``jobs``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from . import LICENCE_NOTE, __version__


class UserError(Exception):
    """An error to print as one line, without a traceback."""


def _cmd_encode(args: argparse.Namespace) -> int:
    from .checkpoints import load_vqvae
    from .pipeline import encode_file

    vqvae = load_vqvae(args.vqvae)
    codes = encode_file(vqvae, args.audio, args.start, args.length, model_name=str(args.vqvae))
    codes.save(args.output)
    shapes = ", ".join(f"level{lv} {tuple(z.shape)}" for lv, z in sorted(codes.codes.items()))
    print(f"wrote {args.output}: {shapes}")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from .checkpoints import load_vqvae
    from .codes import CodesFile
    from .pipeline import decode_to_file

    vqvae = load_vqvae(args.vqvae)
    path = decode_to_file(vqvae, CodesFile.load(args.codes), args.level, args.output, args.sample_rate,
                          args.channels, args.subtype)
    print(f"wrote {path} (level {args.level}, {args.sample_rate} Hz, {args.channels} ch)")
    return 0


def _cmd_parity(args: argparse.Namespace) -> int:
    from .parity import run_parity

    results = run_parity(args.directory, args.checkpoint)
    for r in results:
        print(r.line())
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    print(LICENCE_NOTE)
    run_demo(args.out, args.seconds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jukebox-bridge", description="Jukebox inside your DAW. " + LICENCE_NOTE)
    p.add_argument("--version", action="version", version=f"jukebox-bridge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    codec = sub.add_parser("codec", help="encode audio to Jukebox codes and decode them back").add_subparsers(
        dest="codec_command", required=True)
    enc = codec.add_parser("encode", help="audio region -> codes .npz (level0, level1, level2)")
    enc.add_argument("audio", type=Path)
    enc.add_argument("--vqvae", required=True, type=Path, help="VQ-VAE checkpoint (official, HF mirror or safetensors)")
    enc.add_argument("-o", "--output", required=True, type=Path)
    enc.add_argument("--start", type=float, default=0.0, help="region start in seconds")
    enc.add_argument("--length", type=float, default=None, help="region length in seconds (default: to the end)")
    enc.set_defaults(func=_cmd_encode)

    dec = codec.add_parser("decode", help="codes .npz -> WAV, from one level")
    dec.add_argument("codes", type=Path)
    dec.add_argument("--vqvae", required=True, type=Path)
    dec.add_argument("--level", type=int, default=0, help="0 = best (bottom), 2 = coarse (top)")
    dec.add_argument("-o", "--output", required=True, type=Path)
    dec.add_argument("--sample-rate", type=int, default=44100)
    dec.add_argument("--channels", type=int, default=1)
    dec.add_argument("--subtype", default="PCM_24", choices=["PCM_16", "PCM_24", "FLOAT"])
    dec.set_defaults(func=_cmd_decode)

    par = sub.add_parser("parity", help="compare this implementation with a reference fixture directory")
    par.add_argument("directory", type=Path)
    par.add_argument("--checkpoint", type=Path, default=None, help="use this checkpoint (e.g. a HF-layout file)")
    par.set_defaults(func=_cmd_parity)

    demo = sub.add_parser("demo", help="train a small codec on the bundled example and round-trip it")
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.add_argument("--seconds", type=float, default=90.0, help="training time in seconds")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (UserError, ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"jukebox-bridge: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
