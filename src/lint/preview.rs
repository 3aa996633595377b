//! `--fix-preview`: the suggested key changes as a unified diff against the
//! ecosystem file. Nothing is written. Each app is found by its `name:` line
//! and its keys by their indentation, which covers the usual hand-written
//! layout (one key per line); anything that cannot be placed safely (apps
//! built by code, one-line objects) is listed as a comment above the diff
//! instead of being guessed at.

use super::load::SourceFormat;
use super::rules::{Edit, Suggestion};
use serde_json::Value;
use std::collections::BTreeMap;

const CONTEXT: usize = 3;

/// One line of the file, without its line ending.
struct Line<'a> {
    text: &'a str,
}

/// A `key: value` line, as far as a line-based look can tell.
struct KeyLine<'a> {
    /// Byte offset where the key starts (after indentation and a YAML `- `).
    col: usize,
    key: String,
    rest: &'a str,
    /// A YAML sequence item's first line (`- name: x`).
    item: bool,
}

fn parse_key_line(line: &str, yaml: bool) -> Option<KeyLine<'_>> {
    let ws = line.len() - line.trim_start().len();
    let mut s = &line[ws..];
    let mut col = ws;
    let mut item = false;
    if yaml {
        if let Some(after) = s.strip_prefix("- ") {
            let extra = after.len() - after.trim_start().len();
            s = &after[extra..];
            col += 2 + extra;
            item = true;
        }
    }
    let (key, after) = match s.chars().next()? {
        q @ ('"' | '\'') => {
            let end = s[1..].find(q)? + 1;
            (s[1..end].to_string(), &s[end + 1..])
        }
        _ => {
            let end = s
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-'))
                .unwrap_or(s.len());
            if end == 0 {
                return None;
            }
            (s[..end].to_string(), &s[end..])
        }
    };
    let rest = after.trim_start().strip_prefix(':')?;
    Some(KeyLine {
        col,
        key,
        rest,
        item,
    })
}

/// The scalar on a key line (`'c3-backend',` → `c3-backend`).
fn scalar(rest: &str, yaml: bool) -> Option<String> {
    let mut v = rest.trim();
    if yaml {
        if let Some(i) = v.find(" #") {
            v = v[..i].trim_end();
        }
    } else {
        if let Some(i) = v.find(" //") {
            v = v[..i].trim_end();
        }
        v = v.strip_suffix(',').unwrap_or(v).trim_end();
    }
    let mut chars = v.chars();
    match (chars.next(), chars.next_back()) {
        (Some(a), Some(b)) if a == b && matches!(a, '\'' | '"' | '`') && v.len() >= 2 => {
            Some(v[1..v.len() - 1].to_string())
        }
        _ if yaml && !v.is_empty() => Some(v.to_string()),
        _ => None,
    }
}

fn is_neutral(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || t.starts_with("//")
        || t.starts_with('#')
        || t.starts_with("/*")
        || t.starts_with('*')
}

fn indent_col(text: &str, yaml: bool) -> usize {
    parse_key_line(text, yaml).map_or(text.len() - text.trim_start().len(), |k| k.col)
}

fn js_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::String(s)
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
                && !s.starts_with('-') =>
        {
            s.clone()
        }
        other => other.to_string(),
    }
}

/// `key: value` in the file's own syntax, without indentation or comma.
pub fn key_value(format: SourceFormat, key: &str, value: &Value) -> String {
    match format {
        SourceFormat::Js | SourceFormat::Mjs => match value {
            Value::String(s) => format!("{key}: {}", js_string(s)),
            other => format!("{key}: {other}"),
        },
        SourceFormat::Json => format!("{}: {value}", Value::String(key.to_string())),
        SourceFormat::Yaml => format!("{key}: {}", yaml_scalar(value)),
    }
}

#[derive(Default)]
struct Plan {
    before: BTreeMap<usize, Vec<String>>,
    after: BTreeMap<usize, Vec<String>>,
    /// `None`: delete the line.
    replace: BTreeMap<usize, Option<String>>,
}

impl Plan {
    fn touched(&self, i: usize) -> bool {
        self.before.contains_key(&i) || self.after.contains_key(&i) || self.replace.contains_key(&i)
    }
}

