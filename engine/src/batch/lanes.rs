//! The lane scheduler: the RCS-512 packets of many sessions with their KMAC permutations
//! side by side in the lanes of one multi-lane Keccak.
//!
//! A *stream* is one session's jobs in submission order. Each lane of an `Engine<W>` works
//! through one stream at a time; the KMAC state of the channel it is on (tx for seals, rx
//! for opens) lives in the lane's column of a word-major `[[u64; W]; 25]` array, so the
//! x4/x8 kernels load and store it without gathering, and message words are XORed straight
//! into it. A packet's MAC is a fixed program of *steps* (XOR a 72-byte block, permute):
//!
//! ```text
//! M = header(21) || le32(21) || nonce-before(32) || ciphertext(n) || le64(32 + counter + 8)
//! steps 0..F      the F = |M| / 72 full blocks of M
//! step F          only if the tail t = |M| mod 72 has t + 3 >= 72: the tail alone (quirk)
//! last step       the KMAC final block (tail, right_encode(512), 0x04, 0x80)
//! ```
//!
//! then the tag is the first 64 bytes of the state, which also carries on to the next packet
//! (the squeeze's permutation is the last step's). Steps whose block lies wholly inside the
//! ciphertext ("plain" steps, all but two or three per packet) run in a tight loop for as
//! long as every busy lane has one. Everything around the MAC — header checks, the counter,
//! CTR (before the MAC when sealing; after the tag matched when opening), the tag — is the
//! channel's own, through its split calls ([`RcsChannel`](crate::rcs::RcsChannel)'s
//! `prepare_seal`/`finish_seal`, `prepare_open`/`finish_open`) when a lane takes up or
//! finishes a job; the lanes hold only its KMAC state (`mac_state`) while the packet's
//! permutations run.
//!
//! Width policy: x8 while at least five lanes are busy (AVX-512), x4 while at least two are,
//! then the last packet in flight is finished on its own and the rest of its stream runs
//! through the scalar calls (one lane of x4 costs more than a scalar permutation).

use zeroize::Zeroize;

use crate::error::{Error, Misuse};
use crate::keccak::lanes::{self, LaneBackend};
use crate::keccak::{CSHAKE_DOMAIN, LANES, bit_len, f1600, right_encode};
use crate::packet::{HEADER_LEN, TAG_LEN};
use crate::rcs::{MAC_TAIL_LEN, Rcs512, Rcs512Channel, Variant, mac_head_len};
use crate::session::data::{self, BatchSession, PacketFrame, check_open};

/// The rate of RCS-512's KMAC.
const RATE: usize = <Rcs512 as Variant>::RATE;
/// What the MAC absorbs before the ciphertext: header, `le32(21)`, the nonce before the packet.
const HEAD_LEN: usize = mac_head_len(HEADER_LEN);
/// What it absorbs after: `le64(32 + counter + 8)`.
const TAIL_LEN: usize = MAC_TAIL_LEN;

/// What became of one job; the batch turns it into an [`Outcome`](super::Outcome).
#[derive(Debug)]
pub(super) enum Record {
    /// Not run yet.
    Pending,
    /// The slot holds the whole packet.
    Sealed,
    /// The plaintext is `packet[HEADER_LEN..HEADER_LEN + len]`.
    Opened { len: usize },
    /// A control packet, untouched.
    Control,
    /// Not run: an earlier control packet of the session comes first.
    Deferred,
    /// The job failed.
    Failed(Error),
}

/// One job, with the buffers it works in.
pub(super) struct Task<'x> {
    /// Its index in submission order.
    pub(super) job: usize,
    /// Its session's index (one past the last session for a job refused at submission).
    pub(super) session: usize,
    pub(super) kind: TaskKind<'x>,
    pub(super) record: Record,
}

/// A job's buffers.
pub(super) enum TaskKind<'x> {
    /// The message, and the slot of exactly `sealed_len(payload.len())` bytes the packet is
    /// built in (the message is copied there when the job is taken up, on the thread that
    /// seals it, so the copy is warm in cache for CTR and the MAC).
    Seal {
        payload: &'x [u8],
        slot: &'x mut [u8],
    },
    /// A received packet, opened in place.
    Open { packet: &'x mut [u8] },
    /// Settled when it was submitted.
    Settled,
}

