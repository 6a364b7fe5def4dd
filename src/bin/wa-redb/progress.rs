//! Progress on stderr (drawn only on a terminal), in at most 80 columns:
//! `{msg:20} [{bar:24}] {rows:15} {eta:13}` is 20 + 2 + 24 + 2 + 15 + 1 + 13
//! = 77 columns at the widest (the message is cut to 20 characters, row
//! counts past 9 999 999 abbreviated, the ETA at most "99:59:59 left").
//! The SQLite commands and a replica's transfers report progress; the
//! others show a spinner.

#![cfg_attr(not(any(feature = "sqlite", feature = "replica")), allow(dead_code))]

use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// Widest message a progress line shows.
const MSG_WIDTH: usize = 20;
/// No ETA before this fraction of the work is done, or this much time has
/// passed: the first rows say little about the rest.
const ETA_AFTER_FRACTION: f64 = 0.05;
const ETA_AFTER: Duration = Duration::from_secs(1);

/// `text` cut to `width` characters (an ellipsis marks the cut).
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A row count in at most 7 characters.
fn count(n: u64) -> String {
    const STEPS: [(u64, &str); 3] = [
        (1_000_000_000_000, "T"),
        (1_000_000_000, "G"),
        (1_000_000, "M"),
    ];
    if n < 10_000_000 {
        return n.to_string();
    }
    for (step, unit) in STEPS {
        if n >= step {
            let value = n as f64 / step as f64;
            return if value < 100.0 {
                format!("{value:.1}{unit}")
            } else if value < 100_000.0 {
                format!("{value:.0}{unit}")
            } else {
                ">99999T".into()
            };
        }
    }
    n.to_string()
}

/// The time left, once it can be estimated: `mm:ss left` or `h:mm:ss left`.
fn eta(done: u64, total: u64, elapsed: Duration) -> String {
    if total == 0 || done == 0 || done >= total {
        return String::new();
    }
    let fraction = done as f64 / total as f64;
    if fraction < ETA_AFTER_FRACTION || elapsed < ETA_AFTER {
        return String::new();
    }
    let left = elapsed.as_secs_f64() * (1.0 - fraction) / fraction;
    let secs = left.round() as u64;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match h {
        0 => format!("{m:02}:{s:02} left"),
        1..=99 => format!("{h}:{m:02}:{s:02} left"),
        _ => String::new(),
    }
}

fn style() -> ProgressStyle {
    style_timed_by(ProgressState::elapsed)
}

/// The style, with the time the ETA is computed from taken by `elapsed`
/// (a test gives a fixed one: an `Instant` cannot go back further than the
/// machine's uptime on every platform).
fn style_timed_by(elapsed: fn(&ProgressState) -> Duration) -> ProgressStyle {
    ProgressStyle::with_template("{msg:20} [{bar:24}] {rows:15} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rows", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}/{}", count(s.pos()), count(s.len().unwrap_or(0)));
        })
        .with_key(
            "eta",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&eta(s.pos(), s.len().unwrap_or(0), elapsed(s)));
            },
        )
        .progress_chars("=> ")
}

/// A progress bar, and the callback that moves it.
#[cfg(any(feature = "sqlite", feature = "replica"))]
pub fn progress_bar() -> (ProgressBar, whatsapp_rust_redb_storage::ProgressFn) {
    let bar = ProgressBar::new(0);
    bar.set_style(style());
    let b = bar.clone();
    let f: whatsapp_rust_redb_storage::ProgressFn = std::sync::Arc::new(move |p| {
        b.set_length(p.total);
        b.set_position(p.done);
        b.set_message(fit(p.stage, MSG_WIDTH));
    });
    (bar, f)
}

/// A spinner for work that does not report progress.
pub fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(fit(&message, 76));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{ProgressDrawTarget, TermLike};
    use std::sync::{Arc, Mutex};

    /// A terminal far wider than 80 columns that keeps what is drawn.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            400
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            let mut lines = self.0.lock().unwrap();
            lines.extend(s.lines().map(str::to_owned));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_progress_line_fits_80_columns_at_its_widest() {
        let screen = Screen::default();
        // The widest of everything: a long stage name, counts beyond any
        // abbreviation, and 5 % done after 5.5 hours (99:59:42 left).
        let bar = ProgressBar::with_draw_target(
            Some(u64::MAX),
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bar.set_style(style_timed_by(|_| Duration::from_secs(19_999)));
        bar.set_message(fit(&"app_state_mutation_macs ".repeat(4), MSG_WIDTH));
        bar.set_position(u64::MAX / 19);
        bar.force_draw();
        let lines = screen.0.lock().unwrap().clone();
        // (indicatif pads what it draws with blanks to the terminal's width.)
        let widest = lines
            .iter()
            .map(|l| l.trim_end().chars().count())
            .max()
            .unwrap_or(0);
        assert_eq!(widest, 77, "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(">99999T/>99999T 99:59:42 left")),
            "{lines:?}"
        );
    }

    #[test]
    fn no_eta_before_five_percent_or_one_second() {
        assert_eq!(eta(4, 100, Duration::from_secs(60)), "");
        assert_eq!(eta(50, 100, Duration::from_millis(900)), "");
        assert_eq!(eta(5, 100, Duration::from_secs(5)), "01:35 left");
        assert_eq!(eta(50, 100, Duration::from_secs(3 * 3600)), "3:00:00 left");
        assert_eq!(eta(100, 100, Duration::from_secs(5)), "");
        assert_eq!(eta(1, 0, Duration::from_secs(5)), "");
    }

    #[test]
    fn counts_and_messages_are_cut_to_size() {
        assert_eq!(count(9_999_999), "9999999");
        assert_eq!(count(12_345_678), "12.3M");
        assert_eq!(count(u64::MAX), ">99999T");
        assert!((0..64).map(|b| count(1u64 << b)).all(|c| c.len() <= 7));
        assert_eq!(fit("sessions", 20), "sessions");
        assert_eq!(fit("app_state_mutation_macs", 20).chars().count(), 20);
    }
}
