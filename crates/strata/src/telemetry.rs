//! Logging to stderr in one of three formats, colour only on a terminal.
//!
//! ```text
//!  level: --log.level ─► RUST_LOG ─► log.level in the file (first one set wins)
//!  format: --log.format ─► log.format in the file
//!    text   `2026-12-02T15:01:27.838Z  INFO strata: listening addr=…`   (people)
//!    logfmt `ts=2026-12-02T15:01:27.838Z level=info target=strata msg=listening addr=…` (Prometheus's)
//!    json   one object per line (log pipelines)
//!  ANSI colour codes only when stderr is a terminal: never in a file or a pipe
//! ```

use std::fmt::Write as _;
use std::io::IsTerminal;

use anyhow::Context;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat};

/// The filter: `level` (from `--log.level`) if given, else `RUST_LOG`, else the file's.
fn filter(log: &LogConfig, level: Option<&str>) -> anyhow::Result<EnvFilter> {
    match level {
        Some(l) => EnvFilter::try_new(l).with_context(|| format!("--log.level {l:?}")),
        None => EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&log.level))
            .with_context(|| format!("log.level {:?}", log.level)),
    }
}

/// Installs the global subscriber.
pub(crate) fn init(log: &LogConfig, level: Option<&str>) -> anyhow::Result<()> {
    let ansi = std::io::stderr().is_terminal();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter(log, level)?).with_writer(std::io::stderr).with_ansi(ansi);
    let installed = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("logging: {e}"))
}

/// Prometheus's log format (go-kit logfmt): `ts=… level=… target=… msg=… key=value…`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logfmt;

/// A logfmt value: bare when it is plain, otherwise quoted with `"`, `\` and
/// control characters escaped.
fn push_value(out: &mut String, v: &str) {
    let plain = !v.is_empty() && v.chars().all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && c != '\u{7f}');
    if plain {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The event's fields, the message apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, v: String) {
        if field.name() == "message" {
            self.message = Some(v);
        } else {
            self.rest.push((field.name(), v));
        }
    }
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = String::with_capacity(128);
        line.push_str("ts=");
        line.push_str(&humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
        line.push_str(" level=");
        line.push_str(&meta.level().as_str().to_ascii_lowercase());
        line.push_str(" target=");
        push_value(&mut line, meta.target());
        if let Some(m) = &fields.message {
            line.push_str(" msg=");
            push_value(&mut line, m);
        }
        for (k, v) in &fields.rest {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            push_value(&mut line, v);
        }
        writeln!(w, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// Splits a logfmt line into pairs (a small reader written from the format's rules).
    fn parse(line: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut it = line.chars().peekable();
        while it.peek().is_some() {
            let key: String = it.by_ref().take_while(|c| *c != '=').collect();
            let mut val = String::new();
            if it.peek() == Some(&'"') {
                it.next();
                while let Some(c) = it.next() {
                    match c {
                        '\\' => match it.next() {
                            Some('n') => val.push('\n'),
                            Some(c) => val.push(c),
                            None => {}
                        },
                        '"' => break,
                        c => val.push(c),
                    }
                }
                it.next(); // the space
            } else {
                val = it.by_ref().take_while(|c| *c != ' ').collect();
            }
            out.push((key.trim().to_string(), val));
        }
        out
    }

    #[test]
    fn logfmt_lines_have_prometheus_keys_and_quote_what_needs_it() {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt().with_writer(buf.clone()).with_ansi(false).event_format(Logfmt).finish();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(addr = "0.0.0.0:9201", path = "/a b", quote = "say \"hi\"\nnext", n = 3, "listening now");
            tracing::warn!(empty = "", "x");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!text.contains('\u{1b}'), "no ANSI codes: {text:?}");
        let p = parse(lines[0]);
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ts", "level", "target", "msg", "addr", "path", "quote", "n"], "{}", lines[0]);
        assert!(humantime::parse_rfc3339(&p[0].1).is_ok(), "{}", lines[0]);
        assert_eq!(p[1].1, "info");
        assert_eq!(p[3].1, "listening now");
        assert_eq!(p[4].1, "0.0.0.0:9201");
        assert_eq!(p[5].1, "/a b");
        assert_eq!(p[6].1, "say \"hi\"\nnext");
        assert_eq!(p[7].1, "3");
        assert!(lines[1].contains("level=warn") && lines[1].ends_with("empty=\"\""), "{}", lines[1]);
    }

    #[test]
    fn the_level_flag_wins_over_the_file() {
        let log = LogConfig { level: "info".into(), format: LogFormat::Text };
        assert_eq!(filter(&log, Some("debug")).unwrap().to_string(), "debug");
        assert!(filter(&log, Some("not a level [")).is_err());
    }
}
