//! The socket path cannot be squatted or hijacked: the mirror refuses a directory another user
//! could write, a second mirror on a live path is refused (and the first keeps serving), a
//! stale socket is replaced, and a client refuses a server of another uid.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use nlkit_mirror::{DirProblem, Mirror, MirrorError};
use nlkit_socket::{Error, Pool, Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// An empty directory of this test (removed first if a previous run left it).
fn fresh_dir(tag: &str) -> PathBuf {
    let dir = socket_path(tag).parent().unwrap().to_path_buf();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// `lo` through `sock`: a get answered by whoever listens.
fn get_lo(sock: &mut Socket) -> Result<usize, Error> {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETLINK, 0, 0);
    req.header(&IfInfoMsg {
        index: 1,
        ..Default::default()
    });
    req.finish().unwrap();
    sock.transact(&mut req).map(|r| r.len())
}

/// A SEQPACKET socket bound at `path` (not listening).
fn bound_socket(path: &Path) -> std::os::fd::OwnedFd {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::bind(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
    fd
}

nlkit_testns::netns_test! {
    /// A directory made beforehand with mode 0777 (anyone could replace the socket in it) is
    /// refused with a typed error, and nothing is created in it.
    fn world_writable_dir_is_refused() {
        let dir = fresh_dir("dir0777");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Mirror::start(test_config("dir0777")).expect_err("mirror started in a 0777 dir");
        match &err {
            MirrorError::UnsafeSocketDir { dir: d, problem: DirProblem::Writable { mode } } => {
                assert_eq!(d, &dir);
                assert_eq!(*mode, 0o777);
            }
            e => panic!("wrong error: {e:?}"),
        }
        println!("refused: {err}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "something was created");
    }

    /// A directory owned by another uid is refused, even with mode 0700 (root only: chown).
    fn dir_of_another_uid_is_refused() {
        if !nlkit_testns::is_root() {
            println!("skipped: needs real root to chown a directory to uid 65534");
            return;
        }
        let dir = fresh_dir("dirother");
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let err = Mirror::start(test_config("dirother")).expect_err("mirror started");
        assert!(
            matches!(
                err,
                MirrorError::UnsafeSocketDir { problem: DirProblem::Owner { owner: 65534, .. }, .. }
            ),
            "wrong error: {err:?}"
        );
        println!("refused: {err}");
    }

    /// A second mirror on the path of a live one is refused — by the lock, and by the connect
    /// probe when the lock file is gone — and the first keeps serving after it gave up.
    fn second_mirror_is_refused_and_first_keeps_serving() {
        let first = start("twice", |_| {});
        let path = first.socket_path().to_path_buf();
        let err = Mirror::start(test_config("twice")).expect_err("second mirror started");
        assert!(matches!(err, MirrorError::AlreadyRunning { .. }), "wrong error: {err:?}");
        println!("refused: {err}");
        // Without the lock file (removed by hand), the live socket still answers the probe.
        let lock = path.with_file_name("mirror.sock.lock");
        std::fs::remove_file(&lock).unwrap();
        let err = Mirror::start(test_config("twice")).expect_err("second mirror started");
        assert!(matches!(err, MirrorError::AlreadyRunning { .. }), "wrong error: {err:?}");
        // The first one's socket is untouched and served.
        let mut sock = Socket::connect_unix(&path, Protocol::Route).unwrap();
        assert_eq!(get_lo(&mut sock).unwrap(), 1);
        let mut again = Socket::connect_unix(&path, Protocol::Route).unwrap();
        assert_eq!(get_lo(&mut again).unwrap(), 1);
        first.shutdown();
        assert!(!path.exists(), "the mirror left its socket behind");
    }

    /// A socket file nobody listens on (a mirror killed with SIGKILL leaves one) is replaced.
    fn stale_socket_is_replaced() {
        let dir = fresh_dir("stale");
        let path = dir.join("mirror.sock");
        drop(bound_socket(&path));
        assert!(path.exists());
        let m = start("stale", |_| {});
        let mut sock = Socket::connect_unix(&path, Protocol::Route).unwrap();
        assert_eq!(get_lo(&mut sock).unwrap(), 1);
        drop(m);
        assert!(!path.exists());
    }

    /// The client checks who serves: a server of its own uid is accepted; a server of another
    /// uid (root only: a thread that switched to uid 65534 before `listen`) is refused by
    /// `Socket::connect_unix` and `Pool::connect_unix` with `Error::UntrustedPeer`.
    fn client_refuses_a_server_of_another_uid() {
        let dir = fresh_dir("fake");
        let own = dir.join("own.sock");
        let fd = bound_socket(&own);
        rustix::net::listen(&fd, 8).unwrap();
        let sock = Socket::connect_unix(&own, Protocol::Route);
        assert!(sock.is_ok(), "own server refused: {:?}", sock.err());
        if !nlkit_testns::is_root() {
            println!("skipped: needs real root to listen as uid 65534");
            return;
        }
        let fake = dir.join("fake.sock");
        let fd = bound_socket(&fake);
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o777)).unwrap();
        // SO_PEERCRED of a listening socket is taken at `listen`, from the listening thread.
        std::thread::scope(|s| {
            s.spawn(|| {
                let nobody = rustix::process::Uid::from_raw(65534);
                rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
                rustix::net::listen(&fd, 8).unwrap();
            });
        });
        match Socket::connect_unix(&fake, Protocol::Route) {
            Err(Error::UntrustedPeer { uid: 65534, .. }) => {}
            other => panic!("fake server not refused: {other:?}"),
        }
        let pool = Pool::connect_unix(&fake, Protocol::Route);
        match pool.get() {
            Err(e @ Error::UntrustedPeer { .. }) => println!("refused: {e}"),
            other => panic!("fake server not refused by the pool: {other:?}"),
        }
    }

    /// `Mirror::run` returns as soon as the shutdown pipe is written (what the CLI's signal
    /// handler does), with a client still connected, and the socket is gone.
    fn run_stops_on_the_shutdown_pipe() {
        let m = start("run", |_| {});
        let path = m.socket_path().to_path_buf();
        let pipe = m.shutdown_handle().signal_pipe().unwrap();
        let t = std::thread::spawn(move || m.run());
        let mut sock = Socket::connect_unix(&path, Protocol::Route).unwrap();
        assert_eq!(get_lo(&mut sock).unwrap(), 1);
        rustix::io::write(&pipe, b"X").unwrap();
        t.join().unwrap().unwrap();
        assert!(!path.exists(), "socket left behind");
        assert!(get_lo(&mut sock).is_err(), "served after the shutdown");
    }
}
