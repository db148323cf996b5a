#!/usr/bin/env bash
# Tests the boids example's live page in a real headless browser (issue 18): builds and starts
# `boids --serve` on a free loopback port, then runs boids_page.mjs with playwright-core (installed
# into a temporary folder) driving Debian's chromium. Not part of `cargo test` or CI; needs
#   apt-get update && apt-get install -y chromium nodejs npm
# Screenshots go to $SHOTS (default target/boids-page).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null || { echo "no chromium: apt-get install -y chromium" >&2; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "no node/npm: apt-get install -y nodejs npm" >&2; exit 2; }
cargo build --release --example boids
shots=${SHOTS:-target/boids-page}
mkdir -p "$shots"
modules=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$modules"' EXIT
npm install --silent --no-audit --no-fund --prefix "$modules" playwright-core@1 >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/examples/boids --serve "127.0.0.1:$port" &
server=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/state" >/dev/null && break
  sleep 0.1
done
cp tests/browser/boids_page.mjs "$modules/"
node "$modules/boids_page.mjs" "http://127.0.0.1:$port" "$shots"
