//! The table's one error family: inserts are the only operation that fails.
//!
//! [`InsertError`] is an [`InsertErrorKind`] plus the rejected value, handed back so the
//! caller keeps ownership (it is generic over the value, so it cannot be a plain enum);
//! [`ConnInsertError`] is the conntrack table's insert verdict, whose kinds (tuple clash,
//! equal tuples, drop) exist only there. None of them wraps a lower layer: this crate knows
//! nothing of Netlink.

/// Why an insert into a [`NullsTable`](crate::NullsTable) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InsertErrorKind {
    /// A live entry with this key exists.
    #[error("key already present")]
    Exists,
    /// Every slot is in use.
    #[error("table full")]
    Full,
    /// The key's chain exceeded the randomised length cap (a hash-flooding guard).
    #[error("hash chain too long")]
    ChainTooLong,
}

/// A failed insert, handing the value back.
///
/// ```
/// use nlkit_table::{InsertErrorKind, NullsTable};
/// let t: NullsTable<u64, String> = NullsTable::new(1);
/// t.insert(1, "a".into()).unwrap();
/// let err = t.insert(2, "b".into()).unwrap_err();
/// assert_eq!(err.kind, InsertErrorKind::Full);
/// assert_eq!(err.value, "b");
/// ```
pub struct InsertError<V> {
    /// What went wrong.
    pub kind: InsertErrorKind,
    /// The value that was not inserted.
    pub value: V,
}

impl<V> std::fmt::Debug for InsertError<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsertError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<V> std::fmt::Display for InsertError<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

impl<V> std::error::Error for InsertError<V> {}

/// Why a [`ConnTable::insert`](crate::ConnTable::insert) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnInsertError {
    /// A live connection already uses the tuple of this direction (a clash).
    #[error("clash: a connection with the {0:?} tuple exists")]
    Clash(crate::Direction),
    /// The original and reply tuples are equal.
    #[error("original and reply tuples are equal")]
    SameTuple,
    /// The table is at its maximum and early drop found nothing to evict.
    #[error("table full, dropping")]
    Full,
    /// A chain exceeded the randomised length cap.
    #[error("hash chain too long")]
    ChainTooLong,
}