impl Task<'_> {
    /// Permutations this job costs, for balancing.
    pub(super) fn work(&self) -> u64 {
        let n = match &self.kind {
            TaskKind::Seal { payload, .. } => payload.len(),
            TaskKind::Open { packet } => packet.len(),
            TaskKind::Settled => return 0,
        };
        ((HEAD_LEN + n + TAIL_LEN) / RATE + 2) as u64
    }

    /// The ciphertext the MAC reads (valid while the job is in flight).
    fn body(&self, n: usize) -> &[u8] {
        let buf: &[u8] = match &self.kind {
            TaskKind::Seal { slot, .. } => slot,
            TaskKind::Open { packet } => packet,
            TaskKind::Settled => &[],
        };
        buf.get(HEADER_LEN..HEADER_LEN + n).unwrap_or_default()
    }
}

/// One session's jobs, in submission order.
pub(super) struct Stream<'t, 'x, S> {
    pub(super) session: &'t mut S,
    pub(super) tasks: &'t mut [Task<'x>],
    pub(super) work: u64,
}

/// Which channel of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Tx,
    Rx,
}

fn channel<S: BatchSession>(session: &mut S, dir: Dir) -> &mut Rcs512Channel {
    match dir {
        Dir::Tx => session.tx_channel_mut(),
        Dir::Rx => session.rx_channel_mut(),
    }
}

/// Whether the split path can take up a job on `dir`'s channel (its MAC state can go to a
/// lane: see [`Rcs512Channel::mac_state`]).
fn splittable<S: BatchSession>(session: &mut S, dir: Dir) -> bool {
    channel(session, dir).mac_state().is_some()
}

/// The MAC program of one packet in flight.
#[derive(Clone)]
struct PacketMac {
    /// What the MAC absorbs before and after the ciphertext.
    frame: PacketFrame,
    /// Ciphertext length.
    n: usize,
    /// The next step.
    step: usize,
    /// Full blocks of M.
    full: usize,
    /// All steps: `full + 1`, plus one with the quirk.
    steps: usize,
    /// Steps `1..=plain_last` read their block straight from the ciphertext.
    plain_last: usize,
    /// Opening (else sealing).
    open: bool,
}

impl PacketMac {
    fn new(frame: PacketFrame, n: usize, open: bool) -> Self {
        let total = HEAD_LEN + n + TAIL_LEN;
        let full = total / RATE;
        let quirk = total % RATE + tag_bits().as_slice().len() >= RATE;
        PacketMac {
            frame,
            n,
            step: 0,
            full,
            steps: full + 1 + usize::from(quirk),
            // Block k >= 1 is ciphertext[72k - 57 .. 72k + 15].
            plain_last: n.saturating_sub(RATE - HEAD_LEN) / RATE,
            open,
        }
    }

    /// Plain steps left from the current one.
    fn plain_left(&self) -> usize {
        if self.step >= 1 && self.step <= self.plain_last {
            self.plain_last + 1 - self.step
        } else {
            0
        }
    }

    /// Copies `M[a..b]` to the front of `out`.
    fn gather(&self, body: &[u8], a: usize, b: usize, out: &mut [u8; RATE]) {
        let parts: [(usize, &[u8]); 3] = [
            (0, &self.frame.head),
            (HEAD_LEN, body),
            (HEAD_LEN + self.n, &self.frame.tail),
        ];
        for (start, part) in parts {
            let lo = a.max(start);
            let hi = b.min(start + part.len());
            if lo < hi
                && let (Some(dst), Some(src)) = (
                    out.get_mut(lo - a..hi - a),
                    part.get(lo - start..hi - start),
                )
            {
                dst.copy_from_slice(src);
            }
        }
    }

    /// The block of the current step, as the scalar KMAC would XOR it (its finalize quirk
    /// included: see `Kmac::finalize_into`).
    fn block(&self, body: &[u8], out: &mut [u8; RATE]) {
        out.fill(0);
        let total = HEAD_LEN + self.n + TAIL_LEN;
        let at = self.step * RATE;
        if self.step < self.full {
            self.gather(body, at, at + RATE, out);
            return;
        }
        let tail_start = self.full * RATE;
        self.gather(body, tail_start, total, out);
        if self.step + 1 < self.steps {
            // The quirk's extra step: the tail on its own.
            return;
        }
        let quirk = self.steps > self.full + 1;
        // With the quirk, the final block is built over the stale tail.
        let e_at = if quirk { 0 } else { total - tail_start };
        let e = tag_bits();
        let e = e.as_slice();
        if let Some(dst) = out.get_mut(e_at..e_at + e.len()) {
            dst.copy_from_slice(e);
        }
        if let Some(b) = out.get_mut(e_at + e.len()) {
            *b = CSHAKE_DOMAIN;
        }
        if let Some(b) = out.last_mut() {
            *b |= 0x80;
        }
    }
}

