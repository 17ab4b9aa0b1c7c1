#!/usr/bin/env bash
# Install the pinned wrangler from npm into a cache folder, once; print the path of its binary.
# Used by .ci/run and by tests/test_wrangler_compat.py (which runs it when wrangler is missing).
#   WF_WRANGLER_VERSION  (default 4.86.0: the newest wrangler that runs on Node 20)
#   WF_WRANGLER_DIR      (default ~/.cache/wf/wrangler-<version>)
set -euo pipefail
version="${WF_WRANGLER_VERSION:-4.86.0}"
dir="${WF_WRANGLER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wf/wrangler-$version}"
bin="$dir/node_modules/.bin/wrangler"
installed() {
  [ -x "$bin" ] && [ "$(node -p "require('$dir/node_modules/wrangler/package.json').version" 2>/dev/null)" = "$version" ]
}
if ! installed; then
  command -v npm >/dev/null || { echo "npm is not installed: install Node.js >= 20.3 and npm" >&2; exit 1; }
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "wf-wrangler-cache", "private": true}' > "$dir/package.json"
  # --ignore-scripts: the platform binaries (workerd, esbuild) come as optional-dependency packages
  (cd "$dir" && WRANGLER_SEND_METRICS=false npm install --no-audit --no-fund --ignore-scripts \
      --loglevel=error "wrangler@$version" >&2)
  installed || { echo "npm did not install wrangler@$version into $dir" >&2; exit 1; }
fi
echo "$bin"
