//! Full-session transcripts (`dktp_transcript.json`, `transcripts/*.json`): both roles are
//! replayed byte for byte through the engine's state machines from the recorded RNG streams
//! and clock.
//!
//! The format: `reproduction` (per-role seeds of a SHAKE-256 stream, the fixed clock and
//! every RNG call in order), `config_string`, `peer_keys_initial`, `kex` (the six packets,
//! transcript hashes, KEM secrets, channel keys, pre-shared secrets), the session packets in
//! send order (data, ratchets, close), `asymmetric_ratchets` and `peer_keys_after_session`.
//! Byte strings longer than 32 KiB (McEliece keys and the packets carrying them) are given
//! as `{sha3_256, length}`; those are compared by hash.
//!
//! What is replayed: each role's key generation (key id, then the peer key pair) from its
//! stream, the client's 4-byte draw before the key exchange, the handshake with every
//! packet and transcript hash, every session packet sealed by its sender and opened by its
//! receiver, both ratchets, the close, and the peer keys after the session (both as the
//! sessions hold them and as the `Secrets` events rebuild them). Channel keys are proven
//! by the encrypted packets; they are also recomputed from the recorded KEM secrets. Finally
//! each role must have drawn exactly the recorded number of random bytes.

use anyhow::{Context, Result, anyhow, bail};
use dktp::config::Config;
use dktp::keccak::{Shake256, sha3_256};
use dktp::kex::{EphemeralKeys, PeerKeys, ReplayGate, Settings, SinglePeer, client, server};
use dktp::key_schedule;
use dktp::peer_key::{self, LocalPeerKey, RemotePeerKey};
use dktp::pq::{Entropy, PqError};
use dktp::session::{Event, Opened, Output, Session};
use dktp::transcript::message_hash;
use serde_json::Value;

use crate::{Tally, hex_field};

/// Whether the file is in this format.
pub fn recognizes(v: &Value) -> bool {
    v.pointer("/reproduction/seeds").is_some()
        && v.pointer("/kex/packets").is_some_and(Value::is_array)
        && v.get("session_packets_in_send_order")
            .is_some_and(Value::is_array)
}

/// Replays the whole session.
pub fn run(v: &Value, t: &mut Tally) {
    let name = v
        .get("config_string")
        .and_then(Value::as_str)
        .unwrap_or("transcript")
        .to_owned();
    let mut r = Replay { name: &name, t };
    if let Err(e) = r.replay(v) {
        r.t.check(|| format!("{name}: replay stopped: {e:#}"), false);
    }
}

/// A role's RNG: the SHAKE-256(seed) stream, consumed in order; counts what it served.
struct Stream {
    xof: Shake256,
    used: usize,
}

impl Stream {
    fn new(seed: &str) -> Stream {
        let mut xof = Shake256::new();
        xof.update(seed.as_bytes());
        Stream { xof, used: 0 }
    }

    fn draw(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.xof.squeeze(&mut b);
        self.used += n;
        b
    }
}

impl Entropy for Stream {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        self.xof.squeeze(dest);
        self.used += dest.len();
        Ok(())
    }
}

/// One role's recorded RNG calls.
struct Calls<'a>(&'a [Value]);

impl Calls<'_> {
    fn op(&self, i: usize) -> Option<&str> {
        self.0.get(i)?.get("op")?.as_str()
    }
    fn len(&self, i: usize) -> Option<usize> {
        usize::try_from(self.0.get(i)?.get("len")?.as_u64()?).ok()
    }
    fn total(&self) -> usize {
        (0..self.0.len()).filter_map(|i| self.len(i)).sum()
    }
}

/// An expected byte string: hex, or `{sha3_256, length}` for long values.
fn same(expected: &Value, ours: &[u8]) -> bool {
    match expected {
        Value::String(s) => hex::decode(s).is_ok_and(|b| b == ours),
        Value::Object(o) => {
            let len = o.get("length").and_then(Value::as_u64);
            let digest = o.get("sha3_256").and_then(Value::as_str);
            len == Some(ours.len() as u64)
                && digest.is_some_and(|d| hex::decode(d).is_ok_and(|d| d == sha3_256(ours)))
        }
        _ => false,
    }
}

