//! Command implementations. Each talks to the kernel (or, with `--mirror`, the mirror) through
//! `nlkit-socket` and prints with the formatters of `nlkit-route` / `nlkit-conntrack`, so the
//! output is what `ip` and `conntrack` users expect.
//!
//! Every socket a command uses comes from [`Ctx`] (`socket`, `pool`, `rtnl_events`,
//! `ct_events`): that is the one place deciding between the kernel and the mirror, and the
//! crate's `clippy.toml` forbids opening sockets anywhere else.

use std::io::{BufWriter, Write};

use anyhow::{bail, Context, Result};
use nlkit_conntrack::ops::Events;
use nlkit_conntrack::EventKind;
use nlkit_route::fmt::LinkNames;
use nlkit_socket::{EventSocket, Pool, Protocol, Socket};
use nlkit_wire::consts::{AF_INET, AF_INET6};

use crate::args::UsageError;
use crate::cli::{Cli, Command};
use crate::output::OutputError;

mod addr;
mod bridge;
mod ct;
mod link;
mod monitor;
mod neigh;
mod netns;
mod nexthop;
mod ordered;
mod route;
mod rule;
mod shared;
mod view;

/// Settings every command shares (from the global flags).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `-j`: JSON output.
    pub json: bool,
    /// `--threads N`: threads sharing a dump.
    pub threads: usize,
    /// `-d`: details (`link show`).
    pub details: bool,
    /// `-4` / `-6`.
    pub family: Option<u8>,
    /// Where requests go. Private: commands get their sockets from [`Ctx::socket`],
    /// [`Ctx::pool`] and the event methods, the only places that look at it.
    target: Target,
}

/// Where a command's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Kernel sockets in this process's network namespace.
    Kernel,
    /// `--mirror` / `--mirror-socket PATH`: the mirror at this socket path. Reads are answered
    /// from its tables; writes go through it (its worker) to the kernel of its namespace, and
    /// the kernel's ack or error comes back.
    Mirror(std::path::PathBuf),
}

/// Why `ct events` refuses `--mirror` (`monitor --mirror` follows the mirror's change feed).
const NO_CHANGE_FEED: &str = "use `nlkit --mirror monitor ct` for the mirror's change feed";

// The one place that opens sockets (see the crate's clippy.toml).
#[allow(clippy::disallowed_methods)]
impl Ctx {
    /// The socket every request of `protocol` goes through: a kernel socket, or with
    /// `--mirror` a connection to the mirror. Commands never open request sockets themselves,
    /// so none can silently ask the caller's kernel when the mirror was asked for.
    pub fn socket(&self, protocol: Protocol) -> Result<Socket> {
        match &self.target {
            Target::Mirror(path) => Socket::connect_unix(path, protocol)
                .with_context(|| format!("cannot reach the mirror at {}", path.display())),
            Target::Kernel => Socket::open(protocol).context("cannot open a Netlink socket"),
        }
    }

    /// The pool `--threads` listings take their sockets from: the process-wide kernel pool,
    /// or connections to the mirror with `--mirror`.
    pub fn pool(&self, protocol: Protocol) -> Pool {
        match &self.target {
            Target::Mirror(path) => Pool::connect_unix(path, protocol),
            Target::Kernel => Pool::shared(protocol).clone(),
        }
    }

    /// Refuses `--mirror` for `command`, which only the kernel can answer (`why` says what
    /// the mirror lacks): a usage error (exit 2) rather than an answer from another namespace.
    pub fn kernel_only(&self, command: &str, why: &str) -> Result<()> {
        match &self.target {
            Target::Kernel => Ok(()),
            Target::Mirror(_) => Err(UsageError(format!(
                "{command} does not work with --mirror: {why}; run it without --mirror in the \
                 mirror's network namespace"
            ))
            .into()),
        }
    }

    /// An rtnetlink event socket joined to `groups` (`monitor`; kernel only).
    pub fn rtnl_events(&self, command: &str, groups: &[u32]) -> Result<EventSocket> {
        self.kernel_only(command, NO_CHANGE_FEED)?;
        EventSocket::open(Protocol::Route, groups).context("cannot open an event socket")
    }

    /// A conntrack event socket for new, update and destroy events (`ct events`, `monitor
    /// ct`; kernel only).
    pub fn ct_events(&self, command: &str) -> Result<Events> {
        self.kernel_only(command, NO_CHANGE_FEED)?;
        Events::open(
            &[EventKind::New, EventKind::Update, EventKind::Destroy],
            false,
        )
        .context("cannot open a conntrack event socket")
    }

