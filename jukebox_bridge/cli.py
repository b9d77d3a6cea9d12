"""``jukebox-bridge`` command line: parses arguments, calls one library function, prints.

No model logic lives here; every command maps to a function of ``engine`` (render, publish, codec, batch,
parity, ...) or ``bridge`` (serve, request). Users see no tracebacks for what they can fix: an expected
error prints one line and exits 2, Ctrl-C exits 130 saying what was kept, and a missing optional
dependency names the extra to install.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from bridge import protocol
from engine import LICENCE_NOTE, __version__

# optional dependency (import name) -> the pyproject extra that installs it
OPTIONAL_EXTRAS = {"matplotlib": "listen", "music21": "data"}


class UserError(Exception):
    """An error to print as one line, without a traceback."""


class Interrupted(Exception):
    """Ctrl-C, after the command said what it kept; exits 130 (128 + SIGINT)."""


def _render_request(mode: str, fields: dict[str, Any]):
    """The validated request with every default resolved the engine's way (live parameters included), so
    ``sample`` renders, and its sidecars record, what a DAW request with the same fields would."""
    from engine.params import LiveParams
    from engine.request import RenderRequest

    return LiveParams().fill(RenderRequest.from_fields(mode, fields))


def _request_defaults() -> dict[str, Any]:
    """Every render field's default, from the one place that resolves them (for ``--help``)."""
    return _render_request("generate", {}).to_fields()


def _codec_vqvae(args: argparse.Namespace) -> tuple[str, Any]:
    """(name, VQ-VAE): the ``--vqvae`` checkpoint, else the VQ-VAE of ``--model`` (default: the embedded model)."""
    if args.vqvae is not None:
        from engine.weights.checkpoints import load_vqvae

        return str(args.vqvae), load_vqvae(args.vqvae)
    from engine.weights.bundle import load_model_vqvae

    return load_model_vqvae(args.model)


def _cmd_encode(args: argparse.Namespace) -> int:
    from engine.generate.codec import encode_file

    name, vqvae = _codec_vqvae(args)
    codes = encode_file(vqvae, args.audio, args.start, args.length, model_name=name)
    codes.save(args.output)
    shapes = ", ".join(f"level{lv} {tuple(z.shape)}" for lv, z in sorted(codes.codes.items()))
    print(f"wrote {args.output}: {shapes}")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from engine.generate.codec import decode_to_file
    from engine.io.codes import CodesFile

    _, vqvae = _codec_vqvae(args)
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
    import secrets

    from engine.generate.refine import prepare_refine
    from engine.generate.render import render
    from engine.generate.validate import validate
    from engine.io import publish
    from engine.io.takes import CODES_RETENTION, prune_take_codes, save_take_codes
    from engine.jobs.records import STATE_DIR
    from engine.runtime.progress import CancelToken
    from engine.weights.bundle import load_models

    fields = {k: v for k, v in {
        "source": str(args.prime.resolve()) if args.prime else None, "start": args.start, "length": args.length,
        "seconds": args.seconds, "artist": args.artist, "genre": args.genre,
        "lyrics": args.lyrics_file.read_text() if args.lyrics_file else None, "temperature": args.temperature,
        "top_k": args.top_k, "top_p": args.top_p, "adherence": args.adherence, "takes": args.takes, "seed": args.seed,
        "quality": args.quality,
        "level": args.level, "stop_level": args.stop_level, "sample_rate": args.sample_rate, "channels": args.channels,
        "max_wait": args.max_wait,
    }.items() if v is not None}
    if args.mode not in ("generate", "refine"):  # the source file is the timeline: its region starts at --start
        fields["position"] = args.start or 0.0
    req = _render_request(args.mode, fields)  # validate before the slow model load
    req, _ = prepare_refine(req, frozenset(fields))  # refine: the draft's fields, as the engine fills them
    models = load_models(args.model, args.top)
    validate(req, models)  # the engine's own check: the source region and the labels this model knows
    _check_render_time(models, req)
    terms = models.licence()
    print(f"{models.name}: {terms['licence']}")
    if terms["attribution"]:
        print(f"credit it when you publish: {terms['attribution']}")

    shown: list[tuple[str, int]] = []

    def show(p) -> None:  # one line per stage and 5 % step, so logs stay readable
        step = (p.stage, int(20 * p.fraction))
        if not shown or shown[-1] != step:
            shown.append(step)
            eta = f", about {p.eta_seconds:.0f} s left" if p.eta_seconds >= 0 else ""
            print(f"{p.stage:<20} {100 * p.fraction:5.1f}%{eta}", flush=True)

    job_id = secrets.token_hex(4)  # names the takes like the engine's: <job>-take<n>-<mode>-<artist>-<genre>.wav
    staging = args.out / f".jukebox-staging-{job_id}"  # same filesystem: takes are hard-linked into place
    written: list[Path] = []
    try:
        takes = render(models, req, show, CancelToken(), args.work_dir)
        args.out.mkdir(parents=True, exist_ok=True)
        codes_dir = args.out / STATE_DIR / "codes"  # where the engine keeps a render folder's codes
        for take in takes:
            path = publish.take_path(args.out, job_id, take.take, req)
            meta = publish.provenance(job_id, req, take, models.name, models.licence())
            codes = save_take_codes(codes_dir, path.stem, take, models.vqvae.hop_lengths, models.sample_rate,
                                    models.name, req.to_fields(), job_id)
            meta["codes"] = codes.relative_to(args.out).as_posix()
            publish.publish_take(path, staging, take, req, meta)
            prune_take_codes(codes_dir, CODES_RETENTION)
            written.append(path)
            where = f", place at {take.position:.3f} s of the source's timeline" if req.source else ""
            print(f"take {take.take}: {path} (seed {take.seed}{where}; sidecar {publish.sidecar_path(path).name}, "
                  f"codes {meta['codes']})")
    except KeyboardInterrupt:
        kept = (f"kept {len(written)} take(s): {', '.join(map(str, written))}, each with its .json sidecar"
                if written else "no take was written")
        resume = (f"run it again with --work-dir {args.work_dir} to resume" if args.work_dir else
                  "--work-dir DIR lets a rerun resume where it stopped")
        raise Interrupted(f"interrupted; {kept}; {resume}") from None
    finally:
        if staging.is_dir() and not any(staging.iterdir()):  # publishing leaves it empty
            staging.rmdir()
    return 0


