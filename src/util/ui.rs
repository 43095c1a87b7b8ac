//! Progress and logs.
//!
//! On a terminal: indicatif bars (files, bytes, rate, ETA) with log lines
//! printed above them. Without one (cron, CI): no bars, one plain log line per
//! event, so logs stay greppable. `--log-format json` gives one JSON object
//! per line for log shippers.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Color {
    #[default]
    Auto,
    Always,
    Never,
}

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Writes log lines above any progress bars.
#[derive(Clone, Copy)]
struct BarAwareStderr;

struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let emit = || {
            let _ = std::io::stderr().lock().write_all(&bytes);
        };
        match MULTI.get() {
            Some(m) => m.suspend(emit),
            None => emit(),
        }
    }
}

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Vec::with_capacity(128))
    }
}

/// Install the global logger. `verbosity`: -1 quiet (warnings and errors),
/// 0 normal, 1 debug, 2+ trace. `RUST_LOG` overrides.
pub fn init(verbosity: i8, format: LogFormat, color: Color) {
    let level = match verbosity {
        i8::MIN..=-1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("airlock={level},warn")));
    let ansi = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let bars = format == LogFormat::Text && verbosity >= 0 && std::io::stderr().is_terminal();
    if bars {
        let _ = MULTI.set(MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(BarAwareStderr).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Text shows the message only: the fields (a diagnostic's code, a
        // run's figures) repeat what it says, and are JSON's business.
        LogFormat::Text => builder
            .with_ansi(ansi)
            .without_time()
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                if field.name() == "message" { write!(w, "{value:?}") } else { Ok(()) }
            }))
            .try_init(),
    };
}

/// Whether progress bars are drawn (a terminal): per-item lines then go
/// to debug, or they would scroll thousands of lines above the bars.
pub fn bars() -> bool {
    MULTI.get().is_some()
}

/// A progress bar for one stage; invisible without a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bytes bar that also counts files in its message.
    pub fn bytes(label: &str, total_bytes: u64) -> Progress {
        let bar = MULTI.get().map(|m| {
            let pb = m.add(ProgressBar::new(total_bytes));
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix:>9.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            pb.set_prefix(label.to_string());
            pb.enable_steady_tick(Duration::from_millis(250));
            pb
        });
        Progress { bar }
    }

    /// A counting bar (pages, files, projects).
    pub fn count(label: &str, total: u64) -> Progress {
        let bar = MULTI.get().map(|m| {
            let pb = m.add(ProgressBar::new(total));
            pb.set_style(
                ProgressStyle::with_template("{prefix:>9.bold} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            pb.set_prefix(label.to_string());
            pb.enable_steady_tick(Duration::from_millis(250));
            pb
        });
        Progress { bar }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Take back progress reported for an attempt that will be retried.
    pub fn dec(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(b.position().saturating_sub(n));
        }
    }

    pub fn set_message(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Stage timings for `-v`: where a run spends its time, the wall clock
/// and the process's cpu (user and system, every thread): on a machine
/// whose wall clock varies run to run, the cpu says whether the work grew.
pub(crate) struct Stopwatch {
    started: std::time::Instant,
    cpu: Option<(f64, f64)>,
}

impl Stopwatch {
    pub(crate) fn start() -> Stopwatch {
        Stopwatch { started: std::time::Instant::now(), cpu: Self::cpu() }
    }

    /// The process's cpu, read (like every figure of a lap) only when laps
    /// are printed.
    fn cpu() -> Option<(f64, f64)> {
        tracing::enabled!(tracing::Level::DEBUG).then(crate::util::mem::cpu_seconds).flatten()
    }

    pub(crate) fn lap(&mut self, stage: &str) {
        // Read only when it is printed: a run of many batches laps often.
        if !tracing::enabled!(tracing::Level::DEBUG) {
            self.started = std::time::Instant::now();
            return;
        }
        let peak = crate::util::mem::peak_rss_kib().map(|k| format!(", peak RSS so far {} MiB", k / 1024));
        let now = Self::cpu();
        let cpu = self
            .cpu
            .zip(now)
            .map(|((u0, s0), (u1, s1))| format!(", cpu {:.3}s user + {:.3}s system", u1 - u0, s1 - s0));
        tracing::debug!(
            "stage {stage}: {:.3}s{}{}",
            self.started.elapsed().as_secs_f64(),
            peak.unwrap_or_default(),
            cpu.unwrap_or_default()
        );
        self.started = std::time::Instant::now();
        self.cpu = now;
    }
}

/// `1.5 MiB`-style sizes for messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// `text` on one line, at most `max` characters: cut at the last word
/// boundary that fits and marked with an ellipsis, never mid-word (a single
/// word longer than `max` is cut where it must be).
pub fn shorten(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    let at_word = match cut.rfind(' ') {
        Some(i) if i > 0 => cut[..i].trim_end_matches([',', ';', ':', '.', '(']).to_string(),
        _ => cut,
    };
    format!("{at_word}…")
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn shorten_cuts_at_words() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("a  b\n c", 10), "a b c");
        assert_eq!(shorten("Django allows SQL injection, via crafted", 30), "Django allows SQL injection…");
        assert_eq!(shorten("Supercalifragilistic", 8), "Superca…");
        assert!(shorten("ééé ééé ééé", 5).ends_with('…'));
    }
}