    /// With `--mirror`, the mirror's tables mapped from its shared memory (see
    /// [`view`](self::view)): `None` without `--mirror`, with `NLKIT_MIRROR_NO_VIEW=1`, or
    /// when the mirror does not hand its region over (e.g. `EPERM` for another uid) — then
    /// reads go over [`socket`](Ctx::socket), never to the local kernel. With
    /// `NLKIT_MIRROR_VIEW=1` (tests) a view that cannot be opened is an error instead.
    pub fn view(&self) -> Result<Option<nlkit_view::MirrorView>> {
        let Target::Mirror(path) = &self.target else {
            return Ok(None);
        };
        if view::disabled() {
            return Ok(None);
        }
        match nlkit_view::MirrorView::open(path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if view::required() => Err(anyhow::Error::new(e).context(format!(
                "cannot map the mirror's tables from {} ({}=1)",
                path.display(),
                view::REQUIRE_VIEW_ENV
            ))),
            Err(e) => {
                tracing::debug!(error = %e, "mirror view unavailable; reading over the socket");
                Ok(None)
            }
        }
    }

    /// True when requests go to the kernel (no `--mirror`).
    pub fn is_kernel(&self) -> bool {
        self.target == Target::Kernel
    }

    /// The families a listing covers: the one asked for, else both.
    pub fn families(&self) -> Vec<u8> {
        match self.family {
            Some(f) => vec![f],
            None => vec![AF_INET, AF_INET6],
        }
    }
}

/// Global flag combinations that make no sense, checked before `-n` enters a namespace:
/// `-n NAME` with `--mirror` (the mirror answers for the namespace it runs in, not NAME).
/// `nlkit -n NAME --mirror-socket PATH mirror` (a mirror of NAME) is fine.
pub fn check_flags(cli: &Cli) -> Result<()> {
    let asks_mirror = cli.mirror || cli.mirror_socket.is_some();
    if asks_mirror && cli.netns.is_some() && !matches!(cli.command, Command::Mirror(_)) {
        return Err(UsageError(
            "--netns and --mirror cannot be combined: the mirror answers for its own namespace"
                .into(),
        )
        .into());
    }
    Ok(())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let target = match (&cli.mirror_socket, cli.mirror) {
        (Some(p), _) => Target::Mirror(p.clone()),
        (None, true) => Target::Mirror(nlkit_mirror::default_socket_path()),
        (None, false) => Target::Kernel,
    };
    let ctx = Ctx {
        json: cli.json,
        threads: cli.threads.max(1),
        details: cli.details,
        family: if cli.ipv4 {
            Some(AF_INET)
        } else if cli.ipv6 {
            Some(AF_INET6)
        } else {
            None
        },
        target,
    };
    // `nlkit mirror` takes `--mirror-socket` as the path it serves on; demo and bench run
    // their own mirror in a private namespace.
    let not_with_mirror = |what: &str, flag_given: bool| -> Result<()> {
        if flag_given {
            return Err(UsageError(format!("--mirror does not apply to {what}")).into());
        }
        Ok(())
    };
    let asks_mirror = ctx.target != Target::Kernel;

    match cli.command {
        Command::Link(a) => link::run(&ctx, a),
        Command::Addr(a) => addr::run(&ctx, a),
        Command::Route(a) => route::run(&ctx, a),
        Command::Neigh(a) => neigh::run(&ctx, a),
        Command::Nexthop(a) => nexthop::run(&ctx, a),
        Command::Rule(a) => rule::run(&ctx, a),
        Command::Netns(a) => netns::run(&ctx, a),
        Command::Bridge(a) => bridge::run(&ctx, a),
        Command::Ct(a) => ct::run(&ctx, a),
        Command::Monitor { objects } => monitor::run(&ctx, &objects),
        Command::Mirror(a) => {
            not_with_mirror(
                "`nlkit mirror` (choose its socket with --mirror-socket PATH)",
                cli.mirror,
            )?;
            crate::mirror::run(a, cli.mirror_socket)
        }
        Command::Demo(a) => {
            not_with_mirror("`nlkit demo` (it runs its own mirror)", asks_mirror)?;
            crate::netns::private(|| crate::demo::run(a))
        }
        Command::Bench(a) => {
            not_with_mirror("`nlkit bench` (it runs its own mirror)", asks_mirror)?;
            crate::netns::private(|| crate::bench::run(a))
        }
        Command::Completions { .. } | Command::Man { .. } => {
            bail!("completions and man pages are written by main")
        }
    }
}

