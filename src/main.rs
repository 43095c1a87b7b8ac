//! The `airlock` binary: parse arguments, set up logging, run, and turn the
//! outcome into an exit code. Errors print with their whole cause chain.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = airlock::cli::Cli::parse();
    let verbosity = i8::try_from(cli.verbose).unwrap_or(i8::MAX) - i8::try_from(cli.quiet).unwrap_or(i8::MAX);
    airlock::util::ui::init(verbosity, cli.log_format, cli.color);
    match airlock::cli::run(cli) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) => {
            let code = e.exit_code();
            let report = anyhow::Error::new(e);
            eprintln!("error: {}", airlock::util::redact::text(&format!("{report:#}")));
            ExitCode::from(code)
        }
    }
}
