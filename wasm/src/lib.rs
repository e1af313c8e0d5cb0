//! DKTP in the browser and on edge runtimes.
//!
//! - [`DktpClient`]: a client over a WebSocket (one DKTP packet per binary frame, as
//!   `dktp serve --ws` speaks it): `await client.connect(url)`, `client.send(bytes)`,
//!   `await client.recv()`, `client.ratchet()`, `await client.close()`; typed errors
//!   (`DktpError` with `kind` and `code`) and events.
//! - [`Session`]: the same client without I/O, for runtimes that have no WebSocket: feed it
//!   the server's bytes, take its outputs (packets to send, records to store, messages) in
//!   order.
//!
//! **The secrets.** Every handshake and ratchet advances the pair's pre-shared secrets.
//! The client hands each new record to the page's `persist(event)` callback *before* the
//! packet that commits to it leaves, and waits for the promise the callback returns (an
//! IndexedDB transaction, say): a tab closed at any moment leaves a stored record the next
//! session starts from (`new DktpClient(localKey, remoteKey, record)`), and the engine tries
//! the pending generation and then the confirmed one, so the pair never desynchronises.
//!
//! The build is pure Rust (no C, no threads): the portable, constant-time RCS, randomness
//! from `crypto.getRandomValues` (getrandom's `wasm_js`).

mod core;

pub use dktp;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};
use zeroize::Zeroizing;

pub use crate::core::{Core, Failure, Out};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Why a session failed or a call was refused. */
export interface DktpError extends Error {
  name: "DktpError";
  /** keys | record | protocol | peer | timeout | overloaded | transport | store | closed | misuse */
  kind: string;
  /** The DKTP error code sent or received (0 where none applies). */
  code: number;
}
/** What a session hands out, in order; a "secrets" record must be stored before the next "transmit" leaves. */
export type DktpEvent =
  | { type: "transmit"; bytes: Uint8Array }
  | { type: "established"; config: string; generation: number }
  | { type: "secrets"; change: "pending" | "confirmed" | "discarded"; record: Uint8Array; generation: number }
  | { type: "message"; data: Uint8Array }
  | { type: "ratchet"; direction: "transmit" | "receive" }
  | { type: "closed"; code: number; byPeer: boolean; error?: DktpError };
"#;

fn now() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
}

fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

/// A `DktpError`.
fn error_value(f: &Failure) -> JsValue {
    let e = js_sys::Error::new(&f.message);
    e.set_name("DktpError");
    set(&e, "kind", f.kind);
    set(&e, "code", f.code);
    e.into()
}

/// An output as the page sees it ([`DktpEvent`]).
fn event_value(out: &Out, error: Option<&Failure>) -> JsValue {
    let o = Object::new();
    match out {
        Out::Transmit(p) => {
            set(&o, "type", "transmit");
            set(&o, "bytes", bytes(p));
        }
        Out::Established { config, generation } => {
            set(&o, "type", "established");
            set(&o, "config", config.as_str());
            set(&o, "generation", *generation as f64);
        }
        Out::Secrets {
            change,
            record,
            generation,
        } => {
            set(&o, "type", "secrets");
            set(&o, "change", *change);
            set(&o, "record", bytes(record));
            set(&o, "generation", *generation as f64);
        }
        Out::Message(m) => {
            set(&o, "type", "message");
            set(&o, "data", bytes(m));
        }
        Out::Ratchet(d) => {
            set(&o, "type", "ratchet");
            set(&o, "direction", *d);
        }
        Out::Closed { code, by_peer } => {
            set(&o, "type", "closed");
            set(&o, "code", *code);
            set(&o, "byPeer", *by_peer);
            if let Some(f) = error {
                set(&o, "error", error_value(f));
            }
        }
    }
    o.into()
}

/// A client session without I/O: `feed` it what the server sent, `poll` its outputs in
/// order (send each `transmit`'s bytes, store each `secrets` record before sending the
/// next packet), call `handleTimeout` at `nextTimeout`.
#[wasm_bindgen]
pub struct Session {
    core: Core,
}

#[wasm_bindgen]
impl Session {
    /// A session for the pair in the key files' bytes (`.dskey`, `.dpkey`), from a stored
    /// `record` (none for a pair that never connected); `handshakeTimeout` in seconds.
    #[wasm_bindgen(constructor)]
    pub fn new(
        local_key: &[u8],
        remote_key: &[u8],
        record: Option<Vec<u8>>,
        handshake_timeout: Option<u32>,
    ) -> Result<Session, JsValue> {
        let record = record.map(Zeroizing::new);
        Core::connect(
            local_key,
            remote_key,
            record.as_deref().map(|r| &r[..]),
            handshake_timeout.map(u64::from),
            now(),
        )
        .map(|core| Session { core })
        .map_err(|f| error_value(&f))
    }

