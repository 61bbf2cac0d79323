//! Read the nlkit mirror's tables straight from its shared memory: look a link up by name,
//! walk the IPv4 routes of the main table like `ip route`, count the conntrack entries —
//! loads from a read-only mapping, with no request to the mirror and no system call.
//!
//! ```sh
//! nlkit mirror &     # or the systemd unit in contrib/
//! cargo run -p nlkit --example mirror_view -- [--socket PATH] [--link NAME]
//! ```
//!
//! [`MirrorView::open`] connects to the mirror's socket once, receives its region's memfd
//! (`SCM_RIGHTS`, only for the mirror's own uid or root) and maps it `PROT_READ`. The records
//! are the kernel's messages, so nlkit-route's typed views and formatters read them as they
//! read a dump. A client the mirror refuses (`ViewError::is_permission_denied`) can still ask
//! over the socket (see the `ask_mirror` example).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use nlkit::prelude::*;
use nlkit::route::fmt::{route_text, LinkNames};

const USAGE: &str = "usage: mirror_view [--socket PATH] [--link NAME]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What [`run`] found.
#[derive(Debug)]
pub struct Found {
    /// The index of the link asked for (`--link`, default `lo`), if the mirror has it.
    pub link: Option<u32>,
    /// Main-table IPv4 routes printed.
    pub routes: u64,
    /// Conntrack entries (`None` when the mirror does not mirror conntrack).
    pub conntrack: Option<u64>,
}

/// Opens the view and prints the link, the routes and the conntrack count.
pub fn run(args: &[String], out: &mut impl Write) -> Result<Found, Box<dyn std::error::Error>> {
    let (mut path, mut name) = (nlkit::mirror::default_mirror_path(), "lo".to_owned());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--socket", Some(p)) => path = PathBuf::from(p),
            ("--link", Some(n)) => name.clone_from(n),
            _ => return Err(USAGE.into()),
        }
    }
    let view = MirrorView::open(&path)?;

    // A lookup: the link's RTM_NEWLINK message, into our buffer.
    let mut buf = Vec::new();
    let link = if view.link_by_name(&name, &mut buf)? {
        let m = Messages::new(&buf).next().ok_or("empty record")??;
        let l = LinkView::parse(&m)?;
        writeln!(out, "{name} is link {}, mtu {:?}", l.index(), l.mtu())?;
        Some(l.index())
    } else {
        writeln!(out, "the mirror has no link {name}")?;
        None
    };

    // Names for the routes' devices, from a walk of the links.
    let mut names = LinkNames::new();
    view.links(|m| {
        if let Ok(l) = LinkView::parse(m) {
            names.insert_link(&l);
        }
        true
    })?;

    // A walk: the IPv4 routes, filtered to the main table here.
    let mut routes = 0;
    let mut write_error = None;
    let walk = view.routes(consts::AF_INET, |m| {
        let Ok(r) = RouteView::parse(m) else {
            return true;
        };
        if r.table() != u32::from(consts::RT_TABLE_MAIN) {
            return true;
        }
        routes += 1;
        write_error = writeln!(out, "{}", route_text(&r, &names, Default::default())).err();
        write_error.is_none()
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let conntrack = view.ct_count().ok();
    writeln!(
        out,
        "{routes} routes ({}), {} conntrack entries, mapped from the mirror at {}",
        if walk.consistent {
            "a snapshot"
        } else {
            "changed while walked"
        },
        conntrack.map_or("no".to_owned(), |n| n.to_string()),
        path.display()
    )?;
    Ok(Found {
        link,
        routes,
        conntrack,
    })
}
