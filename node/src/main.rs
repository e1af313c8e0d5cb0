//! The `dktp` binary: operators' tool for DKTP. Today: `dktp speed`.

use std::process::ExitCode;

mod speed;
mod speed_batch;

const USAGE: &str = "usage: dktp speed [--json] [--seconds S] [--backend NAME] [--no-pq]

  speed   measure RCS-512, KMAC-512, Rijndael-256 CTR and Keccak throughput on every
          backend this CPU has (like `openssl speed`)
          --json        print one JSON object instead of tables
          --seconds S   time per figure (default 0.3)
          --backend B   measure only backend B (portable|aesni|vaes256|vaes512|vaes512vbmi|armv8)
          --no-pq       skip the post-quantum operations (pq_ops_per_s)

DKTP_BACKEND=NAME forces the backend used by default everywhere.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("speed") => match speed::Options::parse(&args[1..]).and_then(speed::run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dktp speed: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
