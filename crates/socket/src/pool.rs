//! A pool of idle sockets per protocol.

use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::options::{Protocol, SocketOptions};
use crate::{Result, Socket, SocketTransport};

/// Where a pool's new sockets come from.
#[derive(Debug)]
enum Origin {
    /// Kernel sockets opened in the namespace of the thread that calls `get`.
    Local,
    /// Kernel sockets opened inside this network namespace (see [`crate::netns`]).
    Netns(OwnedFd),
    /// Connections to the Unix `SOCK_SEQPACKET` socket at this path (see [`crate::unix`]).
    Unix(PathBuf),
}

impl Origin {
    fn transport(&self) -> SocketTransport {
        match self {
            Origin::Local | Origin::Netns(_) => SocketTransport::Netlink,
            Origin::Unix(_) => SocketTransport::Unix,
        }
    }
}

/// How many idle sockets a pool keeps (as Open vSwitch's `nl_pool`).
pub const POOL_IDLE_MAX: usize = 16;

#[derive(Debug)]
struct PoolInner {
    /// Immutable after construction.
    protocol: Protocol,
    /// Immutable after construction.
    options: SocketOptions,
    /// Where new sockets are opened or connected. Immutable after construction.
    origin: Origin,
    /// Idle sockets, all clean when pushed. Protected by its own mutex, held only to push or
    /// pop (never across a system call other than `close`).
    idle: Mutex<Vec<Socket>>,
}

/// A pool of sockets of one protocol, keeping up to [`POOL_IDLE_MAX`] idle ones.
///
/// [`get`](Pool::get) reuses an idle socket or opens one; the [`PooledSocket`] goes back to
/// the pool when dropped, but only if it is clean ([`Socket::is_clean`]: no pending error, no
/// unread data, no unfinished operation). Otherwise it is closed. Cloning a `Pool` shares it.
///
/// Sockets belong to the network namespace they were opened in; a pool opened with
/// [`Pool::shared`] serves the namespace of the thread that first calls `get`. A pool made
/// with [`Pool::connect_unix`] holds connections to a local Netlink server (the nlkit mirror)
/// instead, so [`SharedDump`](crate::SharedDump) and
/// [`consistent_dump`](crate::consistent_dump) run on it unchanged.
///
/// ```no_run
/// use nlkit_socket::{Pool, Protocol};
/// let pool = Pool::shared(Protocol::Route);
/// let mut sock = pool.get()?;
/// // ... sock.transact(...)
/// drop(sock); // back to the pool if clean
/// assert!(pool.idle() <= 16);
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    /// A new, empty pool whose sockets are opened with `options`.
    pub fn new(protocol: Protocol, options: SocketOptions) -> Pool {
        Pool::with_origin(protocol, options, Origin::Local)
    }

    fn with_origin(protocol: Protocol, options: SocketOptions, origin: Origin) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                protocol,
                options,
                origin,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A pool whose sockets are opened inside the network namespace `netns` (see
    /// [`netns`](crate::netns)).
    ///
    /// ```no_run
    /// use nlkit_socket::{netns, Pool, Protocol, SocketOptions};
    /// let pool = Pool::in_netns(Protocol::Route, SocketOptions::default(), netns::open_named("blue")?);
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn in_netns(protocol: Protocol, options: SocketOptions, netns: OwnedFd) -> Pool {
        Pool::with_origin(protocol, options, Origin::Netns(netns))
    }

    /// A pool of connections to the Unix `SOCK_SEQPACKET` socket at `path`, whose server
    /// speaks Netlink framing (the nlkit mirror): [`get`](Pool::get) connects with
    /// [`Socket::connect_unix`] when no idle connection is left. Nothing connects before the
    /// first `get`. The pool's [`options`](Pool::options) are the defaults and are not used.
    ///
    /// ```no_run
    /// use nlkit_socket::{DumpBuffer, Pool, Protocol, SharedDump};
    /// use nlkit_wire::{consts::*, MessageBuilder, RtMsg};
    ///
    /// let mirror = Pool::connect_unix("/run/nlkit/mirror.sock", Protocol::Route);
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETROUTE, NLM_F_DUMP, 0);
    /// req.header(&RtMsg { family: AF_INET, ..Default::default() });
    /// req.finish().unwrap();
    /// let dump = SharedDump::start(&mirror, &mut req)?;
    /// let mut buf = DumpBuffer::new();
    /// while let Some(route) = dump.next(&mut buf)? {
    ///     println!("route message of {} bytes", route.len());
    /// }
    /// dump.finish()?;
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn connect_unix(path: impl AsRef<Path>, protocol: Protocol) -> Pool {
        Pool::with_origin(
            protocol,
            SocketOptions::default(),
            Origin::Unix(path.as_ref().to_path_buf()),
        )
    }

    /// The process-wide pool for `protocol`, with default options.
    pub fn shared(protocol: Protocol) -> &'static Pool {
        static POOLS: [OnceLock<Pool>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        POOLS[protocol.index()].get_or_init(|| Pool::new(protocol, SocketOptions::default()))
    }

    /// The protocol of this pool's sockets.
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// The options new sockets are opened with.
    pub fn options(&self) -> &SocketOptions {
        &self.inner.options
    }

    /// What this pool's sockets are connected over.
    pub fn transport(&self) -> SocketTransport {
        self.inner.origin.transport()
    }

    /// Takes an idle socket or opens a new one.
    pub fn get(&self) -> Result<PooledSocket> {
        let mut idle = self.inner.idle.lock().pop();
        // A Unix peer may have closed an idle connection since it was pooled (the mirror
        // times out idle clients): such a connection is dropped, not handed out.
        while let Some(s) = idle.as_mut() {
            if s.transport() == SocketTransport::Netlink || s.is_clean() {
                break;
            }
            idle = self.inner.idle.lock().pop();
        }
        let sock = match idle {
            Some(s) => s,
            None => match &self.inner.origin {
                Origin::Local => Socket::with_options(self.inner.protocol, &self.inner.options)?,
                Origin::Netns(ns) => {
                    crate::netns::open_socket(ns, self.inner.protocol, &self.inner.options)?
                }
                Origin::Unix(path) => Socket::connect_unix(path, self.inner.protocol)?,
            },
        };
        Ok(PooledSocket {
            sock: Some(sock),
            pool: self.clone(),
        })
    }

    /// Returns `sock` to the pool if it is clean and there is room; closes it otherwise.
    /// Returns whether it was kept.
    pub fn put(&self, mut sock: Socket) -> bool {
        if sock.protocol() != self.inner.protocol
            || sock.transport() != self.transport()
            || !sock.is_clean()
        {
            tracing::debug!(
                port_id = sock.port_id(),
                "closing socket instead of pooling it"
            );
            return false;
        }
        let mut idle = self.inner.idle.lock();
        if idle.len() >= POOL_IDLE_MAX {
            return false;
        }
        idle.push(sock);
        true
    }

    /// How many idle sockets the pool holds.
    pub fn idle(&self) -> usize {
        self.inner.idle.lock().len()
    }
}

