//! A tracing subscriber that prints each span of the store as it closes,
//! with its `file` field and how long it was entered, and keeps what it
//! printed.

// The example prints; the metrics test also reads what was printed.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Default)]
pub struct Printer {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, Span>>,
    closed: Mutex<Vec<String>>,
}

impl Printer {
    /// Every span closed so far, as printed.
    pub fn closed(&self) -> Vec<String> {
        self.closed.lock().unwrap().clone()
    }
}

struct Span {
    name: &'static str,
    fields: String,
    entered: Option<Instant>,
    busy: Duration,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl Subscriber for Printer {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.name().starts_with("wa_redb.")
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = String::new();
        attrs.record(&mut Fields(&mut fields));
        let span = Span {
            name: attrs.metadata().name(),
            fields,
            entered: None,
            busy: Duration::ZERO,
        };
        self.spans.lock().unwrap().insert(id, span);
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, id: &Id) {
        if let Some(s) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            s.entered = Some(Instant::now());
        }
    }

    fn exit(&self, id: &Id) {
        if let Some(s) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            s.busy += s.entered.take().map_or(Duration::ZERO, |t| t.elapsed());
        }
    }

    fn try_close(&self, id: Id) -> bool {
        if let Some(s) = self.spans.lock().unwrap().remove(&id.into_u64()) {
            let line = format!("span {}{} took {:?}", s.name, s.fields, s.busy);
            println!("{line}");
            self.closed.lock().unwrap().push(line);
        }
        true
    }
}
