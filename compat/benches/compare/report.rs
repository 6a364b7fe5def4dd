//! Tables: rows, medians, ratios against the targets.

use crate::measure::{Outcome, SizeRecord, fmt_bytes};
use crate::stores::KINDS;

pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) values: [f64; 4],
    /// max / min of the per-round values.
    pub(crate) spread: [f64; 4],
    /// Lower is better (times); false for throughput.
    pub(crate) lower_better: bool,
    pub(crate) target_normal: Option<f64>,
    pub(crate) target_full: Option<f64>,
}

impl Row {
    /// Above 1 means RedbStore is better; (Normal vs SQLite default, Full
    /// vs SQLite FULL).
    pub(crate) fn ratios(&self) -> (f64, f64) {
        let r = |redb: f64, sqlite: f64| {
            if self.lower_better {
                sqlite / redb
            } else {
                redb / sqlite
            }
        };
        (
            r(self.values[0], self.values[2]),
            r(self.values[1], self.values[3]),
        )
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Prints the head of a table with a column per store, then `extra`
/// columns (`extra_head` like " A | B |", `extra_rule` like "---|---|").
pub(crate) fn print_store_header(extra_head: &str, extra_rule: &str) {
    let labels: Vec<&str> = KINDS.iter().map(|k| k.label()).collect();
    println!("| Workload | {} |{extra_head}", labels.join(" | "));
    println!("|---|---:|---:|---:|---:|{extra_rule}");
}

pub(crate) fn fmt_val(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(crate) fn fmt_ratio(r: f64, target: Option<f64>) -> String {
    match target {
        Some(t) => format!(
            "{r:.2}× ({} ≥{t}×)",
            if r >= t { "meets" } else { "MISSES" }
        ),
        None => format!("{r:.2}×"),
    }
}

/// (row name, unit, lower is better, target Normal, target Full).
pub(crate) type RowDef = (&'static str, &'static str, bool, Option<f64>, Option<f64>);

pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) rows: Vec<RowDef>,
    pub(crate) latency_label: Option<&'static str>,
}

/// The table rows of `w`: per store, the median over rounds and the spread.
pub(crate) fn summarize(w: &Workload, outcomes: &[Vec<Outcome>]) -> Vec<Row> {
    w.rows
        .iter()
        .enumerate()
        .map(|(ri, &(name, unit, lower_better, tn, tf))| {
            let per_round =
                |k: usize| -> Vec<f64> { outcomes[k].iter().map(|o| o.values[ri]).collect() };
            Row {
                name,
                unit,
                values: std::array::from_fn(|k| median(per_round(k))),
                spread: std::array::from_fn(|k| {
                    let v = per_round(k);
                    let max = v.iter().cloned().fold(f64::MIN, f64::max);
                    let min = v.iter().cloned().fold(f64::MAX, f64::min);
                    max / min
                }),
                lower_better,
                target_normal: tn,
                target_full: tf,
            }
        })
        .collect()
}

/// Per store, the medians over rounds of the (p50, p99) latencies.
pub(crate) fn latency_medians(outcomes: &[Vec<Outcome>]) -> [(f64, f64); 4] {
    std::array::from_fn(|k| {
        let l: Vec<(f64, f64)> = outcomes[k]
            .iter()
            .map(|o| o.latency.unwrap_or((f64::NAN, f64::NAN)))
            .collect();
        (
            median(l.iter().map(|x| x.0).collect()),
            median(l.iter().map(|x| x.1).collect()),
        )
    })
}

/// The main table: every row on every store, with the two ratios.
pub(crate) fn print_ratio_table(rows: &[Row]) {
    println!(
        "| Workload | Unit | {} | {} | {} | {} | Normal vs SQLite default | Full vs SQLite FULL |",
        KINDS[0].label(),
        KINDS[1].label(),
        KINDS[2].label(),
        KINDS[3].label()
    );
    println!("|---|---|---:|---:|---:|---:|---|---|");
    for r in rows {
        let (rn, rf) = r.ratios();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.unit,
            fmt_val(r.values[0]),
            fmt_val(r.values[1]),
            fmt_val(r.values[2]),
            fmt_val(r.values[3]),
            fmt_ratio(rn, r.target_normal),
            fmt_ratio(rf, r.target_full),
        );
    }
}

/// File sizes after each workload, open and closed.
pub(crate) fn print_size_table(sizes: &[(&'static str, SizeRecord)]) {
    println!(
        "\n#### File size after each workload (last round): open (live, incl. journal / -wal / -shm) → after close; apparent bytes\n"
    );
    print_store_header(
        " Normal: redb / SQLite (closed) | Full: redb / SQLite (closed) |",
        "---|---|",
    );
    let mut alloc_notes = Vec::new();
    for (name, s) in sizes {
        let cell = |k: usize| format!("{} → {}", fmt_bytes(s.live[k].0), fmt_bytes(s.closed[k].0));
        let ratio = |a: usize, b: usize| {
            let r = s.closed[a].0 as f64 / s.closed[b].0 as f64;
            format!(
                "{r:.2}× ({} ≤1.5×)",
                if r <= 1.5 { "meets" } else { "MISSES" }
            )
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            cell(0),
            cell(1),
            cell(2),
            cell(3),
            ratio(0, 2),
            ratio(1, 3)
        );
        for (k, kind) in KINDS.iter().enumerate() {
            let (app, alloc) = s.closed[k];
            if app > 0 && (alloc as f64 / app as f64 - 1.0).abs() > 0.25 && app > 64 * 1024 {
                alloc_notes.push(format!(
                    "{name}/{}: closed apparent {} but allocated {}",
                    kind.label(),
                    fmt_bytes(app),
                    fmt_bytes(alloc)
                ));
            }
        }
    }
    if !alloc_notes.is_empty() {
        println!(
            "\nAllocated (on-disk blocks) differs from apparent size: {}",
            alloc_notes.join("; ")
        );
    }
    println!("\nFiles while open:");
    for (name, s) in sizes {
        println!(
            "- {name}: {}",
            (0..4)
                .map(|k| format!("{} [{}]", KINDS[k].label(), s.listing_live[k]))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}
