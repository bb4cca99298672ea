#!/usr/bin/env bash
# Installs the real Discord client library discord.py, by pinned version, into a virtualenv in a
# cache outside the clone, so a second run is fast. Prints the virtualenv's directory on stdout
# (run the client as "$dir/bin/python tests/interop/discord/dpy_client.py ..."); logs go to stderr.
#
#   TETHER_INTEROP_CACHE  where to install (default: ~/.cache/tether-interop)
#   PYTHON                the interpreter to build the virtualenv with (default: python3)
set -euo pipefail

DPY_VERSION=2.7.1
python="${PYTHON:-python3}"
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
cache="${TETHER_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether-interop}"
dir="$cache/discordpy-$DPY_VERSION-py$pyver"
stamp="$dir/.installed"

if [[ ! -f "$stamp" ]]; then
  echo "installing discord.py $DPY_VERSION for python $pyver into $dir" >&2
  rm -rf "$dir"
  mkdir -p "$cache"
  "$python" -m venv "$dir" >&2
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "discord.py==$DPY_VERSION" >&2
  "$dir/bin/python" -c 'import discord; assert discord.__version__ == "'"$DPY_VERSION"'", discord.__version__' >&2
  touch "$stamp"
fi
echo "$dir"
