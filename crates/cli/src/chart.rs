//! A small SVG line chart for `nlkit bench` (time and memory against table size).
//!
//! Written by hand on purpose: the plotting crates lay out text through a font backend even
//! for SVG output, which would pull system fonts into a command-line tool for two charts.
//! SVG text is laid out by the viewer, so nothing here needs to measure glyphs.

use std::fmt::Write;

/// One line: a label and (x, y) points.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Draws one panel (log-log axes) at vertical offset `top` into `svg`.
fn panel(svg: &mut String, top: f64, title: &str, unit: &str, series: &[Series]) {
    let (left, width, height) = (80.0, 560.0, 260.0);
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if x > 0.0 && y > 0.0 {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        return;
    }
    let (lx0, lx1) = (
        x0.log10().floor(),
        x1.log10().ceil().max(x0.log10().floor() + 1.0),
    );
    let (ly0, ly1) = (
        y0.log10().floor(),
        y1.log10().ceil().max(y0.log10().floor() + 1.0),
    );
    let px = |x: f64| left + (x.log10() - lx0) / (lx1 - lx0) * width;
    let py = |y: f64| top + height - (y.log10() - ly0) / (ly1 - ly0) * height;
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="15" font-weight="bold">{title}</text>"#,
        left,
        top - 12.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#888"/>"##
    );
    let mut e = lx0;
    while e <= lx1 {
        let x = left + (e - lx0) / (lx1 - lx0) * width;
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" font-size="11" text-anchor="middle">1e{e}</text>"##,
            top + height,
            top + height + 16.0
        );
        e += 1.0;
    }
    let mut e = ly0;
    while e <= ly1 {
        let y = top + height - (e - ly0) / (ly1 - ly0) * height;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" font-size="11" text-anchor="end">1e{e} {unit}</text>"##,
            left + width,
            left - 6.0,
            y + 4.0
        );
        e += 1.0;
    }
    for (i, s) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0 > 0.0 && p.1 > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for p in &path {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>"#);
        }
        let ly = top + 14.0 + i as f64 * 16.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="{c}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            left + width + 12.0,
            ly - 4.0,
            left + width + 30.0,
            ly,
            escape(&s.label)
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the two panels: time (seconds) and peak memory (KiB) against table size.
pub fn render(time: &[Series], memory: &[Series]) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="860" height="720" font-family="sans-serif">"#
    );
    svg.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    panel(
        &mut svg,
        40.0,
        "Dump time against table size (log-log)",
        "s",
        time,
    );
    panel(
        &mut svg,
        400.0,
        "Peak memory against table size (log-log)",
        "KiB",
        memory,
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_lines_and_legend() {
        let s = super::render(
            &[super::Series {
                label: "a<b".into(),
                points: vec![(1e4, 0.01), (1e5, 0.1)],
            }],
            &[],
        );
        assert!(s.starts_with("<svg") && s.contains("<polyline") && s.contains("a&lt;b"));
    }
}
