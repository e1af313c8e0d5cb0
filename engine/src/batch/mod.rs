//! The batch engine: seal and open the data packets of many sessions at once (FACTS §2, §7).
//!
//! One RCS stream is bound by its sequential KMAC, but independent sessions are not bound by
//! each other: a [`Batch`] runs the KMAC permutations of different sessions side by side in
//! the lanes of one multi-lane Keccak ([`crate::keccak::lanes`]: x4 with AVX2, x8 with
//! AVX-512, chosen by the same backend selection and `DKTP_BACKEND` override as the scalar
//! path), the CTR keystream of each packet (all its blocks in flight) on the session's own
//! Rijndael backend, and large flushes on several cores (feature `parallel`, rayon), each
//! session on exactly one thread. Every output and every session state after a flush equal
//! those of the sequential path in submission order ([`DataSession::seal`] /
//! [`DataSession::open`]; `proptests/tests/batch.rs` checks it with random mixes of up to 300
//! sessions, failures included, on every backend).
//!
//! # Shape
//!
//! A server's event loop, in one turn, hands over what arrived on many connections and gets
//! back what to write to each socket:
//!
//! 1. [`Batch::add`] borrows a session (`&mut`) for the turn and returns its [`SessionId`];
//! 2. [`Batch::open`] takes a received packet (`&mut [u8]`, header included, as framed by
//!    [`packet::frame`](crate::packet::frame)); it is authenticated and decrypted **in place**;
//!    [`Batch::seal`] takes a message (`&[u8]`), which is copied once, into the batch's
//!    output buffer, and encrypted there;
//! 3. [`Batch::flush`] runs everything and returns [`Flushed`]: per job an [`Outcome`] (the
//!    sealed packet, the plaintext, or a typed error), and per session
//!    [`Flushed::output`], all its sealed packets back to back — one socket write.
//!
//! Jobs of one session run in submission order; jobs of different sessions in any order.
//! Nothing waits to fill lanes: a flush runs whatever was submitted at the widest lane width
//! that fits, and the last packets scalar. A failure touches only its session: a received
//! packet that fails a check ends that session and its later jobs fail too; other sessions
//! carry on. A packet that is not data (flag 0x04) — an asymmetric ratchet (0x0E/0x0F) or the
//! peer's encrypted close (0x12) — is handed back untouched as [`Outcome::Control`] and that
//! session's later jobs are [`Outcome::Deferred`]: the session's own code handles it (a
//! ratchet re-keys a channel), then the caller submits the rest again.
//!
//! # Sessions
//!
//! The batch works on [`DataSession`], the one data phase of the engine: a
//! [`Session`](crate::session::Session) (and so a [`Connection`](crate::connection::Connection))
//! lends its own with [`Session::data_mut`](crate::session::Session::data_mut), so a server
//! batches the sessions it already holds and gives the control packets to their
//! `open_in_place`. Nothing is registered anywhere: sessions and packet
//! buffers are borrowed for the turn, and the buffers are reusable ([`Scratch`]).
//!
//! # Example: one server turn over in-memory connections
//!
//! ```
//! use dktp::batch::{Batch, DataSession, Outcome, Scratch};
//! use dktp::rcs::Rcs512Channel;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = 1_767_225_600; // the caller's clock (Unix seconds)
//!
//! // A session pair per connection, keyed crosswise as a handshake would leave them.
//! let pair = |i: u8| -> Result<(DataSession, DataSession), dktp::rcs::RcsError> {
//!     let (k1, n1, k2, n2) = ([i; 64], [i; 32], [!i; 64], [!i; 32]);
//!     let server = DataSession::new(
//!         Rcs512Channel::new(&k1, &n1, &[])?,
//!         Rcs512Channel::new(&k2, &n2, &[])?,
//!         3,
//!         3,
//!     );
//!     let client = DataSession::new(
//!         Rcs512Channel::new(&k2, &n2, &[])?,
//!         Rcs512Channel::new(&k1, &n1, &[])?,
//!         3,
//!         3,
//!     );
//!     Ok((server, client))
//! };
//!
//! /// The server's side of a connection.
//! struct Conn {
//!     session: DataSession,
//!     inbox: Vec<Vec<u8>>,   // whole packets read from the socket
//!     outbox: Vec<Vec<u8>>,  // messages the application wants sent
//!     socket: Vec<u8>,       // bytes to write to the socket
//! }
//!
//! let mut conns = Vec::new();
//! let mut clients = Vec::new();
//! for i in 0..40u8 {
//!     let (session, mut client) = pair(i)?;
//!     // Each client sends two requests.
//!     let mut inbox = Vec::new();
//!     for r in 0..2u8 {
//!         let mut wire = Vec::new();
//!         client.seal(&[i, r, 0xab], now, &mut wire)?;
//!         inbox.push(wire);
//!     }
//!     let outbox = vec![b"hello".to_vec()];
//!     conns.push(Conn { session, inbox, outbox, socket: Vec::new() });
//!     clients.push(client);
//! }
//!
//! let mut scratch = Scratch::default();
//! for _turn in 0..2 {
//!     let mut batch = Batch::new().with_scratch(scratch);
//!     let mut opens = Vec::new();
//!     let mut sockets = Vec::new();
//!     for (c, conn) in conns.iter_mut().enumerate() {
//!         let Conn { session, inbox, outbox, socket } = conn;
//!         let s = batch.add(session);
//!         for p in inbox.iter_mut() {
//!             opens.push((c, batch.open(s, p)));
//!         }
//!         for m in outbox.iter() {
//!             batch.seal(s, m);
//!         }
//!         sockets.push((s, socket));
//!     }
//!     let done = batch.flush(now);
//!     // What to write to each socket: one contiguous run of packets per session.
//!     for (s, socket) in sockets {
//!         socket.extend_from_slice(done.output(s));
//!     }
//!     // What arrived: the application echoes each request on the next turn.
//!     let mut echoes = Vec::new();
//!     for (c, job) in opens {
//!         match done.outcome(job) {
//!             Outcome::Opened(plaintext) => echoes.push((c, plaintext.to_vec())),
//!             other => panic!("connection {c}: {other:?}"),
//!         }
//!     }
//!     scratch = done.into_scratch();
//!     for conn in conns.iter_mut() {
//!         conn.inbox.clear();
//!         conn.outbox.clear();
//!     }
//!     for (c, msg) in echoes {
//!         conns[c].outbox.push(msg);
//!     }
//! }
//!
//! // Each client reads what the server wrote: "hello", then its two echoes.
//! for (conn, client) in conns.iter_mut().zip(clients.iter_mut()) {
//!     let mut stream = &mut conn.socket[..];
//!     let mut got = Vec::new();
//!     while !stream.is_empty() {
//!         let dktp::packet::Frame::Complete { len, .. } =
//!             dktp::packet::frame(stream, dktp::packet::MAX_MESSAGE)?
//!         else {
//!             panic!("partial packet")
//!         };
//!         let (packet, rest) = stream.split_at_mut(len);
//!         match client.open(packet, now)? {
//!             dktp::batch::Received::Data(pt) => got.push(pt.to_vec()),
//!             dktp::batch::Received::Control(_) => panic!("control packet"),
//!         }
//!         stream = rest;
//!     }
//!     assert_eq!(got.len(), 3);
//!     assert_eq!(got[0], b"hello");
//!     assert_eq!(got[1][1..], [0, 0xab]);
//! }
//! # Ok(())
//! # }
//! ```