/// Where show commands read from: [`Ctx::socket`] — a kernel socket, or with `--mirror` a
/// socket on the mirror (`Socket::connect_unix`), which answers the same requests in the
/// kernel's message format from its tables. Both are the same `nlkit_socket::Socket`, so every
/// command runs the same code on either. With `--mirror`, dumps are answered from the
/// mirror's shared memory when it can be mapped ([`Ctx::view`]; the same messages, see
/// [`view`](self::view)), and over the socket otherwise.
pub struct Source {
    /// The socket, opened at once without a view, and on the first request the view does
    /// not answer with one.
    sock: Option<Socket>,
    view: Option<nlkit_view::MirrorView>,
    ctx: Ctx,
    protocol: Protocol,
}

impl Source {
    /// Opens the source `ctx` selects for `protocol`.
    pub fn open(ctx: &Ctx, protocol: Protocol) -> Result<Source> {
        let view = ctx.view()?;
        let sock = match view {
            Some(_) => None,
            None => Some(ctx.socket(protocol)?),
        };
        Ok(Source {
            sock,
            view,
            ctx: ctx.clone(),
            protocol,
        })
    }

    /// A source reading through `view` (the socket opened only if needed).
    pub fn from_view(ctx: &Ctx, view: nlkit_view::MirrorView) -> Source {
        Source {
            sock: None,
            view: Some(view),
            ctx: ctx.clone(),
            protocol: Protocol::Route,
        }
    }

    /// Whether dumps are answered from the mirror's view (listings then format on several
    /// threads, see [`ordered`](self::ordered)).
    pub fn has_view(&self) -> bool {
        self.view.is_some()
    }

    /// The socket (opened now if the view answered everything so far).
    pub fn socket(&mut self) -> Result<&mut Socket> {
        let s = match self.sock.take() {
            Some(s) => s,
            None => self.ctx.socket(self.protocol)?,
        };
        Ok(self.sock.insert(s))
    }

