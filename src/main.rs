//! The `airlock` binary: parse arguments, set up logging, run, and turn the
//! outcome into an exit code. Errors print with their whole cause chain.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    airlock::util::mem::init();
    let cli = airlock::cli::Cli::parse();
    let verbosity = i8::try_from(cli.verbose).unwrap_or(i8::MAX) - i8::try_from(cli.quiet).unwrap_or(i8::MAX);
    airlock::util::ui::init(verbosity, cli.log_format, cli.color);
    if let Err(e) = airlock::util::signal::install() {
        eprintln!("warning: cannot handle SIGINT and SIGTERM: {e}");
    }
    let code = match airlock::cli::run(cli) {
        Ok(exit) => exit as u8,
        Err(e) => {
            let code = e.exit_code();
            let report = anyhow::Error::new(e);
            eprintln!("error: {}", airlock::util::redact::text(&format!("{report:#}")));
            code
        }
    };
    // Stopped by a signal: the shell's code, whatever the run made of it.
    ExitCode::from(airlock::util::signal::received().map_or(code, airlock::util::signal::exit_code))
}
