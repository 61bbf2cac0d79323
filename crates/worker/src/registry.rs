//! Handlers, registered by id and name. Nothing executable crosses the process boundary: the
//! main process names a handler, the worker looks the id up in its own table.

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::WorkerError;

/// The id of a handler on the wire.
///
/// ```
/// use nlkit_worker::Opcode;
/// assert_eq!(Opcode(3).0, 3);
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Opcode(pub u16);

/// A request as the worker's handler sees it.
#[derive(Debug)]
pub struct Request<'a> {
    /// The handler id.
    pub opcode: Opcode,
    /// The request's sequence number.
    pub seq: u64,
    /// The payload (copied out of the channel, so the main process cannot change it).
    pub payload: &'a [u8],
    /// Descriptors sent with the request, owned (close-on-exec).
    pub fds: Vec<OwnedFd>,
}

impl Request<'_> {
    /// Decodes the payload as postcard.
    ///
    /// ```
    /// use nlkit_worker::{Opcode, Request};
    /// let bytes = postcard::to_allocvec(&(1u32, "x")).unwrap();
    /// let req = Request { opcode: Opcode(1), seq: 1, payload: &bytes, fds: vec![] };
    /// let (n, s): (u32, String) = req.decode().unwrap();
    /// assert_eq!((n, s.as_str()), (1, "x"));
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        postcard::from_bytes(self.payload)
            .map_err(|e| HandlerError::new(format!("bad request payload: {e}")))
    }
}

/// What a handler returns: payload bytes and descriptors.
///
/// ```
/// use nlkit_worker::Response;
/// let r = Response::encode(&42u64).unwrap();
/// assert_eq!(postcard::from_bytes::<u64>(&r.payload).unwrap(), 42);
/// ```
#[derive(Debug, Default)]
pub struct Response {
    /// Reply payload (at most [`MAX_PAYLOAD`](crate::MAX_PAYLOAD) bytes).
    pub payload: Vec<u8>,
    /// Descriptors to send back (at most [`MAX_FDS`](crate::MAX_FDS)).
    pub fds: Vec<OwnedFd>,
}

impl Response {
    /// A reply of raw bytes (for example raw netlink reply messages).
    pub fn bytes(payload: Vec<u8>) -> Self {
        Self {
            payload,
            fds: Vec::new(),
        }
    }

    /// A reply encoded with postcard.
    pub fn encode<T: Serialize>(value: &T) -> Result<Self, HandlerError> {
        postcard::to_allocvec(value)
            .map(Self::bytes)
            .map_err(|e| HandlerError::new(format!("encoding reply: {e}")))
    }
}

/// A handler's failure: a message and, when the failure has one, the errno behind it. It
/// crosses the process boundary as `(errno, message)` and comes back to the caller as
/// [`WorkerError::Handler`](crate::WorkerError::Handler), so a caller can map it back to a
/// typed error of its own (the mirror answers its client with that errno and message).
///
/// ```
/// use nlkit_worker::HandlerError;
/// let e: HandlerError = std::io::Error::from_raw_os_error(17).into();
/// assert_eq!(e.errno, Some(17));
/// assert_eq!(HandlerError::new("boom").to_string(), "boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// The positive errno behind the failure, if there is one.
    pub errno: Option<i32>,
    /// What went wrong (at most 4 KiB of it crosses the channel).
    pub message: String,
}

impl HandlerError {
    /// A failure without an errno.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            errno: None,
            message: message.into(),
        }
    }

    /// A failure with the errno behind it.
    pub fn with_errno(errno: i32, message: impl Into<String>) -> Self {
        HandlerError {
            errno: Some(errno),
            message: message.into(),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<std::io::Error> for HandlerError {
    fn from(e: std::io::Error) -> Self {
        HandlerError {
            errno: e.raw_os_error(),
            message: e.to_string(),
        }
    }
}

impl From<String> for HandlerError {
    fn from(e: String) -> Self {
        Self::new(e)
    }
}

impl From<&str> for HandlerError {
    fn from(e: &str) -> Self {
        Self::new(e)
    }
}

type HandlerFn = Box<dyn FnMut(Request<'_>) -> Result<Response, HandlerError> + Send>;

/// The worker's handler table: id → (name, function). Built by the same code in every process
/// (the worker is the same binary), and announced to the main process by name at start-up.
///
/// ```
/// use nlkit_worker::{Registry, Response};
/// let registry = Registry::new()
///     .register(1, "echo", |req| Ok(Response::bytes(req.payload.to_vec())))
///     .register(2, "len", |req| Response::encode(&(req.payload.len() as u64)));
/// assert_eq!(registry.names().count(), 2);
/// ```
#[derive(Default)]
pub struct Registry {
    handlers: BTreeMap<u16, (String, HandlerFn)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.names().map(|(id, n)| (id.0, n)))
            .finish()
    }
}

impl Registry {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds handler `id` named `name`.
    ///
    /// # Panics
    /// If the id or the name is already registered (a programming error).
    pub fn register<F>(mut self, id: u16, name: &str, handler: F) -> Self
    where
        F: FnMut(Request<'_>) -> Result<Response, HandlerError> + Send + 'static,
    {
        assert!(
            !self.handlers.contains_key(&id) && self.names().all(|(_, n)| n != name),
            "worker handler {id}/{name:?} registered twice"
        );
        self.handlers
            .insert(id, (name.to_owned(), Box::new(handler)));
        self
    }

    /// The registered (id, name) pairs.
    pub fn names(&self) -> impl Iterator<Item = (Opcode, &str)> {
        self.handlers
            .iter()
            .map(|(id, (n, _))| (Opcode(*id), n.as_str()))
    }

    pub(crate) fn dispatch(&mut self, req: Request<'_>) -> Result<Response, HandlerError> {
        match self.handlers.get_mut(&req.opcode.0) {
            Some((_, f)) => f(req),
            None => Err(HandlerError::new(format!(
                "no handler with id {}",
                req.opcode.0
            ))),
        }
    }
}

/// A reply as the main process receives it.
///
/// ```
/// use nlkit_worker::WorkerReply;
/// let r = WorkerReply { seq: 1, payload: postcard::to_allocvec(&5u8).unwrap(), fds: vec![] };
/// assert_eq!(r.decode::<u8>().unwrap(), 5);
/// ```
#[derive(Debug)]
pub struct WorkerReply {
    /// The sequence number of the request answered.
    pub seq: u64,
    /// Reply payload (owned: copied out of the channel).
    pub payload: Vec<u8>,
    /// Descriptors sent back, owned (close-on-exec).
    pub fds: Vec<OwnedFd>,
}

impl WorkerReply {
    /// Decodes the payload as postcard.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, WorkerError> {
        Ok(postcard::from_bytes(&self.payload)?)
    }
}

/// The start-up message from the worker.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Hello {
    pub pid: u32,
    pub handlers: Vec<(Opcode, String)>,
}

/// The first message from the main process: which transport, and the ring geometry.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct Setup {
    /// 0: socket pair only; 1: frame ring (fds: memfd, main eventfd, worker eventfd).
    pub transport: u8,
    pub frame_size: u32,
    pub frame_nr: u32,
    pub spin: u32,
}
