// dktp-wasm's entry point: loads the SIMD128 build where the runtime validates SIMD128
// code (every current browser), the plain build elsewhere, and initialises it.
//
//   import { DktpClient } from "dktp-wasm";
//
// The module works on a page's main thread and in a Worker alike (it needs WebSocket,
// setTimeout and crypto.getRandomValues).

// A function returning a v128 (i8x16.splat then i8x16.popcnt): valid only with SIMD128.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253,
  15, 253, 98, 11,
]);

/** Whether the SIMD128 build was loaded. */
export const simd128 = WebAssembly.validate(SIMD_PROBE);

const m = await (simd128 ? import("./dktp_wasm.js") : import("./nosimd/dktp_wasm.js"));
await m.default();

export const { DktpClient, Session, sealBench } = m;