/// The lines of one app's object around its anchor (the `name:` line).
fn block(lines: &[Line], anchor: usize, col: usize, yaml: bool) -> Vec<usize> {
    let mut idx = vec![anchor];
    let anchor_item = yaml && parse_key_line(lines[anchor].text, true).is_some_and(|k| k.item);
    if !anchor_item {
        for i in (0..anchor).rev() {
            let t = lines[i].text;
            if is_neutral(t) {
                continue;
            }
            let k = parse_key_line(t, yaml);
            if indent_col(t, yaml) < col {
                break;
            }
            idx.push(i);
            if k.is_some_and(|k| k.item && k.col == col) {
                break;
            }
        }
    }
    for (i, line) in lines.iter().enumerate().skip(anchor + 1) {
        let t = line.text;
        if is_neutral(t) {
            continue;
        }
        if indent_col(t, yaml) < col
            || parse_key_line(t, yaml).is_some_and(|k| k.item && k.col <= col)
        {
            break;
        }
        idx.push(i);
    }
    idx.sort_unstable();
    idx
}

/// Where each edit of one app goes, or why it cannot be placed.
fn plan_app(
    lines: &[Line],
    format: SourceFormat,
    s: &Suggestion,
    plan: &mut Plan,
) -> Result<(), String> {
    let yaml = format == SourceFormat::Yaml;
    let json = format == SourceFormat::Json;
    let anchors: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            parse_key_line(l.text, yaml).is_some_and(|k| {
                k.key == "name" && scalar(k.rest, yaml).as_deref() == Some(s.app.as_str())
            })
        })
        .map(|(i, _)| i)
        .collect();
    let [anchor] = anchors[..] else {
        return Err(if anchors.is_empty() {
            "its name: line was not found (is the app built by code?)".into()
        } else {
            "its name appears on several lines".into()
        });
    };
    let anchor_line = lines[anchor].text;
    let Some(ak) = parse_key_line(anchor_line, yaml) else {
        return Err("its name: line could not be read".into());
    };
    let col = ak.col;
    let indent: String = if ak.item {
        " ".repeat(col)
    } else {
        anchor_line[..col].to_string()
    };
    let region = block(lines, anchor, col, yaml);
    let find = |key: &str| -> Result<Option<usize>, String> {
        let hits: Vec<usize> = region
            .iter()
            .copied()
            .filter(|i| {
                parse_key_line(lines[*i].text, yaml).is_some_and(|k| k.col == col && k.key == key)
            })
            .collect();
        match hits[..] {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(format!("{key} appears on several lines")),
        }
    };
    let mut local = Plan::default();
    let mut inserts: Vec<String> = Vec::new();
    let mut deletes: Vec<usize> = Vec::new();
    for edit in &s.edits {
        match edit {
            Edit::Add { key, value } => {
                if find(key)?.is_some() {
                    return Err(format!("{key} is already on a line of its own"));
                }
                inserts.push(key_value(format, key, value));
            }
            Edit::Change { key, value } => {
                let i = find(key)?.ok_or_else(|| format!("its {key}: line was not found"))?;
                let t = lines[i].text;
                let k = parse_key_line(t, yaml).ok_or("unreadable line")?;
                let v = k.rest.trim();
                if v.is_empty() || v.contains(['{', '[']) {
                    return Err(format!("{key} spans several lines"));
                }
                let comma = if !yaml && t.trim_end().ends_with(',') {
                    ","
                } else {
                    ""
                };
                let prefix = &t[..k.col];
                local.replace.insert(
                    i,
                    Some(format!("{prefix}{}{comma}", key_value(format, key, value))),
                );
            }
            Edit::Remove { key } => {
                let i = find(key)?.ok_or_else(|| format!("its {key}: line was not found"))?;
                let k = parse_key_line(lines[i].text, yaml).ok_or("unreadable line")?;
                let v = k.rest.trim();
                if v.is_empty() || v.contains(['{', '[']) {
                    return Err(format!("{key} spans several lines"));
                }
                if k.item {
                    return Err(format!("{key} starts the YAML item"));
                }
                deletes.push(i);
            }
        }
    }
    for i in deletes {
        let last_key = json && !lines[i].text.trim_end().ends_with(',');
        if last_key {
            // Deleting the last key of a JSON object would leave the comma
            // before it dangling: put one of the new keys there instead.
            let Some(kv) = inserts.pop() else {
                return Err(
                    "the removed key is the object's last (JSON has no trailing commas)".into(),
                );
            };
            local.replace.insert(i, Some(format!("{indent}{kv}")));
        } else {
            local.replace.insert(i, None);
        }
    }
    if !inserts.is_empty() {
        let comma = if yaml { "" } else { "," };
        let new: Vec<String> = inserts
            .iter()
            .map(|kv| format!("{indent}{kv}{comma}"))
            .collect();
        if yaml || anchor_line.trim_end().ends_with(',') {
            local.after.insert(anchor, new);
        } else {
            local.before.insert(anchor, new);
        }
    }
    // Never two plans on one line (two apps sharing a line cannot happen
    // with unique anchors, but stay safe).
    let lines_touched: Vec<usize> = local
        .before
        .keys()
        .chain(local.after.keys())
        .chain(local.replace.keys())
        .copied()
        .collect();
    if lines_touched.iter().any(|i| plan.touched(*i)) {
        return Err("its lines overlap another app's".into());
    }
    plan.before.extend(local.before);
    plan.after.extend(local.after);
    plan.replace.extend(local.replace);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Same,
    Old,
    New,
}

