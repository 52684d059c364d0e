//! The `ocipack` command line. Library errors are typed; this edge turns them
//! into messages and exit codes.

mod cli;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("OCIPACK_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(match (args.verbose, args.quiet) {
            (true, _) => "debug",
            // rustls-platform-verifier logs each refused certificate at
            // error level; ocipack's own error says it, with what to do.
            (_, true) => "error,rustls_platform_verifier=off",
            _ => "warn,rustls_platform_verifier=off",
        })
    });
    if args.quiet {
        ocipack::registry::Progress::silence();
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .without_time()
        .init();
    if let Err(e) = ocipack::labels::set_prefix(&args.label_prefix) {
        eprintln!("ocipack: error: --label-prefix: {e}");
        return ExitCode::from(cli::exit::USAGE);
    }
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocipack: error: {}", cli::render_error(&e));
            ExitCode::from(cli::exit::code(&e))
        }
    }
}

/// Log lines are coloured only for a person at a terminal: escape codes in
/// a CI log or a file are noise. `NO_COLOR` set to anything non-empty
/// turns colour off even there (https://no-color.org).
fn use_colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::use_colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("".into())));
        assert!(!use_colour(true, Some("1".into())));
        assert!(!use_colour(false, None), "a pipe or file gets no escapes");
        assert!(!use_colour(false, Some("1".into())));
    }
}
