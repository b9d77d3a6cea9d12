#!/usr/bin/env bash
# Fetch the real VST3 plugin the effect-chain tests load: Dragonfly Reverb, from Debian trixie.
#
#   scripts/fetch_test_plugins.sh [DEST]     (default DEST: .cache/test-plugins in the repository)
#
# Why trixie: Debian bookworm packages no VST3 plugins at all, but trixie's dragonfly-reverb-vst3
# needs only libc6 >= 2.34 (+ libgl1, libx11-6, libxext6, libxrandr2) and loads in pedalboard on
# bookworm. The .deb is fetched with Debian's own apt (signed trixie Release file, verified against
# the system's debian-archive-keyring) through a private list and cache folder, so the machine's apt
# configuration is never touched, and unpacked with `dpkg -x` (nothing is installed).
# Idempotent: prints DEST/usr/lib/vst3 and exits at once when the plugin is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.cache/test-plugins}"
PACKAGE="dragonfly-reverb-vst3"
VERSION="3.2.10-3"  # the version the tests were written against; any later trixie version is accepted
MIRROR="${JB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"
PLUGIN="$DEST/usr/lib/vst3/DragonflyRoomReverb.vst3"

say() { printf 'fetch_test_plugins: %s\n' "$*" >&2; }

if [ -d "$PLUGIN" ]; then echo "$DEST/usr/lib/vst3"; exit 0; fi
command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  say "needs Debian's apt-get and dpkg; or unpack $PACKAGE (trixie) into $DEST yourself"; exit 1; }
[ -r "$KEYRING" ] || { say "missing $KEYRING: apt-get install debian-archive-keyring"; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/deb"
echo "deb [signed-by=$KEYRING] $MIRROR trixie main" > "$WORK/sources.list"
APT=(-q -o "Dir::State::Lists=$WORK/lists" -o "Dir::Etc::SourceList=$WORK/sources.list"
     -o "Dir::Etc::SourceParts=$WORK/none" -o "Dir::Cache=$WORK/cache" -o "APT::Sandbox::User=root")

say "reading the trixie package list (private apt folder $WORK)"
apt-get "${APT[@]}" update >/dev/null
cd "$WORK/deb"
if ! apt-get "${APT[@]}" download "$PACKAGE=$VERSION" >/dev/null 2>&1; then
  say "$PACKAGE $VERSION is no longer in trixie; taking the current version"
  apt-get "${APT[@]}" download "$PACKAGE" >/dev/null
fi
mkdir -p "$DEST"
dpkg -x ./*.deb "$DEST"
[ -d "$PLUGIN" ] || { say "unpacked $(ls ./*.deb) but $PLUGIN is missing"; exit 1; }
say "unpacked $(ls ./*.deb) into $DEST"
echo "$DEST/usr/lib/vst3"
