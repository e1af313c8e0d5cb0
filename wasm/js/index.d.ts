export { DktpClient, Session, sealBench, DktpError, DktpEvent } from "./dktp_wasm.js";
/** Whether the SIMD128 build was loaded. */
export const simd128: boolean;
