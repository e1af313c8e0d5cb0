// The browser end-to-end test, run by node/tests/e2e/browser.rs in headless Chromium: the
// wasm client against a real `dktp serve --ws --echo`, and against servers that send
// garbage, close mid-handshake or stall. Every check is recorded; the report goes back to
// the test (POST /report) and onto the page (the screenshot).
import { DktpClient, sealBench, simd128 } from "/pkg/index.js";
import { idbGet, idbPut } from "/idb.js";

const report = { checks: [], errors: [], figures: {} };
const out = document.getElementById("out");

function check(name, ok, detail = "") {
  report.checks.push({ name, ok: !!ok, detail: String(detail) });
  const li = document.createElement("li");
  li.textContent = `${ok ? "PASS" : "FAIL"} ${name} ${detail}`;
  li.className = ok ? "pass" : "fail";
  out.appendChild(li);
}

// A panic or any uncaught error would land here: the test requires none.
window.addEventListener("error", (e) => report.errors.push(`error: ${e.message}`));
window.addEventListener("unhandledrejection", (e) => report.errors.push(`unhandled: ${e.reason}`));

async function bytesOf(url) {
  return new Uint8Array(await (await fetch(url)).arrayBuffer());
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))]);
}

async function client(local, remote, events, Client = DktpClient) {
  const c = new Client(local, remote, (await idbGet("record")) ?? undefined);
  c.persist = async (ev) => {
    events.push(`secrets:${ev.change}:${ev.generation}`);
    await idbPut("record", ev.record);
  };
  c.onevent = (ev) => events.push(ev.type === "ratchet" ? `ratchet:${ev.direction}` : ev.type);
  return c;
}

