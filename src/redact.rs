//! Removing secrets from text that leaves the machine (the bug report).
//!
//! Environment values are never copied in the first place; this module is
//! the second line, for free text that may carry them anyway: log lines and
//! command lines. It errs on the side of redacting too much.

const MASK: &str = "[REDACTED]";

/// Prefixes of well-known credential formats.
const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "github_pat_",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "AKIA",
    "ASIA",
    "AIza",
    "glpat-",
    "npm_",
    "eyJ",
];

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '=' | '.')
}

/// A word that looks like a credential: a known prefix, or long and mixing
/// letters and digits like a random key does.
fn looks_like_token(w: &str) -> bool {
    if TOKEN_PREFIXES
        .iter()
        .any(|p| w.starts_with(p) && w.len() >= p.len() + 8)
    {
        return true;
    }
    let letters = w.chars().filter(char::is_ascii_alphabetic).count();
    let digits = w.chars().filter(char::is_ascii_digit).count();
    // Paths and dotted names are not keys.
    w.len() >= 24 && letters >= 6 && digits >= 4 && !w.contains('/') && w.matches('.').count() < 2
}

/// Redacts `KEY=value` / `KEY: value` pairs whose key looks secret, URL
/// credentials, and token-like words.
pub fn text(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for (i, line) in input.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&line_redacted(line));
    }
    out
}

fn line_redacted(line: &str) -> String {
    let mut s = url_credentials(line);
    // KEY=value and KEY: value with a secret-looking key.
    for sep in ['=', ':'] {
        let mut rebuilt = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(i) = rest.find(sep) {
            let (before, after) = rest.split_at(i);
            let key: String = before
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            rebuilt.push_str(before);
            rebuilt.push(sep);
            let after = &after[1..];
            if !key.is_empty() && crate::dump::looks_secret(&key) {
                let trimmed = after.trim_start_matches([' ', '"', '\'']);
                let lead = &after[..after.len() - trimmed.len()];
                let end = trimmed
                    .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';'))
                    .unwrap_or(trimmed.len());
                rebuilt.push_str(lead);
                if end > 0 {
                    rebuilt.push_str(MASK);
                }
                rest = &trimmed[end..];
            } else {
                rest = after;
            }
        }
        rebuilt.push_str(rest);
        s = rebuilt;
    }
    // Token-like words anywhere.
    let mut result = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, result: &mut String| {
        if looks_like_token(word) {
            result.push_str(MASK);
        } else {
            result.push_str(word);
        }
        word.clear();
    };
    for c in s.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut result);
            result.push(c);
        }
    }
    flush(&mut word, &mut result);
    result
}

/// `scheme://user:password@host` → `scheme://[REDACTED]@host`.
fn url_credentials(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '\''))
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn secrets_in_free_text_are_masked() {
        let cases = [
            ("DB_PASSWORD=hunter2 next", "hunter2"),
            (
                "export GITHUB_TOKEN='ghp_abcdefghijklmnop1234'",
                "ghp_abcdefghijklmnop1234",
            ),
            (
                "connecting to postgres://admin:s3cr3t@db.local:5432/app",
                "s3cr3t",
            ),
            (
                "api_key: \"ABCD1234EFGH5678IJKL9012\"",
                "ABCD1234EFGH5678IJKL9012",
            ),
            (
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
                "eyJhbGciOiJIUzI1NiJ9",
            ),
            (
                "key sk-live1234567890abcdefXYZ in a sentence",
                "sk-live1234567890abcdefXYZ",
            ),
            ("AWS AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
        ];
        for (input, secret) in cases {
            let out = text(input);
            assert!(!out.contains(secret), "{input} → {out}");
            assert!(out.contains("[REDACTED]"), "{input} → {out}");
        }
    }

    #[test]
    fn ordinary_text_survives() {
        for s in [
            "Error: listen EADDRINUSE: address already in use 127.0.0.1:7780",
            "2024-02-04T09:12:01: PM2 log: App [chinvex-gateway:1] starting in -fork mode-",
            "node /srv/apps/web-server/dist/index.js --port 3000",
            "https://example.com/path?q=1",
        ] {
            assert_eq!(text(s), s);
        }
    }
}
