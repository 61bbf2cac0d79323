//! `nlkit netns list|add|del|set NAME ID|list-id` (`ip netns`).
//!
//! Named namespaces are bind mounts of a namespace file on `/run/netns/NAME`, made the way
//! iproute2 makes them (so `ip netns` and `nlkit netns` see the same ones): `/run/netns` is
//! made a shared mount (bound onto itself first if it is no mount point), an empty file is
//! created, and a helper thread that has unshared its network namespace bind-mounts its
//! `/proc/thread-self/ns/net` there. Only that helper thread changes namespace; it exits
//! right after. Creating and mounting need `CAP_SYS_ADMIN` over the mount namespace (real
//! root, or a private mount namespace of a user namespace, `unshare -Urm`).

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use nlkit_route::fmt::LinkNames;
use nlkit_route::{ops, request};
use nlkit_socket::netns::{open_named, NETNS_RUN_DIR};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::MessageBuilder;
use serde::Serialize;

use super::{unknown_action, Ctx, Sink};
use crate::args::UsageError;
use crate::cli::ObjectArgs;

const WHY: &str = "named namespaces are files of the caller's /run/netns";

pub fn run(ctx: &Ctx, a: ObjectArgs) -> Result<()> {
    ctx.kernel_only("netns", WHY)?;
    let name = |i: usize| -> Result<&str> {
        a.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| UsageError("No netns name specified".into()).into())
    };
    match a.action.as_deref().unwrap_or("list") {
        "list" | "show" | "ls" | "lst" => list(ctx),
        "add" => add(name(0)?),
        "del" | "delete" => del(name(0)?),
        "set" => set(ctx, name(0)?, a.args.get(1).map(String::as_str)),
        "list-id" => list_id(ctx),
        other => Err(unknown_action(
            "netns",
            other,
            "list, add, del, set, list-id",
        )),
    }
}

/// The names under `/run/netns`, in directory order (as `ip netns list`).
fn names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// The id this namespace has for the named namespace `name`, if any.
fn nsid_of(sock: &mut Socket, name: &str) -> Option<u32> {
    let ns = open_named(name).ok()?;
    ops::get_nsid_fd(sock, ns.as_fd()).ok().flatten()
}

/// Fills `names` with nsid → namespace name for every named namespace that has an id here
/// (for `link-netns NAME` in `link show`). Errors only mean fewer names.
pub(super) fn insert_netns_names(ctx: &Ctx, names: &mut LinkNames) {
    let all = self::names();
    if all.is_empty() {
        return;
    }
    let Ok(mut sock) = ctx.socket(Protocol::Route) else {
        return;
    };
    for n in all {
        if let Some(id) = nsid_of(&mut sock, &n) {
            names.insert_netns(id as i32, &n);
        }
    }
}

#[derive(Serialize)]
struct Entry<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u32>,
}

struct EntryText<'a>(&'a str, Option<u32>);
impl std::fmt::Display for EntryText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        if let Some(id) = self.1 {
            write!(f, " (id: {id})")?;
        }
        Ok(())
    }
}

fn list(ctx: &Ctx) -> Result<()> {
    let mut sock = ctx.socket(Protocol::Route)?;
    let mut sink = Sink::new(ctx.json);
    let mut res = Ok(());
    for n in names() {
        let id = nsid_of(&mut sock, &n);
        res = sink.item(EntryText(&n, id), Entry { name: &n, id });
        if res.is_err() {
            break;
        }
    }
    sink.finish(res)
}

fn list_id(ctx: &Ctx) -> Result<()> {
    let mut sock = ctx.socket(Protocol::Route)?;
    let mut by_id = std::collections::HashMap::new();
    for n in names() {
        if let Some(id) = nsid_of(&mut sock, &n) {
            by_id.entry(id).or_insert(n);
        }
    }
    #[derive(Serialize)]
    struct Id<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        nsid: Option<u32>,
        #[serde(rename = "current-nsid", skip_serializing_if = "Option::is_none")]
        current: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
    }
    let mut sink = Sink::new(ctx.json);
    let res = ops::dump_nsids(&mut sock, |v| {
        let nsid = v.assigned();
        let name = nsid.and_then(|i| by_id.get(&i)).map(String::as_str);
        let mut text = String::new();
        match nsid {
            Some(n) => text.push_str(&format!("nsid {n} ")),
            None => text.push_str("nsid unassigned "),
        }
        match v.current_nsid() {
            Some(c) if c >= 0 => text.push_str(&format!("current-nsid {c} ")),
            Some(_) => text.push_str("current-nsid unassigned "),
            None => {}
        }
        if let Some(n) = name {
            text.push_str(&format!("(iproute2 netns name: {n})"));
        }
        let current = v.current_nsid().and_then(|c| u32::try_from(c).ok());
        sink.item(
            text,
            Id {
                nsid,
                current,
                name,
            },
        )
    });
    sink.finish(res).map(|_| ())
}

