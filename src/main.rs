//! The `ocipack` command line. Library errors are typed; this edge turns them
//! into messages and exit codes.

mod cli;

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
        .without_time()
        .init();
    if let Err(e) = ocipack::labels::set_prefix(&args.label_prefix) {
        eprintln!("ocipack: error: --label-prefix: {e}");
        return ExitCode::from(cli::exit::USAGE);
    }
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocipack: error: {e:#}");
            ExitCode::from(cli::exit::code(&e))
        }
    }
}
