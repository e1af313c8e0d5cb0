//! Logs: `tracing` to stderr (stdout may carry a tunnel). The level comes from `-v` / `-q`,
//! or from `DKTP_LOG` (an env-filter directive such as `info,dktp_node=debug`), which wins.

use tracing_subscriber::EnvFilter;

/// The log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the subscriber: `verbosity` 0 is `info`, each `-v` one level more, each `-q`
/// one less.
pub fn init(verbosity: i8, format: Format) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("DKTP_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        Format::Json => builder.json().try_init(),
        Format::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