/// A socket borrowed from a [`Pool`]; it returns there on drop if clean.
///
/// ```no_run
/// let pool = nlkit_socket::Pool::shared(nlkit_socket::Protocol::Netfilter);
/// let sock = pool.get()?;
/// let owned: nlkit_socket::Socket = sock.detach(); // never goes back
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
#[derive(Debug)]
pub struct PooledSocket {
    /// Always `Some` until dropped or detached.
    sock: Option<Socket>,
    pool: Pool,
}

impl PooledSocket {
    /// Takes the socket out of the pool's care: it will not be returned.
    pub fn detach(mut self) -> Socket {
        self.sock
            .take()
            .expect("PooledSocket holds its socket until drop")
    }

    /// Marks the socket as unusable for others: it is closed instead of returned.
    pub fn discard(&mut self) {
        if let Some(s) = self.sock.as_mut() {
            s.poisoned = true;
        }
    }

    /// The pool this socket returns to.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Deref for PooledSocket {
    type Target = Socket;
    fn deref(&self) -> &Socket {
        self.sock
            .as_ref()
            .expect("PooledSocket holds its socket until drop")
    }
}

impl DerefMut for PooledSocket {
    fn deref_mut(&mut self) -> &mut Socket {
        self.sock
            .as_mut()
            .expect("PooledSocket holds its socket until drop")
    }
}

impl Drop for PooledSocket {
    fn drop(&mut self) {
        if let Some(s) = self.sock.take() {
            self.pool.put(s);
        }
    }
}
