//! `nlkit`: the command line. See `nlkit --help`.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

mod args;
// `bench`, `demo` and `measure` open sockets in private namespaces of their own, never the
// caller's: the `--mirror` choice (`cmd::Ctx`) does not apply to them.
#[allow(clippy::disallowed_methods)]
mod bench;
mod chart;
mod cli;
mod cmd;
#[allow(clippy::disallowed_methods)]
mod demo;
mod fixtures;
#[allow(clippy::disallowed_methods)]
mod measure;
mod mirror;
mod netns;
mod output;

use cli::{Cli, Command};

/// Exit status for usage errors, as clap and iproute2 use.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    // First: when started as the mirror's worker process, run it and exit.
    nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry);
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NLKIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    if let Err(e) = cmd::check_flags(&cli) {
        return report(&e);
    }
    // Before any thread exists, so every thread lives in the namespace.
    if let Some(ns) = &cli.netns {
        if let Err(e) = netns::enter_named(ns) {
            eprintln!("nlkit: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    let result = match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "nlkit", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => write_man(dir),
        _ => cmd::run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Prints an error the way iproute2 users expect and picks the exit status.
fn report(e: &anyhow::Error) -> ExitCode {
    // `nlkit route show | head`: a closed pipe is not a failure.
    if e.downcast_ref::<output::OutputError>()
        .is_some_and(output::OutputError::is_closed_pipe)
    {
        return ExitCode::SUCCESS;
    }
    // Writes to standard output outside a `Sink` fail with the bare `io::Error`.
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    if let Some(u) = e.downcast_ref::<args::UsageError>() {
        eprintln!("nlkit: {u}");
        return ExitCode::from(USAGE);
    }
    eprintln!("{e:#}");
    ExitCode::FAILURE
}

/// Writes `nlkit.1` and one page per subcommand (`nlkit-route.1`, …) into `dir`.
fn write_man(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, dir)?;
    Ok(())
}