mod lanes;

use core::fmt;

use crate::error::{Error, Misuse};
use crate::keccak::lanes::LaneBackend;
use crate::packet::HEADER_LEN;
use lanes::{Lanes, Record, Stream, Task, TaskKind};

pub use crate::session::data::{
    BatchSession, DataSession, MAX_PAYLOAD, Received, Status, sealed_len,
};

/// Work (Keccak permutations) below which a flush stays on one thread: waking the pool costs
/// about what this many permutations do.
const MIN_WORK_PER_THREAD: u64 = 256;

/// A session borrowed by a [`Batch`] (an index into it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(usize);

impl SessionId {
    /// The position of the session in the order it was added.
    pub fn index(self) -> usize {
        self.0
    }
}

/// A job of a [`Batch`] (its position in submission order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(usize);

impl JobId {
    /// The position of the job in submission order.
    pub fn index(self) -> usize {
        self.0
    }
}

/// Buffers a batch reuses from one turn to the next ([`Batch::with_scratch`],
/// [`Flushed::into_scratch`]): the output buffer of sealed packets and the engine's
/// bookkeeping, so a steady server loop does not allocate. (Boxed, so handing it from turn
/// to turn moves a pointer.)
#[derive(Default)]
pub struct Scratch(Option<Box<Buffers>>);