/// The object member whose key starts with `word` (keys carry explanations:
/// `"sch1 = SHA3-512(hm1)"`).
fn member<'a>(obj: &'a Value, word: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.split_whitespace().next() == Some(word))
        .map(|(_, v)| v)
}

fn hex_member(obj: &Value, word: &str) -> Option<Vec<u8>> {
    hex::decode(member(obj, word)?.as_str()?).ok()
}

/// A packet's expected bytes: `raw_hex` or `raw` (hashed form).
fn raw(p: &Value) -> Option<&Value> {
    p.get("raw_hex").or_else(|| p.get("raw"))
}

struct Replay<'a> {
    name: &'a str,
    t: &'a mut Tally,
}

/// The two sides of one transcript.
struct Roles {
    client: Session,
    server: Session,
    client_rng: Stream,
    server_rng: Stream,
    /// Initial keys with every `Secrets` record applied, per role.
    client_events: PeerKeys,
    server_events: PeerKeys,
}

impl Replay<'_> {
    fn check(&mut self, what: impl FnOnce() -> String, ok: bool) {
        let name = self.name;
        self.t.check(|| format!("{name}: {}", what()), ok);
    }

    fn replay(&mut self, v: &Value) -> Result<()> {
        let config: Config = v
            .get("config_string")
            .and_then(Value::as_str)
            .context("config_string")?
            .parse()
            .map_err(|e| anyhow!("{e}"))?;
        let repro = v.get("reproduction").context("reproduction")?;
        let now = repro
            .get("fixed_utctime")
            .and_then(Value::as_u64)
            .context("fixed_utctime")?;
        let seed = |role: &str| {
            repro
                .pointer(&format!("/seeds/{role}"))
                .and_then(Value::as_str)
                .with_context(|| format!("seed {role}"))
        };
        let calls = |role: &str| {
            repro
                .pointer(&format!("/rng_calls_in_order_per_role/{role}"))
                .and_then(Value::as_array)
                .map(|a| Calls(a.as_slice()))
                .with_context(|| format!("rng calls {role}"))
        };
        let (client_calls, server_calls) = (calls("client")?, calls("server")?);
        self.check_stream("client", seed("client")?, &client_calls);
        self.check_stream("server", seed("server")?, &server_calls);

        // Key generation per role: keyid = RNG(16), then the peer key pair (FACTS §5).
        let mut client_rng = Stream::new(seed("client")?);
        let mut server_rng = Stream::new(seed("server")?);
        let (mut client_local, client_remote) = generate(config, now, &mut client_rng)?;
        let (mut server_local, server_remote) = generate(config, now, &mut server_rng)?;
        peer_key::link(&mut client_local, &server_remote);
        peer_key::link(&mut server_local, &client_remote);
        let initial = v.get("peer_keys_initial").context("peer_keys_initial")?;
        for (field, bytes) in [
            ("server_local_peer_key", server_local.to_bytes()),
            (
                "server_remote_peer_key_given_to_client",
                server_remote.to_bytes(),
            ),
            ("client_local_peer_key", client_local.to_bytes()),
            (
                "client_remote_peer_key_given_to_server",
                client_remote.to_bytes(),
            ),
        ] {
            let ok = initial.get(field).is_some_and(|e| same(e, &bytes));
            self.check(|| format!("initial {field}"), ok);
        }
        // Draws the reference makes before the key exchange (the client's socket id).
        for (calls, rng) in [
            (&client_calls, &mut client_rng),
            (&server_calls, &mut server_rng),
        ] {
            let mut i = 3;
            while matches!(calls.op(i), Some("direct" | "qsc_acp_uint32")) {
                rng.draw(calls.len(i).unwrap_or(0));
                i += 1;
            }
        }

        let keys = |local, remote| PeerKeys { local, remote };
        let client_keys = keys(client_local, server_remote);
        let server_keys = keys(server_local, client_remote);
        let mut roles = self.handshake(
            v,
            config,
            now,
            client_keys,
            server_keys,
            client_rng,
            server_rng,
        )?;
        self.session(v, now, &mut roles)?;

        let after = v
            .get("peer_keys_after_session")
            .context("peer_keys_after_session")?;
        let sides = [
            ("server", roles.server.keys(), &roles.server_events),
            ("client", roles.client.keys(), &roles.client_events),
        ];
        for part in ["local", "remote"] {
            for (role, session, events) in sides {
                let field = format!("{role}_{part}_peer_key");
                let expected = after
                    .get(&field)
                    .with_context(|| format!("{part} key after"))?;
                for (source, keys) in [("session", session), ("events", events)] {
                    let ours = match part {
                        "local" => keys.local.to_bytes(),
                        _ => keys.remote.to_bytes(),
                    };
                    let ok = same(expected, &ours);
                    self.check(|| format!("{field} after session ({source})"), ok);
                }
            }
        }

        for (role, rng, calls) in [
            ("client", &roles.client_rng, &client_calls),
            ("server", &roles.server_rng, &server_calls),
        ] {
            let (used, total) = (rng.used, calls.total());
            self.check(
                || format!("{role} drew {used} random bytes, the reference {total}"),
                used == total,
            );
        }
        Ok(())
    }

    /// The recorded calls are consecutive slices of the seed's stream.
    fn check_stream(&mut self, role: &str, seed: &str, calls: &Calls<'_>) {
        let mut s = Stream::new(seed);
        for (i, call) in calls.0.iter().enumerate() {
            let len = calls.len(i).unwrap_or(0);
            let ours = s.draw(len);
            let ok = call.get("bytes").is_some_and(|e| same(e, &ours));
            self.check(|| format!("{role} rng call {i} is the stream"), ok);
        }
    }

    fn packet(&mut self, packets: &[Value], i: usize, ours: &[u8]) {
        let p = packets.get(i);
        let name = p
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let ok = p.and_then(raw).is_some_and(|e| same(e, ours));
        self.check(|| format!("kex packet {i} ({name})"), ok);
    }

    fn hash(&mut self, kex: &Value, word: &str, ours: &[u8]) {
        let ok = kex
            .get("transcript_hash")
            .and_then(|h| hex_member(h, word))
            .is_some_and(|e| e == ours);
        self.check(|| format!("transcript {word}"), ok);
    }

    #[allow(clippy::too_many_arguments)]
    fn handshake(
        &mut self,
        v: &Value,
        config: Config,
        now: u64,
        client_keys: PeerKeys,
        server_keys: PeerKeys,
        mut crng: Stream,
        mut srng: Stream,
    ) -> Result<Roles> {
        let kex = v.get("kex").context("kex")?;
        let packets = kex
            .get("packets")
            .and_then(Value::as_array)
            .context("kex.packets")?
            .as_slice();
        self.channel_keys(kex, &client_keys, &server_keys);
        let settings = Settings::default().with_ephemeral_keys(EphemeralKeys::FromRng);
        let mut client_events = client_keys.clone();
        let mut server_events = server_keys.clone();
        let client_before = *client_keys.local.pss();
        let server_before = *server_keys.local.pss();

        let c1 = client::start(client_keys, settings.clone(), now, &mut crng)?;
        self.packet(packets, 0, &c1.packet);
        self.hash(kex, "sch1", c1.next.transcript());
        let mut lookup = SinglePeer(server_keys);
        let mut gate = ReplayGate::default();
        let s1 = server::AwaitConnectRequest::new(settings).handle(
            &c1.packet,
            now,
            &mut srng,
            &mut lookup,
            &mut gate,
        )?;
        self.packet(packets, 1, &s1.packet);
        self.hash(kex, "sch2", s1.next.transcript());
        let c2 = c1.next.handle(&s1.packet, now, &mut crng)?;
        self.packet(packets, 2, &c2.packet);
        self.hash(kex, "sch3", c2.next.transcript());
        let s2 = s1.next.handle(&c2.packet, now, &mut srng)?;
        self.packet(packets, 3, &s2.packet);
        self.hash(kex, "sch4", s2.next.transcript());
        let c3 = c2.next.handle(&s2.packet, now, &mut crng)?;
        self.packet(packets, 4, &c3.packet);
        self.hash(kex, "sch5", c3.next.transcript());
        client_events.apply(&c3.pss);
        let s3 = s2.next.handle(&c3.packet, now, &mut srng)?;
        self.packet(packets, 5, &s3.packet);
        server_events.apply(&s3.pss);
        let client = c3.next.handle(&s3.packet, now, &mut crng)?;
        let server = s3.next;

        let psk = kex.get("psk").context("kex.psk")?;
        for (word, ours) in [
            ("client_pss_after_kex", c3.pss.local.as_bytes()),
            ("server_pss_after_kex", s3.pss.local.as_bytes()),
            ("client_pss_after_kex", s3.pss.remote.as_bytes()),
            ("server_pss_after_kex", c3.pss.remote.as_bytes()),
        ] {
            let ok = hex_member(psk, word).is_some_and(|e| e == ours);
            self.check(|| format!("{word} (Secrets event)"), ok);
        }
        for (word, ours) in [
            ("client_pss_before", &client_before),
            ("server_pss_before", &server_before),
        ] {
            let ok = hex_member(psk, word).is_some_and(|e| e == ours);
            self.check(|| word.to_string(), ok);
        }
        let seqs = (
            client.txseq(),
            client.rxseq(),
            server.txseq(),
            server.rxseq(),
        );
        self.check(
            || format!("sequences after kex {seqs:?}"),
            seqs == (3, 3, 3, 3),
        );

        // hm1..hm4 recomputed from the packets (each covers its header and fields).
        let sizes = config.message_sizes();
        let kem = config.kem().sizes();
        let sh = config.signed_hash_size();
        let hms = [
            (&c1.packet, 0..21 + 16 + 36, None),
            (
                &s1.packet,
                0..21,
                Some(21 + sh..21 + sizes.connect_response),
            ),
            (&c2.packet, 0..21 + kem.ciphertext + kem.public_key, None),
            (&s2.packet, 0..21 + kem.ciphertext, None),
        ];
        for (i, (packet, a, b)) in hms.into_iter().enumerate() {
            let hm = message_hash(
                packet.get(a).unwrap_or_default(),
                &[b.and_then(|b| packet.get(b)).unwrap_or_default()],
            );
            self.hash(kex, &format!("hm{}", i + 1), &hm);
        }
        Ok(Roles {
            client,
            server,
            client_rng: crng,
            server_rng: srng,
            client_events,
            server_events,
        })
    }

    /// The channel keys, recomputed with the key schedule from the recorded KEM secrets and
    /// the initial pre-shared secrets (the engine's own keys are proven by its packets).
    fn channel_keys(&mut self, kex: &Value, client: &PeerKeys, server: &PeerKeys) {
        let secret = |who: &str| {
            kex.pointer(&format!("/kem/{who}"))
                .and_then(|o| hex_member(o, "shared_secret"))
        };
        let (Some(c_secl), Some(s_secl)) = (secret("client_encaps"), secret("server_encaps"))
        else {
            self.check(|| "kem shared secrets readable".into(), false);
            return;
        };
        let c =
            key_schedule::client_keys(&c_secl, &s_secl, client.local.pss(), client.remote.pss());
        let s =
            key_schedule::server_keys(&s_secl, &c_secl, server.local.pss(), server.remote.pss());
        let keys = kex.get("channel_keys");
        for (word, a, b) in [
            ("client_to_server", &c.tx, &s.rx),
            ("server_to_client", &c.rx, &s.tx),
        ] {
            let entry = keys.and_then(|k| member(k, word));
            let key = entry.and_then(|e| hex_field(e, "key"));
            let nonce = entry.and_then(|e| hex_field(e, "nonce"));
            let ok = key.as_deref() == Some(a.key().as_slice())
                && nonce.as_deref() == Some(a.nonce().as_slice())
                && a.key() == b.key()
                && a.nonce() == b.nonce();
            self.check(|| format!("channel key {word}"), ok);
        }
    }

    fn session(&mut self, v: &Value, now: u64, r: &mut Roles) -> Result<()> {
        let packets = v
            .get("session_packets_in_send_order")
            .and_then(Value::as_array)
            .context("session packets")?;
        let ratchets = v
            .get("asymmetric_ratchets")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut ratchet_index = 0usize;
        // A response the responder queued while opening the request.
        let mut queued: Option<Vec<u8>> = None;
        for (i, p) in packets.iter().enumerate() {
            let direction = p.get("direction").and_then(Value::as_str).unwrap_or("");
            let kind = p.get("kind").and_then(Value::as_str).unwrap_or("");
            let from_client = direction.starts_with("client");
            let (sender, receiver, sender_rng, receiver_rng, receiver_events) = if from_client {
                (
                    &mut r.client,
                    &mut r.server,
                    &mut r.client_rng,
                    &mut r.server_rng,
                    &mut r.server_events,
                )
            } else {
                (
                    &mut r.server,
                    &mut r.client,
                    &mut r.server_rng,
                    &mut r.client_rng,
                    &mut r.client_events,
                )
            };
            let ours = match kind {
                "encrypted_message" => {
                    let pt = hex_field(p, "plaintext_hex").context("plaintext_hex")?;
                    let mut out = Vec::new();
                    sender.seal(&pt, now, &mut out)?;
                    out
                }
                "asymmetric_ratchet_request" => {
                    let ratchet = ratchets.get(ratchet_index);
                    let pss_in = ratchet.and_then(|x| hex_member(x, "pss_in"));
                    let ok = pss_in.as_deref() == Some(sender.keys().local.pss().as_slice());
                    self.check(|| format!("ratchet {ratchet_index} pss_in"), ok);
                    sender.start_ratchet(now, sender_rng)?
                }
                "asymmetric_ratchet_response" => queued.take().context("no queued response")?,
                "error_condition" => sender.close(now)?,
                other => bail!("unknown session packet kind {other:?}"),
            };
            let ok = raw(p).is_some_and(|e| same(e, &ours));
            self.check(|| format!("session packet {i} ({direction} {kind})"), ok);

            let mut buf = ours;
            let opened = receiver.open_in_place(&mut buf, now, receiver_rng)?;
            match opened {
                Opened::Message(range) => {
                    let ok = hex_field(p, "plaintext_hex")
                        .is_some_and(|e| buf.get(range).is_some_and(|m| m == e.as_slice()));
                    self.check(|| format!("session packet {i} opens to its plaintext"), ok);
                }
                Opened::Control => {}
            }
            while let Some(o) = receiver.poll_output() {
                match o {
                    Output::Transmit(packet) => queued = Some(packet),
                    Output::Event(Event::Secrets(u)) => u.record.latest().apply_to(receiver_events),
                    Output::Event(Event::Closed { code, .. }) => {
                        let ok = hex_field(p, "plaintext_hex").is_some_and(|e| e == [code]);
                        self.check(|| format!("close code 0x{code:02x}"), ok);
                    }
                    Output::Event(_) => {}
                }
            }
            // The requester learns of the response's effect here.
            if kind == "asymmetric_ratchet_response" {
                let responder = if from_client { &r.client } else { &r.server };
                let requester = if from_client { &r.server } else { &r.client };
                let pss_out = ratchets
                    .get(ratchet_index)
                    .and_then(|x| hex_member(x, "pss_out"));
                let ok = pss_out.as_deref() == Some(requester.keys().local.pss().as_slice())
                    && pss_out.as_deref() == Some(responder.keys().remote.pss().as_slice());
                self.check(|| format!("ratchet {ratchet_index} pss_out"), ok);
                self.ratchet_kdf(ratchets.get(ratchet_index));
                ratchet_index += 1;
            }
        }
        let n = ratchets.len();
        self.check(
            || format!("{ratchet_index} of {n} recorded ratchets replayed"),
            ratchet_index == n,
        );
        Ok(())
    }

    /// The recorded ratchet derivation, recomputed from its recorded inputs.
    fn ratchet_kdf(&mut self, ratchet: Option<&Value>) {
        let Some(x) = ratchet else {
            self.check(|| "ratchet entry present".into(), false);
            return;
        };
        let ssec = hex_member(x, "ssec");
        let pss_in: Option<[u8; 32]> = hex_member(x, "pss_in").and_then(|b| b.try_into().ok());
        let ok = match (ssec, pss_in) {
            (Some(ssec), Some(pss_in)) => {
                let k = key_schedule::ratchet(&ssec, &pss_in);
                hex_member(x, "new_key").is_some_and(|e| e == k.channel.key())
                    && hex_member(x, "new_nonce").is_some_and(|e| e == k.channel.nonce())
                    && hex_member(x, "pss_out").is_some_and(|e| e == k.pss.as_bytes())
            }
            _ => false,
        };
        self.check(|| "ratchet key schedule".into(), ok);
    }
}

