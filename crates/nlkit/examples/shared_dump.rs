//! Consume one kernel dump from several threads: each thread parses the chunks it takes, and
//! every route is seen by exactly one thread.
//!
//! ```sh
//! cargo run -p nlkit --example shared_dump -- [--threads N] [-6]
//! ```
//!
//! Only one `recvmsg` may run on a dump socket at a time (two concurrent ones corrupt the
//! dump's state in the kernel), so [`SharedDump`] serialises the refills; each thread parses
//! from its own [`DumpBuffer`] without any lock. The win is parsing and processing in
//! parallel while the kernel produces the next chunk.

use std::io::Write;
use std::process::ExitCode;

use nlkit::prelude::*;
use nlkit::route::request::RouteFilter;

const USAGE: &str = "usage: shared_dump [--threads N] [-6]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Dumps every route of one family on `--threads` threads (2 by default); returns how many
/// routes each thread parsed.
pub fn run(args: &[String], out: &mut impl Write) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let mut threads = 2;
    let mut family = consts::AF_INET;
    let mut args = args.iter().map(String::as_str);
    while let Some(a) = args.next() {
        match a {
            "--threads" => threads = args.next().ok_or(USAGE)?.parse::<usize>()?.max(1),
            "-6" => family = consts::AF_INET6,
            _ => return Err(USAGE.into()),
        }
    }

    // One family per dump: per-family route dumps run without the RTNL lock.
    let mut req = MessageBuilder::new();
    route::request::dump_routes(&mut req, 0, family, &RouteFilter::default())?;
    let dump = SharedDump::start(Pool::shared(Protocol::Route), &mut req)?;
    let counts = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = DumpBuffer::new(); // each thread its own buffer
                    let mut n = 0u64;
                    while let Some(m) = dump.next(&mut buf)? {
                        // A view into this thread's buffer: a daemon would update its own
                        // routing table from it here, in parallel with the other threads.
                        let _route = RouteView::parse(&m)?;
                        n += 1;
                    }
                    Ok::<u64, Error>(n)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<u64>>>()
    });
    // The kernel's error, or Error::Inconsistent if the dump was flagged NLM_F_DUMP_INTR.
    dump.finish()?;
    let counts = counts?;
    for (i, n) in counts.iter().enumerate() {
        writeln!(out, "thread {i}: {n} routes")?;
    }
    writeln!(out, "{} routes in all", counts.iter().sum::<u64>())?;
    Ok(counts)
}