#[derive(Default)]
struct Buffers {
    /// The sealed packets: each session's back to back, sessions in the order they were added.
    arena: Vec<u8>,
    /// By job: a seal's slot in the arena (start, size).
    seal_at: Vec<Option<(usize, usize)>>,
    /// By job: what it came to.
    records: Vec<Record>,
    /// By session: its run of sealed packets in the arena.
    output: Vec<(usize, usize)>,
    // Vectors whose elements borrow, kept empty between turns (see `recycle`).
    sessions: Vec<&'static mut ()>,
    jobs: Vec<Job<'static>>,
    packets: Vec<Option<&'static mut [u8]>>,
    tasks: Vec<Task<'static>>,
    streams: Vec<[usize; 4]>,
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scratch")
            .field(
                "capacity",
                &self.0.as_ref().map_or(0, |b| b.arena.capacity()),
            )
            .finish_non_exhaustive()
    }
}

/// `v` emptied and retyped. When the two element types have the same size and alignment the
/// standard library collects in place, so the allocation carries over (how a [`Scratch`]
/// keeps vectors of borrowing elements from one turn to the next without `unsafe`);
/// otherwise the result is a new, empty vector.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

enum Job<'a> {
    Seal {
        session: usize,
        payload: &'a [u8],
    },
    Open {
        session: usize,
        packet: &'a mut [u8],
    },
    /// Refused at submission: a session of another batch.
    Refused {
        error: Error,
    },
}

/// Seal and open jobs of many sessions, run together by [`flush`](Batch::flush).
///
/// The batch borrows every session and packet buffer for the turn (`'a`); see the
/// [module documentation](self) for the shape of a server turn.
pub struct Batch<'a, S: BatchSession = DataSession> {
    sessions: Vec<&'a mut S>,
    jobs: Vec<Job<'a>>,
    lanes: LaneBackend,
    /// `None`: 8 with AVX-512, else 4.
    width: Option<usize>,
    /// `None`: [`available_threads`], asked only when a flush could use more than one.
    threads: Option<usize>,
    scratch: Scratch,
}

impl<S: BatchSession> fmt::Debug for Batch<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("sessions", &self.sessions.len())
            .field("jobs", &self.jobs.len())
            .field("lanes", &self.lanes)
            .field("width", &self.width)
            .field("threads", &self.threads)
            .finish()
    }
}

impl<S: BatchSession> Default for Batch<'_, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, S: BatchSession> Batch<'a, S> {
    /// An empty batch on the lanes of the backend in force ([`LaneBackend::best`], which
    /// honours `DKTP_BACKEND`) and, with the `parallel` feature, every core of the rayon pool.
    pub fn new() -> Self {
        Batch {
            sessions: Vec::new(),
            jobs: Vec::new(),
            lanes: selected_lanes(),
            width: None,
            threads: None,
            scratch: Scratch::default(),
        }
    }

    /// Uses `lanes` for the Keccak permutations (an unavailable one falls back to the fastest
    /// available below it). The channels' own Rijndael backend does CTR.
    pub fn with_lanes(mut self, lanes: LaneBackend) -> Self {
        self.lanes = lanes;
        self
    }

    /// Lets at most `width` sessions share one permutation call: 1 (everything scalar), 4 or
    /// 8 (x8 runs as one AVX-512 kernel, or as two x4 kernels without AVX-512). Other values
    /// round down to one of these. The default is 8 with AVX-512 lanes and 4 otherwise (two
    /// x4 calls gain nothing over one).
    pub fn with_lane_width(mut self, width: usize) -> Self {
        self.width = Some(width);
        self
    }

    /// Uses at most `threads` threads (1 = the calling thread only). Without the `parallel`
    /// feature, or on wasm32, a flush always runs on the calling thread.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Reuses the buffers of an earlier batch (call it before adding sessions).
    pub fn with_scratch(mut self, mut scratch: Scratch) -> Self {
        if let Some(b) = scratch.0.as_mut()
            && self.sessions.is_empty()
            && self.jobs.is_empty()
        {
            self.sessions = recycle(core::mem::take(&mut b.sessions));
            self.jobs = recycle(core::mem::take(&mut b.jobs));
        }
        self.scratch = scratch;
        self
    }

