//! The results: JSON (everything), Markdown (tables, ratios, targets) and an
//! SVG chart of the latency percentiles per path.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::load::{Method, Mode, Path3, RunResult, round3};

fn find(runs: &[RunResult], path: Path3, method: Method, mode: Mode) -> Option<&RunResult> {
    runs.iter()
        .find(|r| r.path == path && r.method == method && r.mode == mode)
}

/// Per method: throughput ratios (max mode) and the p99 the gateway adds (rate mode).
pub fn ratios(runs: &[RunResult]) -> Value {
    let mut out = serde_json::Map::new();
    for method in Method::ALL {
        let direct_max = find(runs, Path3::Direct, method, Mode::Max);
        let gw_max = find(runs, Path3::Gateway, method, Mode::Max);
        let rest_max = find(runs, Path3::Rest, method, Mode::Max);
        let direct_rate = find(runs, Path3::Direct, method, Mode::Rate);
        let gw_rate = find(runs, Path3::Gateway, method, Mode::Rate);
        let rest_rate = find(runs, Path3::Rest, method, Mode::Rate);
        let ratio = |a: Option<&RunResult>, b: Option<&RunResult>| match (a, b) {
            (Some(a), Some(b)) if b.rps > 0.0 => json!(round3(a.rps / b.rps)),
            _ => Value::Null,
        };
        let added_p50 = |a: Option<&RunResult>, b: Option<&RunResult>| match (a, b) {
            (Some(a), Some(b)) => json!(round3(a.p50_ms - b.p50_ms)),
            _ => Value::Null,
        };
        let added = |a: Option<&RunResult>, b: Option<&RunResult>| match (a, b) {
            (Some(a), Some(b)) => json!(round3(a.p99_ms - b.p99_ms)),
            _ => Value::Null,
        };
        out.insert(
            method.label().to_owned(),
            json!({
                "gateway_grpc_over_direct_rps": ratio(gw_max, direct_max),
                "rest_over_direct_rps": ratio(rest_max, direct_max),
                "gateway_grpc_added_p99_ms_at_rate": added(gw_rate, direct_rate),
                "rest_added_p99_ms_at_rate": added(rest_rate, direct_rate),
                "gateway_grpc_added_p50_ms_at_rate": added_p50(gw_rate, direct_rate),
                "rest_added_p50_ms_at_rate": added_p50(rest_rate, direct_rate),
            }),
        );
    }
    Value::Object(out)
}

fn worst(ratios: &Value, key: &str, max: bool) -> Option<(f64, String)> {
    let obj = ratios.as_object()?;
    let mut best: Option<(f64, String)> = None;
    for (method, r) in obj {
        let Some(v) = r[key].as_f64() else { continue };
        let better = match &best {
            None => true,
            Some((b, _)) => {
                if max {
                    v > *b
                } else {
                    v < *b
                }
            }
        };
        if better {
            best = Some((v, method.clone()));
        }
    }
    best
}

/// The four targets, each with the measured value and met/missed.
pub fn targets(ratios: &Value, service: &Value, rate: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push =
        |name: String, value: Option<f64>, unit: &str, target: f64, at_most: bool, note: String| {
            let met = value.map(|v| if at_most { v <= target } else { v >= target });
            out.push(json!({
                "target": name, "value": value.map(round3), "unit": unit,
                "limit": target, "met": met, "note": note,
            }));
        };
    let rest = worst(ratios, "rest_over_direct_rps", false);
    push(
        "REST through gateway >= 0.5x direct gRPC throughput".into(),
        rest.as_ref().map(|r| r.0),
        "x",
        0.5,
        false,
        rest.map(|r| format!("lowest: {}", r.1)).unwrap_or_default(),
    );
    let added = worst(ratios, "gateway_grpc_added_p99_ms_at_rate", true);
    push(
        format!("p99 added by the gateway (gRPC) at {rate} req/s <= 1 ms"),
        added.as_ref().map(|r| r.0),
        "ms",
        1.0,
        true,
        added
            .map(|r| format!("highest: {}", r.1))
            .unwrap_or_default(),
    );
    let rss10k = service["rss_mib"]
        .as_object()
        .and_then(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.parse::<usize>().ok()?, v.as_f64()?)))
                .find(|(k, _)| (10_000..=10_010).contains(k))
        })
        .map(|(_, v)| v);
    push(
        "service RSS with 10k records <= 15 MiB".into(),
        rss10k,
        "MiB",
        15.0,
        true,
        String::new(),
    );
    let start = service["start_to_serving"]["5"]["median_ms"].as_f64();
    push(
        "start to SERVING <= 100 ms (sample data, median)".into(),
        start,
        "ms",
        100.0,
        true,
        String::new(),
    );
    out
}

