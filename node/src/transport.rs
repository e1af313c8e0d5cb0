//! The byte streams a tunnel runs over: TCP, or a WebSocket carrying one DKTP packet per
//! binary frame. Each is split into a receiving half ([`Rx`]) and a sending half ([`Tx`])
//! so that one task can wait on both at once.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;

use futures_util::{SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// The largest WebSocket message accepted: a McEliece handshake packet (1.39 MB) with room
/// to spare. Without it tungstenite would buffer up to 64 MiB for a peer that asks.
pub const MAX_WS_MESSAGE: usize = 2 << 20;

/// How much one TCP read takes at most: a full data packet, less a little (each read gets
/// a buffer of its own; 64 KiB stays below the allocator's mmap threshold).
const READ_CHUNK: usize = 64 << 10;

/// What one read brought: bytes that own their buffer (a TCP read's own, or a WebSocket
/// frame), so they can move to the handshake pool and an idle tunnel holds no buffer.
pub type Chunk = tungstenite::Bytes;

/// The WebSocket settings for both ends.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE))
}

type WsRead = Pin<Box<dyn Stream<Item = Result<Message, tungstenite::Error>> + Send>>;

/// The receiving half.
pub enum Rx {
    /// TCP: whatever the socket delivers.
    Tcp(OwnedReadHalf),
    /// A WebSocket: one binary frame at a time.
    Ws(WsRead),
}

impl Rx {
    /// The next bytes, or `None` at the end of the stream. Cancel safe.
    pub async fn read(&mut self) -> io::Result<Option<Chunk>> {
        match self {
            Rx::Tcp(rd) => {
                let mut buf = Vec::with_capacity(READ_CHUNK);
                let n = rd.read_buf(&mut buf).await?;
                Ok((n > 0).then(|| Chunk::from(buf)))
            }
            Rx::Ws(rd) => loop {
                match rd.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a text frame on a DKTP WebSocket (packets travel in binary frames)",
                        ));
                    }
                    Some(Err(e)) => return Err(ws_io_error(e)),
                }
            },
        }
    }
}

/// The sending half.
pub enum Tx {
    /// TCP.
    Tcp(OwnedWriteHalf),
    /// A WebSocket: packets go to a task that owns the sink and writes one frame each.
    Ws {
        /// To the writer task; `None` once shut down.
        packets: Option<mpsc::Sender<Vec<u8>>>,
        /// The writer task.
        writer: Option<JoinHandle<()>>,
    },
}

impl Tx {
    /// Writes (part of) the packet at the front of `queue`. Cancel safe: what it wrote is
    /// taken off the queue, nothing else.
    pub async fn write_step(&mut self, queue: &mut OutQueue) -> io::Result<()> {
        match self {
            Tx::Tcp(wr) => {
                let mut slices = [io::IoSlice::new(&[]); 32];
                let k = queue.io_slices(&mut slices);
                if k == 0 {
                    return Ok(());
                }
                let n = wr.write_vectored(&slices[..k]).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                queue.advance(n);
                Ok(())
            }
            Tx::Ws { packets, .. } => {
                let Some(tx) = packets.as_ref() else {
                    return Err(io::ErrorKind::BrokenPipe.into());
                };
                let permit = tx
                    .reserve()
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
                if let Some(p) = queue.pop() {
                    permit.send(p);
                }
                Ok(())
            }
        }
    }

    /// Whether this is a byte stream (TCP), where packets may go out back to back in one
    /// write, rather than a WebSocket, where each packet is a frame of its own.
    pub fn is_stream(&self) -> bool {
        matches!(self, Tx::Tcp(_))
    }

    /// Ends the stream after what was written (TCP FIN, WebSocket close frame).
    pub async fn shutdown(&mut self) {
        match self {
            Tx::Tcp(wr) => {
                let _ = wr.shutdown().await;
            }
            Tx::Ws { packets, writer } => {
                packets.take();
                if let Some(w) = writer.take() {
                    let _ = w.await;
                }
            }
        }
    }
}

/// Splits a TCP stream, with `TCP_NODELAY` (packets are written whole and small ones must
/// not wait) and keepalives (a peer that vanished without a FIN is noticed in about two
/// minutes, not at the 12 h idle timeout; a pair may hold several sessions, so a new one
/// does not end the old).
pub fn tcp(stream: TcpStream) -> (Rx, Tx) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10));
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let (rd, wr) = stream.into_split();
    (Rx::Tcp(rd), Tx::Tcp(wr))
}

/// Splits a WebSocket; the sink moves to a writer task that batches what is queued into one
/// flush.
pub fn websocket<S>(ws: WebSocketStream<S>) -> (Rx, Tx)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        'outer: while let Some(p) = rx.recv().await {
            if sink.feed(Message::Binary(p.into())).await.is_err() {
                break;
            }
            while let Ok(p) = rx.try_recv() {
                if sink.feed(Message::Binary(p.into())).await.is_err() {
                    break 'outer;
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    (
        Rx::Ws(Box::pin(stream)),
        Tx::Ws {
            packets: Some(tx),
            writer: Some(writer),
        },
    )
}

fn ws_io_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// Byte strings waiting to be written, the front one possibly in part.
#[derive(Default)]
pub struct OutQueue {
    items: VecDeque<Vec<u8>>,
    offset: usize,
    bytes: usize,
}

impl OutQueue {
    /// Appends one item (a packet: written whole unless the socket takes it in parts).
    pub fn push(&mut self, item: Vec<u8>) {
        if !item.is_empty() {
            self.bytes += item.len();
            self.items.push_back(item);
        }
    }

    /// The unwritten rest of the front item.
    pub fn front(&self) -> Option<&[u8]> {
        self.items.front().map(|f| &f[self.offset..])
    }

    /// Puts items back at the front, in order (none may be partly written).
    pub fn push_front_all(&mut self, items: Vec<Vec<u8>>) {
        debug_assert_eq!(self.offset, 0);
        for item in items.into_iter().rev().filter(|i| !i.is_empty()) {
            self.bytes += item.len();
            self.items.push_front(item);
        }
    }

    /// The unwritten bytes of the first items, in order, as slices for one vectored write;
    /// returns how many of `out` it filled.
    pub fn io_slices<'a>(&'a self, out: &mut [io::IoSlice<'a>]) -> usize {
        let mut k = 0;
        for (i, item) in self.items.iter().enumerate() {
            let Some(slot) = out.get_mut(k) else { break };
            let rest = if i == 0 {
                &item[self.offset..]
            } else {
                &item[..]
            };
            *slot = io::IoSlice::new(rest);
            k += 1;
        }
        k
    }

    /// Marks `n` bytes written, from the front, across items.
    pub fn advance(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(front) = self.items.front() else {
                break;
            };
            let rest = front.len() - self.offset;
            if n < rest {
                self.offset += n;
                return;
            }
            n -= rest;
            self.items.pop_front();
            self.offset = 0;
        }
    }

    /// Takes the front item whole (it must not be partly written).
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        debug_assert_eq!(self.offset, 0);
        let p = self.items.pop_front()?;
        self.bytes -= p.len();
        Some(p)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