/// `ip netns set NAME ID|auto`.
fn set(ctx: &Ctx, name: &str, id: Option<&str>) -> Result<()> {
    let id: i32 = match id {
        None => return Err(UsageError("No nsid specified".into()).into()),
        Some("auto") => -1,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| UsageError(format!("Invalid \"netid\" value \"{s}\"")))?,
    };
    let ns = open_named(name).map_err(|e| anyhow!("Cannot open namespace \"{name}\": {e}"))?;
    let mut sock = ctx.socket(Protocol::Route)?;
    let mut req = MessageBuilder::new();
    request::set_nsid(
        &mut req,
        0,
        nlkit_route::NetnsRef::Fd(std::os::fd::AsRawFd::as_raw_fd(&ns)),
        id,
    )?;
    sock.transact(&mut req)?;
    Ok(())
}

fn cstr(p: &str) -> Result<CString> {
    CString::new(p).map_err(|_| UsageError(format!("invalid path \"{p}\"")).into())
}

fn sys_mount(src: &str, target: &str, flags: libc::c_ulong) -> io::Result<()> {
    let (src, target) = (
        CString::new(src).map_err(|_| io::ErrorKind::InvalidInput)?,
        CString::new(target).map_err(|_| io::ErrorKind::InvalidInput)?,
    );
    let none = c"none";
    // SAFETY: all pointers are valid NUL-terminated strings that live across the call, and
    // `data` may be null for these flag-only (bind / propagation) mounts.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            none.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn valid_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(UsageError(format!("Invalid netns name \"{name}\"")).into());
    }
    Ok(())
}

/// `ip netns add NAME`.
fn add(name: &str) -> Result<()> {
    valid_name(name)?;
    let dir = NETNS_RUN_DIR;
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(anyhow!("mkdir {dir} failed: {e}")),
    }
    // Make /run/netns a shared mount point so that the namespace mounts propagate to every
    // mount namespace (as iproute2 does); bind it onto itself when it is no mount point yet.
    let shared = (libc::MS_SHARED | libc::MS_REC) as libc::c_ulong;
    if let Err(e) = sys_mount("", dir, shared) {
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(anyhow!("mount --make-shared {dir} failed: {e}"));
        }
        sys_mount(dir, dir, (libc::MS_BIND | libc::MS_REC) as libc::c_ulong)
            .map_err(|e| anyhow!("mount --bind {dir} {dir} failed: {e}"))?;
        sys_mount("", dir, shared).map_err(|e| anyhow!("mount --make-shared {dir} failed: {e}"))?;
    }
    let path = format!("{dir}/{name}");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| anyhow!("Cannot create namespace file \"{path}\": {e}"))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            // SAFETY: only CLONE_NEWNET, which moves this short-lived helper thread (and no
            // other) into a new network namespace; it shares nothing that other threads rely
            // on being in the old namespace, and it exits right after the mount.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
            sys_mount(
                "/proc/thread-self/ns/net",
                &path,
                libc::MS_BIND as libc::c_ulong,
            )
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace helper thread panicked")))
    });
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(anyhow!("Bind /proc/self/ns/net -> {path} failed: {e}"));
    }
    Ok(())
}

/// `ip netns del NAME`.
fn del(name: &str) -> Result<()> {
    valid_name(name)?;
    let path = format!("{NETNS_RUN_DIR}/{name}");
    let c = cstr(&path)?;
    // SAFETY: `c` is a valid NUL-terminated path that lives across the call.
    let _ = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    std::fs::remove_file(Path::new(&path))
        .with_context(|| format!("Cannot remove namespace file \"{path}\""))?;
    Ok(())
}