fn usage_of(r: &RunResult, name: &str) -> String {
    r.usage
        .iter()
        .find(|u| u.name == name)
        .map_or("-".into(), |u| {
            format!("{:.0}% / {:.0}", u.cpu_pct, u.rss_max_mib)
        })
}

pub fn markdown(all: &Value, runs: &[RunResult]) -> String {
    let mut md = String::new();
    let cfg = &all["config"];
    let _ = writeln!(md, "# Benchmark results\n");
    let _ = writeln!(
        md,
        "{} on {} ({} cores, {} MiB). Runs of {} each: **max** = {} concurrent requests over {} connections \
         (gRPC) / {} workers (REST); **rate** = {} req/s. Stack store: {} records at start.\n",
        all["started"].as_str().unwrap_or(""),
        all["machine"]["cpu"].as_str().unwrap_or("?"),
        all["machine"]["nproc"],
        all["machine"]["mem_mib"],
        cfg["duration"].as_str().unwrap_or(""),
        cfg["concurrency"],
        cfg["connections"],
        cfg["concurrency"],
        cfg["rate"],
        cfg["stack_records"],
    );
    let _ = writeln!(
        md,
        "| method | mode | path | req/s | p50 ms | p90 ms | p99 ms | errors | customer-service CPU / RSS MiB | Envoy CPU / RSS MiB | envoy-gateway CPU | load tool CPU |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in runs {
        let tool = r
            .usage
            .iter()
            .find(|u| u.name == r.tool)
            .map_or("-".into(), |u| format!("{:.0}% ({})", u.cpu_pct, r.tool));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
            r.method.label(),
            match r.mode {
                Mode::Max => "max".to_owned(),
                Mode::Rate => format!("{}/s", cfg["rate"]),
            },
            r.path.label(),
            r.rps,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.errors_count(),
            usage_of(r, "customer-service"),
            if r.path == Path3::Direct {
                "(idle) ".to_owned() + &usage_of(r, "envoy")
            } else {
                usage_of(r, "envoy")
            },
            r.usage
                .iter()
                .find(|u| u.name == "envoy-gateway")
                .map_or("-".into(), |u| format!("{:.0}%", u.cpu_pct)),
            tool,
        );
    }
    let _ = writeln!(
        md,
        "\nCPU is the average over the run in % of one core (this machine has {}).\n",
        all["machine"]["nproc"]
    );

    let _ = writeln!(md, "## Ratios\n");
    let _ = writeln!(
        md,
        "| method | gateway gRPC / direct (req/s, max) | REST / direct (req/s, max) | p50 / p99 added, gateway gRPC (ms, at rate) | p50 / p99 added, REST (ms, at rate) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    if let Some(ratios) = all["ratios"].as_object() {
        for (m, r) in ratios {
            let f = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2}"));
            let _ = writeln!(
                md,
                "| {m} | {} | {} | {} / {} | {} / {} |",
                f(&r["gateway_grpc_over_direct_rps"]),
                f(&r["rest_over_direct_rps"]),
                f(&r["gateway_grpc_added_p50_ms_at_rate"]),
                f(&r["gateway_grpc_added_p99_ms_at_rate"]),
                f(&r["rest_added_p50_ms_at_rate"]),
                f(&r["rest_added_p99_ms_at_rate"]),
            );
        }
    }

    let svc = &all["service"];
    let _ = writeln!(md, "\n## The service on its own (release binary)\n");
    let _ = writeln!(md, "| records | RSS MiB |\n|---:|---:|");
    if let Some(m) = svc["rss_mib"].as_object() {
        for (k, v) in m {
            let _ = writeln!(md, "| {k} | {v} |");
        }
    }
    let _ = writeln!(
        md,
        "\n| start to SERVING | median ms | runs ms |\n|---|---:|---|"
    );
    if let Some(m) = svc["start_to_serving"].as_object() {
        for (k, v) in m {
            let _ = writeln!(
                md,
                "| {k} records | {} | {} |",
                v["median_ms"], v["runs_ms"]
            );
        }
    }
    let list = &svc["list_page_20"];
    let _ = writeln!(
        md,
        "\nListCustomers page_size 20, {} sequential calls per position on one connection:\n\n| store | position | median µs | p99 µs |\n|---|---|---:|---:|",
        list["calls_per_position"]
    );
    let large = &list["large_store"];
    for pos in ["start", "middle", "end"] {
        let p = &large[pos];
        let _ = writeln!(
            md,
            "| {} records | {pos} (after {}) | {} | {} |",
            large["records"], p["after"], p["median_us"], p["p99_us"]
        );
    }
    let small = &list["small_store"];
    let _ = writeln!(
        md,
        "| {} records | start | {} | {} |",
        small["records"], small["median_us"], small["p99_us"]
    );

    let _ = writeln!(
        md,
        "\n## Targets\n\n| target | measured | |\n|---|---:|---|"
    );
    if let Some(ts) = all["targets"].as_array() {
        for t in ts {
            let verdict = match t["met"].as_bool() {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(
                md,
                "| {} | {} {} {} | {verdict} |",
                t["target"].as_str().unwrap_or(""),
                t["value"],
                t["unit"].as_str().unwrap_or(""),
                t["note"]
                    .as_str()
                    .map(|n| if n.is_empty() {
                        String::new()
                    } else {
                        format!("({n})")
                    })
                    .unwrap_or_default(),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nCreate adds a record per successful request: the store grows by {} records during the run.",
        all["created_records"]
    );
    let _ = writeln!(md, "\n![latency percentiles](latency.svg)");
    md
}

/// Horizontal bars: p50/p90/p99 for every (method, path), one panel per mode.
pub fn svg(runs: &[RunResult], rate: u32) -> String {
    let row_h = 26.0;
    let label_w = 250.0;
    let plot_w = 560.0;
    let colors = [("p50", "#4e79a7"), ("p90", "#f28e2b"), ("p99", "#e15759")];
    let mut s = String::new();
    let panels = [
        (Mode::Rate, format!("at {rate} req/s")),
        (Mode::Max, "max throughput (fixed concurrency)".to_owned()),
    ];
    let rows_per_panel = Method::ALL.len() * Path3::ALL.len();
    let panel_h = rows_per_panel as f64 * row_h + 60.0;
    let height = panel_h * panels.len() as f64 + 40.0;
    let width = label_w + plot_w + 80.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, (label, color)) in colors.iter().enumerate() {
        let x = label_w + i as f64 * 80.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="10" width="12" height="12" fill="{color}"/><text x="{}" y="21">{label}</text>"#,
            x + 16.0
        );
    }
    for (pi, (mode, title)) in panels.iter().enumerate() {
        let top = 40.0 + pi as f64 * panel_h;
        let selected: Vec<&RunResult> = Method::ALL
            .iter()
            .flat_map(|m| {
                Path3::ALL
                    .iter()
                    .filter_map(move |p| find(runs, *p, *m, *mode))
            })
            .collect();
        let max = selected
            .iter()
            .map(|r| r.p99_ms)
            .fold(0.0_f64, f64::max)
            .max(0.001);
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}" font-weight="bold">Latency {title}, ms</text>"#,
            top + 12.0
        );
        let axis_y = top + 24.0 + rows_per_panel as f64 * row_h;
        for tick in 0..=4 {
            let v = max * tick as f64 / 4.0;
            let x = label_w + plot_w * tick as f64 / 4.0;
            let _ = writeln!(
                s,
                r##"<line x1="{x}" y1="{}" x2="{x}" y2="{axis_y}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{v:.2}</text>"##,
                top + 20.0,
                axis_y + 14.0
            );
        }
        for (ri, r) in selected.iter().enumerate() {
            let y = top + 24.0 + ri as f64 * row_h;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{} · {}</text>"#,
                label_w - 8.0,
                y + 15.0,
                r.method.label(),
                r.path.label()
            );
            for (bi, (v, (_, color))) in [r.p50_ms, r.p90_ms, r.p99_ms]
                .iter()
                .zip(colors.iter())
                .enumerate()
            {
                let w = (v / max * plot_w).max(1.0);
                let _ = writeln!(
                    s,
                    r#"<rect x="{label_w}" y="{}" width="{w:.1}" height="6" fill="{color}"><title>{:.3} ms</title></rect>"#,
                    y + 4.0 + bi as f64 * 7.0,
                    v
                );
            }
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" fill="#555">{:.2}</text>"##,
                label_w + (r.p99_ms / max * plot_w) + 4.0,
                y + 24.0,
                r.p99_ms
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(path: Path3, method: Method, mode: Mode, rps: f64, p50: f64, p99: f64) -> RunResult {
        RunResult {
            path,
            method,
            mode,
            tool: "ghz",
            requests: 100,
            ok: 100,
            cut: 0,
            rps,
            p50_ms: p50,
            p90_ms: p50,
            p99_ms: p99,
            errors: Value::Null,
            usage: Vec::new(),
        }
    }

    fn runs() -> Vec<RunResult> {
        let mut v = Vec::new();
        for method in Method::ALL {
            v.push(run(Path3::Direct, method, Mode::Max, 1000.0, 1.0, 2.0));
            v.push(run(Path3::Gateway, method, Mode::Max, 600.0, 1.0, 2.0));
            v.push(run(Path3::Rest, method, Mode::Max, 400.0, 1.0, 2.0));
            v.push(run(Path3::Direct, method, Mode::Rate, 100.0, 0.2, 1.0));
            v.push(run(Path3::Gateway, method, Mode::Rate, 100.0, 0.5, 1.5));
            v.push(run(Path3::Rest, method, Mode::Rate, 100.0, 0.6, 3.0));
        }
        v
    }

    #[test]
    fn ratios_and_targets() {
        let ratios = ratios(&runs());
        let get = &ratios["GetCustomer"];
        assert_eq!(get["gateway_grpc_over_direct_rps"], json!(0.6));
        assert_eq!(get["rest_over_direct_rps"], json!(0.4));
        assert_eq!(get["gateway_grpc_added_p99_ms_at_rate"], json!(0.5));
        assert_eq!(get["rest_added_p50_ms_at_rate"], json!(0.4));
        let service = json!({"rss_mib": {"5": 5.0, "10005": 16.0}, "start_to_serving": {"5": {"median_ms": 3.0}}});
        let t = targets(&ratios, &service, 1000);
        let met: Vec<Option<bool>> = t.iter().map(|t| t["met"].as_bool()).collect();
        // REST 0.4x < 0.5x missed; +0.5 ms met; 16 MiB missed; 3 ms met.
        assert_eq!(met, [Some(false), Some(true), Some(false), Some(true)]);
    }

    #[test]
    fn svg_has_a_bar_per_percentile_and_run() {
        let svg = svg(&runs(), 1000);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // 3 legend squares + 18 runs x 3 percentiles + the background.
        assert_eq!(svg.matches("<rect").count(), 1 + 3 + 18 * 3);
    }
}
