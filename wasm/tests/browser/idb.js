// The records of the secrets, in IndexedDB: what a page keeps between visits.
function db() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open("dktp-test", 1);
    r.onupgradeneeded = () => r.result.createObjectStore("records");
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
export async function idbPut(key, value) {
  const d = await db();
  await new Promise((resolve, reject) => {
    const t = d.transaction("records", "readwrite");
    t.objectStore("records").put(value, key);
    t.oncomplete = resolve;
    t.onerror = () => reject(t.error);
  });
}
export async function idbGet(key) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const r = d.transaction("records").objectStore("records").get(key);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