    /// Bytes from the server, in any chunking.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), JsValue> {
        self.core.feed(data, now()).map_err(|f| error_value(&f))
    }

    /// The transport ended.
    #[wasm_bindgen(js_name = endOfStream)]
    pub fn end_of_stream(&mut self) -> Result<(), JsValue> {
        self.core.end_of_stream(now()).map_err(|f| error_value(&f))
    }

    /// Seals a message.
    pub fn send(&mut self, data: &[u8]) -> Result<(), JsValue> {
        self.core.send(data, now()).map_err(|f| error_value(&f))
    }

    /// Starts an asymmetric ratchet.
    pub fn ratchet(&mut self) -> Result<(), JsValue> {
        self.core.ratchet(now()).map_err(|f| error_value(&f))
    }

    /// Closes in order.
    pub fn close(&mut self) -> Result<(), JsValue> {
        self.core.close(now()).map_err(|f| error_value(&f))
    }

    /// The next output (a `DktpEvent`), or `undefined`.
    pub fn poll(&mut self) -> JsValue {
        match self.core.poll() {
            Some(out) => event_value(&out, self.core.failure()),
            None => JsValue::UNDEFINED,
        }
    }

    /// When to call `handleTimeout` (milliseconds since the epoch), if ever.
    #[wasm_bindgen(js_name = nextTimeout)]
    pub fn next_timeout(&self) -> Option<f64> {
        self.core.deadline().map(|s| s as f64 * 1000.0)
    }

    /// The deadline passed.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self) -> Result<(), JsValue> {
        self.core.timeout(now()).map_err(|f| error_value(&f))
    }

    /// Whether the handshake completed.
    #[wasm_bindgen(getter)]
    pub fn established(&self) -> bool {
        self.core.is_established()
    }

    /// Whether the session ended.
    #[wasm_bindgen(getter)]
    pub fn closed(&self) -> bool {
        self.core.is_closed()
    }
}

/// What reaches a client's driver.
enum Input {
    Open,
    Bytes(Vec<u8>),
    Text,
    Closed,
    Send(Vec<u8>),
    Ratchet,
    Close,
}

#[derive(Default)]
struct State {
    inputs: Option<UnboundedSender<Input>>,
    messages: VecDeque<Vec<u8>>,
    recv_waiters: VecDeque<(Function, Function)>,
    connect_waiter: Option<(Function, Function)>,
    close_waiters: Vec<Function>,
    ended: Option<Failure>,
    established: bool,
    on_event: Option<Function>,
    persist: Option<Function>,
    longest_step_ms: f64,
    handshake_timeout: Option<u64>,
}

struct Inner {
    local_key: Zeroizing<Vec<u8>>,
    remote_key: Vec<u8>,
    record: RefCell<Option<Zeroizing<Vec<u8>>>>,
    state: RefCell<State>,
}

impl Inner {
    fn emit(&self, ev: &JsValue) {
        let f = self.state.borrow().on_event.clone();
        if let Some(f) = f {
            let _ = f.call1(&JsValue::NULL, ev);
        }
    }

    fn step(&self, started: f64) {
        let ms = now_ms() - started;
        let mut s = self.state.borrow_mut();
        if ms > s.longest_step_ms {
            s.longest_step_ms = ms;
        }
    }

    /// The session ended: every waiter learns how.
    fn finish(&self, failure: Failure) {
        let (connect, recvs, closes) = {
            let mut s = self.state.borrow_mut();
            s.inputs = None;
            s.ended = Some(failure.clone());
            (
                s.connect_waiter.take(),
                std::mem::take(&mut s.recv_waiters),
                std::mem::take(&mut s.close_waiters),
            )
        };
        let e = error_value(&failure);
        if let Some((_, reject)) = connect {
            let _ = reject.call1(&JsValue::NULL, &e);
        }
        for (_, reject) in recvs {
            let _ = reject.call1(&JsValue::NULL, &e);
        }
        for resolve in closes {
            let _ = resolve.call0(&JsValue::NULL);
        }
    }
}

