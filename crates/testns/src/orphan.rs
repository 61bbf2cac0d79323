//! Timing how soon a child's worker process dies after the child is SIGKILLed.

use std::io::BufRead;
use std::process::Child;
use std::time::{Duration, Instant};

/// Reads the worker's pid from the first line of `child`'s stdout (which must be piped),
/// opens a pidfd on it, SIGKILLs `child`, and waits (at most 20 s) for the worker to exit.
/// Returns the worker's pid, when the kill was sent, and how long after it the worker exited — seen through the pidfd,
/// so whoever reaps it and whenever. `child` is reaped before returning.
///
/// Panics (this is test support) when the worker outlives the deadline.
///
/// ```no_run
/// let mut child = std::process::Command::new("/proc/self/exe")
///     .stdout(std::process::Stdio::piped())
///     .spawn()
///     .unwrap();
/// let (pid, _killed, took) = nlkit_testns::kill_and_time_worker(&mut child);
/// println!("worker {pid} exited {took:?} after its parent was killed");
/// ```
pub fn kill_and_time_worker(child: &mut Child) -> (i32, Instant, Duration) {
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the worker's pid");
    let pid: i32 = line.trim().parse().expect("worker pid");
    // The pidfd turns readable when the worker exits, whoever reaps it and when.
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).expect("a positive pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd_open");
    child.kill().expect("SIGKILL the child");
    let killed = Instant::now();
    let mut fds = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let limit = rustix::event::Timespec {
        tv_sec: 20,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut fds, Some(&limit)).expect("poll the pidfd");
    let took = killed.elapsed();
    assert_eq!(ready, 1, "worker {pid} outlived its SIGKILLed parent");
    child.wait().expect("reap the child");
    (pid, killed, took)
}
