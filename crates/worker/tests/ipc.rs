//! Integration tests of the worker process and its channel, over both transports.
//!
//! `harness = false`: the worker re-executes this very binary, so `main` must call
//! `maybe_run_worker` before anything else — libtest's harness would run tests instead. The
//! binary also plays a short-lived "main process" for the main-exiting test (`ROLE_ENV`).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nlkit_worker::{
    maybe_run_worker, ChannelTransport, HandlerError, Registry, Response, Worker, WorkerConfig,
    WorkerError,
};

const ROLE_ENV: &str = "NLKIT_WORKER_TEST_ROLE";

fn registry() -> Registry {
    Registry::new()
        .register(1, "echo", |req| Ok(Response::bytes(req.payload.to_vec())))
        .register(2, "write-fd", |req| {
            let fd = req.fds.into_iter().next().ok_or("no descriptor")?;
            let mut file = std::fs::File::from(fd);
            file.write_all(req.payload)?;
            Ok(Response::default())
        })
        .register(3, "make-pipe", |req| {
            let (r, w) = rustix::pipe::pipe().map_err(std::io::Error::from)?;
            std::fs::File::from(w).write_all(req.payload)?;
            Ok(Response {
                payload: Vec::new(),
                fds: vec![r],
            })
        })
        .register(4, "sleep-us", |req| {
            let us: u64 = req.decode()?;
            std::thread::sleep(Duration::from_micros(us));
            Ok(Response::default())
        })
        .register(5, "append", |req| {
            let (path, line): (String, String) = req.decode()?;
            std::thread::sleep(Duration::from_millis(2));
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)?;
            writeln!(f, "{line}")?;
            Ok(Response::default())
        })
        .register(6, "corrupt", |req| {
            // Misbehave on purpose: write garbage straight onto the channel.
            let garbage: Vec<u8> = match req.payload.first() {
                Some(0) => vec![0xAB; 40], // bad magic
                Some(1) => {
                    corrupt_header(|h| h[16..20].copy_from_slice(&1_000_000_000u32.to_le_bytes()))
                }
                Some(2) => corrupt_header(|h| h[16..20].copy_from_slice(&5u32.to_le_bytes())), // len mismatch
                _ => corrupt_header(|h| h[8..16].copy_from_slice(&999u64.to_le_bytes())), // wrong seq
            };
            // SAFETY: fd 3 is the worker's channel, alive for the whole worker process.
            let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(nlkit_worker::WORKER_FD) };
            rustix::net::send(sock, &garbage, rustix::net::SendFlags::NOSIGNAL)
                .map_err(std::io::Error::from)?;
            Ok(Response::default())
        })
        .register(7, "fail", |_| Err(HandlerError::new("refused on purpose")))
        .register(8, "cloexec", |req| {
            let all = req.fds.iter().all(|fd| {
                rustix::io::fcntl_getfd(fd).is_ok_and(|f| f.contains(rustix::io::FdFlags::CLOEXEC))
            });
            Response::encode(&all)
        })
}

fn corrupt_header(edit: impl FnOnce(&mut [u8; 24])) -> Vec<u8> {
    let h = nlkit_worker::Header {
        kind: nlkit_worker::Kind::Reply,
        opcode: 6,
        seq: 1,
        len: 0,
        nfds: 0,
    };
    let mut b = h.encode();
    edit(&mut b);
    b.to_vec()
}

