//! What Strata adds around `promql-parser` so that query text parses as in
//! Prometheus 3:
//!
//! - **Backtick raw strings.** In PromQL `` `a\b` `` has no escapes; the crate's
//!   lexer reads `\` in them as an escape (so `` `\d` `` fails and `` `a\` `` never
//!   ends). Before parsing, every backtick string becomes the equivalent
//!   double-quoted string (`\` and `"` escaped), skipping comments and the insides
//!   of other strings.
//! - **Error positions.** Prometheus answers `1:5: parse error: …`; the crate
//!   reports no position at all (a grammar error is only "invalid promql query").
//!   [`locate`] derives the byte offset: the first token of the query after which
//!   no completion parses (probing prefixes with a few completions and the closing
//!   brackets), the end of the input when every prefix can be completed, and for a
//!   type or argument error the function call named in the message. This matches
//!   Prometheus for lexical errors, unexpected tokens and unexpected end of input;
//!   for type errors elsewhere in an expression it can point at a different node
//!   (the start of the query, 1:1), because the crate does not say which node.
//!
//! ```text
//!   text ─► rewrite backticks ─► promql_parser::parser::parse ─► Expr
//!                                           │ error (no position)
//!                                           ▼
//!                     locate: tokenize original text, probe prefixes ─► "line:col: parse error: msg"
//! ```

use std::borrow::Cow;

use promql_parser::parser::{self, Expr};

use crate::error::{Error, Result};

/// Parses PromQL as Prometheus does, errors carrying `line:col: parse error: `.
pub(crate) fn parse(text: &str) -> Result<Expr> {
    parser::parse(&rewrite_raw_strings(text)).map_err(|msg| {
        let pos = locate(text, &msg);
        let (line, col) = line_col(text, pos);
        Error::Parse(format!("{line}:{col}: parse error: {msg}"))
    })
}

/// Line (1-based) and column (1-based, in bytes) of byte offset `pos`, counted as
/// Prometheus counts them.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..pos.min(text.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    (line, col)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string with its quote; `closed` when its closing quote is present.
    Str { quote: u8, closed: bool },
    /// A run of identifier and number characters (`rate`, `5m`, `1.5`).
    Word,
    /// An operator or bracket.
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    kind: Kind,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'.'
}

/// Splits PromQL text into tokens, skipping spaces and `#` comments. Total: any
/// text tokenizes (an unterminated string runs to the end).
fn tokenize(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let kind = match b[i] {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'#' => {
                i = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |n| i + n);
                continue;
            }
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    if b[i] == b'\\' && q != b'`' {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if b[i - 1] == q {
                        closed = true;
                        break;
                    }
                }
                i = i.min(b.len());
                Kind::Str { quote: q, closed }
            }
            c if is_word(c) => {
                i += b[i..].iter().take_while(|&&c| is_word(c)).count();
                Kind::Word
            }
            c => {
                let two = b.get(i + 1).copied();
                let pair = matches!((c, two), (b'=' | b'!', Some(b'~')) | (b'=' | b'!' | b'<' | b'>', Some(b'=')));
                // One character, whole even when it is not ASCII.
                let len = text[i..].chars().next().map_or(1, char::len_utf8);
                i += if pair { 2 } else { len };
                Kind::Punct
            }
        };
        out.push(Token { start, end: i, kind });
    }
    out
}

