#!/bin/sh
# Lay Debian's python3.11 out in ROOTFS the way python:3.11-slim has it, where our Dockerfile can
# tell: `python`, `python3`, `pip` in /usr/local/bin, and pip, setuptools and wheel installed
# into /usr/local by pip itself (so `python -m pip uninstall` removes them, as in the official
# image). Debian's EXTERNALLY-MANAGED marker goes: the official image has none.
#
# usage: standin-python.sh ROOTFS   (an mmdebstrap customize hook; runs on the host, as root)
set -eu
rootfs=$1
rm -f "$rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"
# The host's PIP_* settings are not the stand-in's: a clean environment.
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    chroot "$rootfs" sh -euc '
    wheels=/usr/share/python-wheels
    set -- $wheels/pip-*.whl
    python3 "$1/pip" install --no-index --find-links "$wheels" --no-cache-dir --quiet \
        --disable-pip-version-check --root-user-action=ignore pip setuptools wheel
    for name in python python3; do ln -sf /usr/bin/python3.11 "/usr/local/bin/$name"; done
    test -x /usr/local/bin/pip && python -m pip --version
'
# What Debian's slim images leave out (docs but their copyright files, man pages, locales).
cd "$rootfs"
find usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete
find usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf usr/share/info/* usr/share/man/* usr/share/groff/* usr/share/lintian/* usr/share/locale/* \
    var/cache/man/* var/lib/apt/lists/* var/cache/apt/*.bin root/.cache
