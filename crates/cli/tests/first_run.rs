//! The first-run commands: demo and bench end to end at small sizes (each runs in its own
//! private namespace, which it creates), completions and man pages.

mod common;
use common::*;

#[test]
fn demo_runs_end_to_end() {
    let out = ok(&[
        "demo",
        "--routes",
        "2000",
        "--conntrack",
        "2000",
        "--churn",
        "600",
    ]);
    for line in [
        "kernel raw route dump",
        "nlkit route dump, 2 threads",
        "mirror initial sync (all tables)",
        "mirror serves the route dump (again)",
        "conntrack lookups from the table",
        "mirror converged after the churn",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(out.contains("equal to the kernel"), "{out}");
    assert!(out.contains("2000 found"), "{out}");
}

#[test]
fn bench_writes_one_csv_row_per_tool_and_size() {
    let dir = std::env::temp_dir().join(format!("nlkit-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("b.csv");
    let svg = dir.join("b.svg");
    ok(&[
        "bench",
        "--sizes",
        "500,1000",
        "--repeat",
        "1",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("tool,object,size,seconds,ratio_to_raw,peak_kib")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        assert_eq!(r.len(), 6, "{r:?}");
        assert!(r[3].parse::<f64>().unwrap() > 0.0, "{r:?}");
        assert!(
            seen.insert((r[0].clone(), r[1].clone(), r[2].clone())),
            "duplicate row {r:?}"
        );
    }
    for size in ["500", "1000"] {
        for tool in [
            "\"kernel raw receive loop\"",
            "\"nlkit dump (1 thread)\"",
            "\"nlkit route show >/dev/null\"",
        ] {
            assert!(
                seen.contains(&(tool.to_owned(), "routes".to_owned(), size.to_owned())),
                "{tool} {size}"
            );
        }
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn completions_and_man_pages_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(&["completions", shell]);
        assert!(out.contains("nlkit") && out.len() > 1000, "{shell}");
    }
    let dir = std::env::temp_dir().join(format!("nlkit-man-test-{}", std::process::id()));
    ok(&["man", dir.to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.join("nlkit.1")).unwrap();
    assert!(page.contains(".TH nlkit") && page.contains("route"));
    assert!(dir.join("nlkit-route.1").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
