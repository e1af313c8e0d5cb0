//! `kat FILE...`: checks every case it understands in each known-answer vector file.
//!
//! One line per file, then `N passed, M failed, K skipped`; exit status 1 on any failure.
//! Which checks run depends only on each file's JSON structure. The backend is the one in
//! force (`DKTP_BACKEND` or the best available).

use std::process::ExitCode;

use dktp_vectors::{Tally, check_value};

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        eprintln!(
            "usage: kat FILE.json...   (DKTP_BACKEND=portable|aesni|vaes256|vaes512|vaes512vbmi forces a backend)"
        );
        return ExitCode::from(2);
    }
    match dktp::Backend::selected() {
        Ok(b) => eprintln!("kat: backend {b}"),
        Err(e) => {
            eprintln!("kat: {e}");
            return ExitCode::from(2);
        }
    }
    let mut total = Tally::default();
    for file in &files {
        let mut t = Tally::default();
        match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string())
            }) {
            Ok(v) => {
                if !check_value(&v, &mut t) {
                    println!("{file}: not a known vector format (skipped)");
                    t.skip();
                    total.add(t);
                    continue;
                }
            }
            Err(e) => {
                t.check(|| format!("{file}: cannot read: {e}"), false);
            }
        }
        println!(
            "{file}: {} passed, {} failed, {} skipped",
            t.passed, t.failed, t.skipped
        );
        for f in t.failures.iter().take(20) {
            println!("  FAIL {f}");
        }
        if t.failures.len() > 20 {
            println!("  ... and {} more", t.failures.len() - 20);
        }
        total.add(t);
    }
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    if total.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
