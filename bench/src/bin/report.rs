//! `report`: renders the last criterion run into one markdown table per group and an SVG
//! chart of RCS and batch throughput by size, so a person can look rather than read.
//!
//! ```text
//! cargo bench                                   # or any subset, e.g. --bench rcs
//! cargo run --release -p dktp-bench --bin report [-- CRITERION_DIR OUT_DIR]
//! ```
//! Defaults: `target/criterion` (or `$CARGO_TARGET_DIR/criterion`) in,
//! `report.{md,svg}` beside it out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

/// One measured point.
#[derive(Debug, Clone)]
struct Point {
    group: String,
    function: String,
    param: String,
    /// Mean time per iteration, nanoseconds.
    mean_ns: f64,
    /// Bytes or elements per iteration.
    throughput: Option<(String, f64)>,
}

impl Point {
    /// MB/s for byte throughput, millions per second for elements, None otherwise.
    fn rate(&self) -> Option<(f64, &'static str)> {
        let (kind, n) = self.throughput.as_ref()?;
        let per_s = n / (self.mean_ns / 1e9);
        Some(if kind == "Bytes" {
            (per_s / 1e6, "MB/s")
        } else {
            (per_s / 1e6, "M/s")
        })
    }
}

fn collect(dir: &Path, out: &mut Vec<Point>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") {
                if let Some(pt) = read_point(&p) {
                    out.push(pt);
                }
            } else if p.file_name().is_none_or(|n| n != "base" && n != "report") {
                collect(&p, out);
            }
        }
    }
}

fn read_json(p: PathBuf) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn read_point(dir: &Path) -> Option<Point> {
    let b = read_json(dir.join("benchmark.json"))?;
    let e = read_json(dir.join("estimates.json"))?;
    let s = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    let throughput = b
        .get("throughput")
        .and_then(Value::as_object)
        .and_then(|t| {
            t.iter()
                .next()
                .and_then(|(k, v)| v.as_f64().map(|n| (k.clone(), n)))
        });
    Some(Point {
        group: s("group_id")?,
        function: s("function_id").unwrap_or_else(|| s("value_str").unwrap_or_default()),
        param: s("value_str").unwrap_or_default(),
        mean_ns: e.get("mean")?.get("point_estimate")?.as_f64()?,
        throughput,
    })
}

fn param_key(p: &str) -> (u64, String) {
    (p.parse::<u64>().unwrap_or(u64::MAX), p.to_string())
}

