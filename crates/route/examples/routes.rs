//! The README's library example: list IPv4 routes like `ip route`, then count them with two
//! threads sharing one kernel dump. Run it in a namespace you own, e.g. `unshare -Urn`.

use nlkit_route::{fmt::route_text, ops, request, RouteView};
use nlkit_socket::{DumpBuffer, Pool, Protocol, SharedDump, Socket};
use nlkit_wire::{consts::AF_INET, MessageBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sock = Socket::open(Protocol::Route)?; // EXT_ACK, STRICT_CHK, 4 MiB rcvbuf
    let names = ops::link_names(&mut sock)?;
    let filter = request::RouteFilter::main();
    ops::dump_routes(&mut sock, AF_INET, &filter, |r| {
        println!("{}", route_text(&r, &names, Default::default())); // zero-copy view
        Ok(())
    })?;

    let mut req = MessageBuilder::new();
    request::dump_routes(&mut req, 0, AF_INET, &filter)?;
    let dump = SharedDump::start(Pool::shared(Protocol::Route), &mut req)?;
    let total: usize = std::thread::scope(|s| {
        let count = || {
            let (mut buf, mut n) = (DumpBuffer::new(), 0);
            while let Ok(Some(m)) = dump.next(&mut buf) {
                n += usize::from(RouteView::parse(&m).is_ok());
            }
            n
        };
        let (a, b) = (s.spawn(count), s.spawn(count));
        a.join().unwrap_or(0) + b.join().unwrap_or(0)
    });
    dump.finish()?; // the kernel's error, or Inconsistent if NLM_F_DUMP_INTR was seen
    println!("{total} routes, each seen by exactly one thread");
    Ok(())
}