    /// Runs the dump in `req` and calls `f` for each object message, in the source's order,
    /// streaming with a receive thread ahead of this one (the kernel, or the mirror, produces
    /// the next chunk while this thread formats) — or, through the mirror's view, walking
    /// its tables in this thread.
    pub fn dump(
        &mut self,
        req: &mut nlkit_wire::MessageBuilder,
        mut f: impl FnMut(&nlkit_wire::Message<'_>) -> nlkit_socket::Result<()>,
    ) -> Result<()> {
        if let Some(v) = &self.view {
            if view::dump(v, req.as_bytes(), &mut f)? {
                return Ok(());
            }
        }
        let end = self.socket()?.dump_pipelined(req, |m| f(m))?;
        if end.interrupted {
            view::warn_interrupted();
        }
        Ok(())
    }

    /// `ct list`: the conntrack dump in `req`, through the view when there is one (with
    /// `by_addr`, the original source address the listing keeps, through its index), else
    /// over the socket. `f` gets the same messages either way.
    pub fn ct_dump(
        &mut self,
        req: &mut nlkit_wire::MessageBuilder,
        by_addr: Option<std::net::IpAddr>,
        mut f: impl FnMut(&nlkit_wire::Message<'_>) -> nlkit_socket::Result<()>,
    ) -> Result<()> {
        if let Some(v) = &self.view {
            if view::ct_dump(v, req.as_bytes(), by_addr, &mut f)? {
                return Ok(());
            }
        }
        let end = self.socket()?.dump_pipelined(req, |m| f(m))?;
        if end.interrupted {
            view::warn_interrupted();
        }
        Ok(())
    }

    /// The interface index → name map.
    pub fn link_names(&mut self) -> Result<LinkNames> {
        let mut names = LinkNames::new();
        let mut req = nlkit_wire::MessageBuilder::new();
        nlkit_route::request::dump_links(&mut req, 0, &Default::default())?;
        self.dump(&mut req, |m| {
            names.insert_link(&nlkit_route::LinkView::parse(m)?);
            Ok(())
        })?;
        Ok(names)
    }
}

/// The interface index → name map, from a link dump.
pub fn link_names(sock: &mut Socket) -> Result<LinkNames> {
    nlkit_route::ops::link_names(sock).context("cannot list links")
}

/// The index of device `dev`, with iproute2's message when it does not exist.
pub fn ifindex(names: &LinkNames, dev: &str) -> Result<u32> {
    names
        .index_of(dev)
        .ok_or_else(|| UsageError(format!("Cannot find device \"{dev}\"")).into())
}

/// Buffered standard output.
pub fn stdout() -> BufWriter<std::io::StdoutLock<'static>> {
    BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

/// Streams a listing to standard output, as text lines or as one JSON array, one item at a
/// time (memory stays flat for any table size). A write error inside a dump callback stops the
/// dump ([`OutputError::Closed`] as the callback's error) and comes back from
/// [`finish`](Sink::finish) as [`OutputError::Write`] (a closed pipe included, which `main`
/// treats as success).
pub struct Sink {
    out: BufWriter<std::io::StdoutLock<'static>>,
    err: Option<std::io::Error>,
    json: bool,
    items: usize,
    /// A running count on stderr, only when stderr is a terminal and stdout is not (the
    /// listing goes to a file or a pipe): never mixed into the listing, nothing when piped.
    progress: Option<indicatif::ProgressBar>,
    /// The current text line: rendered into bytes, written out once.
    line: Vec<u8>,
}

impl Sink {
    /// A sink for text (`json == false`) or a JSON array.
    pub fn new(json: bool) -> Self {
        use std::io::IsTerminal;
        let progress = (std::io::stderr().is_terminal() && !std::io::stdout().is_terminal())
            .then(|| crate::output::progress(None, "objects"));
        let mut s = Sink {
            out: stdout(),
            err: None,
            json,
            items: 0,
            progress,
            line: Vec::with_capacity(256),
        };
        if json {
            let r = s.out.write_all(b"[");
            let _ = s.record(r);
        }
        s
    }

    fn record(&mut self, r: std::io::Result<()>) -> nlkit_socket::Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                self.err.get_or_insert(e);
                Err(nlkit_socket::Error::callback(OutputError::Closed))
            }
        }
    }

    /// Writes one item: its text form as a line, or its JSON form as an array element.
    pub fn item(
        &mut self,
        text: impl std::fmt::Display,
        json: impl serde::Serialize,
    ) -> nlkit_socket::Result<()> {
        self.item_with(|line| shared::push_text(line, text), json)
    }

    /// [`item`](Sink::item) for a text form that appends itself to a byte buffer (e.g.
    /// [`RouteText::write_to`](nlkit_route::fmt::RouteText::write_to)): `text` appends the
    /// line without its newline.
    pub fn item_with(
        &mut self,
        text: impl FnOnce(&mut Vec<u8>),
        json: impl serde::Serialize,
    ) -> nlkit_socket::Result<()> {
        if self.err.is_some() {
            return Err(nlkit_socket::Error::callback(OutputError::Closed));
        }
        let r = if self.json {
            let sep = if self.items > 0 { "," } else { "" };
            self.out
                .write_all(sep.as_bytes())
                .and_then(|_| serde_json::to_writer(&mut self.out, &json).map_err(Into::into))
        } else {
            self.line.clear();
            text(&mut self.line);
            self.line.push(b'\n');
            self.out.write_all(&self.line)
        };
        self.items += 1;
        if let Some(p) = &self.progress {
            p.inc(1);
        }
        self.record(r)
    }

    /// Closes the listing; a write error beats the dump's own result.
    pub fn finish<T, E>(mut self, dump: std::result::Result<T, E>) -> Result<T>
    where
        E: Into<anyhow::Error>,
    {
        if let Some(p) = self.progress.take() {
            p.finish_and_clear();
        }
        if self.json && self.err.is_none() {
            let r = self.out.write_all(b"]\n");
            let _ = self.record(r);
        }
        if let Some(e) = self.err.take() {
            return Err(OutputError::Write(e).into());
        }
        let v = dump.map_err(Into::into)?;
        self.out.flush().map_err(OutputError::Write)?;
        Ok(v)
    }
}

/// The action word, defaulting to `show`; `list` and `lst` mean `show` as in iproute2.
pub fn action(a: &Option<String>) -> &str {
    match a.as_deref() {
        None | Some("list") | Some("lst") | Some("ls") => "show",
        Some("delete") => "del",
        Some(other) => other,
    }
}

/// An unknown action, reported like a usage error.
pub fn unknown_action(object: &str, action: &str, known: &str) -> anyhow::Error {
    UsageError(format!(
        "Command \"{action}\" is unknown for \"{object}\"; try one of: {known}"
    ))
    .into()
}
