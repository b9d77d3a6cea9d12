"""reaper_scripts/index.xml (the ReaPack index) agrees with the scripts' headers and with reapack-index.

The repository's one ReaPack setting is ``.reapack-index.conf`` at its root, which cfillion/reapack-index
reads: the index's name and output file, the URL template (the only place the GitHub owner/repo appears;
``$path`` is the path from the repository root, ``$commit`` a git ref) and the folders it must not
index. Checked here, as reapack-index would do it (``index.rb``, ``cli.rb``, ``scanner.rb``):

- it would index only the actions and their library: every file of the repository with a package
  extension (.lua .eel .py .txt ...) outside a root-level file is either ignored by the config or
  lives in reaper_scripts/, and there only the package file lacks ``@noindex`` (no test file, no
  build script becomes a package);
- the category is the package file's folder (``reaper_scripts``), and every source URL is the config's
  template filled with the file's real path in the repository (``$commit`` = ``main`` in this
  hand-kept index; reapack-index writes the commit's hash);
- the package file's ``@provides`` expands to exactly the listed sources, with ``[main]`` / ``[nomain]``
  mapped to the ``main`` attribute; every script carries ``@description``, ``@version`` and
  ``@author``, all at the index's version; helper files carry ``@noindex``.

Every Lua file must also compile (``luac5.4 -p``). ``python tests/bridge/test_reapack_index.py --write``
rewrites index.xml from the headers and the config (after a version bump or an owner/repo change).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "reaper_scripts"
CONFIG = ROOT / ".reapack-index.conf"
INDEX = SCRIPTS / "index.xml"
PACKAGE = "Jukebox Bridge - Settings.lua"
COMMIT = "main"  # what $commit is in this hand-kept index
MAX_VERSION_SEGMENT = 65535
# reapack-index's package types by extension (index.rb PKG_TYPES)
PACKAGE_EXTENSIONS = {"lua", "eel", "py", "ext", "jsfx", "data", "theme", "reaperlangpack", "www", "rpp",
                      "rtracktemplate", "txt", "reaperautoitem", "reaperkeymap"}
_TAG = re.compile(r"^--\s*@(\w+)\s*(.*)$")
_CONTINUATION = re.compile(r"^--(?:\s{2,}(.*)|\s*)$")


def config() -> dict:
    """The options of .reapack-index.conf, split as reapack-index does (Shellwords)."""
    words = shlex.split(CONFIG.read_text(encoding="utf-8"))
    out: dict = {"ignore": []}
    it = iter(words)
    for word in it:
        if word in ("-i", "--ignore"):
            out["ignore"].append(next(it).rstrip("/"))
        elif word in ("-U", "--url-template"):
            out["url_template"] = next(it)
        elif word in ("-o", "--output"):
            out["output"] = next(it)
        elif word in ("-n", "--name"):
            out["name"] = next(it)
        else:
            raise AssertionError(f".reapack-index.conf: unexpected {word!r}")
    return out


def url_for(path_in_repo: str) -> str:
    return config()["url_template"].replace("$commit", COMMIT).replace("$path", quote(path_in_repo))


def repository_files() -> list[str]:
    """Files reapack-index would see: tracked and new (not git-ignored) files, else a walk of the tree."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        return sorted(line for line in out.splitlines() if line and (ROOT / line).is_file())
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "node_modules", "__pycache__", "build", "out"}
        return sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                      if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts))


def is_package_type(path: str) -> bool:
    """reapack-index's type_of: a known extension, and not in the repository's root folder."""
    return "/" in path and path.rsplit(".", 1)[-1].lower() in PACKAGE_EXTENSIONS and "." in path.rsplit("/", 1)[-1]


def ignored(path: str) -> bool:
    return any((path + "/").startswith(prefix + "/") for prefix in config()["ignore"])


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
    assert index.tag == "index" and index.get("version") == "1" and index.get("name") == config()["name"]
    assert ROOT / config()["output"] == INDEX
    (category,) = index.findall("category")
    assert category.get("name") == "reaper_scripts", "reapack-index names the category after the package's folder"
    (package,) = category.findall("reapack")
    assert package.get("name") == PACKAGE and package.get("type") == "script"


def test_the_owner_and_repository_are_named_in_one_place() -> None:
    """Only .reapack-index.conf names the GitHub repository; the index is derived from it."""
    m = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)/raw/\$commit/\$path", config()["url_template"])
    assert m, config()["url_template"]
    repo = f"{m.group(1)}/{m.group(2)}"
    for path in [ROOT / p for p in repository_files() if p.startswith("reaper_scripts/") and not p.endswith(".xml")]:
        assert repo not in path.read_text(encoding="utf-8", errors="replace"), f"{path} names {repo}"


def test_reapack_index_would_index_only_the_actions_and_their_library() -> None:
    """Every file reapack-index would consider is ignored, or in reaper_scripts/ and @noindex but one."""
    considered = [p for p in repository_files() if is_package_type(p) and not ignored(p)]
    outside = [p for p in considered if not p.startswith("reaper_scripts/")]
    assert not outside, f"reapack-index would try to index these; add their folder to .reapack-index.conf: {outside}"
    packages = [p for p in considered if "noindex" not in read_header(ROOT / p)]
    assert packages == ["reaper_scripts/" + PACKAGE], packages
    assert all(ignored(p) for p in repository_files() if p.startswith("tests/"))


def test_every_listed_file_exists_with_a_matching_url(version_node: ET.Element) -> None:
    for path, node in sources(version_node).items():
        assert (SCRIPTS / path).is_file(), f"index.xml lists {path}, which does not exist"
        assert node.text == url_for("reaper_scripts/" + path), f"wrong URL for {path}: {node.text}"


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


# Writing the index --------------------------------------------------------------------------------

def render_index() -> str:
    """index.xml from the package file's headers and .reapack-index.conf (what the tests check)."""
    from datetime import datetime, timezone
    from xml.sax.saxutils import quoteattr

    header = read_header(SCRIPTS / PACKAGE)
    old = ET.parse(INDEX).getroot() if INDEX.exists() else None
    old_version = old.find(".//version") if old is not None else None
    keep_time = old_version is not None and old_version.get("name") == header["version"]
    time = old_version.get("time") if keep_time else datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    description = old.find(".//metadata/description").text if old is not None else ""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<index version="1" name={quoteattr(config()["name"])}>',
        '  <category name="reaper_scripts">',
        f'    <reapack name={quoteattr(PACKAGE)} type="script" desc={quoteattr(header["description"])}>',
        "      <metadata>",
        f"        <description><![CDATA[{description}]]></description>",
        "      </metadata>",
        f'      <version name="{header["version"]}" author={quoteattr(header["author"])} time="{time}">',
        f"        <changelog><![CDATA[{header['changelog']}]]></changelog>",
    ]
    for path, main in provides(header).items():
        attrs = ' main="main"' if main else ""
        attrs += "" if path == PACKAGE else f" file={quoteattr(path)}"
        lines.append(f"        <source{attrs}>{url_for('reaper_scripts/' + path)}</source>")
    lines += ["      </version>", "    </reapack>", "  </category>", "</index>", ""]
    return "\n".join(lines)


def test_the_index_is_what_the_headers_and_the_config_make() -> None:
    assert INDEX.read_text(encoding="utf-8") == render_index(), \
        "run: python tests/bridge/test_reapack_index.py --write"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        INDEX.write_text(render_index(), encoding="utf-8")
        print(f"wrote {INDEX}")
    else:
        print(f"usage: {os.path.basename(__file__)} --write", file=sys.stderr)
        sys.exit(2)
