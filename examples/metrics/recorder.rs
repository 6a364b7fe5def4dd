//! A small in-memory `metrics` recorder: counters, gauges, and histograms
//! kept whole so that quantiles can be read. For the example and the
//! metrics test; a real program installs an exporter (Prometheus, OTLP...).

// The example reads part of it, the metrics test the rest.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, SharedString, Unit};

/// Every value recorded into one histogram.
#[derive(Default)]
pub struct Values(Mutex<Vec<f64>>);

impl HistogramFn for Values {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

impl Values {
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The `q` quantile (0..=1) of what was recorded, by nearest rank.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_by(f64::total_cmp);
        let last = v.len().checked_sub(1)?;
        Some(v[((last as f64) * q).round() as usize])
    }
}

#[derive(Clone, Default)]
pub struct Recorder {
    counters: Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>,
    gauges: Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>,
    histograms: Arc<Mutex<BTreeMap<String, Arc<Values>>>>,
}

/// `name{label="value",...}`, as Prometheus writes a series.
pub fn series(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
        .collect();
    match labels.is_empty() {
        true => key.name().to_string(),
        false => format!("{}{{{}}}", key.name(), labels.join(",")),
    }
}

fn entry<T: Default>(map: &Mutex<BTreeMap<String, Arc<T>>>, key: &Key) -> Arc<T> {
    map.lock().unwrap().entry(series(key)).or_default().clone()
}

impl Recorder {
    /// A counter's value, by its series (`name{label="value"}`).
    pub fn counter(&self, series: &str) -> Option<u64> {
        let map = self.counters.lock().unwrap();
        map.get(series).map(|c| c.load(Ordering::Relaxed))
    }

    pub fn gauge(&self, series: &str) -> Option<f64> {
        let map = self.gauges.lock().unwrap();
        map.get(series)
            .map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
    }

    pub fn histogram(&self, series: &str) -> Option<Arc<Values>> {
        self.histograms.lock().unwrap().get(series).cloned()
    }

    /// Everything, one series a line; histograms as count, p50 and p99.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (s, c) in self.counters.lock().unwrap().iter() {
            out += &format!("{s} {}\n", c.load(Ordering::Relaxed));
        }
        for (s, g) in self.gauges.lock().unwrap().iter() {
            out += &format!("{s} {}\n", f64::from_bits(g.load(Ordering::Relaxed)));
        }
        for (s, h) in self.histograms.lock().unwrap().iter() {
            let (p50, p99) = (h.quantile(0.5), h.quantile(0.99));
            out += &format!(
                "{s} count={} p50={:.6} p99={:.6}\n",
                h.count(),
                p50.unwrap_or(0.0),
                p99.unwrap_or(0.0)
            );
        }
        out
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(entry(&self.counters, key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(entry(&self.gauges, key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(entry(&self.histograms, key))
    }
}
