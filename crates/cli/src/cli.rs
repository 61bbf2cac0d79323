//! The command tree. Conventions follow iproute2 (`nlkit route add 10.0.0.0/24 via …`) and
//! conntrack-tools (`nlkit ct list -p udp --mark 7`), so users of those feel at home.

use clap::{Args, Parser, Subcommand};

/// Fast, correct, non-blocking Netlink for Linux network daemons.
#[derive(Debug, Parser)]
#[command(
    name = "nlkit",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Print JSON instead of text.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// Run in the named network namespace (/run/netns/NAME), like `ip -n NAME`.
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub netns: Option<String>,
    /// Show details (`ip -d`): device attributes and link kind options (before the
    /// command: `nlkit -d link show`; `ct` has its own `-d`).
    #[arg(short = 'd', long)]
    pub details: bool,
    /// Threads sharing each dump.
    #[arg(long, global = true, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Ask the nlkit mirror instead of the kernel (at the default socket path).
    ///
    /// Reads are answered from the mirror's tables; writes go through the mirror to the kernel
    /// of the mirror's namespace, and the kernel's ack or error comes back. Commands the mirror
    /// cannot answer (monitor, ct events, ct stats, nexthop and rule reads) refuse it with
    /// exit 2.
    #[arg(long, global = true)]
    pub mirror: bool,
    /// The mirror's socket path (implies --mirror; `nlkit mirror` serves on it).
    ///
    /// Default: $XDG_RUNTIME_DIR/nlkit/mirror.sock, or /run/nlkit/mirror.sock as root.
    #[arg(long, global = true, value_name = "PATH")]
    pub mirror_socket: Option<std::path::PathBuf>,
    /// IPv4 only.
    #[arg(short = '4', global = true, conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6', global = true)]
    pub ipv6: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Network devices (`ip link`).
    Link(ObjectArgs),
    /// Protocol addresses (`ip addr`).
    #[command(visible_alias = "address")]
    Addr(ObjectArgs),
    /// Routing table entries (`ip route`).
    Route(ObjectArgs),
    /// Neighbour (ARP/NDP) entries (`ip neigh`).
    #[command(visible_alias = "neighbour", visible_alias = "neighbor")]
    Neigh(ObjectArgs),
    /// Nexthop objects (`ip nexthop`).
    #[command(visible_alias = "nh")]
    Nexthop(ObjectArgs),
    /// Policy routing rules (`ip rule`).
    Rule(ObjectArgs),
    /// Named network namespaces and namespace ids (`ip netns`).
    Netns(ObjectArgs),
    /// Bridge forwarding database and VLANs (iproute2's `bridge fdb`, `bridge vlan`).
    Bridge(BridgeArgs),
    /// Connection tracking (`conntrack`).
    #[command(visible_alias = "conntrack")]
    Ct(CtArgs),
    /// Print kernel events as they happen (`ip monitor`, `conntrack -E`).
    Monitor {
        /// Objects to watch: link, addr, route, neigh, ct (all rtnetlink ones by default).
        objects: Vec<String>,
    },
    /// Run the mirror: a live copy of kernel network state served to local clients.
    Mirror(MirrorArgs),
    /// Show what nlkit does in a private namespace (no host changes).
    Demo(DemoArgs),
    /// The reproducible comparison behind the README's numbers.
    Bench(BenchArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages into a directory.
    Man {
        /// Output directory.
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
    },
}

/// `nlkit link|addr|route|neigh [ACTION] [ARGS…]`.
#[derive(Debug, Args)]
pub struct ObjectArgs {
    /// show (default), list, add, replace, del, set, get, flush.
    pub action: Option<String>,
    /// Arguments in ip(8) style: `10.0.0.0/24 via 10.0.0.1 dev eth0 table 100 metric 5`.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    pub args: Vec<String>,
}

/// `nlkit bridge fdb|vlan [ACTION] [ARGS…]`.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// fdb or vlan.
    pub object: String,
    /// show (default), add, del; for fdb also append and replace.
    pub action: Option<String>,
    /// Arguments in bridge(8) style: `02:00:00:00:00:01 dev eth0 master vlan 10`.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    pub args: Vec<String>,
}

