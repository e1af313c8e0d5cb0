// The client in a Worker: the page's thread never runs a handshake step. The handler is
// set before the module loads (a message must not arrive before it).
onmessage = async (e) => {
  const { ws, local, remote } = e.data;
  try {
    const { DktpClient } = await import("/pkg/index.js");
    const { idbGet, idbPut } = await import("/idb.js");
    const c = new DktpClient(local, remote, (await idbGet("record")) ?? undefined);
    c.persist = (ev) => idbPut("record", ev.record);
    const t0 = performance.now();
    await c.connect(ws);
    const ms = performance.now() - t0;
    c.send(new TextEncoder().encode("from a worker"));
    const back = new TextDecoder().decode(await c.recv());
    await c.close();
    postMessage({ ok: back === "from a worker", ms });
  } catch (err) {
    postMessage({ ok: false, error: `${err.name} ${err.kind}: ${err.message}` });
  }
};
