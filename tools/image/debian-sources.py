"""Print the host's active Debian apt sources for one suite family, as deb822 stanzas.

mmdebstrap builds the stand-in base from the same Debian mirror apt uses on this machine, so no
mirror host is written into the repository: it is read from /etc/apt at build time.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

APT = Path("/etc/apt")


def deb822_stanzas(text: str) -> list[dict[str, str]]:
    """Split a .sources file into stanzas of field → value (comments dropped)."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("#") or not line.strip() or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def one_line_stanzas(text: str) -> list[dict[str, str]]:
    """Read `deb [options] URI suite components...` lines as deb822 fields."""
    stanzas = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            uri, suite, components = words[1], words[2], " ".join(words[3:])
            stanzas.append({"Types": "deb", "URIs": uri, "Suites": suite, "Components": components})
    return stanzas


def active_stanzas() -> list[dict[str, str]]:
    stanzas = []
    lists = [APT / "sources.list", *sorted((APT / "sources.list.d").glob("*.list"))]
    for path in lists:
        if path.is_file():
            stanzas += one_line_stanzas(path.read_text())
    for path in sorted((APT / "sources.list.d").glob("*.sources")):
        stanzas += deb822_stanzas(path.read_text())
    return stanzas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", help="e.g. bookworm: keeps bookworm, bookworm-updates, ...")
    suite = parser.parse_args().suite
    wanted = re.compile(rf"^{re.escape(suite)}(-[a-z]+)?$")
    kept = []
    for stanza in active_stanzas():
        if stanza.get("Enabled", "yes") == "no" or "deb" not in stanza.get("Types", "").split():
            continue
        suites = [name for name in stanza.get("Suites", "").split() if wanted.match(name)]
        if suites:
            components = stanza.get("Components", "main")
            kept.append(
                f"Types: deb\nURIs: {stanza['URIs']}\nSuites: {' '.join(suites)}\n"
                f"Components: {components}\n"
                + (f"Signed-By: {stanza['Signed-By']}\n" if "Signed-By" in stanza else "")
            )
    if not kept:
        raise SystemExit(f"no active apt source in {APT} for the Debian suite {suite!r}")
    print("\n".join(kept), end="")


if __name__ == "__main__":
    main()
