//! The re-exec harness: a parent test that spawns its own binary for one test, in a namespace.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// Environment variable that tells a re-executed test binary which test runs in the namespace.
pub const CHILD_ENV: &str = "NLKIT_TESTNS_CHILD";

/// Set once the current process is inside a test namespace (child side only).
static IN_NETNS: AtomicBool = AtomicBool::new(false);

/// True inside a [`netns_test!`](crate::netns_test) body.
pub fn in_test_netns() -> bool {
    IN_NETNS.load(Ordering::Relaxed)
}

/// The name libtest knows a test by: its module path without the crate, then the function.
fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, rest)) => format!("{rest}::{name}"),
        None => name.to_owned(),
    }
}

/// Runs `body` in a fresh network namespace: the parent side spawns the test binary for this
/// one test; the child side (recognised by [`CHILD_ENV`]) brings `lo` up and runs `body`.
///
/// Used through [`netns_test!`](crate::netns_test); `module` is `module_path!()`.
pub fn run_in_netns(module: &str, name: &str, body: impl FnOnce()) {
    let path = test_path(module, name);
    if std::env::var(CHILD_ENV).is_ok_and(|v| v == path) {
        IN_NETNS.store(true, Ordering::Relaxed);
        crate::fixtures::set_link_up(1);
        body();
        return;
    }
    let out = spawn_child(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown by the test harness when this test fails (and with --nocapture).
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "test {path} failed in its network namespace ({})",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "test {path} did not run in its network namespace (filter matched nothing)"
    );
}

fn spawn_child(path: &str) -> Output {
    let exe = std::env::current_exe().expect("current test executable");
    let force_userns = std::env::var_os("NLKIT_TESTNS_USERNS").is_some();
    let mut cmd = Command::new(exe);
    cmd.args([path, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env_remove("NLKIT_TESTNS_USERNS")
        .stdin(Stdio::null());
    crate::isolate(&mut cmd, force_userns);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start test {path} in a new network namespace: {e}"))
}

/// Runs `cmd args…` (in the current namespace) and returns its output.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs `ip args…` and returns its standard output; panics if it fails.
pub fn ip(args: &[&str]) -> String {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when `name` is an executable on `PATH`.
pub fn have_command(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(name);
            p.is_file() && rustix::fs::access(&p, rustix::fs::Access::EXEC_OK).is_ok()
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_path_strips_crate() {
        assert_eq!(super::test_path("kernel", "t"), "t");
        assert_eq!(super::test_path("kernel::m::n", "t"), "m::n::t");
    }
}