def _check_render_time(models: Any, req: Any) -> None:
    """Refuse (one line, exit 2) a render whose estimated time here exceeds ``--max-wait``, offering draft or a
    shorter length; prints the estimate otherwise when it is long enough to matter."""
    from engine.generate.estimate import DEFAULT_MAX_WAIT, check_render_time, measured_speed

    speed = measured_speed(models, log=lambda m: print(m, file=sys.stderr, flush=True))
    estimate = check_render_time(models, req, speed, DEFAULT_MAX_WAIT)  # raises RequestError (a ValueError)
    if estimate.seconds >= 30:
        print(f"estimated render time here: {estimate.describe()}", file=sys.stderr, flush=True)


def _cmd_labels(args: argparse.Namespace) -> int:
    kind = args.kind.removesuffix("s")
    if args.official or args.version is not None:
        from engine.model.labels import search

        version = args.version or 2
        total, names = None, search(args.search, kind, version, limit=args.limit, offset=args.offset)
        where = f"the official v{version} vocabulary"
    else:
        from engine.weights.bundle import load_models

        models = load_models(args.model, args.top)
        total, names = models.search_labels(kind, args.search, args.offset, args.limit)
        where = f"model {models.name}"
    print("\n".join(names) if names else f"no {args.kind} match {args.search!r} in {where}")
    if total is not None and args.offset + len(names) < total:
        print(f"({len(names)} of {total} shown; --offset {args.offset + len(names)} for more)", file=sys.stderr)
    return 0


