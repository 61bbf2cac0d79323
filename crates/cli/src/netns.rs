//! Network namespaces for the command line: `--netns NAME` (enter a named namespace, as
//! `ip -n` does) and the private namespace `nlkit demo` and `nlkit bench` run in.
//!
//! The private namespace is a re-execution of `nlkit` itself in a fresh network namespace
//! (and a user namespace when not root), set up by [`nlkit_testns::isolate`], the same sandbox
//! every kernel test runs in. When the child exits, for any reason including Ctrl-C, the kernel
//! destroys the namespace with every link, route and conntrack entry in it: cleanup cannot be
//! forgotten.

use std::process::{Command, ExitStatus};

use anyhow::Context;

/// Set in the re-executed child so that it knows it already is in its private namespace.
pub const PRIVATE_ENV: &str = "NLKIT_PRIVATE_NETNS";

/// Moves this process into the named network namespace `/run/netns/NAME`.
///
/// Called first thing in `main`, before any thread exists, so every later thread inherits it.
pub fn enter_named(name: &str) -> anyhow::Result<()> {
    if name.contains('/') {
        anyhow::bail!("invalid namespace name \"{name}\"");
    }
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path)
        .with_context(|| format!("cannot open network namespace \"{name}\" ({path})"))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&f),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .with_context(|| format!("cannot enter network namespace \"{name}\""))?;
    Ok(())
}

/// True when this process was started by [`run_private`].
pub fn in_private() -> bool {
    std::env::var_os(PRIVATE_ENV).is_some()
}

/// Re-executes this program with the same arguments in a fresh private network namespace and
/// waits for it. Ctrl-C reaches the child too (same process group); the namespace dies with it.
pub fn run_private() -> anyhow::Result<ExitStatus> {
    let exe = std::env::current_exe().context("cannot find own executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).env(PRIVATE_ENV, "1");
    nlkit_testns::isolate(&mut cmd, false);
    // Ctrl-C: the child handles it and exits; the parent only waits.
    cmd.status()
        .context("cannot start a private network namespace")
}

/// Runs `body` in a private network namespace: directly when this process already is the
/// re-executed child, otherwise by re-executing `nlkit` with the same arguments in a new
/// namespace and exiting with the child's status.
pub fn private(body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if in_private() {
        return body();
    }
    let status = run_private()?;
    std::process::exit(status.code().unwrap_or(1));
}