/// A DKTP client over a WebSocket.
///
/// ```js
/// const client = new DktpClient(localKeyBytes, remoteKeyBytes, storedRecord);
/// client.persist = async (ev) => { await idbPut("record", ev.record); };
/// client.onevent = (ev) => console.log(ev.type);
/// await client.connect("ws://gw.example.net:31119/");
/// client.send(new TextEncoder().encode("hello"));
/// const reply = await client.recv();
/// await client.close();
/// ```
#[wasm_bindgen]
pub struct DktpClient {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl DktpClient {
    /// A client for the pair in the key files' bytes (`.dskey`, `.dpkey`), from a stored
    /// `record` (none for a pair that never connected).
    #[wasm_bindgen(constructor)]
    pub fn new(local_key: &[u8], remote_key: &[u8], record: Option<Vec<u8>>) -> DktpClient {
        DktpClient {
            inner: Rc::new(Inner {
                local_key: Zeroizing::new(local_key.to_vec()),
                remote_key: remote_key.to_vec(),
                record: RefCell::new(record.map(Zeroizing::new)),
                state: RefCell::new(State::default()),
            }),
        }
    }

    /// Called with every event (a `DktpEvent` other than `transmit`).
    #[wasm_bindgen(setter)]
    pub fn set_onevent(&self, f: Option<Function>) {
        self.inner.state.borrow_mut().on_event = f;
    }

    /// Called with each `secrets` event before the packet that commits to it is sent; a
    /// returned promise is awaited (a rejected one ends the session, sending nothing more).
    #[wasm_bindgen(setter)]
    pub fn set_persist(&self, f: Option<Function>) {
        self.inner.state.borrow_mut().persist = f;
    }

    /// The handshake deadline in seconds (default 30; 120 with SPHINCS+ or McEliece).
    #[wasm_bindgen(setter, js_name = handshakeTimeout)]
    pub fn set_handshake_timeout(&self, seconds: u32) {
        self.inner.state.borrow_mut().handshake_timeout = Some(u64::from(seconds));
    }

    /// The newest record of the secrets (what to pass to the next client).
    #[wasm_bindgen(getter)]
    pub fn record(&self) -> Option<Vec<u8>> {
        self.inner.record.borrow().as_ref().map(|r| r.to_vec())
    }

    /// The longest the client kept the thread busy in one go, in milliseconds (signing,
    /// key encapsulation).
    #[wasm_bindgen(getter, js_name = longestStepMs)]
    pub fn longest_step_ms(&self) -> f64 {
        self.inner.state.borrow().longest_step_ms
    }

    /// Whether the handshake completed and the session is open.
    #[wasm_bindgen(getter)]
    pub fn established(&self) -> bool {
        let s = self.inner.state.borrow();
        s.established && s.ended.is_none()
    }

    /// Opens `url` and runs the handshake; resolves once established, rejects with a
    /// `DktpError`.
    pub fn connect(&self, url: &str) -> Promise {
        let inner = self.inner.clone();
        let url = url.to_string();
        Promise::new(&mut |resolve, reject| {
            if let Err(f) = start(&inner, &url, resolve, reject.clone()) {
                let _ = reject.call1(&JsValue::NULL, &error_value(&f));
            }
        })
    }

    /// Sends a message (at most 65,472 bytes); throws a `DktpError` if the session is not
    /// open.
    pub fn send(&self, data: &[u8]) -> Result<(), JsValue> {
        self.command(Input::Send(data.to_vec()))
    }

    /// Starts an asymmetric ratchet (a `ratchet` event says when it completed).
    pub fn ratchet(&self) -> Result<(), JsValue> {
        self.command(Input::Ratchet)
    }

    /// The next message; rejects with a `DktpError` once the session has ended.
    pub fn recv(&self) -> Promise {
        let inner = self.inner.clone();
        Promise::new(&mut |resolve, reject| {
            let mut s = inner.state.borrow_mut();
            if let Some(m) = s.messages.pop_front() {
                let _ = resolve.call1(&JsValue::NULL, &bytes(&m));
            } else if let Some(f) = &s.ended {
                let _ = reject.call1(&JsValue::NULL, &error_value(f));
            } else {
                s.recv_waiters.push_back((resolve, reject));
            }
        })
    }

