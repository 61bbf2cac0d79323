//! Progress bars, shown only when stderr is a terminal, and the error of writing output.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr when it is a terminal; hidden when piped or redirected.
///
/// `total` of `None` shows a spinner with a running count.
pub fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
                .expect("static template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:>12} {spinner} {pos} ({per_sec})")
                .expect("static template"),
        ),
    };
    pb.set_message(what.to_owned());
    pb
}

/// Writing a listing to standard output failed: the command line's own error for output, so
/// that `main` tells it from the kernel's errors. A closed pipe (`nlkit route show | head`) is
/// [`is_closed_pipe`](OutputError::is_closed_pipe), which is not a failure (exit 0).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A write to standard output failed.
    #[error("cannot write to standard output")]
    Write(#[source] std::io::Error),
    /// An earlier write failed, so the rest of the listing is not written: what a dump's
    /// consumer stops the dump with ([`nlkit_socket::Error::Callback`]).
    #[error("standard output is closed")]
    Closed,
}

impl OutputError {
    /// Whether the reader of standard output went away (`EPIPE`).
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, OutputError::Write(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn output_errors_are_told_from_the_rest() {
        let closed = OutputError::Write(std::io::ErrorKind::BrokenPipe.into());
        assert!(closed.is_closed_pipe());
        let full = OutputError::Write(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(!full.is_closed_pipe());
        let cause = full
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            cause.and_then(std::io::Error::raw_os_error),
            Some(libc::ENOSPC)
        );
        // Through anyhow, as `main` sees it.
        let e = anyhow::Error::from(closed);
        assert!(e
            .downcast_ref::<OutputError>()
            .is_some_and(OutputError::is_closed_pipe));
        // What a sink stops a dump with.
        let e = nlkit_socket::Error::callback(OutputError::Closed);
        let nlkit_socket::Error::Callback(c) = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(c.downcast_ref(), Some(OutputError::Closed)));
    }
}