/// A unified diff of `plan` over `lines`, or an empty string.
fn unified(name: &str, lines: &[Line], plan: &Plan, newline_at_end: bool) -> String {
    // (kind, text, index of the original line for Same/Old)
    let mut seq: Vec<(Kind, String, Option<usize>)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        for t in plan.before.get(&i).into_iter().flatten() {
            seq.push((Kind::New, t.clone(), None));
        }
        match plan.replace.get(&i) {
            Some(Some(t)) => {
                seq.push((Kind::Old, l.text.to_string(), Some(i)));
                seq.push((Kind::New, t.clone(), None));
            }
            Some(None) => seq.push((Kind::Old, l.text.to_string(), Some(i))),
            None => seq.push((Kind::Same, l.text.to_string(), Some(i))),
        }
        for t in plan.after.get(&i).into_iter().flatten() {
            seq.push((Kind::New, t.clone(), None));
        }
    }
    let changed: Vec<usize> = seq
        .iter()
        .enumerate()
        .filter(|(_, (k, _, _))| *k != Kind::Same)
        .map(|(i, _)| i)
        .collect();
    if changed.is_empty() {
        return String::new();
    }
    // Group changes whose context would touch.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &c in &changed {
        match groups.last_mut() {
            Some((_, end)) if c <= *end + 2 * CONTEXT + 1 => *end = c,
            _ => groups.push((c, c)),
        }
    }
    // Old/new line numbers before each seq position.
    let mut old_no = vec![0usize; seq.len() + 1];
    let mut new_no = vec![0usize; seq.len() + 1];
    for (i, (k, _, _)) in seq.iter().enumerate() {
        old_no[i + 1] = old_no[i] + usize::from(*k != Kind::New);
        new_no[i + 1] = new_no[i] + usize::from(*k != Kind::Old);
    }
    let last_line = lines.len().checked_sub(1);
    let mut out = format!("--- a/{name}\n+++ b/{name}\n");
    for (start, end) in groups {
        let from = start.saturating_sub(CONTEXT);
        let to = (end + CONTEXT + 1).min(seq.len());
        let old_len = old_no[to] - old_no[from];
        let new_len = new_no[to] - new_no[from];
        let old_start = if old_len == 0 {
            old_no[from]
        } else {
            old_no[from] + 1
        };
        let new_start = if new_len == 0 {
            new_no[from]
        } else {
            new_no[from] + 1
        };
        out.push_str(&format!(
            "@@ -{old_start},{old_len} +{new_start},{new_len} @@\n"
        ));
        for (k, text, orig) in &seq[from..to] {
            let mark = match k {
                Kind::Same => ' ',
                Kind::Old => '-',
                Kind::New => '+',
            };
            out.push(mark);
            out.push_str(text);
            out.push('\n');
            if !newline_at_end && *orig == last_line && *k != Kind::New && orig.is_some() {
                out.push_str("\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// The preview for one file: comment lines (`# …`, ignored by `patch` and
/// `git apply`) then the diff.
pub fn render(
    file_name: &str,
    format: SourceFormat,
    source: Option<&str>,
    suggestions: &[Suggestion],
) -> String {
    if suggestions.is_empty() {
        return String::new();
    }
    let mut head = format!(
        "# pm2-doctor lint: suggested changes to {file_name} (nothing was written; review, \
         then apply with `patch -p1` or `git apply` in its folder)\n"
    );
    let text = source.unwrap_or("");
    let crlf = text.contains("\r\n");
    let lines: Vec<Line> = text
        .split('\n')
        .map(|t| Line {
            text: if crlf {
                t.strip_suffix('\r').unwrap_or(t)
            } else {
                t
            },
        })
        .collect();
    // `split` yields a last empty piece after a final newline.
    let newline_at_end = text.ends_with('\n');
    let lines = if newline_at_end {
        &lines[..lines.len() - 1]
    } else {
        &lines[..]
    };
    let mut plan = Plan::default();
    for s in suggestions {
        let placed = match source {
            Some(_) => plan_app(lines, format, s, &mut plan),
            None => Err("the file could not be read".into()),
        };
        if let Err(why) = placed {
            head.push_str(&format!("# {}: change by hand ({why}):\n", s.app));
            for e in &s.edits {
                let line = match e {
                    Edit::Add { key, value } | Edit::Change { key, value } => {
                        format!("set {}", key_value(format, key, value))
                    }
                    Edit::Remove { key } => format!("remove {key}"),
                };
                head.push_str(&format!("#   {line}\n"));
            }
        }
    }
    let diff = unified(file_name, lines, &plan, newline_at_end);
    if crlf {
        let diff = diff.replace('\n', "\r\n");
        return head + &diff;
    }
    head + &diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Applies a unified diff made by `render` (test helper: strict, no fuzz).
    fn apply(original: &str, diff: &str) -> String {
        let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
        let mut offset: isize = 0;
        let mut it = diff.lines().peekable();
        while let Some(l) = it.next() {
            let Some(h) = l.strip_prefix("@@ -") else {
                continue;
            };
            let old_start: isize = h.split([',', ' ']).next().unwrap().parse().unwrap();
            let mut pos = (old_start - 1 + offset).max(0) as usize;
            while let Some(next) = it.peek() {
                if next.starts_with("@@") || next.starts_with("---") {
                    break;
                }
                let next = it.next().unwrap();
                match next.split_at(1) {
                    (" ", t) => {
                        assert_eq!(lines[pos], t, "context mismatch");
                        pos += 1;
                    }
                    ("-", t) => {
                        assert_eq!(lines[pos], t, "removed line mismatch");
                        lines.remove(pos);
                        offset -= 1;
                    }
                    ("+", t) => {
                        lines.insert(pos, t.to_string());
                        pos += 1;
                        offset += 1;
                    }
                    _ => {}
                }
            }
        }
        lines.join("\n") + "\n"
    }

    fn sug(app: &str, edits: Vec<Edit>) -> Suggestion {
        Suggestion {
            app: app.into(),
            index: 0,
            edits,
        }
    }

    fn add(k: &str, v: Value) -> Edit {
        Edit::Add {
            key: k.into(),
            value: v,
        }
    }

    fn policy() -> Vec<Edit> {
        vec![
            add("exec_mode", json!("fork")),
            Edit::Change {
                key: "max_restarts".into(),
                value: json!(10),
            },
            add("min_uptime", json!(5000)),
            Edit::Remove {
                key: "restart_delay".into(),
            },
        ]
    }

    const JS: &str = "module.exports = {\n  apps: [\n    {\n      name: 'web',\n      script: 'server.js',\n      max_restarts: 3,\n      restart_delay: 1000,\n      env: {\n        PORT: 3000,\n      },\n    },\n    {\n      name: 'other',\n      script: 'o.js',\n      restart_delay: 5,\n    },\n  ],\n};\n";

    #[test]
    fn js_diff_applies_and_touches_only_its_app() {
        let d = render(
            "eco.js",
            SourceFormat::Js,
            Some(JS),
            &[sug("web", policy())],
        );
        assert!(d.contains("+      exec_mode: 'fork',"), "{d}");
        assert!(
            d.contains("-      max_restarts: 3,\n+      max_restarts: 10,"),
            "{d}"
        );
        assert!(d.contains("-      restart_delay: 1000,"), "{d}");
        let after = apply(JS, &d);
        assert!(
            after.contains("restart_delay: 5,"),
            "other app untouched:\n{after}"
        );
        assert!(!after.contains("restart_delay: 1000"));
        assert!(after
            .contains("      name: 'web',\n      exec_mode: 'fork',\n      min_uptime: 5000,\n"));
    }

    #[test]
    fn json_diff_stays_valid_json() {
        let src = "{\n  \"apps\": [\n    {\n      \"script\": \"a.js\",\n      \"max_restarts\": 2,\n      \"name\": \"a\",\n      \"restart_delay\": 100\n    },\n    {\"name\": \"b\", \"script\": \"b.js\"}\n  ]\n}\n";
        let d = render(
            "e.json",
            SourceFormat::Json,
            Some(src),
            &[
                sug("a", policy()),
                sug("b", vec![add("exec_mode", json!("fork"))]),
            ],
        );
        let after = apply(src, &d);
        let v: Value = serde_json::from_str(&after).unwrap_or_else(|e| panic!("{e}\n{after}"));
        assert_eq!(v["apps"][0]["exec_mode"], "fork");
        assert_eq!(v["apps"][0]["max_restarts"], 10);
        assert_eq!(v["apps"][0]["min_uptime"], 5000);
        assert!(v["apps"][0].get("restart_delay").is_none());
        // b is a one-line object: listed for a person, not patched.
        assert!(d.contains("# b: change by hand"), "{d}");
        assert!(d.contains("#   set \"exec_mode\": \"fork\""), "{d}");
    }

    #[test]
    fn yaml_diff_stays_valid_yaml() {
        let src = "apps:\n  - name: a\n    script: a.js\n    max_restarts: 3\n    restart_delay: 100\n  - name: b\n    script: b.js\n    restart_delay: 7\n";
        let d = render(
            "e.yml",
            SourceFormat::Yaml,
            Some(src),
            &[sug("a", policy())],
        );
        let after = apply(src, &d);
        let v = super::super::load::parse_yaml(&after).unwrap();
        assert_eq!(v["apps"][0]["exec_mode"], "fork");
        assert_eq!(v["apps"][0]["max_restarts"], 10);
        assert!(v["apps"][0].get("restart_delay").is_none());
        assert_eq!(v["apps"][1]["restart_delay"], 7);
    }

    #[test]
    fn name_as_last_key_inserts_before_it() {
        let src = "module.exports = [{\n  script: 'a.js',\n  name: 'a'\n}]\n";
        let d = render(
            "e.js",
            SourceFormat::Js,
            Some(src),
            &[sug("a", vec![add("exec_mode", json!("fork"))])],
        );
        let after = apply(src, &d);
        assert!(
            after.contains("  exec_mode: 'fork',\n  name: 'a'\n"),
            "{after}"
        );
    }

    #[test]
    fn unplaceable_apps_become_comments() {
        let src = "const names = ['a'];\nmodule.exports = {apps: names.map((name) => ({name, script: 'x.js'}))};\n";
        let d = render(
            "e.js",
            SourceFormat::Js,
            Some(src),
            &[sug("a", vec![add("exec_mode", json!("fork"))])],
        );
        assert!(d.contains("# a: change by hand"), "{d}");
        assert!(d.contains("exec_mode: 'fork'"));
        assert!(!d.contains("@@"));
        assert_eq!(render("e.js", SourceFormat::Js, Some(src), &[]), "");
    }

    #[test]
    fn key_line_parsing() {
        let k = parse_key_line("  - name: web # main", true).unwrap();
        assert_eq!((k.col, k.key.as_str(), k.item), (4, "name", true));
        assert_eq!(scalar(k.rest, true).as_deref(), Some("web"));
        let k = parse_key_line("    \"name\": \"a b\",", false).unwrap();
        assert_eq!(scalar(k.rest, false).as_deref(), Some("a b"));
        assert!(parse_key_line("module.exports = {", false).is_none());
        assert!(parse_key_line("'use strict';", false).is_none());
        let k = parse_key_line("  name: NAME,", false).unwrap();
        assert_eq!(scalar(k.rest, false), None);
    }
}
