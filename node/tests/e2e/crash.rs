//! Crash injection with real processes: the client or the server is aborted (no cleanup,
//! as `kill -9` would) at every step of a handshake and of a ratchet, through the test-only
//! hook `DKTP_TEST_CRASH_AT=N` (a step: a record about to be stored, a record stored, a
//! control packet written). After each, both sides start again from their stores and the
//! pair must connect and carry data.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::support::{Dir, Proc, connecting, keys, serving};

const T: Duration = Duration::from_secs(60);
const CONFIG: &str = "dilithium-s1_kyber-s1_sha3_rcs";
/// Rounds over every (crashing side, ratchet requester, step); 6 rounds give about 300
/// crashes (200 at the least even if a loaded machine cuts some sessions short).
const ROUNDS: usize = 6;
/// A handshake and one ratchet take about a dozen steps on either side; a scenario that
/// ran on past this would be a test that cannot end.
const MAX_STEPS: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Client,
    Server,
}

struct Outcome {
    injections: usize,
    failures: Vec<String>,
}

/// Starts `dktp ARGS` with the crash hook armed at `crash_at`.
fn hooked(dir: &Dir, name: &str, args: &[&str], crash_at: Option<usize>, stdin: Stdio) -> Proc {
    let step = crash_at.map(|n| n.to_string());
    let env: Vec<(&str, &str)> = step
        .iter()
        .map(|s| ("DKTP_TEST_CRASH_AT", s.as_str()))
        .collect();
    Proc::start_with_stdin(dir, name, args, &env, stdin)
}

fn server(dir: &Dir, name: &str, crash_at: Option<usize>, ratchet: bool) -> (Proc, String) {
    let mut args = serving(&["-l", "127.0.0.1:0", "--echo"]);
    if ratchet {
        args.extend(["--ratchet-every", "150ms"]);
    }
    let mut p = hooked(dir, name, &args, crash_at, Stdio::null());
    let addr = p.wait_addr("listening (TCP)").to_string();
    (p, addr)
}

/// A stdio client: sends a line, keeps the session up for `hold`, ends its input.
fn client(
    dir: &Dir,
    name: &str,
    addr: &str,
    crash_at: Option<usize>,
    ratchet: bool,
    attempts: &str,
) -> Proc {
    // The check after a crash may need a second attempt (a stale pending generation is
    // refused once, then dropped): its input has ended by then, so it lingers for the echo.
    let linger = if crash_at.is_some() || ratchet {
        "0"
    } else {
        "300ms"
    };
    let mut args = connecting(addr, &["--linger", linger, "--attempts", attempts]);
    if ratchet {
        args.extend(["--ratchet-every", "150ms"]);
    }
    hooked(dir, name, &args, crash_at, Stdio::piped())
}

/// Runs a session that carries a line and (if `ratchet_by` is set) lives long enough for
/// one ratchet; returns the client's exit status and what it printed.
fn session(mut c: Proc, hold: Duration) -> (Option<std::process::ExitStatus>, String, Proc) {
    let mut stdin = c.child.stdin.take().expect("stdin");
    let _ = stdin.write_all(b"still in step\n");
    let _ = stdin.flush();
    std::thread::sleep(hold);
    drop(stdin);
    let status = c.wait_exit(T);
    let mut out = String::new();
    if let Some(mut o) = c.child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    (status, out, c)
}

/// Whether the hook fired: it says so, then aborts (SIGABRT).
fn aborted(p: &mut Proc) -> bool {
    if !p.log_text().contains("DKTP_TEST_CRASH_AT=") {
        return false;
    }
    let status = p.wait_exit(T);
    assert!(
        status.is_some_and(|s| s.signal() == Some(6)),
        "{} said it aborts but exited {status:?}",
        p.name
    );
    true
}

/// Every step of one (side, requester) scenario, `ROUNDS` times, in its own folder.
fn scenario(side: Side, ratchet_by: Side) -> Outcome {
    let dir = Dir::new(&format!("crash-{side:?}-{ratchet_by:?}"));
    keys(&dir, CONFIG);
    let mut out = Outcome {
        injections: 0,
        failures: Vec::new(),
    };
    let mut run = 0;
    for round in 0..ROUNDS {
        for step in 1..=MAX_STEPS {
            run += 1;
            let hook = Some(step);
            let (mut srv, addr) = server(
                &dir,
                &format!("server-{run}"),
                hook.filter(|_| side == Side::Server),
                ratchet_by == Side::Server,
            );
            let c = client(
                &dir,
                &format!("client-{run}"),
                &addr,
                hook.filter(|_| side == Side::Client),
                ratchet_by == Side::Client,
                "1",
            );
            // Long enough for one ratchet (150 ms after the handshake), rarely for two.
            let (_, _, mut c) = session(c, Duration::from_millis(280));
            let crashed = match side {
                Side::Client => aborted(&mut c),
                Side::Server => aborted(&mut srv),
            };
            drop(c);
            drop(srv);
            if !crashed {
                // Past the scenario's last step.
                assert!(step > 4, "{side:?}/{ratchet_by:?}: only {step} steps?");
                break;
            }
            assert!(
                step < MAX_STEPS,
                "{side:?}/{ratchet_by:?}: still crashing at step {step}"
            );
            out.injections += 1;
            // Both start again from their stores: the pair must connect and carry data.
            let (srv, addr) = server(&dir, &format!("server-{run}-after"), None, false);
            let c = client(
                &dir,
                &format!("client-{run}-after"),
                &addr,
                None,
                false,
                "6",
            );
            let (status, printed, c) = session(c, Duration::from_millis(50));
            if !(status.is_some_and(|s| s.success()) && printed == "still in step\n") {
                out.failures.push(format!(
                    "{side:?} crashed at step {step} (round {round}, ratchet by {ratchet_by:?}): the pair did not reconnect:\n{}\n{}",
                    c.log_text(),
                    srv.log_text()
                ));
            }
        }
    }
    out
}

#[test]
fn killed_at_every_step_of_a_handshake_and_a_ratchet_the_pair_connects_again() {
    let start = Instant::now();
    let runs: Vec<_> = [
        (Side::Client, Side::Client),
        (Side::Client, Side::Server),
        (Side::Server, Side::Client),
        (Side::Server, Side::Server),
    ]
    .into_iter()
    .map(|(side, by)| std::thread::spawn(move || scenario(side, by)))
    .collect();
    let mut injections = 0;
    let mut failures = Vec::new();
    for r in runs {
        let o = r.join().expect("scenario thread");
        injections += o.injections;
        failures.extend(o.failures);
    }
    eprintln!(
        "crash injection: {injections} injections, {} failures, {:.0} s",
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(injections >= 200, "only {injections} injections");
}
