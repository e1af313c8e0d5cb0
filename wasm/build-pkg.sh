#!/usr/bin/env bash
# Builds the npm-style package in wasm/pkg: the module built with wasm SIMD128 (faster
# Keccak and Rijndael) in pkg/, the same without it in pkg/nosimd/ (for a browser without
# SIMD128), the loader index.js that picks one, the .d.ts types and package.json. Needs
# the wasm32-unknown-unknown target and wasm-bindgen-cli at exactly the crate's
# wasm-bindgen version (CI installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(cargo pkgid wasm-bindgen | sed 's/.*@//')
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$want" ]; then
  echo "wasm-bindgen-cli $want is needed (have: ${have:-none}): cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
out=wasm/pkg
rm -rf "$out"
wasm="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/dktp_wasm.wasm"
# No debug info in the shipped module (the release profile keeps line tables for profiling).
export CARGO_PROFILE_RELEASE_DEBUG=0
RUSTFLAGS="-C target-feature=+simd128" cargo build --release -p dktp-wasm --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir "$out" "$wasm"
cargo build --release -p dktp-wasm --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir "$out/nosimd" "$wasm"
cp wasm/package.json wasm/js/index.js wasm/js/index.d.ts "$out/"
for f in "$out/dktp_wasm_bg.wasm" "$out/nosimd/dktp_wasm_bg.wasm"; do
  echo "built $f: $(wc -c < "$f") bytes, $(gzip -9 -c "$f" | wc -c) gzipped"
done
