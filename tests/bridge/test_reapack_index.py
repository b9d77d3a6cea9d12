"""reaper_scripts/index.xml (the ReaPack index, hand-maintained) agrees with the scripts' own headers.

Checks what reapack-index would enforce (cfillion/reapack-index ``scanner.rb``): every listed file
exists; the package file's ``@provides`` expands to exactly the listed sources, with ``[main]`` /
``[nomain]`` mapped to the ``main`` attribute; every script carries ``@description``, ``@version``
and ``@author``, all at the index's version; helper files carry ``@noindex``; nothing in
reaper_scripts/ is left out of the package. Every Lua file must also compile (``luac5.4 -p``).
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "reaper_scripts"
INDEX = SCRIPTS / "index.xml"
PACKAGE = "Jukebox Bridge - Settings.lua"
URL_BASE = "https://github.com/jukebox-bridge/jukebox-bridge/raw/main/reaper_scripts/"
MAX_VERSION_SEGMENT = 65535
_TAG = re.compile(r"^--\s*@(\w+)\s*(.*)$")
_CONTINUATION = re.compile(r"^--(?:\s{2,}(.*)|\s*)$")


def read_header(path: Path) -> dict[str, str]:
    """The ReaPack header: ``-- @tag value`` lines, with indented ``--   ...`` continuation lines."""
    tags: dict[str, str] = {}
    current: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        if m := _TAG.match(line):
            current = m.group(1).lower()
            tags[current] = m.group(2).strip()
        elif current and (m := _CONTINUATION.match(line)):
            tags[current] = (tags[current] + "\n" + (m.group(1) or "")).strip("\n")
    return tags


def lua_files() -> list[str]:
    return sorted(str(p.relative_to(SCRIPTS)) for p in SCRIPTS.rglob("*.lua"))


def provides(header: dict[str, str]) -> dict[str, bool]:
    """``@provides`` expanded against the files on disk: path -> registered as an action ([main])."""
    out: dict[str, bool] = {}
    for line in header["provides"].splitlines():
        m = re.match(r"^\s*(?:\[([^\]]*)\]\s*)?(.+?)\s*$", line)
        assert m, f"unreadable @provides line {line!r}"
        options, pattern = (m.group(1) or "").split(), m.group(2)
        pattern = PACKAGE if pattern == "." else pattern
        matches = [f for f in lua_files() if fnmatch.fnmatchcase(f, pattern) and f.count("/") == pattern.count("/")]
        assert matches, f"@provides pattern {pattern!r} matches no file"
        for f in matches:
            out[f] = "main" in options and "nomain" not in options
    return out


@pytest.fixture(scope="module")
def index() -> ET.Element:
    return ET.parse(INDEX).getroot()


@pytest.fixture(scope="module")
def version_node(index: ET.Element) -> ET.Element:
    (package,) = index.iter("reapack")
    versions = package.findall("version")
    assert versions, "the package has no version"
    return versions[-1]


def sources(version_node: ET.Element) -> dict[str, ET.Element]:
    """Source elements by path relative to reaper_scripts/ (the package file has no ``file``)."""
    return {s.get("file") or PACKAGE: s for s in version_node.findall("source")}


def test_index_shape(index: ET.Element) -> None:
    assert index.tag == "index" and index.get("version") == "1" and index.get("name")
    (category,) = index.findall("category")
    (package,) = category.findall("reapack")
    assert package.get("name") == PACKAGE and package.get("type") == "script"


def test_every_listed_file_exists_with_a_matching_url(version_node: ET.Element) -> None:
    for path, node in sources(version_node).items():
        assert (SCRIPTS / path).is_file(), f"index.xml lists {path}, which does not exist"
        assert node.text == URL_BASE + quote(path), f"wrong URL for {path}: {node.text}"


def test_index_lists_exactly_the_provided_files(version_node: ET.Element) -> None:
    header = read_header(SCRIPTS / PACKAGE)
    expected = provides(header)
    listed = sources(version_node)
    assert sorted(listed) == sorted(expected)
    for path, node in listed.items():
        assert (node.get("main") == "main") == expected[path], f"main attribute of {path}"
    assert sorted(listed) == lua_files(), "every Lua file in reaper_scripts/ must be part of the package"


def test_headers_are_consistent_with_the_index(index: ET.Element, version_node: ET.Element) -> None:
    (package,) = index.iter("reapack")
    version = version_node.get("name") or ""
    assert re.fullmatch(r"\d+(\.\d+)*", version) and all(int(s) <= MAX_VERSION_SEGMENT for s in version.split("."))
    package_header = read_header(SCRIPTS / PACKAGE)
    assert package.get("desc") == package_header["description"]
    assert version_node.get("author") == package_header["author"]
    changelog = version_node.find("changelog")
    assert changelog is not None and changelog.text == package_header["changelog"]
    assert "noindex" not in package_header and package_header.get("about")
    for path in lua_files():
        header = read_header(SCRIPTS / path)
        for tag in ("description", "version", "author"):
            assert header.get(tag), f"{path} has no @{tag}"
        assert header["version"] == version, f"{path} is @version {header['version']}, the index says {version}"
        if path != PACKAGE:
            assert "noindex" in header, f"{path} must carry @noindex (it is provided by {PACKAGE})"
            assert "provides" not in header


def test_actions_are_thin_and_libraries_are_not_actions(version_node: ET.Element) -> None:
    for path, node in sources(version_node).items():
        text = (SCRIPTS / path).read_text(encoding="utf-8")
        if node.get("main") == "main":
            code = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("--")]
            assert len(code) <= 6, f"{path} should be a thin action over lib/, it has {len(code)} lines of code"
            assert 'require("jukebox_bridge")' in text
        else:
            assert path.startswith("lib/")


def test_every_lua_file_compiles() -> None:
    luac = shutil.which("luac5.4")
    if luac is None:
        pytest.fail("luac5.4 is needed (apt-get install lua5.4)", pytrace=False)
    for path in lua_files():
        proc = subprocess.run([luac, "-p", str(SCRIPTS / path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"