fn generate(config: Config, now: u64, rng: &mut Stream) -> Result<(LocalPeerKey, RemotePeerKey)> {
    let keyid: [u8; 16] = rng.draw(16).try_into().map_err(|_| anyhow!("keyid"))?;
    peer_key::generate(config, keyid, now, rng).map_err(|e| anyhow!("key generation: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::load;

    fn run_value(v: &Value) -> Tally {
        crate::test_data::tally(v, recognizes, run)
    }

    #[test]
    fn default_transcript_replays() {
        let t = run_value(&load("dktp_transcript.json"));
        assert_eq!(t.failed, 0, "{:#?}", t.failures);
        assert!(t.passed > 50, "only {} checks", t.passed);
    }

    /// Replays every file of `transcripts/` whose name starts with `prefix`, on a thread
    /// with a large stack (McEliece key generation keeps big matrices on the stack).
    fn replay_files(prefix: &'static str, expected_files: usize) {
        let dir = format!("{}/data/transcripts", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
            .collect();
        names.sort();
        assert_eq!(names.len(), expected_files, "{names:?}");
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || {
                for n in names {
                    let t = run_value(&load(&format!("transcripts/{n}")));
                    assert_eq!(t.failed, 0, "{n}: {:#?}", t.failures);
                    assert_eq!(t.skipped, 0, "{n}");
                    assert!(t.passed > 50, "{n}: only {} checks", t.passed);
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn dilithium_kyber_transcripts_replay() {
        replay_files("dilithium-s1_kyber", 1);
        replay_files("dilithium-s3_kyber", 1);
        replay_files("dilithium-s5_kyber", 1);
    }

    #[test]
    fn dilithium_mceliece_transcripts_replay() {
        replay_files("dilithium-s1_mceliece", 1);
        replay_files("dilithium-s3_mceliece", 1);
        replay_files("dilithium-s5_mceliece", 3);
    }

    #[test]
    fn sphincs_mceliece_transcripts_replay() {
        replay_files("sphincs-", 5);
    }

    /// Flips one byte (the middle hex digit) of a hex string at `pointer`.
    fn flip(v: &mut Value, pointer: &str) -> bool {
        let Some(Value::String(s)) = v.pointer_mut(pointer) else {
            return false;
        };
        let mut b = s.clone().into_bytes();
        let mid = b.len() / 2;
        b[mid] = if b[mid] == b'0' { b'1' } else { b'0' };
        *s = String::from_utf8(b).unwrap();
        true
    }

    #[test]
    fn a_changed_byte_in_any_recorded_packet_fails() {
        let base = load("dktp_transcript.json");
        let mut pointers: Vec<String> = (0..6)
            .map(|i| format!("/kex/packets/{i}/raw_hex"))
            .collect();
        let n = base["session_packets_in_send_order"]
            .as_array()
            .unwrap()
            .len();
        pointers.extend((0..n).map(|i| format!("/session_packets_in_send_order/{i}/raw_hex")));
        pointers.extend(
            [
                "server_local_peer_key",
                "server_remote_peer_key",
                "client_local_peer_key",
                "client_remote_peer_key",
            ]
            .map(|k| format!("/peer_keys_after_session/{k}")),
        );
        pointers.push("/peer_keys_initial/client_local_peer_key".into());
        pointers.push("/reproduction/rng_calls_in_order_per_role/client/3/bytes".into());
        for p in &pointers {
            let mut v = base.clone();
            assert!(flip(&mut v, p), "{p} missing");
            let t = run_value(&v);
            assert!(t.failed > 0, "changing {p} went unnoticed");
        }
        // Transcript hashes and pss (their keys carry explanations).
        for section in ["/kex/transcript_hash", "/kex/psk"] {
            let keys: Vec<String> = base
                .pointer(section)
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            for k in keys {
                let mut v = base.clone();
                let p = format!("{section}/{}", k.replace('~', "~0").replace('/', "~1"));
                assert!(flip(&mut v, &p), "{p}");
                let t = run_value(&v);
                assert!(t.failed > 0, "changing {p} went unnoticed");
            }
        }
    }
}