    /// Closes in order (0x1B); resolves once closed.
    pub fn close(&self) -> Promise {
        let inner = self.inner.clone();
        Promise::new(&mut |resolve, _reject| {
            let mut s = inner.state.borrow_mut();
            match &s.inputs {
                Some(tx) if s.ended.is_none() => {
                    let _ = tx.unbounded_send(Input::Close);
                    s.close_waiters.push(resolve);
                }
                _ => {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
        })
    }

    fn command(&self, input: Input) -> Result<(), JsValue> {
        let s = self.inner.state.borrow();
        if let Some(f) = &s.ended {
            return Err(error_value(&Failure::new(
                "closed",
                format!("the session has ended: {}", f.message),
            )));
        }
        match (&s.inputs, s.established) {
            (Some(tx), true) => {
                let _ = tx.unbounded_send(input);
                Ok(())
            }
            _ => Err(error_value(&Failure::new("misuse", "not connected"))),
        }
    }
}

/// The WebSocket's callbacks, kept for as long as the driver runs.
struct Callbacks {
    ws: WebSocket,
    _open: Closure<dyn FnMut(JsValue)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Callbacks {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

thread_local! {
    /// The second of each pair's last connect request in this JavaScript context.
    static LAST_CONNECT: RefCell<std::collections::HashMap<Vec<u8>, u64>> =
        RefCell::default();
}

fn start(inner: &Rc<Inner>, url: &str, resolve: Function, reject: Function) -> Result<(), Failure> {
    {
        let s = inner.state.borrow();
        if s.inputs.is_some() && s.ended.is_none() {
            return Err(Failure::new("misuse", "already connected"));
        }
    }
    let (tx, rx) = unbounded::<Input>();
    {
        let mut s = inner.state.borrow_mut();
        s.inputs = Some(tx.clone());
        s.connect_waiter = Some((resolve, reject));
        s.ended = None;
        s.established = false;
    }
    let (inner, url) = (inner.clone(), url.to_string());
    wasm_bindgen_futures::spawn_local(async move {
        // A connect request is signed over its time in seconds, and the server refuses a
        // second one of the same pair in the same second as a replay: wait for the next.
        let pair = dktp::peer_key::LocalPeerKey::from_bytes(&inner.local_key)
            .map(|k| k.keyid().to_vec())
            .unwrap_or_default();
        let last = LAST_CONNECT.with(|l| l.borrow().get(&pair).copied());
        if last.is_some_and(|t| t >= now()) {
            let ms = 1000.0 - now_ms() % 1000.0;
            gloo_timers::future::TimeoutFuture::new(ms as u32 + 1).await;
        }
        LAST_CONNECT.with(|l| l.borrow_mut().insert(pair, now()));
        match open(&inner, &url, tx) {
            Ok((core, callbacks)) => drive(inner, core, rx, callbacks).await,
            Err(f) => inner.finish(f),
        }
    });
    Ok(())
}

/// The engine connection (its connect request signed) and the WebSocket.
fn open(
    inner: &Rc<Inner>,
    url: &str,
    tx: UnboundedSender<Input>,
) -> Result<(Core, Callbacks), Failure> {
    let started = now_ms();
    let record = inner.record.borrow().clone();
    let timeout = inner.state.borrow().handshake_timeout;
    let core = Core::connect(
        &inner.local_key,
        &inner.remote_key,
        record.as_deref().map(|r| &r[..]),
        timeout,
        now(),
    )?;
    inner.step(started);
    let ws = WebSocket::new(url)
        .map_err(|e| Failure::new("transport", format!("opening {url}: {e:?}")))?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let t = tx.clone();
    let open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        let _ = t.unbounded_send(Input::Open);
    });
    let t = tx.clone();
    let message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let input = match e.data().dyn_into::<js_sys::ArrayBuffer>() {
            Ok(buf) => Input::Bytes(Uint8Array::new(&buf).to_vec()),
            Err(_) => Input::Text,
        };
        let _ = t.unbounded_send(input);
    });
    let close = Closure::<dyn FnMut(CloseEvent)>::new(move |_| {
        let _ = tx.unbounded_send(Input::Closed);
    });
    ws.set_onopen(Some(open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(close.as_ref().unchecked_ref()));
    Ok((
        core,
        Callbacks {
            ws,
            _open: open,
            _message: message,
            _close: close,
        },
    ))
}

/// Runs one connection: the engine's outputs in order (a record is persisted before the
/// next packet leaves), then the next input or the deadline.
async fn drive(inner: Rc<Inner>, mut core: Core, mut rx: UnboundedReceiver<Input>, cb: Callbacks) {
    let ws = cb.ws.clone();
    let mut open = false;
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        while let Some(out) = core.poll() {
            match &out {
                Out::Transmit(p) => {
                    if !open {
                        held.push(p.clone());
                    } else if ws.send_with_u8_array(p).is_err() {
                        let f = Failure::new("transport", "the WebSocket refused a frame");
                        inner.finish(f);
                        return;
                    }
                    continue;
                }
                Out::Secrets { record, .. } => {
                    *inner.record.borrow_mut() = Some(record.clone());
                    let ev = event_value(&out, None);
                    let persist = inner.state.borrow().persist.clone();
                    if let Some(f) = persist {
                        let stored = match f.call1(&JsValue::NULL, &ev) {
                            Ok(v) => match v.dyn_into::<Promise>() {
                                Ok(p) => JsFuture::from(p).await.map(|_| ()),
                                Err(_) => Ok(()),
                            },
                            Err(e) => Err(e),
                        };
                        if let Err(e) = stored {
                            // Nothing that commits to the new secrets may leave now.
                            inner.finish(Failure::new(
                                "store",
                                format!("persist failed, the session is dropped: {e:?}"),
                            ));
                            return;
                        }
                    }
                    inner.emit(&ev);
                }
                Out::Established { .. } => {
                    let waiter = {
                        let mut s = inner.state.borrow_mut();
                        s.established = true;
                        s.connect_waiter.take()
                    };
                    if let Some((resolve, _)) = waiter {
                        let _ = resolve.call0(&JsValue::NULL);
                    }
                    inner.emit(&event_value(&out, None));
                }
                Out::Message(m) => {
                    let waiter = {
                        let mut s = inner.state.borrow_mut();
                        let w = s.recv_waiters.pop_front();
                        if w.is_none() {
                            s.messages.push_back(m.clone());
                        }
                        w
                    };
                    if let Some((resolve, _)) = waiter {
                        let _ = resolve.call1(&JsValue::NULL, &bytes(m));
                    }
                    inner.emit(&event_value(&out, None));
                }
                Out::Ratchet(_) => inner.emit(&event_value(&out, None)),
                Out::Closed { code, by_peer } => {
                    let failure = if *code == 0x1b {
                        Failure {
                            kind: "closed",
                            code: *code,
                            message: if *by_peer {
                                "closed by the server".into()
                            } else {
                                "closed".into()
                            },
                        }
                    } else {
                        core.failure().cloned().unwrap_or(Failure {
                            kind: "peer",
                            code: *code,
                            message: format!("the server reported error 0x{code:02x}"),
                        })
                    };
                    let error = (*code != 0x1b).then_some(&failure);
                    inner.emit(&event_value(&out, error));
                    inner.finish(failure);
                    return;
                }
            }
        }
        let next = match core.deadline() {
            Some(at) => {
                let ms = (at as f64 * 1000.0 - now_ms()).clamp(0.0, 86_400_000.0) as u32;
                match select(rx.next(), gloo_timers::future::TimeoutFuture::new(ms)).await {
                    Either::Left((input, _)) => input,
                    Either::Right(_) => {
                        let started = now_ms();
                        let _ = core.timeout(now());
                        inner.step(started);
                        continue;
                    }
                }
            }
            None => rx.next().await,
        };
        let Some(input) = next else {
            return;
        };
        let started = now_ms();
        let _ = match input {
            Input::Open => {
                open = true;
                for p in held.drain(..) {
                    let _ = ws.send_with_u8_array(&p);
                }
                Ok(())
            }
            Input::Bytes(b) => core.feed(&b, now()),
            Input::Text => {
                inner.finish(Failure::new(
                    "transport",
                    "the server sent a text frame (DKTP packets travel in binary frames)",
                ));
                return;
            }
            Input::Closed => {
                let r = core.end_of_stream(now());
                if !core.is_closed() {
                    let f = core.failure().cloned();
                    inner.finish(
                        f.unwrap_or_else(|| Failure::new("transport", "the WebSocket closed")),
                    );
                    return;
                }
                r
            }
            Input::Send(m) => {
                let r = core.send(&m, now());
                if let Err(f) = &r
                    && !core.is_closed()
                {
                    // Refused without ending the session (too long, say): tell the page.
                    let o = Object::new();
                    set(&o, "type", "error");
                    set(&o, "error", error_value(f));
                    inner.emit(&o.into());
                }
                r
            }
            Input::Ratchet => core.ratchet(now()),
            Input::Close => core.close(now()),
        };
        inner.step(started);
    }
}

/// Seals `iterations` messages of `size` bytes on an RCS-512 channel (the code every data
/// packet runs); returns the milliseconds it took, for a page's speed figure.
#[wasm_bindgen(js_name = sealBench)]
pub fn seal_bench(size: usize, iterations: u32) -> Result<f64, JsValue> {
    let mut ch = dktp::rcs::Rcs512Channel::new(&[0x42; 64], &[0x24; 32], &[])
        .map_err(|e| error_value(&Failure::new("misuse", format!("{e:?}"))))?;
    let mut buf = vec![0x5au8; size];
    let mut tag = [0u8; 64];
    let header = [4u8; 21];
    let started = now_ms();
    for _ in 0..iterations {
        let _ = ch.seal_in_place(&header, &mut buf, &mut tag);
    }
    Ok(now_ms() - started)
}