    /// Borrows a session for this batch.
    pub fn add(&mut self, session: &'a mut S) -> SessionId {
        self.sessions.push(session);
        SessionId(self.sessions.len() - 1)
    }

    /// Sessions added so far.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Jobs submitted so far.
    pub fn jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Queues `payload` to be sealed on `session` (FACTS §7: `txseq += 1`, header
    /// `(0x04, len + 64, txseq, now)`). An empty or oversized payload, or a session of another
    /// batch, fails this job alone.
    pub fn seal(&mut self, session: SessionId, payload: &'a [u8]) -> JobId {
        self.submit(session, |session| Job::Seal { session, payload })
    }

    /// Queues a received packet (header included, exactly one packet) to be opened in place
    /// on `session`.
    pub fn open(&mut self, session: SessionId, packet: &'a mut [u8]) -> JobId {
        self.submit(session, |session| Job::Open { session, packet })
    }

    /// Queues the job `make` builds for the session's index; a session of another batch
    /// fails it at once.
    fn submit(&mut self, session: SessionId, make: impl FnOnce(usize) -> Job<'a>) -> JobId {
        self.jobs.push(if session.0 < self.sessions.len() {
            make(session.0)
        } else {
            Job::Refused {
                error: Misuse::NotEstablished.into(),
            }
        });
        JobId(self.jobs.len() - 1)
    }

    /// Runs every job: per session in submission order, sessions side by side in SIMD lanes
    /// and, for large batches, across threads (a batch of one session goes straight through
    /// the scalar calls: there is nothing to share lanes with). `now` (Unix seconds) stamps
    /// the sealed headers and checks the received ones.
    pub fn flush(self, now: u64) -> Flushed<'a, S> {
        let Batch {
            mut sessions,
            mut jobs,
            lanes,
            width,
            threads,
            scratch,
        } = self;
        let mut buffers = scratch.0.unwrap_or_default();
        let b = &mut *buffers;
        let mut tasks = recycle(core::mem::take(&mut b.tasks));
        plan(
            &mut jobs,
            sessions.len(),
            &mut b.arena,
            &mut b.seal_at,
            &mut tasks,
        );
        let setup = Setup {
            now,
            lanes,
            width,
            threads,
        };
        run(&mut sessions, &mut tasks, &mut b.streams, setup);
        let (records, output) = (&mut b.records, &mut b.output);
        collect(&mut tasks, &b.seal_at, records, output, sessions.len());
        b.tasks = recycle(tasks);
        finished(sessions, jobs, buffers)
    }
}

/// How a flush runs: the caller's clock, and the lanes and threads it may use.
#[derive(Clone, Copy)]
struct Setup {
    now: u64,
    lanes: LaneBackend,
    width: Option<usize>,
    threads: Option<usize>,
}

/// Planning: a task per job, grouped by session in the order the sessions were added (each
/// group in submission order; jobs refused at submission last, already failed), and each
/// seal's slot in the arena, in the same order, so that each session's sealed packets lie
/// back to back.
///
/// Only the layout is made here; the engine copies each message into its slot (the one copy)
/// and writes header and tag around it, on the thread that seals it. The arena keeps what
/// the last turn left in it (sealed packets, wiped slots): every slot is overwritten before
/// it is read. A message DKTP cannot carry gets an empty slot; its job fails in order, after
/// the session's own checks.
fn plan<'x>(
    jobs: &'x mut [Job<'_>],
    sessions: usize,
    arena: &'x mut Vec<u8>,
    seal_at: &mut Vec<Option<(usize, usize)>>,
    tasks: &mut Vec<Task<'x>>,
) {
    let mut total = 0usize;
    tasks.extend(jobs.iter_mut().enumerate().map(|(job, j)| {
        let (session, kind, record) = match j {
            Job::Seal { session, payload } => {
                total += slot_len(payload.len());
                let slot = Default::default();
                (*session, TaskKind::Seal { payload, slot }, Record::Pending)
            }
            Job::Open { session, packet } => (*session, TaskKind::Open { packet }, Record::Pending),
            Job::Refused { error } => (sessions, TaskKind::Settled, Record::Failed(error.clone())),
        };
        Task {
            job,
            session,
            kind,
            record,
        }
    }));
    // Keys are unique, so the order is exactly (session, submission).
    tasks.sort_unstable_by_key(|t| (t.session, t.job));
    arena.resize(total, 0);
    seal_at.clear();
    seal_at.resize(tasks.len(), None);
    let (mut rest, mut at) = (&mut arena[..], 0usize);
    for task in tasks.iter_mut() {
        if let TaskKind::Seal { payload, slot } = &mut task.kind {
            let size = slot_len(payload.len()).min(rest.len());
            (*slot, rest) = core::mem::take(&mut rest).split_at_mut(size);
            if let Some(s) = seal_at.get_mut(task.job) {
                *s = Some((at, size));
            }
            at += size;
        }
    }
}

