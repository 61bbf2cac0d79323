//! Helpers for the command-line tests: run `nlkit` and `ip` in the test's namespace.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `nlkit args…` and returns its output.
pub fn nlkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nlkit"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run nlkit")
}

/// Runs `nlkit args…`, asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = nlkit(args);
    assert!(
        out.status.success(),
        "nlkit {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `nlkit args…`, asserts failure with `code`, returns stderr.
pub fn fails(args: &[&str], code: i32) -> String {
    let out = nlkit(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "nlkit {} should exit {code}; stdout: {} stderr: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of `s` as a set (for outputs whose order is not defined).
pub fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// A namespace with a veth pair va/vb, addresses and a few routes of each kind.
pub fn setup() -> nlkit_testns::Veth {
    let v = nlkit_testns::veth_pair("va", "vb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
    for args in [
        &[
            "route",
            "add",
            "10.9.0.0/16",
            "via",
            "10.0.0.2",
            "metric",
            "10",
        ][..],
        &["route", "add", "10.8.0.0/16", "dev", "va", "table", "1000"],
        &[
            "route",
            "add",
            "10.7.0.0/16",
            "nexthop",
            "via",
            "10.0.0.2",
            "weight",
            "1",
            "nexthop",
            "via",
            "10.0.0.3",
            "weight",
            "2",
        ],
        &["route", "add", "blackhole", "10.6.0.0/16"],
        &["-6", "route", "add", "fd01::/64", "via", "fd00::2"],
        &[
            "neigh",
            "add",
            "10.0.0.5",
            "lladdr",
            "02:00:00:00:00:05",
            "dev",
            "va",
        ],
    ] {
        nlkit_testns::ip(args);
    }
    v
}

/// A `nlkit mirror` child process serving on its own socket; stopped (SIGTERM) on drop.
pub struct MirrorProcess {
    child: Option<Child>,
    dir: PathBuf,
    /// The mirror's socket.
    pub socket: PathBuf,
}

impl MirrorProcess {
    /// A mirror, once `nlkit --mirror-socket SOCKET link show` succeeds (its initial sync is
    /// done).
    pub fn start(tag: &str) -> MirrorProcess {
        Self::start_with(tag, &[], None)
    }

    /// A mirror with `extra` arguments to `nlkit mirror`, once `link show` succeeds through
    /// it (with `ready_env`=1 in the environment when given, e.g. `NLKIT_MIRROR_VIEW`).
    pub fn start_with(tag: &str, extra: &[&str], ready_env: Option<&str>) -> MirrorProcess {
        let dir = std::env::temp_dir().join(format!("nlkit-cli-{tag}-{}", std::process::id()));
        let socket = dir.join("mirror.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_nlkit"))
            .args(["--mirror-socket", socket.to_str().unwrap(), "mirror"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start nlkit mirror");
        let m = MirrorProcess {
            child: Some(child),
            dir,
            socket,
        };
        // The mirror listens once its initial sync is done.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut probe = Command::new(env!("CARGO_BIN_EXE_nlkit"));
            probe.args(["--mirror-socket", m.path(), "link", "show"]);
            if let Some(env) = ready_env {
                probe.env(env, "1");
            }
            let out = probe.stdin(Stdio::null()).output().expect("run nlkit");
            if out.status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "the mirror did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    /// The socket's path as a command-line argument.
    pub fn path(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// Stops the mirror (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = rustix::process::Pid::from_child(&c);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let _ = c.wait();
        }
    }
}

impl Drop for MirrorProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