async function main() {
  report.figures.simd128 = simd128;
  const cfg = await (await fetch("/config.json")).json();
  const local = await bytesOf("/keys/cli.dskey");
  const remote = await bytesOf("/keys/srv.dpkey");

  // 1. The default configuration's handshake against the real server.
  const events = [];
  let c = await client(local, remote, events);
  let t0 = performance.now();
  await c.connect(cfg.ws);
  const handshakeMs = performance.now() - t0;
  report.figures.handshake_ms = handshakeMs;
  report.figures.longest_step_ms = c.longestStepMs;
  check("handshake", c.established, `${handshakeMs.toFixed(1)} ms, longest step ${c.longestStepMs.toFixed(1)} ms`);
  check("secrets persisted before use", events.indexOf("secrets:pending:1") >= 0 && events.indexOf("secrets:pending:1") < events.indexOf("established"), events.join(" "));

  // 2. 100 messages from 1 byte to 60 KiB echo intact.
  let intact = 0;
  for (let i = 0; i < 100; i++) {
    const len = Math.max(1, Math.round((60 * 1024 * i) / 99));
    const m = new Uint8Array(len);
    crypto.getRandomValues(m.subarray(0, Math.min(len, 65536)));
    c.send(m);
    const back = await withTimeout(c.recv(), 10000, `echo ${i}`);
    if (equal(m, back)) intact++;
  }
  check("100 messages, 1 B to 60 KiB, echo intact", intact === 100, `${intact}/100`);

  // 3. A ratchet from the client, then one from the server (it ratchets every 3 s).
  c.ratchet();
  const deadline = performance.now() + 15000;
  while (!(events.includes("ratchet:transmit") && events.includes("ratchet:receive")) && performance.now() < deadline) {
    const m = new TextEncoder().encode("after ratchet");
    c.send(m);
    await withTimeout(c.recv(), 10000, "echo during ratchets");
    await new Promise((r) => setTimeout(r, 200));
  }
  check("ratchet from the client", events.includes("ratchet:transmit"), "");
  check("ratchet from the server", events.includes("ratchet:receive"), "");
  const m = new TextEncoder().encode("after both ratchets");
  c.send(m);
  check("echo on the ratcheted keys", equal(await withTimeout(c.recv(), 10000, "echo"), m), "");

  // 4. A clean close, then a new session from the record in IndexedDB.
  await withTimeout(c.close(), 10000, "close");
  check("clean close", events.includes("closed") && !c.established, "");
  let refused = null;
  try { c.send(m); } catch (e) { refused = e; }
  check("send after close is a typed error", refused && refused.name === "DktpError" && refused.kind === "closed", refused && refused.kind);
  const before = await idbGet("record");
  const events2 = [];
  c = await client(local, remote, events2);
  await c.connect(cfg.ws);
  c.send(m);
  check("reconnect from the stored record", equal(await withTimeout(c.recv(), 10000, "echo"), m), events2.join(" "));
  check("the record advanced", !equal(before, await idbGet("record")), "");
  await c.close();

  // 5. Servers that misbehave: typed errors, never a panic.
  for (const [name, url, kind] of [["garbage", cfg.garbage, "protocol"], ["close mid-handshake", cfg.close, "transport"], ["stall", cfg.stall, "timeout"]]) {
    const bad = new DktpClient(local, remote, undefined);
    bad.handshakeTimeout = 2;
    const evs = [];
    bad.onevent = (ev) => evs.push(ev.type === "closed" && ev.error ? `closed:${ev.error.kind}` : ev.type);
    let err = null;
    try {
      await withTimeout(bad.connect(url), 20000, name);
    } catch (e) {
      err = e;
    }
    check(`server ${name}: typed error`, err && err.name === "DktpError" && err.kind === kind, err && `${err.name} ${err.kind} 0x${(err.code ?? 0).toString(16)}: ${err.message}`);
  }

  // 6. The client in a Worker (off the page's thread), from the same stored record.
  const worker = new Worker("/worker.js", { type: "module" });
  const fromWorker = new Promise((resolve) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => resolve({ ok: false, error: `worker error: ${e.message}` });
  });
  worker.postMessage({ ws: cfg.ws, local, remote });
  const w = await withTimeout(fromWorker, 30000, "worker");
  worker.terminate();
  check("a session in a Worker", w.ok, w.error ?? `handshake ${w.ms?.toFixed(1)} ms`);

  // 7. RCS-512 seal at 16 KiB, and a handshake, with and without SIMD128.
  const iters = 400;
  const seal = (bench) => {
    bench(16384, 20);
    return (16384 * iters) / bench(16384, iters) / 1000;
  };
  report.figures.seal_16k_mbps = seal(sealBench);
  const plain = await import("/pkg/nosimd/dktp_wasm.js");
  await plain.default();
  report.figures.seal_16k_mbps_nosimd = seal(plain.sealBench);
  // Another context's session of the pair may have started this second (the worker's):
  // a connect request of the same second would be refused as a replay.
  await new Promise((r) => setTimeout(r, 1100));
  const events3 = [];
  c = await client(local, remote, events3, plain.DktpClient);
  t0 = performance.now();
  await c.connect(cfg.ws);
  report.figures.handshake_ms_nosimd = performance.now() - t0;
  report.figures.longest_step_ms_nosimd = c.longestStepMs;
  await c.close();
  check("seal benchmark ran", report.figures.seal_16k_mbps > 0 && report.figures.seal_16k_mbps_nosimd > 0,
    `${report.figures.seal_16k_mbps.toFixed(1)} MB/s (SIMD128: ${simd128}), ${report.figures.seal_16k_mbps_nosimd.toFixed(1)} MB/s without`);
  check("no uncaught error or panic", report.errors.length === 0, report.errors.join("; "));
}

main()
  .catch((e) => {
    report.errors.push(`failed: ${e && e.name} ${e && e.kind} ${e && e.message}`);
    check("the test ran to its end", false, e && e.message);
  })
  .finally(() => {
    document.getElementById("status").textContent = "done";
    fetch("/report", { method: "POST", body: JSON.stringify(report) });
  });