/// Running: each session's tasks in order. One session runs on the calling thread through
/// the scalar calls, without the stream, lane and thread bookkeeping, so that a batch of one
/// costs what the scalar path costs; more share lanes and threads.
fn run<S: BatchSession>(
    sessions: &mut [&mut S],
    tasks: &mut [Task<'_>],
    spare: &mut Vec<[usize; 4]>,
    setup: Setup,
) {
    if let [one] = sessions {
        let mine = tasks.iter().take_while(|t| t.session == 0).count();
        lanes::run_whole(
            &mut **one,
            tasks.get_mut(..mine).unwrap_or_default(),
            setup.now,
        );
        return;
    }
    let mut streams: Vec<Stream<'_, '_, S>> = recycle(core::mem::take(spare));
    let mut owners = sessions.iter_mut().enumerate();
    for group in tasks.chunk_by_mut(|a, b| a.session == b.session) {
        let s = group.first().map_or(usize::MAX, |t| t.session);
        if let Some((_, session)) = owners.find(|(i, _)| *i == s) {
            let work = group.iter().map(Task::work).sum();
            streams.push(Stream {
                session: &mut **session,
                tasks: group,
                work,
            });
        }
    }
    // Heaviest first: the tail where lanes run empty is then made of light streams.
    streams.sort_by_key(|s| core::cmp::Reverse(s.work));
    run_streams(&mut streams, setup);
    *spare = recycle(streams);
}

/// Collecting: the records by job, the slots of the seals that did not happen wiped (the
/// message was copied there), and each session's output: its sealed packets up to the first
/// seal that failed with a slot (the session ended, ran out of sequence numbers or waits for
/// a control packet, so every later seal of it failed or was deferred too).
fn collect(
    tasks: &mut Vec<Task<'_>>,
    seal_at: &[Option<(usize, usize)>],
    records: &mut Vec<Record>,
    output: &mut Vec<(usize, usize)>,
    sessions: usize,
) {
    output.clear();
    output.resize(sessions, (0, 0));
    for group in tasks.chunk_by(|x, y| x.session == y.session) {
        let mut run = None::<(usize, usize)>;
        let slots = group
            .iter()
            .filter_map(|t| Some((&t.record, seal_at.get(t.job).copied().flatten()?)));
        for (record, (at, size)) in slots {
            let (_, end) = run.get_or_insert((at, at));
            match record {
                Record::Sealed => *end += size,
                _ if size > 0 => break,
                _ => {}
            }
        }
        if let (Some(run), Some(dst)) = (run, group.first().and_then(|t| output.get_mut(t.session)))
        {
            *dst = run;
        }
    }
    records.clear();
    records.resize_with(tasks.len(), || Record::Pending);
    for task in tasks.drain(..) {
        if let TaskKind::Seal { slot, .. } = task.kind
            && !matches!(task.record, Record::Sealed)
        {
            zeroize::Zeroize::zeroize(slot);
        }
        if let Some(r) = records.get_mut(task.job) {
            *r = task.record;
        }
    }
}

/// The end of [`Batch::flush`]: the received packets kept by job (their
/// plaintexts are read in place), the job vector emptied back into the box.
fn finished<'a, S: BatchSession>(
    sessions: Vec<&'a mut S>,
    mut jobs: Vec<Job<'a>>,
    mut buffers: Box<Buffers>,
) -> Flushed<'a, S> {
    let mut packets: Vec<Option<&'a mut [u8]>> = recycle(core::mem::take(&mut buffers.packets));
    packets.extend(jobs.drain(..).map(|j| match j {
        Job::Open { packet, .. } => Some(packet),
        _ => None,
    }));
    buffers.jobs = recycle(jobs);
    Flushed {
        sessions,
        packets,
        buffers,
    }
}

