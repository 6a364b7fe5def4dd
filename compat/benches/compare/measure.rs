//! Measurement plumbing: scale, samples, sizes, and what machine this ran on.

use std::path::Path;
use std::time::Duration;

#[derive(Clone, Copy)]
pub(crate) struct Scale(pub(crate) f64);

impl Scale {
    pub(crate) fn from_env() -> Scale {
        let s = std::env::var("WA_BENCH_SCALE")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(1.0);
        Scale(s)
    }

    pub(crate) fn n(self, base: usize) -> usize {
        ((base as f64 * self.0).round() as usize).max(1)
    }
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (p50, p99) in µs.
pub(crate) fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_unstable();
    let p = |q: usize| micros(samples[(samples.len() * q / 100).min(samples.len() - 1)]);
    (p(50), p(99))
}

/// What one workload on one store produced.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Primary values, one per result row of the workload.
    pub(crate) values: Vec<f64>,
    /// Per-op latency (p50, p99) in µs, for single-op workloads.
    pub(crate) latency: Option<(f64, f64)>,
}

/// Total bytes of every file in `dir`: apparent size and allocated size.
pub(crate) fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(m) = e.metadata()
                && m.is_file()
            {
                apparent += m.len();
                allocated += m.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

pub(crate) fn dir_listing(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let len = e.metadata().ok()?.len();
                    Some(format!(
                        "{}={}",
                        e.file_name().to_string_lossy(),
                        fmt_bytes(len)
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join(", ")
}

pub(crate) fn fmt_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

#[derive(Default)]
pub(crate) struct SizeRecord {
    pub(crate) live: [(u64, u64); 4],
    pub(crate) closed: [(u64, u64); 4],
    pub(crate) listing_live: [String; 4],
}

pub(crate) fn filesystem_of(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let mount_point = f[1].replace("\\040", " ");
        if path.starts_with(&mount_point)
            && best.as_ref().is_none_or(|(l, _)| mount_point.len() >= *l)
        {
            best = Some((
                mount_point.len(),
                format!("{} ({} on {})", f[2], f[0], mount_point),
            ));
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| "unknown".into())
}

pub(crate) fn machine_line(dir: &Path) -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mem = status_meminfo("MemTotal:")
        .map(|k| format!("{:.1} GiB", k as f64 / (1 << 20) as f64))
        .unwrap_or_else(|| "?".into());
    let load = load_line();
    format!(
        "Machine: nproc={nproc}, CPU: {cpu}, RAM {mem}, kernel {kernel}, temp dir filesystem: {}, load average at start: {load}",
        filesystem_of(dir)
    )
}

/// The crate's git revision (best effort), since the engine under test
/// changes often.
pub(crate) fn git_describe() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("git {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "git revision unknown".into())
}

/// Load averages, plus CPU pressure (PSI) where the kernel reports it: the
/// machine is shared, so this says how quiet it was.
pub(crate) fn load_line() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let psi = std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.trim_start_matches("some ").to_string())
        })
        .map(|p| format!(" (CPU pressure: {p})"))
        .unwrap_or_default();
    format!("{load}{psi}")
}

pub(crate) fn status_meminfo(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