/// `right_encode(8 · 64)`: the KMAC output length of a 64-byte tag (SP 800-185 §2.3.1).
fn tag_bits() -> crate::keccak::Encoded {
    right_encode(bit_len(TAG_LEN))
}

/// Word-major states of `W` sponges and their joint permutation.
trait Columns<const W: usize>: Sized {
    fn zeroed() -> Self;
    fn permute(&mut self, lb: LaneBackend);
}

impl Columns<1> for [[u64; 1]; LANES] {
    fn zeroed() -> Self {
        [[0; 1]; LANES]
    }
    fn permute(&mut self, _: LaneBackend) {
        let mut s = self.map(|[w]| w);
        f1600(&mut s);
        *self = s.map(|w| [w]);
        s.zeroize();
    }
}

impl Columns<4> for [[u64; 4]; LANES] {
    fn zeroed() -> Self {
        [[0; 4]; LANES]
    }
    fn permute(&mut self, lb: LaneBackend) {
        lanes::permute_x4_words(lb, self);
    }
}

impl Columns<8> for [[u64; 8]; LANES] {
    fn zeroed() -> Self {
        [[0; 8]; LANES]
    }
    fn permute(&mut self, lb: LaneBackend) {
        lanes::permute_x8_words(lb, self);
    }
}

/// XORs a 72-byte block into column `i`.
#[inline(always)]
fn xor_block<const W: usize>(words: &mut [[u64; W]; LANES], i: usize, block: &[u8]) {
    let (chunks, _) = block.as_chunks::<8>();
    for (w, c) in words.iter_mut().zip(chunks).take(RATE / 8) {
        if let Some(x) = w.get_mut(i) {
            *x ^= u64::from_le_bytes(*c);
        }
    }
}

/// A lane's place in its stream.
struct Lane {
    stream: usize,
    /// The next task to take up.
    next: usize,
    /// The task in flight.
    cur: usize,
    /// Whose MAC state the lane's column holds.
    loaded: Option<Dir>,
    /// The packet in flight.
    mac: Option<PacketMac>,
}

/// A lane handed from a wider engine to a narrower one, with its column.
struct Carried {
    lane: Lane,
    state: [u64; LANES],
}

impl Drop for Carried {
    fn drop(&mut self) {
        self.state.zeroize();
    }
}

/// Which lanes a flush runs on.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lanes {
    /// The (available) kernel family.
    pub(super) backend: LaneBackend,
    /// The most sessions per permutation call: 1, 4 or 8.
    pub(super) width: usize,
}

/// The streams of one thread and the time stamp of this flush.
pub(super) struct Ctx<'s, 't, 'x, S> {
    streams: &'s mut [Stream<'t, 'x, S>],
    next_stream: usize,
    now: u64,
    lb: LaneBackend,
}

/// Runs every job of `streams` (one thread's share; streams already in the order they
/// should be taken up, heaviest first).
pub(super) fn run<S: BatchSession>(streams: &mut [Stream<'_, '_, S>], now: u64, lanes: Lanes) {
    let count = streams.len();
    let mut ctx = Ctx {
        streams,
        next_stream: 0,
        now,
        lb: lanes.backend,
    };
    let mut carry = Vec::new();
    if lanes.width >= 8 && count >= 5 {
        carry = Engine::<8>::run(&mut ctx, carry, 5);
    }
    if lanes.width >= 4 && count >= 2 {
        carry = Engine::<4>::run(&mut ctx, carry, 2);
    }
    if carry.is_empty() {
        // No packet in flight: what is left runs through the scalar calls, stream by stream,
        // without a lane engine to set up and wipe (a batch of one costs what the
        // sequential path does, plus the flush's bookkeeping).
        let rest = ctx.streams.get_mut(ctx.next_stream..).unwrap_or_default();
        for stream in rest {
            run_whole(stream.session, stream.tasks, now);
        }
        return;
    }
    Engine::<1>::run(&mut ctx, carry, 1);
}

