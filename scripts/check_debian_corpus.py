"""Compare a corpus made by `jukebox-bridge data build` with the reference Debian corpus, file by file.

    .venv/bin/python scripts/check_debian_corpus.py OUT \
        [--reference /work/data_cache/corpus/manifest.json] [--train-manifest /work/train_corpus/manifest.json]

OUT's Debian recordings (``OUT/provenance.json``) are compared, for the packages OUT holds, with the reference
manifest that the first 7.88-hour corpus was built from (ids, package versions, licences, artists, genres,
seconds and the FLACs' sha256), and with the training manifest made from it (the manifest ``Item``s: id,
artist, genre, licence, source, seconds, split must be equal). Exits 1 on any difference, so a rebuild that
drifts (another ffmpeg, an edited package table) is noticed. Not a test: it needs the packages downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.train.data import load_manifest  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder made by `jukebox-bridge data build`")
    ap.add_argument("--reference", type=Path, default=Path("/work/data_cache/corpus/manifest.json"))
    ap.add_argument("--train-manifest", type=Path, default=Path("/work/train_corpus/manifest.json"))
    ap.add_argument("--no-audio-hash", action="store_true", help="do not compare the FLACs' sha256")
    args = ap.parse_args(argv)

    prov = {d["id"]: d for d in json.loads((args.out / "provenance.json").read_text())}
    mine = {it.id: it for it in load_manifest(args.out) if it.id in prov}
    packages = {d["package"] for d in prov.values()}
    problems: list[str] = []

    ref = {d["id"]: d for d in json.loads(args.reference.read_text()) if d["package"] in packages}
    for i in sorted(set(ref) - set(prov)):
        problems.append(f"{i}: in the reference, not built")
    for i in sorted(set(prov) - set(ref)):
        problems.append(f"{i}: built, not in the reference")
    for i in sorted(set(ref) & set(prov)):
        r, p = ref[i], prov[i]
        checks = [("version", r["version"], p["version"]), ("licence", r["licence"], p["licence"]),
                  ("artist", r["artist"], p["artist"]), ("genre", r["genre"], p["genre"]),
                  ("seconds", r["seconds"], p["seconds"])]
        if not args.no_audio_hash:
            checks.append(("sha256", r["sha256"], p["flac_sha256"]))
        problems += [f"{i}: {k} {b!r}, reference {a!r}" for k, a, b in checks if a != b]

    if args.train_manifest.exists():
        train = {it.id: it for it in load_manifest(args.train_manifest.parent)
                 if it.id in ref or it.id in prov}
        for i in sorted(set(train) | set(mine)):
            if train.get(i) != mine.get(i):
                problems.append(f"{i}: manifest item {mine.get(i)} != training corpus item {train.get(i)}")

    total = sum(p["seconds"] for p in prov.values())
    print(f"{len(prov)} recordings ({total / 60:.1f} min) from {len(packages)} package(s) compared with "
          f"{len(ref)} reference files: {len(problems)} difference(s)")
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
