// Cargo test runner for wasm32-wasip1 under node (v20+):
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node engine/tests/wasm/wasi-runner.mjs" \
//     cargo test --target wasm32-wasip1 ...
// Runs the test binary with the workspace preopened so tests can read vectors/data.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { argv, env, exit } from 'node:process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const [wasmPath, ...args] = argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [wasmPath, ...args],
  env,
  preopens: { [root]: root, '/': '/' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
