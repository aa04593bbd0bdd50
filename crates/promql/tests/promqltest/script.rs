//! Parser for Prometheus's PromQL test-script format (see FORMAT.md in the corpus).

use strata_model::{Label, Labels};

/// One value of a series description.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Point {
    /// `_`: no sample.
    Blank,
    Stale,
    Value(f64),
}

#[derive(Debug, Clone)]
pub(crate) struct SeriesDesc {
    pub(crate) labels: Labels,
    pub(crate) points: Vec<Point>,
    /// The line held a native histogram (`{{...}}`).
    pub(crate) histogram: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matcher {
    Any,
    Msg(String),
    Regex(String),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Expect {
    pub(crate) fail: Option<Matcher>,
    pub(crate) ordered: bool,
    pub(crate) warn: Vec<Matcher>,
    pub(crate) info: Vec<Matcher>,
    pub(crate) no_warn: bool,
    pub(crate) no_info: bool,
    pub(crate) string: Option<String>,
    /// `expect range vector from .. to .. step ..` for instant queries.
    pub(crate) range_vector: Option<(i64, i64, i64)>,
}

#[derive(Debug, Clone)]
pub(crate) enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub(crate) line: usize,
    pub(crate) kind: EvalKind,
    pub(crate) query: String,
    pub(crate) expect: Expect,
    pub(crate) series: Vec<SeriesDesc>,
    /// A bare scalar expectation (a line holding only a number).
    pub(crate) scalar: Option<f64>,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Load { interval: i64, series: Vec<SeriesDesc>, nhcb: bool },
    Clear,
    Eval(Box<Eval>),
}

/// Parses a Prometheus duration such as `1h30m`, `10s53ms` or `-5m`; a bare number
/// is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if let Ok(n) = s.parse::<f64>() {
        let ms = (n * 1000.0).round() as i64;
        return Ok(if neg { -ms } else { ms });
    }
    let mut total = 0i64;
    let b = s.as_bytes();
    let mut i = 0;
    if b.is_empty() {
        return Err("empty duration".into());
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return Err(format!("bad duration {s:?}"));
        }
        let n: i64 = s[st..i].parse().map_err(|_| format!("bad duration {s:?}"))?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[us..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            u => return Err(format!("bad duration unit {u:?} in {s:?}")),
        };
        total += n * mult;
    }
    Ok(if neg { -total } else { total })
}

fn parse_float(s: &str) -> Option<f64> {
    let l = s.to_ascii_lowercase();
    match l.as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        _ => s.parse::<f64>().ok(),
    }
}