fn transports() -> [(&'static str, ChannelTransport); 2] {
    [
        ("socketpair", ChannelTransport::SocketPair),
        (
            "ring",
            ChannelTransport::Ring {
                frame_size: 2048,
                frames: 64,
            },
        ),
    ]
}

fn spawn(transport: ChannelTransport) -> Worker {
    Worker::spawn(WorkerConfig {
        transport,
        ..WorkerConfig::default()
    })
    .expect("spawn worker")
}

fn payload(i: usize) -> Vec<u8> {
    // 0 .. 6000 bytes: many are larger than a 2 KiB frame and travel as COPY frames.
    let len = (i * 131) % 6000;
    (0..len).map(|k| (i + k) as u8).collect()
}

fn ordering_under_load(t: ChannelTransport) {
    let mut w = spawn(t);
    let echo = w.opcode("echo").unwrap();
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    const N: usize = 20_000;
    for i in 0..N {
        let got = got.clone();
        let p = payload(i);
        loop {
            let got = got.clone();
            let expect = p.clone();
            match w.submit(echo, &p, Vec::new(), move |r| {
                let r = r.expect("reply");
                assert_eq!(r.payload, expect, "reply {i} payload");
                got.borrow_mut().push(i);
            }) {
                Ok(_) => break,
                Err(WorkerError::Backpressure(_)) => {
                    w.wait(Some(Duration::from_millis(10))).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        if i % 64 == 0 {
            w.run().unwrap();
        }
    }
    assert!(w.drain(Duration::from_secs(60)).unwrap());
    let got = got.borrow();
    assert_eq!(got.len(), N);
    assert!(
        got.iter().enumerate().all(|(k, &i)| k == i),
        "replies in submission order"
    );
}

fn fd_passing(t: ChannelTransport) {
    let mut w = spawn(t);
    // Main → worker: the worker writes through the pipe we pass.
    let (r, wr) = rustix::pipe::pipe().unwrap();
    let op = w.opcode("write-fd").unwrap();
    w.call(op, b"through the pipe", vec![wr]).unwrap();
    let mut s = String::new();
    std::fs::File::from(r).read_to_string(&mut s).unwrap();
    assert_eq!(s, "through the pipe");
    // Worker → main: a pipe's read end comes back, close-on-exec.
    let op = w.opcode("make-pipe").unwrap();
    let reply = w.call(op, b"from the worker", Vec::new()).unwrap();
    assert_eq!(reply.fds.len(), 1);
    let fd: OwnedFd = reply.fds.into_iter().next().unwrap();
    assert!(rustix::io::fcntl_getfd(&fd)
        .unwrap()
        .contains(rustix::io::FdFlags::CLOEXEC));
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    assert_eq!(s, "from the worker");
    // Descriptors the worker receives are close-on-exec too.
    let op = w.opcode("cloexec").unwrap();
    let (a, b) = rustix::pipe::pipe().unwrap();
    assert!(w.call_typed::<(), bool>(op, &()).unwrap());
    assert!(w
        .call(op, &[], vec![a, b])
        .unwrap()
        .decode::<bool>()
        .unwrap());
}

fn large_payloads(t: ChannelTransport) {
    let mut w = spawn(t);
    let echo = w.opcode("echo").unwrap();
    let big: Vec<u8> = (0..nlkit_worker::MAX_PAYLOAD)
        .map(|i| (i * 7) as u8)
        .collect();
    assert_eq!(w.call(echo, &big, Vec::new()).unwrap().payload, big);
    let too_big = vec![0u8; nlkit_worker::MAX_PAYLOAD + 1];
    assert!(matches!(
        w.call(echo, &too_big, Vec::new()),
        Err(WorkerError::TooLarge(_))
    ));
    // Flood with large messages both ways: socket buffers fill, `run()` keeps draining replies.
    let done = std::rc::Rc::new(std::cell::Cell::new(0));
    for _ in 0..200 {
        let done = done.clone();
        w.submit(echo, &big[..100_000], Vec::new(), move |r| {
            assert_eq!(r.unwrap().payload.len(), 100_000);
            done.set(done.get() + 1);
        })
        .unwrap();
    }
    assert!(w.drain(Duration::from_secs(60)).unwrap());
    assert_eq!(done.get(), 200);
    // Handler errors and unknown handlers are clean errors.
    let fail = w.opcode("fail").unwrap();
    assert!(
        matches!(w.call(fail, b"", Vec::new()), Err(WorkerError::Handler(m)) if m.message.contains("on purpose"))
    );
    assert!(matches!(
        w.opcode("nope"),
        Err(WorkerError::UnknownHandler(_))
    ));
    assert!(matches!(
        w.call(nlkit_worker::Opcode(999), b"", Vec::new()),
        Err(WorkerError::Handler(_))
    ));
}

fn pipelined_100k(t: ChannelTransport) {
    let mut w = spawn(t);
    let echo = w.opcode("echo").unwrap();
    const N: u64 = 100_000;
    let mut next_reply = 1u64;
    let mut sent = 0u64;
    while next_reply <= N {
        while sent < N {
            match w.send(echo, &sent.to_le_bytes(), Vec::new()) {
                Ok(_) => sent += 1,
                Err(WorkerError::Backpressure(_)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        w.wait(Some(Duration::from_millis(100))).unwrap();
        while let Some(r) = w.take_reply() {
            let r = r.unwrap();
            assert_eq!(r.seq, next_reply);
            assert_eq!(r.payload, (next_reply - 1).to_le_bytes());
            next_reply += 1;
        }
    }
}

fn kill_9_mid_stream(t: ChannelTransport) {
    let mut w = spawn(t);
    let sleep = w.opcode("sleep-us").unwrap();
    let failed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let payload = postcard::to_allocvec(&200u64).unwrap();
    for i in 0..2000u64 {
        let failed = failed.clone();
        w.submit(sleep, &payload, Vec::new(), move |r| match r {
            Ok(_) => assert!(failed.borrow().is_empty(), "a success after a failure"),
            Err(e) => {
                assert!(e.is_worker_gone(), "{e}");
                failed.borrow_mut().push(i);
            }
        })
        .unwrap();
    }
    // Let some complete, then kill -9 the worker mid-stream.
    while w.in_flight() > 1900 {
        w.wait(Some(Duration::from_millis(50))).unwrap();
    }
    let killed = Instant::now();
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(w.pid() as i32, libc::SIGKILL) }, 0);
    while w.in_flight() > 0 {
        w.wait(Some(Duration::from_millis(100))).unwrap();
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "failures not delivered"
        );
    }
    let took = killed.elapsed();
    let failed = failed.borrow();
    assert!(!failed.is_empty());
    assert!(
        failed.windows(2).all(|p| p[1] == p[0] + 1),
        "failures in order"
    );
    assert_eq!(*failed.last().unwrap(), 1999);
    assert!(!w.is_alive());
    assert!(matches!(
        w.call(sleep, &payload, Vec::new()),
        Err(WorkerError::WorkerGone(_))
    ));
    println!(
        "    kill -9 → {} outstanding requests failed in {:?}",
        failed.len(),
        took
    );
    w.restart().unwrap();
    assert_eq!(w.epoch(), 1);
    assert_eq!(
        w.call(w.opcode("echo").unwrap(), b"again", Vec::new())
            .unwrap()
            .payload,
        b"again"
    );
}

fn corrupted_channel(t: ChannelTransport) {
    for variant in 0u8..4 {
        let mut w = spawn(t);
        let corrupt = w.opcode("corrupt").unwrap();
        let echo = w.opcode("echo").unwrap();
        let r1 = w.call(corrupt, &[variant], Vec::new());
        // Socket pair: the garbage is the next message. Ring: it sits on the socket until the
        // next COPY frame (a reply larger than a frame) makes the main process read it.
        let r = match (t, r1) {
            (ChannelTransport::SocketPair, r) => r.map(|_| ()),
            (_, Ok(_)) => w.call(echo, &[1u8; 5000], Vec::new()).map(|_| ()),
            (_, Err(e)) => Err(e),
        };
        let err = r.expect_err("garbage must be an error");
        assert!(
            matches!(err, WorkerError::Protocol(_) | WorkerError::WorkerGone(_)),
            "{err}"
        );
        assert!(!w.is_alive());
        w.restart().unwrap();
        assert_eq!(w.call(echo, b"ok", Vec::new()).unwrap().payload, b"ok");
    }
}

fn main_exiting(t: ChannelTransport) {
    let dir = std::env::temp_dir().join(format!(
        "nlkit-worker-test-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    let path = dir.with_extension("log");
    let _ = std::fs::remove_file(&path);
    let out = std::process::Command::new("/proc/self/exe")
        .env(
            ROLE_ENV,
            if t == ChannelTransport::SocketPair {
                "exit-socket"
            } else {
                "exit-ring"
            },
        )
        .env("NLKIT_TEST_PATH", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inner main failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("worker pid");
    // The worker finishes the buffered requests, then exits.
    let start = Instant::now();
    loop {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
        if !alive {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "worker {pid} outlived its main process"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let want: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want, "all buffered requests ran, in order");
    let _ = std::fs::remove_file(&path);
}

/// The short-lived main process of `main_exiting`: submit 50 slow requests, exit at once.
fn inner_main(role: &str) {
    match role {
        "sleep-socket" => return sleeping_main(ChannelTransport::SocketPair),
        "sleep-ring" => {
            return sleeping_main(ChannelTransport::Ring {
                frame_size: 2048,
                frames: 64,
            })
        }
        _ => {}
    }
    let t = if role == "exit-socket" {
        ChannelTransport::SocketPair
    } else {
        ChannelTransport::Ring {
            frame_size: 2048,
            frames: 64,
        }
    };
    let mut w = spawn(t);
    let append = w.opcode("append").unwrap();
    let path = std::env::var("NLKIT_TEST_PATH").unwrap();
    for i in 0..50 {
        let p = postcard::to_allocvec(&(path.clone(), format!("line {i}"))).unwrap();
        w.send(append, &p, Vec::new()).unwrap();
    }
    w.run().unwrap();
    println!("{}", w.pid());
    std::io::stdout().flush().unwrap();
    std::process::exit(0); // no Drop: the main process simply goes away
}

/// A main process killed with SIGKILL: its worker must notice (hang-up, parent-death signal)
/// and exit promptly. This process becomes a child subreaper so the orphaned worker is
/// reparented to it and reaped here, which times its exit exactly (a zombie is not "alive").
/// The main process holds some memory and runs a few threads, as a mirror does: the kernel
/// tears a dying process's memory down before it closes its descriptors, and the worker must
/// not wait for that. Checked loosely (no speed assertion; the time is printed).
fn parent_sigkilled(t: ChannelTransport) {
    // SAFETY: plain prctl(2) with integer arguments.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let role = if t == ChannelTransport::SocketPair {
        "sleep-socket"
    } else {
        "sleep-ring"
    };
    let mut parent = std::process::Command::new("/proc/self/exe")
        .env(ROLE_ENV, role)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (pid, killed, took) = nlkit_testns::kill_and_time_worker(&mut parent);
    let reaped = killed.elapsed();
    // The orphan is ours to reap once its main process is gone (subreaper).
    let mut status = 0;
    // SAFETY: waitpid(2) on the orphaned worker, now our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    // SAFETY: plain prctl(2) with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    println!(
        "    main process SIGKILLed → worker exited after {took:?} (main reaped after {reaped:?})"
    );
}

/// The main process of `parent_sigkilled`: a few idle threads and `NLKIT_TEST_BALLAST_MB`
/// (default 256) of touched memory; the worker is spawned and owned by a long-lived thread;
/// report the worker's pid and wait to be killed.
fn sleeping_main(t: ChannelTransport) {
    let mb: usize = std::env::var("NLKIT_TEST_BALLAST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let ballast = vec![1u8; mb << 20];
    std::hint::black_box(&ballast);
    for _ in 0..3 {
        std::thread::spawn(|| std::thread::sleep(Duration::from_secs(600)));
    }
    std::thread::spawn(move || {
        let mut w = spawn(t);
        let echo = w.opcode("echo").unwrap();
        assert_eq!(w.call(echo, b"up", Vec::new()).unwrap().payload, b"up");
        println!("{}", w.pid());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(600));
    });
    std::thread::sleep(Duration::from_secs(600));
}

fn poll_fd_is_pollable(t: ChannelTransport) {
    let mut w = spawn(t);
    let echo = w.opcode("echo").unwrap();
    w.send(echo, b"x", Vec::new()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fds = [rustix::event::PollFd::new(&w, rustix::event::PollFlags::IN)];
        rustix::event::poll(
            &mut fds,
            Some(&rustix::event::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            }),
        )
        .unwrap();
        w.run().unwrap();
        if let Some(r) = w.take_reply() {
            assert_eq!(r.unwrap().payload, b"x");
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let _ = w.as_fd();
}

type Test = (&'static str, fn(ChannelTransport));

fn main() {
    maybe_run_worker(registry);
    if let Ok(role) = std::env::var(ROLE_ENV) {
        inner_main(&role);
        return;
    }
    let tests: [Test; 9] = [
        ("ordering_under_load", ordering_under_load),
        ("fd_passing", fd_passing),
        ("large_payloads", large_payloads),
        ("pipelined_100k", pipelined_100k),
        ("kill_9_mid_stream", kill_9_mid_stream),
        ("corrupted_channel", corrupted_channel),
        ("main_exiting", main_exiting),
        ("poll_fd_is_pollable", poll_fd_is_pollable),
        ("parent_sigkilled", parent_sigkilled),
    ];
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (mut passed, mut failed, mut filtered) = (0, 0, 0);
    let started = Instant::now();
    for (name, test) in tests {
        for (tname, t) in transports() {
            let full = format!("{name}::{tname}");
            if filter.as_ref().is_some_and(|f| !full.contains(f.as_str())) {
                filtered += 1;
                continue;
            }
            let t0 = Instant::now();
            match catch_unwind(AssertUnwindSafe(|| test(t))) {
                Ok(()) => {
                    passed += 1;
                    println!("test {full} ... ok ({:.2?})", t0.elapsed());
                }
                Err(_) => {
                    failed += 1;
                    println!("test {full} ... FAILED");
                }
            }
        }
    }
    let status = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {status}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {filtered} filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(101);
    }
}