/// `nlkit ct ACTION [FILTERS]`.
#[derive(Debug, Args)]
pub struct CtArgs {
    /// list (default), get, create, delete, flush, count, stats, events.
    pub action: Option<String>,
    #[command(flatten)]
    pub filter: CtFilter,
}

/// Conntrack selection, named as in conntrack(8).
#[derive(Debug, Args, Default, Clone)]
pub struct CtFilter {
    /// Layer-4 protocol: tcp, udp, icmp, icmpv6, sctp or a number.
    #[arg(short = 'p', long = "proto")]
    pub proto: Option<String>,
    /// Original source address.
    #[arg(short = 's', long = "src", visible_alias = "orig-src")]
    pub src: Option<std::net::IpAddr>,
    /// Original destination address.
    #[arg(short = 'd', long = "dst", visible_alias = "orig-dst")]
    pub dst: Option<std::net::IpAddr>,
    /// Reply source address.
    #[arg(short = 'r', long = "reply-src")]
    pub reply_src: Option<std::net::IpAddr>,
    /// Reply destination address.
    #[arg(short = 'q', long = "reply-dst")]
    pub reply_dst: Option<std::net::IpAddr>,
    /// Original source port (or ICMP id).
    #[arg(long = "sport", visible_alias = "orig-port-src")]
    pub sport: Option<u16>,
    /// Original destination port.
    #[arg(long = "dport", visible_alias = "orig-port-dst")]
    pub dport: Option<u16>,
    /// Reply source port.
    #[arg(long = "reply-port-src")]
    pub reply_sport: Option<u16>,
    /// Reply destination port.
    #[arg(long = "reply-port-dst")]
    pub reply_dport: Option<u16>,
    /// Mark, optionally with a mask: `7` or `0x10/0xf0`.
    #[arg(short = 'm', long = "mark")]
    pub mark: Option<String>,
    /// Conntrack zone.
    #[arg(short = 'w', long = "zone")]
    pub zone: Option<u16>,
    /// Timeout in seconds (create/update).
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<u32>,
    /// TCP state for create/update (e.g. ESTABLISHED).
    #[arg(long = "state")]
    pub state: Option<String>,
    /// Address family for list/flush: ipv4 or ipv6.
    #[arg(short = 'f', long = "family")]
    pub family: Option<String>,
    /// ICMP type (create).
    #[arg(long = "icmp-type")]
    pub icmp_type: Option<u8>,
    /// ICMP code (create).
    #[arg(long = "icmp-code")]
    pub icmp_code: Option<u8>,
    /// ICMP id (create).
    #[arg(long = "icmp-id")]
    pub icmp_id: Option<u16>,
}

/// `nlkit mirror` (its socket path is the global `--mirror-socket PATH`).
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9433).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Mirror conntrack entries too.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub conntrack: bool,
    /// Event socket receive buffer in bytes (grown on overflow, up to 64× this).
    #[arg(long, value_name = "BYTES")]
    pub event_buffer: Option<usize>,
    /// Keep the tables in use in huge pages (clients' lookups then make fewer page walks).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub huge_pages: bool,
}

/// `nlkit demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Routes to load.
    #[arg(long, default_value_t = 100_000)]
    pub routes: usize,
    /// Conntrack entries to load.
    #[arg(long, default_value_t = 100_000)]
    pub conntrack: usize,
    /// Route changes during the churn phase.
    #[arg(long, default_value_t = 10_000)]
    pub churn: usize,
}

/// `nlkit bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Table sizes to measure (routes and conntrack entries), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub sizes: Vec<usize>,
    /// Repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Write results as CSV here.
    #[arg(long, default_value = "nlkit-bench.csv")]
    pub csv: std::path::PathBuf,
    /// Draw an SVG chart here.
    #[arg(long, default_value = "nlkit-bench.svg")]
    pub svg: std::path::PathBuf,
    /// Skip conntrack (it needs room under the global nf_conntrack_max).
    #[arg(long)]
    pub no_conntrack: bool,
}