/// The arena slot of a seal job: the whole packet, or nothing for a message DKTP cannot
/// carry (its job fails in order, after the session's own checks).
fn slot_len(len: usize) -> usize {
    if check_len(len).is_ok() {
        sealed_len(len)
    } else {
        0
    }
}

/// A message length [`Batch::seal`] accepts.
fn check_len(len: usize) -> Result<(), Error> {
    if len == 0 {
        Err(Misuse::EmptyMessage.into())
    } else if len > MAX_PAYLOAD {
        Err(Misuse::MessageTooLong {
            len,
            max: MAX_PAYLOAD,
        }
        .into())
    } else {
        Ok(())
    }
}

/// Threads a [`Batch`] uses by default: the rayon pool's (every core, or `RAYON_NUM_THREADS`)
/// with the `parallel` feature, else 1.
pub fn available_threads() -> usize {
    default_threads()
}

#[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
fn default_threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
fn default_threads() -> usize {
    1
}

/// Runs the streams (heaviest first) on up to `threads` threads.
///
/// Large flushes are cut into chunks of whole sessions (consecutive in the heaviest-first
/// order, so a chunk's lanes hold similar packets), about four per thread; the threads take
/// chunks from a shared queue until none is left. A session belongs to exactly one chunk, so
/// no two threads ever touch it, and a thread the OS does not schedule only delays the chunk
/// it took, not a fixed share of the work.
fn run_streams<S: BatchSession>(streams: &mut [Stream<'_, '_, S>], setup: Setup) {
    let Setup {
        now,
        lanes,
        width,
        threads,
    } = setup;
    let threads = threads.unwrap_or_else(default_threads);
    let lanes = resolve(lanes);
    let width = width.unwrap_or(if lanes == LaneBackend::Avx512 { 8 } else { 4 });
    let lanes = Lanes {
        backend: lanes,
        width,
    };
    let work: u64 = streams.iter().map(|s| s.work).sum();
    let parallel = cfg!(all(feature = "parallel", not(target_arch = "wasm32")));
    if !parallel || threads <= 1 || streams.len() < 2 || work < 2 * MIN_WORK_PER_THREAD {
        lanes::run(streams, now, lanes);
        return;
    }
    let chunks_wanted = u64::try_from(threads.saturating_mul(4)).unwrap_or(u64::MAX);
    let target = (work / chunks_wanted).max(MIN_WORK_PER_THREAD / 2);
    let mut chunks: Vec<&mut [Stream<'_, '_, S>]> = Vec::new();
    let mut rest = streams;
    while !rest.is_empty() {
        let (mut n, mut w) = (0usize, 0u64);
        for s in rest.iter() {
            if w >= target && n >= lanes.width {
                break;
            }
            n += 1;
            w += s.work;
        }
        let (chunk, tail) = core::mem::take(&mut rest).split_at_mut(n);
        chunks.push(chunk);
        rest = tail;
    }
    par_run(chunks, now, lanes, threads);
}

#[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
fn par_run<S: BatchSession>(
    chunks: Vec<&mut [Stream<'_, '_, S>]>,
    now: u64,
    lanes: Lanes,
    threads: usize,
) {
    let helpers = threads.min(chunks.len()).saturating_sub(1);
    let queue = std::sync::Mutex::new(chunks.into_iter());
    let work = || {
        loop {
            // A poisoned queue (a thread panicked) still hands out the remaining chunks; the
            // panic itself reaches the caller through the scope.
            let next = queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .next();
            match next {
                Some(chunk) => lanes::run(chunk, now, lanes),
                None => break,
            }
        }
    };
    rayon::scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| work());
        }
        work();
    });
}

#[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
fn par_run<S: BatchSession>(
    chunks: Vec<&mut [Stream<'_, '_, S>]>,
    now: u64,
    lanes: Lanes,
    _threads: usize,
) {
    for chunk in chunks {
        lanes::run(chunk, now, lanes);
    }
}

