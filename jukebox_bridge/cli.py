"""``jukebox-bridge`` command line: parses arguments, calls one library function, prints.

No model logic lives here; every command maps to a function in ``pipeline``, ``parity`` or ``jobs``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from engine import LICENCE_NOTE, __version__


class UserError(Exception):
    """An error to print as one line, without a traceback."""


def _cmd_encode(args: argparse.Namespace) -> int:
    from engine.generate.codec import encode_file
    from engine.weights.checkpoints import load_vqvae

    vqvae = load_vqvae(args.vqvae)
    codes = encode_file(vqvae, args.audio, args.start, args.length, model_name=str(args.vqvae))
    codes.save(args.output)
    shapes = ", ".join(f"level{lv} {tuple(z.shape)}" for lv, z in sorted(codes.codes.items()))
    print(f"wrote {args.output}: {shapes}")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from engine.generate.codec import decode_to_file
    from engine.io.codes import CodesFile
    from engine.weights.checkpoints import load_vqvae

    vqvae = load_vqvae(args.vqvae)
    path = decode_to_file(vqvae, CodesFile.load(args.codes), args.level, args.output, args.sample_rate,
                          args.channels, args.subtype)
    print(f"wrote {path} (level {args.level}, {args.sample_rate} Hz, {args.channels} ch)")
    return 0


def _cmd_parity(args: argparse.Namespace) -> int:
    from engine.dev.parity import run_parity

    results = run_parity(args.directory, args.checkpoint)
    for r in results:
        print(r.line())
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from engine.dev.demo import run_demo

    print(LICENCE_NOTE)
    run_demo(args.out, args.seconds)
    return 0


def _cmd_request(args: argparse.Namespace) -> int:
    import os

    from bridge.client import Timeouts, request_main

    timeouts = Timeouts(connect=args.connect_timeout, idle=args.idle_timeout)
    return request_main(args.verb, args.json, args.host, args.port, args.status_file,
                        args.token or os.environ.get("JUKEBOX_BRIDGE_TOKEN"), timeouts)


def _cmd_sample(args: argparse.Namespace) -> int:
    from engine.generate.render import render
    from engine.generate.request import RenderRequest
    from engine.io import audio
    from engine.io.codes import CodesFile
    from engine.runtime.progress import CancelToken
    from engine.weights.bundle import load_models

    fields = {k: v for k, v in {
        "source": str(args.prime.resolve()) if args.prime else None, "start": args.start, "length": args.length,
        "seconds": args.seconds, "artist": args.artist, "genre": args.genre,
        "lyrics": args.lyrics_file.read_text() if args.lyrics_file else None, "temperature": args.temperature,
        "top_k": args.top_k, "top_p": args.top_p, "takes": args.takes, "seed": args.seed, "quality": args.quality,
        "level": args.level, "stop_level": args.stop_level, "sample_rate": args.sample_rate, "channels": args.channels,
    }.items() if v is not None}
    req = RenderRequest.from_fields(args.mode, fields)  # validate before the slow model load
    models = load_models(args.model, args.top)
    print(f"{models.name}: {models.meta.get('licence', LICENCE_NOTE) if models.name != 'debug' else 'random test weights'}")

    shown: list[tuple[str, int]] = []

    def show(p) -> None:  # one line per stage and 5 % step, so logs stay readable
        step = (p.stage, int(20 * p.fraction))
        if not shown or shown[-1] != step:
            shown.append(step)
            eta = f", about {p.eta_seconds:.0f} s left" if p.eta_seconds >= 0 else ""
            print(f"{p.stage:<20} {100 * p.fraction:5.1f}%{eta}", flush=True)

    takes = render(models, req, show, CancelToken(), args.work_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    for take in takes:
        stem = f"{args.mode}-seed{take.seed}-take{take.take}"
        wav = audio.write_audio(audio.unique_path(args.out, stem), take.audio, req.sample_rate,
                                source_rate=req.sample_rate, channels=req.channels)
        CodesFile({lv: z[None] for lv, z in take.codes.items()}, models.vqvae.hop_lengths, models.sample_rate,
                  model=models.name, extra={"seed": take.seed, "request": req.to_fields()}
                  ).save(audio.unique_path(args.out, stem, ".npz"))
        print(f"take {take.take}: {wav} (seed {take.seed}, place at {take.position:.3f} s)")
    return 0


def _cmd_labels(args: argparse.Namespace) -> int:
    from engine.model.labels import search

    names = search(args.search, args.kind.removesuffix("s"), args.version, limit=args.limit, offset=args.offset)
    print("\n".join(names) if names else f"no {args.kind} match {args.search!r}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    from bridge.server import load_config, serve

    overrides = {"model": args.model, "port": args.port, "render_dir": args.render_dir, "midi_port": args.midi_port,
                 "listen": args.listen, "token": args.token or os.environ.get("JUKEBOX_BRIDGE_TOKEN"),
                 "midi": False if args.no_midi else None}
    return serve(load_config(args.config, overrides))


def _cmd_data(args: argparse.Namespace) -> int:
    from engine.train.data import build

    build(args.out)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import json

    from engine.train import commands as train

    if args.what == "vqvae":
        train.train_vqvae(args.corpus, args.work, args.steps, threads=args.threads)
    elif args.what == "prior":
        train.train_prior(args.corpus, args.work, args.level, args.steps, batch=args.batch, lr=args.lr,
                          threads=args.threads)
    elif args.what == "export":
        print(f"wrote {train.export(args.work, args.out)}")
    else:
        metrics = train.evaluate_and_pick_clips(args.work, args.corpus, args.out, args.clips)
        print(json.dumps(metrics, indent=1))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from engine.weights import registry

    return registry.main(args)


def _cmd_listen(args: argparse.Namespace) -> int:
    from engine.dev.listen import listen

    for path in listen(args.out, args.model, args.seed):
        print(f"wrote {path}")
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    from engine.io.audition import AudioDeviceError, play_file

    try:
        played = play_file(args.file, args.device)
    except AudioDeviceError as exc:
        raise UserError(str(exc)) from None
    print(f"played {played.path} ({played.seconds:.2f} s) on {played.device} at {played.sample_rate} Hz")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from engine.io.audition import AudioDeviceError, record

    try:
        path = record(args.output, args.seconds, args.device, args.sample_rate, args.channels)
    except AudioDeviceError as exc:
        raise UserError(str(exc)) from None
    print(f"recorded {args.seconds:g} s into {path}")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from engine.batch.report import make_reporter
    from engine.batch.run import run_batch

    fields = {"artist": args.artist, "genre": args.genre, "takes": args.takes, "seed": args.seed,
              "seconds": args.seconds, "quality": args.quality, "temperature": args.temperature, "chain": args.chain}
    summary = run_batch(args.stems, args.out, args.mode, fields, args.model, args.cluster, make_reporter())
    return 0 if summary.ok else 1


def _cmd_plugins(args: argparse.Namespace) -> int:
    from engine.io.plugins import plugin_parameters

    name, params = plugin_parameters(args.plugin)
    print(f"{name}: {len(params)} parameters (use these names in a chain's params table; values in these units)")
    for param in params:
        print(f"  {param.line()}")
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

    smp = sub.add_parser("sample", help="render continuations, primes, re-renders or new music to WAV files")
    smp.add_argument("--model", default=None, help="model folder, or 'debug'; default: the embedded model")
    smp.add_argument("--top", default=None, choices=["5b", "5b_lyrics", "1b_lyrics"], help="official top prior")
    smp.add_argument("--mode", default="generate", choices=["generate", "continue", "prime", "rerender"])
    smp.add_argument("--prime", type=Path, help="source audio file (continue, prime, rerender)")
    smp.add_argument("--start", type=float, help="region start in the source, seconds")
    smp.add_argument("--length", type=float, help="region length, seconds")
    smp.add_argument("--seconds", type=float, help="seconds to generate (default 10)")
    smp.add_argument("--artist")
    smp.add_argument("--genre")
    smp.add_argument("--lyrics-file", type=Path)
    smp.add_argument("--temperature", type=float)
    smp.add_argument("--top-k", type=int)
    smp.add_argument("--top-p", type=float)
    smp.add_argument("--takes", type=int)
    smp.add_argument("--seed", type=int)
    smp.add_argument("--quality", choices=["draft", "full"])
    smp.add_argument("--level", type=int, help="rerender: resample from this level down")
    smp.add_argument("--stop-level", type=int, help="stop upsampling at this level (0 = best)")
    smp.add_argument("--sample-rate", type=int)
    smp.add_argument("--channels", type=int)
    smp.add_argument("--work-dir", type=Path, help="save codes per window here; rerun to resume")
    smp.add_argument("--out", type=Path, default=Path("out/samples"))
    smp.set_defaults(func=_cmd_sample)

    for kind in ("artists", "genres"):
        lab = sub.add_parser(kind, help=f"list or search the {kind} a model knows")
        lab.add_argument("--search", default="", help="part of a name (accents, case and punctuation ignored)")
        lab.add_argument("--version", type=int, default=2, choices=[2, 3], help="2: 5b, 5b_lyrics; 3: 1b_lyrics")
        lab.add_argument("--limit", type=int, default=50)
        lab.add_argument("--offset", type=int, default=0)
        lab.set_defaults(func=_cmd_labels, kind=kind)

    demo = sub.add_parser("demo", help="train a small codec on the bundled example and round-trip it")
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.add_argument("--seconds", type=float, default=90.0, help="training time in seconds")
    demo.set_defaults(func=_cmd_demo)

    srv = sub.add_parser("serve", help="start the engine: load the model once, then take OSC and MIDI commands")
    srv.add_argument("--model", help="model folder, or 'debug' (tiny test models); default: the embedded model")
    srv.add_argument("--port", type=int, help="UDP port for OSC requests (default 9130; 0: any free port)")
    srv.add_argument("--render-dir", type=Path, help="folder for rendered WAVs and the job journal")
    srv.add_argument("--midi-port", help="MIDI input to open (default: a virtual input named 'Jukebox Bridge')")
    srv.add_argument("--no-midi", action="store_true", help="do not open MIDI")
    srv.add_argument("--listen", help="address to listen on (default 127.0.0.1); any other needs --token")
    srv.add_argument("--token", help="shared secret every request must carry (default: $JUKEBOX_BRIDGE_TOKEN)")
    srv.add_argument("--config", type=Path, help="settings TOML (default: config.toml in the user config folder)")
    srv.set_defaults(func=_cmd_serve)

    req = sub.add_parser("request", help="send one request to a running engine and follow it (for DAW scripts); "
                                         "prints the final status JSON")
    req.add_argument("verb", help="continue, prime, rerender, generate, cancel, status, info, ping, ...")
    req.add_argument("--host", default="127.0.0.1")
    req.add_argument("--port", type=int, default=9130)
    req.add_argument("--json", default="{}", help="the request's JSON object, or @FILE holding it")
    req.add_argument("--status-file", type=Path, default=None, help="rewritten atomically as the job progresses")
    req.add_argument("--token", default=None, help="the engine's shared secret (default: $JUKEBOX_BRIDGE_TOKEN)")
    req.add_argument("--connect-timeout", type=float, default=3.0, help="seconds to wait for the engine to answer")
    req.add_argument("--idle-timeout", type=float, default=30.0, help="seconds of engine silence before giving up")
    req.set_defaults(func=_cmd_request)

    data = sub.add_parser("data", help="training data for the embedded model").add_subparsers(dest="data_command",
                                                                                              required=True)
    dbuild = data.add_parser("build", help="render/decode the freely licensed corpus into DIR (cached, resumable)")
    dbuild.add_argument("--out", type=Path, required=True)
    dbuild.set_defaults(func=_cmd_data)

    trn = sub.add_parser("train", help="train the embedded model's VQ-VAE and priors (resumable), or export it")
    trn.add_argument("what", choices=["vqvae", "prior", "export", "evaluate"])
    trn.add_argument("--corpus", type=Path, help="folder made by `data build`")
    trn.add_argument("--work", type=Path, required=True, help="checkpoints and logs (not the repository)")
    trn.add_argument("--level", type=int, default=2, help="prior: 2 = top, 1 and 0 = upsamplers")
    trn.add_argument("--steps", type=int, default=2000)
    trn.add_argument("--batch", type=int, default=8)
    trn.add_argument("--lr", type=float, default=6e-4, help="prior: peak learning rate (warm-up, cosine decay)")
    trn.add_argument("--threads", type=int, default=1, help="torch threads (1 lets several runs share the cores)")
    trn.add_argument("--out", type=Path, help="export: the model folder to write; evaluate: the model folder")
    trn.add_argument("--clips", type=Path, help="evaluate: also write short held-out clips for the test here")
    trn.set_defaults(func=_cmd_train)

    mod = sub.add_parser("models", help="list, download, verify or convert model checkpoints")
    from engine.weights.registry import add_arguments

    add_arguments(mod)
    mod.set_defaults(func=_cmd_models)

    lis = sub.add_parser("listen", help="write continuations and re-renders of the bundled prime plus spectrograms")
    lis.add_argument("--out", type=Path, default=Path("out/listen"))
    lis.add_argument("--model", default=None, help="model folder; default: the embedded model")
    lis.add_argument("--seed", type=int, default=0)
    lis.set_defaults(func=_cmd_listen)
    ply = sub.add_parser("play", help="play an audio file (e.g. a take) on this computer's output device")
    ply.add_argument("file", type=Path)
    ply.add_argument("--device", help="output device: index or part of its name (default: the system default)")
    ply.set_defaults(func=_cmd_play)

    rec = sub.add_parser("record", help="record a prime from an input device into a new WAV")
    rec.add_argument("--seconds", type=float, required=True)
    rec.add_argument("-o", "--output", type=Path, required=True, help="the WAV to create (never overwritten)")
    rec.add_argument("--device", help="input device: index or part of its name (default: the system default)")
    rec.add_argument("--sample-rate", type=int, help="rate of the file (default: the device's rate)")
    rec.add_argument("--channels", type=int, default=2)
    rec.set_defaults(func=_cmd_record)

    bat = sub.add_parser("batch", help="re-render or continue many stems; resumable (docs/batch.md)")
    bat.add_argument("stems", nargs="+", type=Path, help="audio files; outputs are named after them")
    bat.add_argument("--mode", required=True, choices=["rerender", "continue"])
    bat.add_argument("--out", type=Path, required=True, help="output folder (holds the manifest; rerun to resume)")
    bat.add_argument("--artist")
    bat.add_argument("--genre")
    bat.add_argument("--takes", type=int)
    bat.add_argument("--seed", type=int, help="default: drawn once and kept in the manifest")
    bat.add_argument("--seconds", type=float, help="continue: seconds of new material (default 10)")
    bat.add_argument("--quality", choices=["draft", "full"])
    bat.add_argument("--temperature", type=float)
    bat.add_argument("--chain", help="effect chain: a built-in name (polish) or a TOML file (docs/effects.md)")
    bat.add_argument("--model", help="model folder, or 'debug'; default: the embedded model")
    bat.add_argument("--cluster", help="render on a Dask scheduler, e.g. tcp://10.0.0.5:8786 (docs/batch.md)")
    bat.set_defaults(func=_cmd_batch)

    plg = sub.add_parser("plugins", help="inspect VST3 plugins for effect chains").add_subparsers(
        dest="plugins_command", required=True)
    prm = plg.add_parser("params", help="list a VST3 plugin's parameters (names, values, ranges)")
    prm.add_argument("plugin", type=Path, help="the .vst3 bundle")
    prm.set_defaults(func=_cmd_plugins)
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
