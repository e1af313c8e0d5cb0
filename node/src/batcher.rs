//! The batched data path: one thread that seals and opens the data packets of many
//! tunnels at once through [`dktp::batch`] (KMACs of different sessions side by side in the
//! Keccak lanes, large turns across cores).
//!
//! A tunnel with data to move ([`crate::tunnel::Driver`]) lends its connection to the
//! batcher with what it received (whole packets, unopened) and what it wants sent, and gets
//! it back with the results. Whatever the tunnels hand in while a turn runs waits in the
//! queue and makes the next turn: under load turns grow by themselves, and nothing ever
//! waits to fill one. In [`Mode::Auto`] a tunnel that finds no other tunnel doing crypto
//! does its own turn in place, so a lone stream pays no hand-over.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dktp::batch::{Batch, JobId, Outcome, Scratch};
use dktp::connection::Connection;
use dktp::packet::HEADER_LEN;
use tokio::sync::oneshot;

use crate::util::now;

/// When tunnels use the batcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Batch when other tunnels have crypto to do at the same time (the default).
    Auto,
    /// Every turn goes through the batcher.
    Always,
    /// Every tunnel seals and opens its own packets (the scalar path).
    Off,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Always => "always",
            Mode::Off => "off",
        })
    }
}

/// A tunnel's turn: its connection, lent, with what to open and what to seal.
pub struct Turn {
    /// The connection (an ended placeholder stands in the tunnel meanwhile).
    pub conn: Box<Connection>,
    /// Whole packets as framed by `Connection::handle_bytes_batched`, opened in place.
    pub opens: Vec<Vec<u8>>,
    /// Messages to seal, each at most one packet's payload.
    pub seals: Vec<Vec<u8>>,
}

/// What came of a received packet.
#[derive(Debug)]
pub enum Opened {
    /// A message: this range of the packet's buffer.
    Message(Range<usize>),
    /// Not opened here (a control packet, or anything after it): hand it to the connection.
    Scalar,
    /// The packet failed a check: the session is over (give the error to
    /// `Connection::fail`); nothing after it was run.
    Failed(dktp::Error),
}

/// What came of a message to seal.
#[derive(Debug)]
pub enum Sealed {
    /// This range of [`Done::output`].
    Packet(Range<usize>),
    /// Not run (a control packet of the session came first, or the session is not open):
    /// the message is still to be sent.
    Deferred,
    /// Refused (a message DKTP cannot carry); the session goes on.
    Failed(dktp::Error),
}

/// A finished turn.
pub struct Done {
    /// The connection, back.
    pub conn: Box<Connection>,
    /// The received packets (opened in place) and what came of each.
    pub opens: Vec<(Vec<u8>, Opened)>,
    /// The messages and what came of each.
    pub seals: Vec<(Vec<u8>, Sealed)>,
    /// The sealed packets, back to back, in order: one write.
    pub output: Vec<u8>,
}

struct Request {
    turn: Turn,
    reply: oneshot::Sender<Done>,
}

/// Hands turns to the batcher thread. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    mode: Mode,
    queue: Option<std::sync::mpsc::Sender<Request>>,
    /// Tunnels doing crypto right now (in place or queued).
    busy: Arc<AtomicUsize>,
    stats: Arc<Stats>,
}

/// Turns run, for the metrics.
#[derive(Default, Debug)]
pub struct Stats {
    /// Turns the batcher thread ran (each one batch flush).
    pub flushes: std::sync::atomic::AtomicU64,
    /// Tunnels' turns that went through it.
    pub turns: std::sync::atomic::AtomicU64,
    /// Tunnels' turns done in place.
    pub in_place: std::sync::atomic::AtomicU64,
}

/// The most tunnels' turns one flush takes (the rest make the next).
const MAX_TURNS_PER_FLUSH: usize = 1024;

impl Batcher {
    /// A batcher in `mode` (its thread starts unless the mode is [`Mode::Off`]).
    pub fn new(mode: Mode) -> std::io::Result<Batcher> {
        if mode == Mode::Off {
            return Ok(Batcher::off());
        }
        let stats = Arc::new(Stats::default());
        let queue = {
            let (tx, rx) = std::sync::mpsc::channel::<Request>();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("dktp-batcher".into())
                .spawn(move || run(&rx, &stats))?;
            Some(tx)
        };
        Ok(Batcher {
            mode,
            queue,
            busy: Arc::new(AtomicUsize::new(0)),
            stats,
        })
    }

    /// No batching: every tunnel seals and opens its own packets (no thread).
    pub fn off() -> Batcher {
        Batcher {
            mode: Mode::Off,
            queue: None,
            busy: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(Stats::default()),
        }
    }