def _next_steps(cfg: Any) -> str:
    """What to do once the engine is up: the DAW side, the MIDI input, how to stop."""
    root = Path(__file__).resolve().parents[1]
    scripts = root / "reaper_scripts"
    if not cfg.midi:
        midi = "MIDI: off (--no-midi); OSC requests still work"
    else:
        try:
            from bridge.midi import PORT_NAME
        except ImportError:  # mido missing: the engine says so itself and runs without MIDI
            PORT_NAME = "Jukebox Bridge"
        midi = (f'MIDI: input "{cfg.midi_port or PORT_NAME}": CC 1 temperature, CC 2 takes, note C3 continues the '
                "last region (bridge/default_mapping.toml)")
    return "\n".join([
        "next, once it says it is serving:",
        (f"  REAPER: install the scripts in {scripts if scripts.is_dir() else 'reaper_scripts/'} (ReaPack or by "
         "hand, see its README), select an item, run \"Jukebox Bridge - Continue selected items\""),
        "  Ableton Live: python max_for_live/build.py, then drop max_for_live/build/Jukebox Bridge.amxd on a track",
        *([] if not cfg.web else ["  any other DAW: open the web panel in a browser (its address follows); drag takes "
                                  "from it onto a track"]),
        f"  {midi}",
        "  Ctrl-C stops the engine; unfinished jobs resume at the next start",
    ])


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    from bridge.server import load_config, serve

    overrides = {"model": args.model, "port": args.port, "render_dir": args.render_dir, "midi_port": args.midi_port,
                 "listen": args.listen, "token": args.token or os.environ.get("JUKEBOX_BRIDGE_TOKEN"),
                 "midi": False if args.no_midi else None, "top": args.top, "max_wait": args.max_wait,
                 "web_port": args.web_port, "web": False if args.no_web else None, "cluster": args.cluster}
    cfg = load_config(args.config, overrides)
    print(_next_steps(cfg), file=sys.stderr, flush=True)  # serve() blocks; it prints its address when up
    return serve(cfg)


def _cmd_data(args: argparse.Namespace) -> int:
    from engine.train.data import build

    def split(text: str | None) -> list[str] | None:
        return [x.strip() for x in text.split(",") if x.strip()] if text else None

    build(args.out, sources=split(args.sources), cache=args.cache, packages=split(args.packages),
          cap_seconds=args.cap_minutes * 60)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import json

    from engine.train import commands as train

    lr = {} if args.lr is None else {"lr": args.lr}  # each command's own default otherwise
    if args.resume and args.init_from is None:  # a work folder's full state wins; with none, the shipped weights
        args.init_from = "default"
    if args.what == "vqvae":
        train.train_vqvae(args.corpus, args.work, args.steps, threads=args.threads, init_from=args.init_from, **lr)
    elif args.what == "prior":
        train.train_prior(args.corpus, args.work, args.level, args.steps, batch=args.batch,
                          threads=args.threads, init_from=args.init_from, encode_seconds=args.encode_seconds, **lr)
    elif args.what == "decoder":
        band = {} if args.band_weight is None else {"band_weight": args.band_weight}
        train.train_decoder(args.corpus, args.work, args.level, args.steps, threads=args.threads,
                            init_from=args.init_from, **lr, **band)
    elif args.what == "eq":
        print(json.dumps(train.fit_output_eq(args.corpus, args.work, args.level), indent=1))
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
    import matplotlib  # noqa: F401  (the spectrograms need it: fail before rendering, with the install hint)

    from engine.dev.listen import listen

    for path in listen(args.out, args.model, args.seed, top=args.top):
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
    from engine.batch.run import MANIFEST, finished_stems, run_batch

    fields = {"artist": args.artist, "genre": args.genre, "takes": args.takes, "seed": args.seed,
              "seconds": args.seconds, "quality": args.quality, "temperature": args.temperature, "chain": args.chain}
    try:
        summary = run_batch(args.stems, args.out, args.mode, fields, args.model, args.cluster, make_reporter(),
                            top=args.top)
    except KeyboardInterrupt:
        done, total = finished_stems(args.out)
        kept = (f"{done} of {total} stem(s) finished, with their takes, as {args.out / MANIFEST} records"
                if total else "nothing was written")
        raise Interrupted(f"interrupted; {kept}; run the same command again to resume") from None
    return 0 if summary.ok else 1


def _cmd_plugins(args: argparse.Namespace) -> int:
    from engine.io.plugins import plugin_parameters

    name, params = plugin_parameters(args.plugin)
    print(f"{name}: {len(params)} parameters (use these names in a chain's params table; values in these units)")
    for param in params:
        print(f"  {param.line()}")
    return 0


TOP_HELP = ("which official top prior the model folder holds (5b, 5b_lyrics, 1b_lyrics): read from the checkpoints "
            "themselves, so this only confirms it; a folder holding another is refused, naming what it holds "
            "(default: as detected)")