/// Rewrites every closed backtick string to a double-quoted string with the same
/// value. Text without backticks is returned as is.
pub(crate) fn rewrite_raw_strings(text: &str) -> Cow<'_, str> {
    if !text.contains('`') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut copied = 0;
    for t in tokenize(text) {
        if t.kind != (Kind::Str { quote: b'`', closed: true }) {
            continue;
        }
        out.push_str(&text[copied..t.start]);
        out.push('"');
        for c in text[t.start + 1..t.end - 1].chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out.push('"');
        copied = t.end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Whether `text` fails for a reason no continuation could cure at the point it
/// stops: a lexical error or a grammar error. Type and argument checks, which a
/// syntactically complete expression can fail, do not count.
fn syntax_error(text: &str) -> bool {
    let text = rewrite_raw_strings(text);
    if parser::lexer(&text).is_err() {
        return true;
    }
    match parser::parse(&text) {
        Ok(_) => false,
        Err(msg) => is_syntax_message(&msg),
    }
}

fn is_syntax_message(msg: &str) -> bool {
    const SYNTAX: [&str; 10] = [
        "invalid promql query",
        "unexpected",
        "trailing commas",
        "no expression found",
        "invalid label matcher",
        "missing unit character",
        "Number expected",
        "may not be set multiple times",
        "invalid @ modifier",
        "invalid float value after @",
    ];
    SYNTAX.iter().any(|s| msg.starts_with(s))
}

/// What may follow a prefix in a valid query, tried before closing its brackets.
const COMPLETIONS: [&str; 9] = ["", "1", "x", "\"\"", "=\"\"", "5m", "(x)", "() (x)", "5m:]"];

/// Whether the text up to `end` can be completed into a query with no syntax error.
fn viable(text: &str, tokens: &[Token], end: usize) -> bool {
    let prefix = &text[..end];
    let mut closers = String::new();
    for t in tokens.iter().take_while(|t| t.end <= end).filter(|t| t.kind == Kind::Punct) {
        match &text[t.start..t.end] {
            "(" => closers.push(')'),
            "[" => closers.push(']'),
            "{" => closers.push('}'),
            ")" | "]" | "}" => {
                closers.pop();
            }
            _ => {}
        }
    }
    let closers: String = closers.chars().rev().collect();
    COMPLETIONS.iter().any(|c| !syntax_error(&format!("{prefix}\n{c}{closers}")))
}

/// Most tokens probed one by one; longer queries are bisected.
const LINEAR_PROBES: usize = 64;

/// The byte offset in `text` (the original, before any rewrite) that an error
/// `msg` from the parser is about. See the module docs for how exact it is.
fn locate(text: &str, msg: &str) -> usize {
    let tokens = tokenize(text);
    let Some(first) = tokens.first() else { return text.len() };
    if !syntax_error(text) {
        return semantic_position(text, &tokens, msg).unwrap_or(first.start);
    }
    if msg.starts_with("trailing commas")
        && let Some(w) =
            tokens.windows(2).find(|w| &text[w[0].start..w[0].end] == "," && &text[w[1].start..w[1].end] == ")")
    {
        return w[0].start;
    }
    let bad = |k: usize| !viable(text, &tokens, tokens[k].end);
    let first_bad = if tokens.len() <= LINEAR_PROBES {
        (0..tokens.len()).find(|&k| bad(k))
    } else if bad(tokens.len() - 1) {
        // Smallest k with bad(k), assuming prefixes stay bad once bad.
        let (mut lo, mut hi) = (0, tokens.len() - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if bad(mid) { hi = mid } else { lo = mid + 1 }
        }
        Some(lo)
    } else {
        None
    };
    first_bad.map_or(text.len(), |k| tokens[k].start)
}

/// For a type or argument error: the call to the function the message names (its
/// first argument for a type error), as Prometheus points at the offending node.
fn semantic_position(text: &str, tokens: &[Token], msg: &str) -> Option<usize> {
    let name = msg.split(['\'', '"']).nth(1)?;
    let call =
        tokens.windows(2).position(|w| &text[w[0].start..w[0].end] == name && &text[w[1].start..w[1].end] == "(")?;
    if msg.starts_with("expected type") {
        return tokens.get(call + 2).map(|t| t.start);
    }
    Some(tokens[call].start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        parse(q).unwrap_err().to_string()
    }

    #[test]
    fn backtick_strings_have_no_escapes() {
        let Expr::VectorSelector(vs) = parse(r"up{job=`a\b`}").unwrap() else { panic!() };
        let m = vs.matchers.matchers.iter().find(|m| m.name == "job").unwrap();
        assert_eq!(m.value, r"a\b");
        // A backslash right before the closing backtick, and a double quote inside.
        let Expr::VectorSelector(vs) = parse(r#"up{job=`x"\`}"#).unwrap() else { panic!() };
        assert_eq!(vs.matchers.matchers.iter().find(|m| m.name == "job").unwrap().value, r#"x"\"#);
        assert!(parse(r#"label_replace(up, "x", "$1", "job", `(\d+)`)"#).is_ok());
        assert!(parse("up{job=`multi\nline`}").is_ok());
    }

    #[test]
    fn backticks_inside_other_strings_and_comments_stay() {
        assert_eq!(rewrite_raw_strings(r#"up{a="`\\`"}"#), r#"up{a="`\\`"}"#);
        assert_eq!(rewrite_raw_strings("up # a `comment\n+ `x`"), "up # a `comment\n+ \"x\"");
        assert_eq!(rewrite_raw_strings(r#"x{a='`'} + y{b=`\`}"#), r#"x{a='`'} + y{b="\\"}"#);
        // An unterminated raw string is left for the parser to refuse.
        assert!(err("up{a=`x").contains("parse error"));
    }

    #[test]
    fn positions_as_prometheus_prints_them() {
        // Expected positions are those of Prometheus 3's parser for the same input.
        assert!(err("1+").starts_with("1:3: parse error: "), "{}", err("1+"));
        assert!(err(r#"x{a="b}"#).starts_with("1:5: parse error: "));
        assert!(err(r#"x{a="\q"}"#).starts_with("1:5: parse error: "));
        assert!(err("x \u{a7} y").starts_with("1:3: parse error: "));
        assert!(err("x = 1").starts_with("1:3: parse error: "));
        assert!(err("rate(x[5m],)").starts_with("1:11: parse error: "), "{}", err("rate(x[5m],)"));
        assert!(err(r#"pod{namespace="namespace01"} hello"#).starts_with("1:30: parse error: "));
        assert!(err(r#"pod{namespace="namespace01"} ""#).starts_with("1:30: parse error: "));
        assert!(err(r#"up{job="a""#).starts_with("1:11: parse error: "));
        assert!(err("sum by x (y)").starts_with("1:8: parse error: "), "{}", err("sum by x (y)"));
        assert!(err("sum(\n  up\n) +").starts_with("3:4: parse error: "), "{}", err("sum(\n  up\n) +"));
        assert!(err("rate(x)").starts_with("1:6: parse error: "), "{}", err("rate(x)"));
        assert!(err("").contains("parse error"));
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("abc", 3), (1, 4));
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("a\n", 2), (2, 1));
    }
}
