//! The harness of the text-line benches (`nlkit-route`'s `route_text`, `nlkit-conntrack`'s
//! `entry_text`): two shapes of messages built in memory, each row a pass over both, the best
//! of 5 passes in ns per message, printed as a table.

use std::time::Instant;

/// A table of rows, each timing one pass over two message buffers of `n` messages each.
///
/// ```
/// use nlkit_testns::LineBench;
/// let bench = LineBench::new("ns per byte", ["zeros", "ones"], 4, [vec![0; 4], vec![1; 4]]);
/// bench.row("sum", &mut |b| {
///     std::hint::black_box(b.iter().map(|&x| u32::from(x)).sum::<u32>());
/// });
/// ```
#[derive(Debug)]
pub struct LineBench {
    n: usize,
    shapes: [Vec<u8>; 2],
}

impl LineBench {
    /// Prints the header (`unit`, then the two shapes' names) and keeps the two buffers.
    pub fn new(unit: &str, names: [&str; 2], n: usize, shapes: [Vec<u8>; 2]) -> LineBench {
        println!("{unit:<44} {:>12} {:>12}", names[0], names[1]);
        LineBench { n, shapes }
    }

    /// Prints `what` and the best of 5 passes of `pass` over each buffer, in ns per message.
    pub fn row(&self, what: &str, pass: &mut dyn FnMut(&[u8])) {
        let v = self.shapes.each_ref().map(|s| {
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    pass(s);
                    t.elapsed().as_secs_f64() * 1e9 / self.n as f64
                })
                .fold(f64::INFINITY, f64::min)
        });
        println!("{what:<44} {:>12.1} {:>12.1}", v[0], v[1]);
    }
}

/// A size from the environment variable `name` (`_` separators allowed), else `default`.
///
/// ```
/// assert_eq!(nlkit_testns::size_from_env("NLKIT_NO_SUCH_SIZE", 7), 7);
/// ```
pub fn size_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}