def _add_top(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--top", default=None, choices=["5b", "5b_lyrics", "1b_lyrics"], help=TOP_HELP)


def _add_max_wait(cmd: argparse.ArgumentParser, what: str) -> None:
    cmd.add_argument("--max-wait", type=float, default=None,
                     help=f"{what} refuses a render whose estimated time on this machine (from its measured tokens/s) "
                          "exceeds this many seconds, offering draft or a shorter length; 0: no limit (default: 300)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jukebox-bridge", description="Jukebox inside your DAW. " + LICENCE_NOTE)
    p.add_argument("--version", action="version", version=f"jukebox-bridge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    codec = sub.add_parser("codec", help="encode audio to Jukebox codes and decode them back").add_subparsers(
        dest="codec_command", required=True)
    def codec_model(cmd: argparse.ArgumentParser) -> None:
        which = cmd.add_mutually_exclusive_group()
        which.add_argument("--vqvae", type=Path, help="VQ-VAE checkpoint (official, HF mirror or safetensors)")
        which.add_argument("--model", help="use this model's VQ-VAE: a model folder, or 'debug' "
                                           "(default, without --vqvae: the embedded model)")

    enc = codec.add_parser("encode", help="audio region -> codes .npz (level0, level1, level2)")
    enc.add_argument("audio", type=Path)
    codec_model(enc)
    enc.add_argument("-o", "--output", required=True, type=Path)
    enc.add_argument("--start", type=float, default=0.0, help="region start in seconds")
    enc.add_argument("--length", type=float, default=None, help="region length in seconds (default: to the end)")
    enc.set_defaults(func=_cmd_encode)

    dec = codec.add_parser("decode", help="codes .npz -> WAV, from one level")
    dec.add_argument("codes", type=Path)
    codec_model(dec)
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

    d = _request_defaults()  # render fields: one source of defaults (argparse's own stay None: "not given")
    smp = sub.add_parser(
        "sample", help="render continuations, primes, re-renders or new music to WAV files",
        description="Render takes to WAV files, each with a JSON sidecar and WAV comment recording how it was made "
                    "and the model's licence (named <job>-take<n>-<mode>-<artist>-<genre>.wav, never overwritten), "
                    "plus its codes (.jukebox/codes/<take>.npz in the output folder, the newest 500 kept: what "
                    "--mode refine starts from).")
    smp.add_argument("--model", default=None, help="model folder, or 'debug' (tiny random test models) "
                                                   "(default: the embedded model)")
    _add_top(smp)
    _add_max_wait(smp, "sample")
    smp.add_argument("--mode", default="generate", choices=["generate", "continue", "prime", "rerender", "refine"],
                     help="generate: new music from labels; continue: carry on from the region's end; prime: start "
                          "new music from the region; rerender: resample the region in another style; refine: "
                          "upsample a draft take (--prime DRAFT.wav) to full quality from its saved codes, same "
                          "length and position (default: %(default)s)")
    smp.add_argument("--prime", type=Path, help="source audio file, needed by continue, prime and rerender; refine: "
                                                "the draft take's WAV (default: none)")
    smp.add_argument("--start", type=float, help=f"region start in the source, seconds (default: {d['start']:g})")
    smp.add_argument("--length", type=float, help="region length in seconds (default: to the end of the source)")
    smp.add_argument("--seconds", type=float, help=f"seconds of new material (default: {d['seconds']:g})")
    smp.add_argument("--artist", help="artist label; `jukebox-bridge artists --search ...` lists the model's "
                                      "(default: none)")
    smp.add_argument("--genre", help="genre label; `jukebox-bridge genres` lists the model's (default: none)")
    smp.add_argument("--lyrics-file", type=Path, help="text file of lyrics, for lyrics models (default: none)")
    smp.add_argument("--temperature", type=float, help="sampling temperature: lower is safer, higher is wilder "
                                                       f"(default: {d['temperature']:g})")
    smp.add_argument("--top-k", type=int, help="sample only from the k likeliest codes; 0 = off "
                                               f"(default: {d['top_k']})")
    smp.add_argument("--top-p", type=float, help="sample only from the likeliest codes up to this total "
                                                 f"probability; 1 = off (default: {d['top_p']:g})")
    smp.add_argument("--adherence", type=float, help="continue/prime: the share of each top-level draw taken from "
                                                     "the region's own phrases (keeps its harmony); 0 = the model "
                                                     f"alone (default: {d['adherence']:g})")
    smp.add_argument("--takes", type=int, help=f"takes to render, seeds seed, seed+1, ... (default: {d['takes']})")
    smp.add_argument("--seed", type=int, help="seed of the first take (default: drawn at random; each sidecar "
                                              "records its take's seed)")
    smp.add_argument("--quality", choices=["draft", "full"], help="draft: the top level only (fast, coarse); "
                                                                 f"full: upsampled to level 0 (default: {d['quality']})")
    smp.add_argument("--level", type=int, help="rerender: resample this level and the ones below, keep those above "
                                               "(default: one below the top)")
    smp.add_argument("--stop-level", type=int, help="stop upsampling at this level, 0 = best (default: 0)")
    smp.add_argument("--sample-rate", type=int, help=f"rate of the written WAVs in Hz (default: {d['sample_rate']})")
    smp.add_argument("--channels", type=int, help=f"channels of the written WAVs (default: {d['channels']})")
    smp.add_argument("--work-dir", type=Path, help="save codes after every window here; rerun with it to resume "
                                                   "(default: none)")
    smp.add_argument("--out", type=Path, default=Path("out/samples"), help="output folder (default: %(default)s)")
    smp.set_defaults(func=_cmd_sample)

    for kind in ("artists", "genres"):
        lab = sub.add_parser(kind, help=f"list or search the {kind} a model knows")
        lab.add_argument("--search", default="", help="part of a name (accents, case and punctuation ignored)")
        lab.add_argument("--model", help="model folder, or 'debug' (default: the embedded model)")
        _add_top(lab)
        lab.add_argument("--official", action="store_true",
                         help="list the official Jukebox vocabulary instead of a loaded model's")
        lab.add_argument("--version", type=int, choices=[2, 3],
                         help="official vocabulary version (implies --official): 2 = 5b, 5b_lyrics; 3 = 1b_lyrics "
                              "(default with --official: 2)")
        lab.add_argument("--limit", type=int, default=50)
        lab.add_argument("--offset", type=int, default=0)
        lab.set_defaults(func=_cmd_labels, kind=kind)

    demo = sub.add_parser("demo", help="train a small codec on the bundled example and round-trip it")
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.add_argument("--seconds", type=float, default=90.0, help="training time in seconds")
    demo.set_defaults(func=_cmd_demo)

    srv = sub.add_parser("serve", help="start the engine: load the model once, then take OSC and MIDI commands")
    srv.add_argument("--model", help="model folder, or 'debug' (tiny test models); default: the embedded model")
    _add_top(srv)
    _add_max_wait(srv, "the engine")
    srv.add_argument("--port", type=int,
                     help=f"UDP port for OSC requests (default {protocol.DEFAULT_PORT}; 0: any free port)")
    srv.add_argument("--render-dir", type=Path, help="folder for rendered WAVs and the job journal")
    srv.add_argument("--midi-port", help="MIDI input to open (default: a virtual input named 'Jukebox Bridge')")
    srv.add_argument("--no-midi", action="store_true", help="do not open MIDI")
    srv.add_argument("--web-port", type=int, help=f"TCP port of the web panel (default {protocol.DEFAULT_WEB_PORT}; "
                     "0: any free port; docs/web-panel.md)")
    srv.add_argument("--no-web", action="store_true", help="do not serve the web panel")
    srv.add_argument("--cluster", help="render jobs on a Dask scheduler's workers, e.g. tcp://10.0.0.5:8786 "
                     "(docs/batch.md); the queue, journal and files stay here")
    srv.add_argument("--listen", help=f"address to listen on (default {protocol.DEFAULT_LISTEN}); any other needs --token")
    srv.add_argument("--token", help="shared secret every request must carry (default: $JUKEBOX_BRIDGE_TOKEN)")
    srv.add_argument("--config", type=Path, help="settings TOML (default: config.toml in the user config folder)")
    srv.set_defaults(func=_cmd_serve)

    req = sub.add_parser("request", help="send one request to a running engine and follow it (for DAW scripts); "
                                         "prints the final status JSON")
    req.add_argument("verb", help="continue, prime, rerender, generate, cancel, status, info, ping, ...")
    req.add_argument("--host", default=protocol.DEFAULT_LISTEN)
    req.add_argument("--port", type=int, default=protocol.DEFAULT_PORT)
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
    dbuild.add_argument("--sources", help="comma-separated: debian (game-music recordings from Debian packages), "
                        "scores (music21 scores rendered with FluidSynth); default: both, or debian alone (with a "
                        "note) when the scores' dependencies are missing")
    dbuild.add_argument("--cache", type=Path, help="downloaded .deb files, unpacked packages and converted "
                        "recordings (kept between runs; default: OUT/cache)")
    dbuild.add_argument("--packages", help="comma-separated subset of the Debian package table "
                        "(engine/train/recordings.py); default: all")
    dbuild.add_argument("--cap-minutes", type=float, default=27.0,
                        help="at most this many minutes of recordings per Debian package (default 27)")
    dbuild.set_defaults(func=_cmd_data)

    trn = sub.add_parser("train", help="train the embedded model's VQ-VAE and priors (resumable), or export it")
    trn.add_argument("what", choices=["vqvae", "prior", "decoder", "eq", "export", "evaluate"],
                     help="decoder: fine-tune the codec level --level's decoder on its fixed codes (the priors stay "
                     "valid), with a log-spectral loss for the high octaves; export then takes it. eq: fit level "
                     "--level's output EQ to what its decoder loses per octave on training audio; export applies it")
    trn.add_argument("--corpus", type=Path, help="folder made by `data build`")
    trn.add_argument("--work", type=Path, required=True, help="checkpoints and logs (not the repository)")
    trn.add_argument("--level", type=int, default=2, help="prior: 2 = top, 1 and 0 = upsamplers; decoder, eq: the "
                     "codec level (0: the best one)")
    trn.add_argument("--steps", type=int, default=2000)
    trn.add_argument("--batch", type=int, default=8)
    trn.add_argument("--lr", type=float, help="learning rate (prior: the peak of its warm-up and cosine decay); "
                     "default: each command's own (engine/train/commands.py)")
    trn.add_argument("--band-weight", type=float, help="decoder: weight of the octave-band envelope loss, which "
                     "asks for each octave's energy whatever its fine structure (brightens the top octave); "
                     "default: engine/train/commands.py")
    trn.add_argument("--threads", type=int, default=1, help="torch threads (1 lets several runs share the cores)")
    trn.add_argument("--init-from", help="vqvae/prior/decoder: start a new run from a model folder's weights "
                     "(\"default\": the shipped model; prior/decoder also take its codec when --work has none), "
                     "optimiser warm-restarted; without it a rerun resumes the work folder")
    trn.add_argument("--resume", action="store_true", help="continue: from --work's full training state when it "
                     "has one, else from the shipped model (--init-from default)")
    trn.add_argument("--encode-seconds", type=float, help="prior: encode only this many seconds (the middle) of each "
                     "training file; default: whole files (shorter excerpts let the top prior overfit)")
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
    _add_top(lis)
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
    _add_top(bat)
    bat.add_argument("--cluster", help="render on a Dask scheduler, e.g. tcp://10.0.0.5:8786 (docs/batch.md)")
    bat.set_defaults(func=_cmd_batch)

    plg = sub.add_parser("plugins", help="inspect VST3 plugins for effect chains").add_subparsers(
        dest="plugins_command", required=True)
    prm = plg.add_parser("params", help="list a VST3 plugin's parameters (names, values, ranges)")
    prm.add_argument("plugin", type=Path, help="the .vst3 bundle")
    prm.set_defaults(func=_cmd_plugins)
    return p


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:  # "[Errno 13] ..." -> "PATH: Permission denied"
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; expected errors print one line (exit 2), Ctrl-C exits 130."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except Interrupted as e:
        print(f"jukebox-bridge: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("jukebox-bridge: interrupted", file=sys.stderr)
        return 130
    # RequestError, CheckpointError, AudioError, CodesFileError, ChainError, BatchError... are ValueErrors;
    # OSError: paths the user gave (missing, unwritable, a folder in use), ports in use
    except (UserError, ValueError, OSError) as e:
        print(f"jukebox-bridge: error: {_error_line(e)}", file=sys.stderr)
        return 2
    except ImportError as e:
        extra = OPTIONAL_EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"jukebox-bridge: error: {args.command} needs {e.name}, which is not installed; install it with: "
              f"pip install 'jukebox-bridge[{extra}]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
