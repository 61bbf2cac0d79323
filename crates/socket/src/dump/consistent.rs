//! Dumps restarted until the kernel reports them consistent.

use nlkit_wire::MessageBuilder;

use super::SharedDump;
use crate::pool::Pool;
use crate::{Error, Result};

/// How many times [`consistent_dump`] tries by default.
pub const DEFAULT_ATTEMPTS: u32 = 5;

/// The result of [`consistent_dump`]: what the last attempt produced, and how it went.
///
/// ```
/// let c = nlkit_socket::Consistent { value: 3, attempts: 1, consistent: true };
/// assert_eq!(c.into_result().unwrap(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Consistent<T> {
    /// What the last attempt's consumer returned.
    pub value: T,
    /// How many dumps were run (1 when the first was consistent).
    pub attempts: u32,
    /// False when every attempt was flagged `NLM_F_DUMP_INTR`: `value` may be inconsistent.
    pub consistent: bool,
}

impl<T> Consistent<T> {
    /// The value, or [`Error::Inconsistent`] if no attempt was consistent.
    pub fn into_result(self) -> Result<T> {
        if self.consistent {
            Ok(self.value)
        } else {
            Err(Error::Inconsistent)
        }
    }
}

/// Runs a dump of `request` on sockets from `pool`, restarting it while the kernel flags it
/// inconsistent (`NLM_F_DUMP_INTR`), at most `max_attempts` times (at least once; the usual
/// choice is [`DEFAULT_ATTEMPTS`]).
///
/// For each attempt, `consume(dump, attempt)` reads the dump (with as many threads as it
/// likes) and returns what it built; `attempt` counts from 1. A call with `attempt > 1` means
/// a restart: everything the previous attempt saw is discarded (its returned value is
/// dropped), so a consumer that keeps state outside its return value must reset it then. A
/// kernel or socket error ends the helper with that error; an error returned by `consume`
/// does too (the dump is finished first).
///
/// ```no_run
/// use nlkit_socket::{consistent_dump, DumpBuffer, Pool, Protocol, DEFAULT_ATTEMPTS};
/// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
///
/// let mut req = MessageBuilder::new();
/// req.begin(RTM_GETLINK, NLM_F_DUMP, 0);
/// req.header(&IfInfoMsg::default());
/// req.finish().unwrap();
/// let links = consistent_dump(Pool::shared(Protocol::Route), &req, DEFAULT_ATTEMPTS, |dump, attempt| {
///     if attempt > 1 {
///         eprintln!("link dump interrupted, restarting (attempt {attempt})");
///     }
///     let mut buf = DumpBuffer::new();
///     let mut indexes = Vec::new();
///     while let Some(m) = dump.next(&mut buf)? {
///         indexes.push(m.family_header::<IfInfoMsg>()?.0.index);
///     }
///     Ok(indexes)
/// })?;
/// println!("{} links after {} attempt(s)", links.value.len(), links.attempts);
/// let links = links.into_result()?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn consistent_dump<T>(
    pool: &Pool,
    request: &MessageBuilder,
    max_attempts: u32,
    mut consume: impl FnMut(&SharedDump, u32) -> Result<T>,
) -> Result<Consistent<T>> {
    let max_attempts = max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let mut req = request.clone();
        let dump = SharedDump::start(pool, &mut req)?;
        let value = consume(&dump, attempt);
        let outcome = dump.finish();
        let value = value?;
        match outcome {
            Ok(()) => {
                return Ok(Consistent {
                    value,
                    attempts: attempt,
                    consistent: true,
                })
            }
            Err(Error::Inconsistent) if attempt >= max_attempts => {
                return Ok(Consistent {
                    value,
                    attempts: attempt,
                    consistent: false,
                })
            }
            Err(Error::Inconsistent) => {
                tracing::debug!(attempt, "dump inconsistent (NLM_F_DUMP_INTR), restarting");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
