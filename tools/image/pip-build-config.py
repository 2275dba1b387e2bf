"""Hand the host's pip configuration to an image build, as build secrets only.

`RUN pip install` in the Dockerfile must reach the package registry the way the host does (its
index, its certificate bundle), but none of that may end up in the image, its history or the
repository. This writes the host's effective pip settings (`pip config list`: files and PIP_*
variables) as one pip.conf into a private temporary directory and prints the `--secret`
arguments that mount it, and the certificate files it names, in the build's RUN steps only.
"""

from __future__ import annotations

import argparse
import configparser
import re
import subprocess
from pathlib import Path

ENTRY = re.compile(r"^(?P<section>[^.]*)\.(?P<key>[^=]+)=(?P<value>.*)$")
# Settings that name a file on the host: mounted as a secret, the setting pointing at the mount.
FILE_SETTINGS = {"cert": "pipcert", "client-cert": "pipclientcert"}
# Local directories of wheels on the host do not exist in the build.
HOST_PATH_SETTINGS = {"find-links"}
SECRETS_DIR = "/run/secrets"


def host_settings(pip: list[str]) -> dict[tuple[str, str], str]:
    """(section, key) → value, as pip itself resolves them (`:env:` is the PIP_* variables)."""
    listed = subprocess.run(
        [*pip, "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    settings = {}
    for line in listed.splitlines():
        if match := ENTRY.match(line.strip()):
            section = "global" if match["section"] in (":env:", "") else match["section"]
            value = match["value"].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            settings[(section, match["key"])] = value
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path, help="private directory for pip.conf")
    parser.add_argument("pip", nargs="+", help="the host's pip command, e.g. python3 -m pip")
    args = parser.parse_args()
    config = configparser.ConfigParser(interpolation=None)
    secrets: dict[str, str] = {}
    for (section, key), value in sorted(host_settings(args.pip).items()):
        if key in HOST_PATH_SETTINGS and "://" not in value:
            continue
        if key in FILE_SETTINGS:
            secrets[FILE_SETTINGS[key]] = value
            value = f"{SECRETS_DIR}/{FILE_SETTINGS[key]}"
        if not config.has_section(section):
            config.add_section(section)
        config.set(section, key, value)
    pip_conf = args.directory / "pip.conf"
    with pip_conf.open("w", encoding="utf-8") as file:
        config.write(file)
    pip_conf.chmod(0o600)
    secrets["pipconf"] = str(pip_conf)
    for name, source in sorted(secrets.items()):
        print(f"--secret=id={name},src={source}")


if __name__ == "__main__":
    main()