/// Reads a quoted string (", ' or `) at the start of `s`; returns it unescaped and
/// the rest.
fn read_quoted(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    let Some((_, q)) = chars.next() else {
        return Err("expected string".into());
    };
    let mut out = String::new();
    let mut esc = false;
    for (i, c) in chars {
        if q == '`' {
            if c == '`' {
                return Ok((out, &s[i + 1..]));
            }
            out.push(c);
            continue;
        }
        if esc {
            match c {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == q {
            return Ok((out, &s[i + 1..]));
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated string in {s:?}"))
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses `name{a="b", ...}` and returns the label set and the remaining text.
pub(crate) fn parse_metric(s: &str) -> Result<(Labels, &str), String> {
    let s = s.trim_start();
    let mut labels: Vec<Label> = Vec::new();
    let name_end = s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len());
    if name_end > 0 {
        labels.push(Label::new("__name__", &s[..name_end]));
    }
    let mut rest = &s[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (name, r) = if rest.starts_with('"') || rest.starts_with('\'') {
                read_quoted(rest)?
            } else {
                let e = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
                (rest[..e].to_string(), &rest[e..])
            };
            let r = r.trim_start();
            if r.starts_with(',') || r.starts_with('}') {
                // A quoted metric name alone: {"my.metric"}.
                labels.push(Label::new("__name__", name.as_str()));
                rest = r.strip_prefix(',').unwrap_or(r);
                continue;
            }
            let r = r.strip_prefix('=').ok_or_else(|| format!("expected = in {s:?}"))?.trim_start();
            let (val, r) = read_quoted(r)?;
            labels.push(Label::new(name.as_str(), val.as_str()));
            let r = r.trim_start();
            rest = r.strip_prefix(',').unwrap_or(r);
        }
    }
    Ok((Labels::new(labels), rest))
}

/// Expands series values: `1 2+3x2 _ stale -1-1x3 _x2 5x2`.
pub(crate) fn parse_points(s: &str) -> Result<(Vec<Point>, bool), String> {
    let mut out = Vec::new();
    if s.contains("{{") {
        // Native histogram samples are not loaded; the caller skips what needs them.
        return Ok((Vec::new(), true));
    }
    let histogram = false;
    let mut rest = s.trim();
    while !rest.is_empty() {
        let tok_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..tok_end];
        rest = rest[tok_end..].trim_start();
        if tok == "_" {
            out.push(Point::Blank);
            continue;
        }
        if tok == "stale" {
            out.push(Point::Stale);
            continue;
        }
        if let Some(v) = parse_float(tok) {
            out.push(Point::Value(v));
            continue;
        }
        // a+bxN, a-bxN, axN, _xN
        let (head, times) = tok.rsplit_once('x').ok_or_else(|| format!("bad value {tok:?}"))?;
        let times: usize = times.parse().map_err(|_| format!("bad repeat in {tok:?}"))?;
        if head == "_" {
            out.extend(std::iter::repeat_n(Point::Blank, times));
            continue;
        }
        if head == "stale" {
            out.extend(std::iter::repeat_n(Point::Stale, times));
            continue;
        }
        // Split at the operator that is not a leading sign or an exponent sign.
        let hb = head.as_bytes();
        let mut split = None;
        for i in 1..hb.len() {
            if (hb[i] == b'+' || hb[i] == b'-') && !matches!(hb[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        let (start, delta) = match split {
            Some(i) => {
                let a = parse_float(&head[..i]).ok_or_else(|| format!("bad start in {tok:?}"))?;
                let d = parse_float(&head[i + 1..]).ok_or_else(|| format!("bad delta in {tok:?}"))?;
                (a, if hb[i] == b'-' { -d } else { d })
            }
            None => (parse_float(head).ok_or_else(|| format!("bad value {tok:?}"))?, 0.0),
        };
        let mut cur = start;
        out.push(Point::Value(cur));
        for _ in 0..times {
            cur += delta;
            out.push(Point::Value(cur));
        }
    }
    Ok((out, histogram))
}

fn parse_series_line(line: &str) -> Result<SeriesDesc, String> {
    let (labels, rest) = parse_metric(line)?;
    let (points, histogram) = parse_points(rest)?;
    Ok(SeriesDesc { labels, points, histogram })
}

fn parse_matcher(rest: &str) -> Matcher {
    let rest = rest.trim();
    if let Some(m) = rest.strip_prefix("msg:") {
        Matcher::Msg(unquote(m.trim()))
    } else if let Some(m) = rest.strip_prefix("regex:") {
        Matcher::Regex(unquote(m.trim()))
    } else {
        Matcher::Any
    }
}

fn unquote(s: &str) -> String {
    if (s.starts_with('"') && s.ends_with('"') && s.len() >= 2)
        || (s.starts_with('`') && s.ends_with('`') && s.len() >= 2)
    {
        read_quoted(s).map(|(v, _)| v).unwrap_or_else(|_| s.to_string())
    } else {
        s.to_string()
    }
}

/// Parses a whole script.
pub(crate) fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let line = raw.trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let lineno = i;
        // Block body: following indented, non-empty lines.
        let mut body: Vec<&str> = Vec::new();
        while i < lines.len() {
            let l = lines[i];
            if l.trim().is_empty() {
                break;
            }
            if !l.starts_with(char::is_whitespace) && !l.trim_start().starts_with('#') {
                // Unindented lines after eval are still part of it when they are expectations.
                let t = l.trim();
                let is_cmd = t.starts_with("load") || t.starts_with("eval") || t == "clear";
                if is_cmd {
                    break;
                }
            }
            body.push(l.trim());
            i += 1;
        }
        let body: Vec<&str> = body.into_iter().filter(|l| !l.starts_with('#')).collect();
        if line == "clear" {
            cmds.push(Command::Clear);
        } else if let Some(rest) = line.strip_prefix("load_with_nhcb ").or_else(|| line.strip_prefix("load ")) {
            let nhcb = line.starts_with("load_with_nhcb");
            let interval = parse_duration(rest).map_err(|e| format!("line {lineno}: {e}"))?;
            let mut series = Vec::new();
            for l in body {
                series.push(parse_series_line(l).map_err(|e| format!("line {lineno}: {e}"))?);
            }
            cmds.push(Command::Load { interval, series, nhcb });
        } else if line.starts_with("eval") {
            let (head, rest) = line.split_once(' ').ok_or_else(|| format!("line {lineno}: bad eval"))?;
            let mut expect = Expect::default();
            match head {
                "eval" => {}
                "eval_fail" => expect.fail = Some(Matcher::Any),
                "eval_ordered" => expect.ordered = true,
                "eval_warn" => expect.warn.push(Matcher::Any),
                "eval_info" => expect.info.push(Matcher::Any),
                _ => return Err(format!("line {lineno}: unknown command {head}")),
            }
            let kind;
            let query;
            if let Some(r) = rest.strip_prefix("instant at ") {
                let (t, q) = r.split_once(' ').ok_or_else(|| format!("line {lineno}: bad eval"))?;
                kind = EvalKind::Instant { at: parse_duration(t)? };
                query = q.trim().to_string();
            } else if let Some(r) = rest.strip_prefix("range from ") {
                let parts: Vec<&str> = r.splitn(6, ' ').collect();
                if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
                    return Err(format!("line {lineno}: bad range eval"));
                }
                kind = EvalKind::Range {
                    start: parse_duration(parts[0])?,
                    end: parse_duration(parts[2])?,
                    step: parse_duration(parts[4])?,
                };
                query = parts[5].trim().to_string();
            } else {
                return Err(format!("line {lineno}: bad eval {rest:?}"));
            }
            let mut series = Vec::new();
            let mut scalar = None;
            for l in body {
                if let Some(r) = l.strip_prefix("expect ") {
                    let r = r.trim();
                    let (kw, tail) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
                    match kw {
                        "fail" => expect.fail = Some(parse_matcher(tail)),
                        "ordered" => expect.ordered = true,
                        "warn" => expect.warn.push(parse_matcher(tail)),
                        "info" => expect.info.push(parse_matcher(tail)),
                        "no_warn" => expect.no_warn = true,
                        "no_info" => expect.no_info = true,
                        "string" => expect.string = Some(unquote(tail.trim())),
                        "range" => {
                            let t = tail.trim().strip_prefix("vector").unwrap_or(tail).trim();
                            let p: Vec<&str> = t.split_whitespace().collect();
                            if p.len() == 6 && p[0] == "from" && p[2] == "to" && p[4] == "step" {
                                expect.range_vector =
                                    Some((parse_duration(p[1])?, parse_duration(p[3])?, parse_duration(p[5])?));
                            } else {
                                return Err(format!("line {lineno}: bad expect range vector"));
                            }
                        }
                        _ => return Err(format!("line {lineno}: unknown expect {kw}")),
                    }
                } else if let Some(r) = l.strip_prefix("expected_fail_message ") {
                    expect.fail = Some(Matcher::Msg(r.trim().to_string()));
                } else if let Some(r) = l.strip_prefix("expected_fail_regexp ") {
                    expect.fail = Some(Matcher::Regex(r.trim().to_string()));
                } else if let Some(v) = parse_float(l) {
                    scalar = Some(v);
                } else {
                    series.push(parse_series_line(l).map_err(|e| format!("line {lineno}: {e}"))?);
                }
            }
            cmds.push(Command::Eval(Box::new(Eval { line: lineno, kind, query, expect, series, scalar })));
        } else {
            return Err(format!("line {lineno}: unknown command {line:?}"));
        }
    }
    Ok(cmds)
}