/// What a job came to.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome<'f> {
    /// The whole packet to send: `header || ciphertext || tag`.
    Sealed(&'f [u8]),
    /// The plaintext of a received data packet (inside the packet's buffer).
    Opened(&'f [u8]),
    /// A control packet (not data, not a close), untouched: hand it to the session's own
    /// handling, then resubmit the session's deferred jobs.
    Control(&'f [u8]),
    /// Not run, because an earlier control packet of the same session comes first.
    Deferred,
    /// The job failed. If it was an open, the session has ended (its later jobs failed too).
    Failed(&'f Error),
}

/// The results of a [`Batch::flush`]; it keeps the batch's borrows, so plaintexts and sealed
/// packets are read in place.
pub struct Flushed<'a, S: BatchSession = DataSession> {
    sessions: Vec<&'a mut S>,
    packets: Vec<Option<&'a mut [u8]>>,
    /// Records, slots, outputs and the arena of sealed packets, and the empty vectors the
    /// next turn reuses.
    buffers: Box<Buffers>,
}

impl<S: BatchSession> fmt::Debug for Flushed<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flushed")
            .field("sessions", &self.sessions.len())
            .field("jobs", &self.buffers.records.len())
            .finish()
    }
}

impl<S: BatchSession> Flushed<'_, S> {
    /// What `job` came to (an id from another batch reads as [`Outcome::Deferred`]).
    pub fn outcome(&self, job: JobId) -> Outcome<'_> {
        let packet = || self.packets.get(job.0).and_then(|p| p.as_deref());
        let b = &*self.buffers;
        match b.records.get(job.0) {
            Some(Record::Sealed) => match b.seal_at.get(job.0) {
                Some(Some((at, size))) => {
                    Outcome::Sealed(b.arena.get(*at..*at + size).unwrap_or_default())
                }
                _ => Outcome::Deferred,
            },
            Some(Record::Opened { len }) => Outcome::Opened(
                packet()
                    .and_then(|p| p.get(HEADER_LEN..HEADER_LEN + len))
                    .unwrap_or_default(),
            ),
            Some(Record::Control) => Outcome::Control(packet().unwrap_or_default()),
            Some(Record::Failed(e)) => Outcome::Failed(e),
            Some(Record::Deferred | Record::Pending) | None => Outcome::Deferred,
        }
    }

    /// Every packet sealed for `session` in this flush, back to back in submission order:
    /// what to write to its socket.
    pub fn output(&self, session: SessionId) -> &[u8] {
        let b = &*self.buffers;
        b.output
            .get(session.0)
            .and_then(|&(start, end)| b.arena.get(start..end))
            .unwrap_or_default()
    }

    /// The session as the flush left it.
    pub fn session(&self, session: SessionId) -> Option<&S> {
        self.sessions.get(session.0).map(|s| &**s)
    }

    /// Number of jobs.
    pub fn jobs(&self) -> usize {
        self.buffers.records.len()
    }

    /// Gives the buffers back for the next batch (ends the borrows).
    pub fn into_scratch(self) -> Scratch {
        let Flushed {
            sessions,
            packets,
            mut buffers,
        } = self;
        buffers.sessions = recycle(sessions);
        buffers.packets = recycle(packets);
        Scratch(Some(buffers))
    }
}

/// `lanes` if available, else the fastest available lane backend below it.
fn resolve(lanes: LaneBackend) -> LaneBackend {
    // Asked every flush: the answers are looked up once.
    static AVAILABLE: std::sync::OnceLock<[bool; 3]> = std::sync::OnceLock::new();
    let available = AVAILABLE.get_or_init(|| LaneBackend::ALL.map(LaneBackend::is_available));
    LaneBackend::ALL
        .into_iter()
        .zip(available)
        .rev()
        .find(|(b, ok)| *b <= lanes && **ok)
        .map_or(LaneBackend::Portable, |(b, _)| b)
}

/// [`LaneBackend::best`], looked up once.
fn selected_lanes() -> LaneBackend {
    static SELECTED: std::sync::OnceLock<LaneBackend> = std::sync::OnceLock::new();
    *SELECTED.get_or_init(LaneBackend::best)
}

#[cfg(test)]
mod tests;