    /// The counters, shared (for the metrics).
    pub fn shared_stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs a turn: in place when the mode or the moment says so, else on the batcher
    /// thread with whatever other tunnels handed in.
    pub async fn run(&self, turn: Turn) -> Done {
        let others = self.busy.fetch_add(1, Ordering::AcqRel);
        let _busy = Busy(&self.busy);
        let in_place = match self.mode {
            Mode::Off => true,
            Mode::Auto => others == 0,
            Mode::Always => false,
        };
        if let (false, Some(queue)) = (in_place, &self.queue) {
            let (reply, done) = oneshot::channel();
            if let Err(std::sync::mpsc::SendError(r)) = queue.send(Request { turn, reply }) {
                return flush(vec![r.turn], &mut Scratch::default()).remove(0);
            }
            self.stats.turns.fetch_add(1, Ordering::Relaxed);
            // The thread answers every request it takes; if it died, the connection is lost
            // and an ended placeholder comes back (the tunnel then ends).
            return done.await.unwrap_or_else(|_| Done {
                conn: Box::default(),
                opens: Vec::new(),
                seals: Vec::new(),
                output: Vec::new(),
            });
        }
        self.stats.in_place.fetch_add(1, Ordering::Relaxed);
        flush(vec![turn], &mut Scratch::default()).remove(0)
    }
}

struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn run(queue: &std::sync::mpsc::Receiver<Request>, stats: &Stats) {
    let mut scratch = Scratch::default();
    while let Ok(first) = queue.recv() {
        let mut requests = vec![first];
        while requests.len() < MAX_TURNS_PER_FLUSH {
            match queue.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        let (turns, replies): (Vec<Turn>, Vec<oneshot::Sender<Done>>) =
            requests.into_iter().map(|r| (r.turn, r.reply)).unzip();
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        for (done, reply) in flush(turns, &mut scratch).into_iter().zip(replies) {
            // A tunnel that went away meanwhile drops its connection with the reply.
            let _ = reply.send(done);
        }
    }
}

/// Runs the turns as one batch: each session's opens, then its seals.
fn flush(mut turns: Vec<Turn>, scratch: &mut Scratch) -> Vec<Done> {
    let now = now();
    // Per turn: its open and seal jobs, or (not open) how many it brought of each.
    type Jobs = Result<(Vec<JobId>, Vec<JobId>), (usize, usize)>;
    let mut ids: Vec<Jobs> = Vec::with_capacity(turns.len());
    let mut results: Vec<(Vec<Opened>, Vec<Sealed>, Vec<u8>)> = Vec::with_capacity(turns.len());
    {
        let mut batch = Batch::new().with_scratch(std::mem::take(scratch));
        for turn in turns.iter_mut() {
            let Turn { conn, opens, seals } = turn;
            let Some(session) = conn.batch_session(now) else {
                ids.push(Err((opens.len(), seals.len())));
                continue;
            };
            let s = batch.add(session);
            let o = opens.iter_mut().map(|p| batch.open(s, p)).collect();
            let m = seals.iter().map(|m| batch.seal(s, m)).collect();
            ids.push(Ok((o, m)));
        }
        let done = batch.flush(now);
        for turn_ids in &ids {
            let (o, m) = match turn_ids {
                Ok(ids) => ids,
                Err((opens, seals)) => {
                    // Not open: the connection says what to do with each.
                    results.push((
                        (0..*opens).map(|_| Opened::Scalar).collect(),
                        (0..*seals).map(|_| Sealed::Deferred).collect(),
                        Vec::new(),
                    ));
                    continue;
                }
            };
            let mut opened = Vec::with_capacity(o.len());
            let mut failed = false;
            for &id in o {
                opened.push(match done.outcome(id) {
                    _ if failed => Opened::Scalar,
                    // The plaintext is decrypted in place, behind the header.
                    Outcome::Opened(m) => Opened::Message(HEADER_LEN..HEADER_LEN + m.len()),
                    Outcome::Failed(e) => {
                        failed = true;
                        Opened::Failed(e.clone())
                    }
                    _ => Opened::Scalar,
                });
            }
            let mut output = Vec::new();
            let mut sealed = Vec::with_capacity(m.len());
            for &id in m {
                sealed.push(match done.outcome(id) {
                    _ if failed => Sealed::Deferred,
                    Outcome::Sealed(p) => {
                        output.extend_from_slice(p);
                        Sealed::Packet(output.len() - p.len()..output.len())
                    }
                    Outcome::Failed(e) => Sealed::Failed(e.clone()),
                    _ => Sealed::Deferred,
                });
            }
            results.push((opened, sealed, output));
        }
        *scratch = done.into_scratch();
    }
    turns
        .into_iter()
        .zip(results)
        .map(|(turn, (opened, sealed, output))| Done {
            conn: turn.conn,
            opens: turn.opens.into_iter().zip(opened).collect(),
            seals: turn.seals.into_iter().zip(sealed).collect(),
            output,
        })
        .collect()
}