/// One session's tasks in order through the scalar calls (what the one-lane engine does
/// with each job, and all a flush of one session does); a control packet defers the
/// session's later jobs.
pub(super) fn run_whole<S: BatchSession>(session: &mut S, tasks: &mut [Task<'_>], now: u64) {
    let mut tasks = tasks.iter_mut();
    while let Some(task) = tasks.next() {
        if let Prep::Stop = whole(session, task, now) {
            defer(tasks.into_slice());
            return;
        }
    }
}

/// The jobs after a control packet wait for the session's own handling of it.
fn defer(tasks: &mut [Task<'_>]) {
    for t in tasks {
        if matches!(t.record, Record::Pending) {
            t.record = Record::Deferred;
        }
    }
}

/// `W` lanes.
struct Engine<const W: usize> {
    words: Aligned<[[u64; W]; LANES]>,
    lanes: [Option<Lane>; W],
    /// Scratch for the blocks of generic steps (wiped when the engine stops).
    block: [u8; RATE],
}

/// Cache-line alignment for the word-major states: the kernels load and store them as whole
/// vectors, and a vector split across two lines does not forward from store to load (that
/// cost a quarter of the throughput when the stack happened to place them badly).
#[repr(C, align(64))]
struct Aligned<T>(T);

impl<T> core::ops::Deref for Aligned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> core::ops::DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// What taking up a job led to.
enum Prep {
    /// Settled without MAC steps (an error found by the checks, or run whole).
    Done,
    /// A control packet: the session's later jobs wait.
    Stop,
    /// In flight on this channel (its MAC program is in the lane's slot).
    Mac(Dir),
    /// The channel's MAC is not at a block boundary (never after keying or a packet); run
    /// the job through the scalar calls.
    Whole,
}

impl<const W: usize> Engine<W>
where
    [[u64; W]; LANES]: Columns<W>,
{
    /// Runs lanes until fewer than `min_busy` have a packet in flight (then hands those
    /// over) or everything is done.
    fn run<S: BatchSession>(
        ctx: &mut Ctx<'_, '_, '_, S>,
        carry: Vec<Carried>,
        min_busy: usize,
    ) -> Vec<Carried> {
        let mut e = Engine::<W> {
            words: Aligned(<[[u64; W]; LANES] as Columns<W>>::zeroed()),
            lanes: core::array::from_fn(|_| None),
            block: [0; RATE],
        };
        for (i, mut c) in carry.into_iter().enumerate().take(W) {
            for (w, x) in e.words.iter_mut().zip(c.state) {
                if let Some(y) = w.get_mut(i) {
                    *y = x;
                }
            }
            if let Some(slot) = e.lanes.get_mut(i) {
                // Move the lane out; `c` only wipes its state copy on drop.
                *slot = Some(core::mem::replace(
                    &mut c.lane,
                    Lane {
                        stream: 0,
                        next: 0,
                        cur: 0,
                        loaded: None,
                        mac: None,
                    },
                ));
            }
        }
        let out = loop {
            for i in 0..W {
                if e.lanes
                    .get(i)
                    .is_some_and(|l| l.as_ref().is_some_and(|l| l.mac.is_some()))
                {
                    continue;
                }
                e.feed(i, ctx);
            }
            let busy = e.lanes.iter().flatten().filter(|l| l.mac.is_some()).count();
            if busy == 0 {
                break Vec::new();
            }
            if busy < min_busy {
                break e.hand_over();
            }
            e.step(ctx);
        };
        e.words.0.zeroize();
        e.block.zeroize();
        out
    }

    /// The lanes with a packet in flight, with their columns.
    fn hand_over(&mut self) -> Vec<Carried> {
        let mut out = Vec::new();
        for (i, slot) in self.lanes.iter_mut().enumerate() {
            if let Some(lane) = slot.take() {
                let mut state = [0u64; LANES];
                for (x, w) in state.iter_mut().zip(self.words.iter()) {
                    *x = w.get(i).copied().unwrap_or_default();
                }
                out.push(Carried { lane, state });
            }
        }
        out
    }

    /// Column `i` to or from the MAC state of `dir`'s channel.
    fn sync<S: BatchSession>(
        words: &mut [[u64; W]; LANES],
        i: usize,
        session: &mut S,
        dir: Dir,
        load: bool,
    ) {
        let Some(state) = channel(session, dir).mac_state() else {
            return;
        };
        for (x, w) in state.iter_mut().zip(words.iter_mut()) {
            if let Some(y) = w.get_mut(i) {
                if load {
                    *y = *x;
                } else {
                    *x = *y;
                }
            }
        }
    }

    /// Writes lane `i`'s column back to its channel, if it holds one.
    fn unload<S: BatchSession>(
        words: &mut [[u64; W]; LANES],
        i: usize,
        lane: &mut Lane,
        session: &mut S,
    ) {
        if let Some(dir) = lane.loaded.take() {
            Self::sync(words, i, session, dir, false);
        }
    }

    /// Takes up jobs on lane `i` (continuing its stream, then fresh streams) until one is in
    /// flight or no work is left.
    fn feed<S: BatchSession>(&mut self, i: usize, ctx: &mut Ctx<'_, '_, '_, S>) {
        let Engine { words, lanes, .. } = self;
        let words = &mut words.0;
        let Some(slot) = lanes.get_mut(i) else {
            return;
        };
        loop {
            let Some(lane) = slot else {
                if ctx.next_stream >= ctx.streams.len() {
                    return;
                }
                *slot = Some(Lane {
                    stream: ctx.next_stream,
                    next: 0,
                    cur: 0,
                    loaded: None,
                    mac: None,
                });
                ctx.next_stream += 1;
                continue;
            };
            let Some(stream) = ctx.streams.get_mut(lane.stream) else {
                *slot = None;
                continue;
            };
            let session = &mut *stream.session;
            let cur = lane.next;
            let Some(task) = stream.tasks.get_mut(cur) else {
                Self::unload(words, i, lane, session);
                *slot = None;
                continue;
            };
            lane.next += 1;
            let mut prep = if W == 1 {
                Prep::Whole
            } else {
                // The packet's MAC program is built in the lane's slot.
                prepare(session, task, ctx.now, &mut lane.mac)
            };
            if let Prep::Whole = prep {
                Self::unload(words, i, lane, session);
                prep = whole(session, task, ctx.now);
            }
            match prep {
                Prep::Done | Prep::Whole => {}
                Prep::Stop => {
                    defer(stream.tasks.get_mut(cur + 1..).unwrap_or_default());
                    lane.next = stream.tasks.len();
                }
                Prep::Mac(dir) => {
                    if lane.loaded != Some(dir) {
                        Self::unload(words, i, lane, session);
                        Self::sync(words, i, session, dir, true);
                        lane.loaded = Some(dir);
                    }
                    lane.cur = cur;
                    return;
                }
            }
        }
    }

    /// One round of permutations: a run of plain steps when every busy lane has some, else
    /// one step of any kind; then finishes the packets whose last step this was.
    fn step<S: BatchSession>(&mut self, ctx: &mut Ctx<'_, '_, '_, S>) {
        let Engine {
            words,
            lanes,
            block,
        } = self;
        let words = &mut words.0;
        let plain = lanes
            .iter()
            .flatten()
            .filter_map(|l| l.mac.as_ref())
            .map(PacketMac::plain_left)
            .min()
            .unwrap_or(0);
        let streams: &[Stream<'_, '_, S>] = ctx.streams;
        let body = |l: &Lane| {
            let n = l.mac.as_ref().map_or(0, |m| m.n);
            streams
                .get(l.stream)
                .and_then(|s| s.tasks.get(l.cur))
                .map_or(&[][..], |t| t.body(n))
        };
        if plain > 0 {
            let mut src: [&[u8]; W] = [&[]; W];
            for (s, lane) in src.iter_mut().zip(lanes.iter()) {
                if let Some(l) = lane
                    && let Some(m) = &l.mac
                {
                    let from = (m.step * RATE).saturating_sub(HEAD_LEN);
                    *s = body(l).get(from..from + plain * RATE).unwrap_or_default();
                }
            }
            for k in 0..plain {
                for (i, s) in src.iter().enumerate() {
                    if let Some(block) = s.get(k * RATE..(k + 1) * RATE) {
                        xor_block(words, i, block);
                    }
                }
                words.permute(ctx.lb);
            }
            for m in lanes.iter_mut().flatten().filter_map(|l| l.mac.as_mut()) {
                m.step += plain;
            }
            return;
        }
        for (i, lane) in lanes.iter().enumerate() {
            if let Some(l) = lane
                && let Some(m) = &l.mac
            {
                m.block(body(l), block);
                xor_block(words, i, block);
            }
        }
        words.permute(ctx.lb);
        for (i, lane) in lanes.iter_mut().enumerate() {
            let Some(l) = lane else { continue };
            let Some(m) = &mut l.mac else { continue };
            m.step += 1;
            if m.step < m.steps {
                continue;
            }
            let mut tag = [0u64; TAG_LEN / 8];
            for (t, w) in tag.iter_mut().zip(words.iter()) {
                *t = w.get(i).copied().unwrap_or_default();
            }
            if let Some(mac) = &l.mac
                && let Some(stream) = ctx.streams.get_mut(l.stream)
                && let Some(task) = stream.tasks.get_mut(l.cur)
            {
                finish(stream.session, task, mac, &tag);
            }
            // Dropped in place (wiping its nonce copy).
            l.mac = None;
            tag.zeroize();
        }
    }
}

/// Takes up a job: the checks and everything before the MAC steps, on the channel itself.
fn prepare<S: BatchSession>(
    session: &mut S,
    task: &mut Task<'_>,
    now: u64,
    mac: &mut Option<PacketMac>,
) -> Prep {
    let (frame, n, dir) = match &mut task.kind {
        TaskKind::Settled => return Prep::Done,
        TaskKind::Seal { .. } if !splittable(session, Dir::Tx) => return Prep::Whole,
        TaskKind::Open { .. } if !splittable(session, Dir::Rx) => return Prep::Whole,
        TaskKind::Seal { payload, slot } => {
            let len = payload.len();
            let frame = data::reserve(session, payload, now, slot).and_then(|header| {
                data::tx_step(session, len, slot, |tx, ct, tag| {
                    tx.prepare_seal(&header, ct, tag.len())
                })
            });
            (frame, len, Dir::Tx)
        }
        TaskKind::Open { packet } => {
            if let Some(settled) = check(session, packet, now, &mut task.record) {
                return settled;
            }
            let n = packet.len().saturating_sub(HEADER_LEN + TAG_LEN);
            let frame = data::rx_step(session, packet, |rx, head, ct, tag| {
                rx.prepare_open(head, ct, tag)
            });
            (frame, n, Dir::Rx)
        }
    };
    match frame {
        Ok(frame) => {
            *mac = Some(PacketMac::new(frame, n, dir == Dir::Rx));
            Prep::Mac(dir)
        }
        Err(e) => {
            task.record = Record::Failed(e);
            Prep::Done
        }
    }
}

/// The checks of a received packet before its MAC ([`check_open`]): `None` for a data packet
/// that passed; else what the job came to (a control packet stops its session's jobs).
fn check<S: BatchSession>(
    session: &mut S,
    packet: &[u8],
    now: u64,
    record: &mut Record,
) -> Option<Prep> {
    match check_open(session, packet, now) {
        Ok(Some(_)) => None,
        Ok(None) => {
            *record = Record::Control;
            Some(Prep::Stop)
        }
        Err(e) => {
            *record = Record::Failed(e);
            Some(Prep::Done)
        }
    }
}

/// Runs a job through the scalar calls.
fn whole<S: BatchSession>(session: &mut S, task: &mut Task<'_>, now: u64) -> Prep {
    task.record = match &mut task.kind {
        TaskKind::Settled => return Prep::Done,
        TaskKind::Seal { payload, slot } => sealed(
            data::reserve(session, payload, now, slot)
                .and_then(|_| data::seal_prepared(session, payload.len(), slot)),
        ),
        TaskKind::Open { packet } => {
            if let Some(settled) = check(session, packet, now, &mut task.record) {
                return settled;
            }
            opened(data::open_checked(session, packet))
        }
    };
    Prep::Done
}

/// After a packet's last MAC step: place the tag (seal), or compare it in constant time
/// and decrypt only on a match (open).
fn finish<S: BatchSession>(
    session: &mut S,
    task: &mut Task<'_>,
    mac: &PacketMac,
    tag: &[u64; TAG_LEN / 8],
) {
    task.record = match (&mut task.kind, mac.open) {
        (TaskKind::Seal { payload, slot }, false) => {
            sealed(data::tx_step(session, payload.len(), slot, |tx, _, out| {
                tx.finish_seal(tag, out)
            }))
        }
        (TaskKind::Open { packet }, true) => opened(
            data::rx_step(session, packet, |rx, _, ct, got| {
                rx.finish_open(tag, ct, got)
            })
            .map(|()| data::received(session, packet)),
        ),
        _ => Record::Failed(Misuse::NotEstablished.into()),
    };
}

/// The record of a seal.
fn sealed(r: Result<(), Error>) -> Record {
    r.map_or_else(Record::Failed, |()| Record::Sealed)
}

/// The record of an open.
fn opened(r: Result<&[u8], Error>) -> Record {
    r.map_or_else(Record::Failed, |pt| Record::Opened { len: pt.len() })
}