fn markdown(points: &[Point]) -> String {
    let mut groups: BTreeMap<&str, Vec<&Point>> = BTreeMap::new();
    for p in points {
        groups.entry(&p.group).or_default().push(p);
    }
    let mut md = String::from(
        "# dktp benchmark report\n\nFrom the last criterion run (mean per iteration). Throughput in MB/s for byte groups, millions per second for element groups; time in µs where there is no throughput.\n",
    );
    for (group, pts) in groups {
        let mut params: Vec<&str> = pts.iter().map(|p| p.param.as_str()).collect();
        params.sort_by_key(|p| param_key(p));
        params.dedup();
        let mut funcs: Vec<&str> = pts.iter().map(|p| p.function.as_str()).collect();
        funcs.sort();
        funcs.dedup();
        let unit = pts
            .iter()
            .find_map(|p| p.rate().map(|r| r.1))
            .unwrap_or("µs");
        let _ = writeln!(md, "\n## {group} ({unit})\n");
        let _ = writeln!(
            md,
            "| | {} |",
            params
                .iter()
                .map(|p| if p.is_empty() { "-" } else { p })
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(md, "|---|{}", "---:|".repeat(params.len()));
        for f in funcs {
            let mut row = format!("| {f} |");
            for param in &params {
                let cell = pts
                    .iter()
                    .find(|p| p.function == f && p.param == *param)
                    .map(|p| match p.rate() {
                        Some((r, _)) => format!("{r:.1}"),
                        None => format!("{:.2}", p.mean_ns / 1e3),
                    })
                    .unwrap_or_default();
                let _ = write!(row, " {cell} |");
            }
            let _ = writeln!(md, "{row}");
        }
    }
    md
}

/// Chart series: group → series name → (size, MB/s) points.
type Series<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Vec<(f64, f64)>>>;

/// A log-x line chart per group whose name starts with one of `prefixes`.
fn svg(points: &[Point], prefixes: &[&str]) -> Option<String> {
    let mut groups: Series<'_> = BTreeMap::new();
    for p in points {
        if !prefixes.iter().any(|x| p.group.starts_with(x)) {
            continue;
        }
        let (Ok(size), Some((rate, "MB/s"))) = (p.param.parse::<f64>(), p.rate()) else {
            continue;
        };
        groups
            .entry(&p.group)
            .or_default()
            .entry(&p.function)
            .or_default()
            .push((size, rate));
    }
    if groups.is_empty() {
        return None;
    }
    const W: f64 = 520.0;
    const H: f64 = 320.0;
    const PAD: f64 = 60.0;
    const COLORS: [&str; 8] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    ];
    let cols = 2usize;
    let rows = groups.len().div_ceil(cols);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        W * cols as f64,
        H * rows as f64
    );
    for (i, (group, series)) in groups.iter().enumerate() {
        let (ox, oy) = ((i % cols) as f64 * W, (i / cols) as f64 * H);
        let all: Vec<(f64, f64)> = series.values().flatten().copied().collect();
        let (xmin, xmax) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let ymax = all.iter().fold(0.0f64, |a, p| a.max(p.1)) * 1.1;
        let lx = |x: f64| {
            let (a, b) = (xmin.ln(), xmax.ln());
            ox + PAD + if b > a { (x.ln() - a) / (b - a) } else { 0.5 } * (W - 2.0 * PAD)
        };
        let ly = |y: f64| oy + H - PAD + -(y / ymax.max(1e-9)) * (H - 2.0 * PAD);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">{group} (MB/s by bytes)</text>",
            ox + PAD,
            oy + 20.0
        );
        let _ = writeln!(
            s,
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/><line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{3}\" stroke=\"black\"/>",
            ox + PAD,
            oy + H - PAD,
            ox + W - PAD,
            oy + PAD
        );
        for k in 0..=4 {
            let y = ymax * k as f64 / 4.0;
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y:.0}</text>",
                ox + PAD - 4.0,
                ly(y) + 4.0
            );
        }
        let mut xs: Vec<f64> = all.iter().map(|p| p.0).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for x in xs {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x:.0}</text>",
                lx(x),
                oy + H - PAD + 14.0
            );
        }
        for (j, (name, pts)) in series.iter().enumerate() {
            let mut pts = pts.clone();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let c = COLORS[j % COLORS.len()];
            let path: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", lx(p.0), ly(p.1)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
            for p in &pts {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                    lx(p.0),
                    ly(p.1)
                );
            }
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"{c}\">{name}</text>",
                ox + W - PAD + 4.0 - 90.0,
                oy + PAD + 14.0 * j as f64
            );
        }
    }
    s.push_str("</svg>\n");
    Some(s)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let input = args.first().map(PathBuf::from).unwrap_or_else(|| {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => PathBuf::from(dir).join("criterion"),
            None => root.join("target/criterion"),
        }
    });
    let out_dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| input.clone());
    let mut points = Vec::new();
    collect(&input, &mut points);
    if points.is_empty() {
        eprintln!(
            "report: no criterion results under {} (run `cargo bench` first)",
            input.display()
        );
        return ExitCode::FAILURE;
    }
    let md = markdown(&points);
    let md_path = out_dir.join("report.md");
    if let Err(e) = std::fs::create_dir_all(&out_dir).and_then(|_| std::fs::write(&md_path, &md)) {
        eprintln!("report: {e}");
        return ExitCode::FAILURE;
    }
    println!("{md}");
    println!("wrote {}", md_path.display());
    if let Some(svg) = svg(&points, &["rcs512_seal", "rcs512_open", "batch"]) {
        let p = out_dir.join("report.svg");
        if let Err(e) = std::fs::write(&p, svg) {
            eprintln!("report: {e}");
            return ExitCode::FAILURE;
        }
        println!("wrote {}", p.display());
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(group: &str, f: &str, param: &str, ns: f64, bytes: f64) -> Point {
        Point {
            group: group.into(),
            function: f.into(),
            param: param.into(),
            mean_ns: ns,
            throughput: Some(("Bytes".into(), bytes)),
        }
    }

    #[test]
    fn table_and_chart_carry_the_rates() {
        // 1500 bytes in 1500 ns = 1000 MB/s; 64 bytes in 640 ns = 100 MB/s.
        let pts = vec![
            pt("rcs512_seal", "aesni", "1500", 1500.0, 1500.0),
            pt("rcs512_seal", "aesni", "64", 640.0, 64.0),
        ];
        let md = markdown(&pts);
        assert!(md.contains("| aesni | 100.0 | 1000.0 |"), "{md}");
        let chart = svg(&pts, &["rcs512_seal"]).expect("chart");
        assert!(chart.contains("<polyline") && chart.contains("aesni"));
        assert!(svg(&pts, &["batch"]).is_none());
    }
}
