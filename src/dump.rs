//! Strict reading of `dump.pm2` and `dump.pm2.bak`.
//!
//! PM2 evaluates its dump as JavaScript and deletes it when that fails
//! (pm2-internals §2.3). pm2-doctor never evaluates anything: it parses strict
//! JSON into a small typed view (so a 2,000-app dump does not become a huge
//! `Value` tree), and classifies whatever is not strict JSON.

use crate::home::{read_capped, Entry, FileMeta};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// Dumps larger than this are not read in full. Real dumps are ~10 KB per app.
pub const DUMP_CAP: u64 = 256 * 1024 * 1024;
/// json5 is only tried on inputs this small: it is slow and the question it
/// answers ("would a JS engine accept this?") only matters for hand-edited dumps.
const JS_LITERAL_CAP: usize = 4 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq)]
pub enum DumpParse {
    /// No file (or not a regular file; the entry says which).
    Absent,
    Unreadable(String),
    TooLarge {
        size: u64,
    },
    /// Zero bytes or only white space.
    Empty {
        meta: FileMeta,
    },
    /// Not strict JSON. `js` tells whether a JavaScript engine would accept it.
    NotJson {
        meta: FileMeta,
        error: String,
        js: JsVerdict,
    },
    /// Strict JSON but not an array (`null`, `{}`, a number...).
    NotArray {
        meta: FileMeta,
        kind: &'static str,
    },
    Apps {
        meta: FileMeta,
        entries: Vec<DumpEntry>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsVerdict {
    /// Neither JSON nor a JS literal: truncated or garbage.
    Garbage,
    /// A JS object literal (comments, trailing commas, single quotes).
    Literal,
    /// Contains code (calls, `require`, `process.`): PM2 would run it.
    Code,
}

impl DumpParse {
    pub fn apps(&self) -> Option<&[DumpEntry]> {
        match self {
            DumpParse::Apps { entries, .. } => Some(entries),
            _ => None,
        }
    }

    pub fn is_valid_with_apps(&self) -> bool {
        self.apps().is_some_and(|a| !a.is_empty())
    }
}

/// What an entry's `env` looked like.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EnvShape {
    #[default]
    Missing,
    NotObject,
    Object {
        pm2_home: Option<String>,
        /// Names (never values) of keys that look like secrets.
        secret_keys: Vec<String>,
        /// `PORT`-like keys with a numeric value: the ports the app wants.
        ports: Vec<(String, u16)>,
    },
}

/// The fields of one dump entry that pm2-doctor reasons about. Everything
/// else (including all env values) is skipped while parsing.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DumpEntry {
    #[serde(deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub pm_exec_path: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub pm_cwd: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub pm_pid_path: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub pm_out_log_path: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub pm_err_log_path: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub exec_interpreter: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub exec_mode: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub status: Option<String>,
    #[serde(rename = "PM2_HOME", deserialize_with = "lenient_string")]
    pub pm2_home: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub restart_time: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub unstable_restarts: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub created_at: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_restarts: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub min_uptime: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub restart_delay: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub exp_backoff_restart_delay: Option<u64>,
    #[serde(deserialize_with = "env_shape")]
    pub env: EnvShape,
    /// Set when the array element was not an object at all.
    #[serde(skip)]
    pub not_an_object: bool,
}

/// A wrong type in one field must not make the whole dump unreadable: it is
/// recorded as absent and the entry validator reports it.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

pub(crate) fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        _ => None,
    })
}

/// Key names that suggest a credential. Matched case-insensitively as a part
/// of the key, so `DB_PASSWORD` and `githubToken` both count.
const SECRET_MARKERS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "auth",
    "database_url",
    "dsn",
    "access_key",
];

pub fn looks_secret(key: &str) -> bool {
    let k = key.as_bytes();
    SECRET_MARKERS.iter().any(|m| {
        k.windows(m.len())
            .any(|w| w.eq_ignore_ascii_case(m.as_bytes()))
    })
}

/// `PORT=3000`, `HTTP_PORT="8080"`: a key named like a port with a value
/// that is a valid port number.
pub fn port_value(key: &str, v: &serde_json::Value) -> Option<u16> {
    let k = key.to_ascii_uppercase();
    if k != "PORT" && !k.ends_with("_PORT") {
        return None;
    }
    let n = match v {
        serde_json::Value::Number(n) => n.as_u64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p > 0)
}

pub(crate) fn env_shape<'de, D: Deserializer<'de>>(d: D) -> Result<EnvShape, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = EnvShape;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an env object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvShape, A::Error> {
            let mut pm2_home = None;
            let mut secret_keys = Vec::new();
            let mut ports = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == "PM2_HOME" {
                    pm2_home = lenient_string(map.next_value_seed(ValueSeed)?)
                        .ok()
                        .flatten();
                    continue;
                }
                let v: serde_json::Value = map.next_value_seed(ValueSeed)?;
                // A secret is only exposed when it holds something.
                let filled = match &v {
                    serde_json::Value::String(s) => !s.is_empty(),
                    serde_json::Value::Null => false,
                    _ => true,
                };
                if let Some(p) = port_value(&key, &v) {
                    ports.push((key.clone(), p));
                }
                if filled && looks_secret(&key) {
                    secret_keys.push(key);
                }
            }
            Ok(EnvShape::Object {
                pm2_home,
                secret_keys,
                ports,
            })
        }
        fn visit_unit<E: de::Error>(self) -> Result<EnvShape, E> {
            Ok(EnvShape::NotObject)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<EnvShape, E> {
            Ok(EnvShape::NotObject)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<EnvShape, E> {
            Ok(EnvShape::NotObject)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<EnvShape, E> {
            Ok(EnvShape::NotObject)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<EnvShape, E> {
            Ok(EnvShape::NotObject)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<EnvShape, E> {
            Ok(EnvShape::NotObject)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<EnvShape, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(EnvShape::NotObject)
        }
    }
    d.deserialize_any(V)
}

/// Reads a value as a small `Value`, but strings are kept and nested objects
/// are reduced to a marker so env trees do not balloon memory.
struct ValueSeed;
impl<'de> de::DeserializeSeed<'de> for ValueSeed {
    type Value = serde_json::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = serde_json::Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(serde_json::Value::String(s.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(serde_json::Value::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(serde_json::Value::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(n.into())
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(n.into())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(serde_json::Value::Bool(true))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(serde_json::Value::Bool(true))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(serde_json::Value::Bool(true))
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of the top-level array: an object is read as an entry,
/// anything else is marked. Decided on the first token, so nothing is
/// buffered (an untagged enum would copy every ~10 KB entry into a generic
/// tree before trying it).
struct RawElement(DumpEntry);

impl<'de> Deserialize<'de> for RawElement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawElement;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a dump entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawElement, A::Error> {
                DumpEntry::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawElement)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawElement, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawElement::other())
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawElement, E> {
                Ok(RawElement::other())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawElement, E> {
                Ok(RawElement::other())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawElement, E> {
                Ok(RawElement::other())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawElement, E> {
                Ok(RawElement::other())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawElement, E> {
                Ok(RawElement::other())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawElement, E> {
                Ok(RawElement::other())
            }
        }
        d.deserialize_any(V)
    }
}

impl RawElement {
    fn other() -> RawElement {
        RawElement(DumpEntry {
            not_an_object: true,
            ..DumpEntry::default()
        })
    }
}

fn json_kind(bytes: &[u8]) -> &'static str {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => "an object",
        Some(b'n') => "null",
        Some(b'"') => "a string",
        Some(b't') | Some(b'f') => "a boolean",
        _ => "a number",
    }
}

/// Parses dump bytes. Pure, so it is fuzzed and property-tested directly.
pub fn parse_bytes(bytes: &[u8], meta: FileMeta) -> DumpParse {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return DumpParse::Empty { meta };
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'[') {
        match serde_json::from_slice::<Vec<RawElement>>(bytes) {
            Ok(elems) => {
                let entries = elems.into_iter().map(|RawElement(e)| e).collect();
                return DumpParse::Apps { meta, entries };
            }
            Err(e) => {
                return DumpParse::NotJson {
                    js: js_verdict(bytes),
                    error: e.to_string(),
                    meta,
                }
            }
        }
    }
    match serde_json::from_slice::<IgnoredAny>(bytes) {
        Ok(_) => DumpParse::NotArray {
            meta,
            kind: json_kind(bytes),
        },
        Err(e) => DumpParse::NotJson {
            js: js_verdict(bytes),
            error: e.to_string(),
            meta,
        },
    }
}

/// Would PM2's `vm.runInThisContext('(' + dump + ')')` accept this? We never
/// evaluate it; a JSON5 parse stands in for "a plain JS literal", and call
/// syntax or well-known globals for "code".
fn js_verdict(bytes: &[u8]) -> JsVerdict {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return JsVerdict::Garbage;
    };
    // json5's parser recurses without a limit: only hand it shallow input.
    if text.len() <= JS_LITERAL_CAP
        && max_depth(bytes) <= MAX_JS_DEPTH
        && json5::from_str::<serde_json::Value>(text).is_ok()
    {
        return JsVerdict::Literal;
    }
    const CODE_MARKERS: &[&str] = &[
        "require(",
        "process.",
        "=>",
        "function",
        "eval(",
        "import(",
        "globalThis",
        "child_process",
    ];
    // Only text outside string literals counts: a script path such as
    // "/srv/worker-process.js" in a truncated dump is not code.
    let bare = outside_strings(bytes);
    if CODE_MARKERS.iter().any(|m| bare.contains(m)) {
        return JsVerdict::Code;
    }
    JsVerdict::Garbage
}

/// The text with every quoted string's content removed.
fn outside_strings(bytes: &[u8]) -> String {
    let (mut out, mut quote, mut escaped) = (Vec::with_capacity(bytes.len()), None, false);
    for &b in bytes {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q {
                quote = None;
                out.push(b);
            }
            continue;
        }
        if matches!(b, b'"' | b'\'' | b'`') {
            quote = Some(b);
        }
        out.push(b);
    }
    String::from_utf8_lossy(&out).into_owned()
}

const MAX_JS_DEPTH: usize = 64;

/// Deepest bracket nesting, ignoring brackets inside strings.
///
/// Every bracket counts, inside strings and comments too: telling those
/// apart needs a real JS tokenizer, and a quote in a `//` comment once hid
/// 100k brackets from a smarter count. Over-counting only makes pm2-doctor
/// skip the JSON5 attempt (and call the text garbage), which is safe.
fn max_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for &b in bytes {
        match b {
            b'[' | b'{' | b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Reads and parses a dump file the home snapshot found at `entry`.
pub fn parse_entry_file(path: &Path, entry: &Entry) -> DumpParse {
    match entry {
        Entry::File(meta) => {
            if meta.size > DUMP_CAP {
                return DumpParse::TooLarge { size: meta.size };
            }
            match read_capped(path, DUMP_CAP) {
                Ok((bytes, false)) => parse_bytes(&bytes, meta.clone()),
                Ok((_, true)) => DumpParse::TooLarge { size: meta.size },
                Err(e) => DumpParse::Unreadable(format!("{}: {e}", path.display())),
            }
        }
        Entry::Unreadable(e) => DumpParse::Unreadable(e.clone()),
        _ => DumpParse::Absent,
    }
}

/// Why a dump entry would crash or mislead the daemon on resurrect.
pub fn entry_problems(e: &DumpEntry) -> Vec<&'static str> {
    if e.not_an_object {
        return vec!["the element is not an object"];
    }
    let mut out = Vec::new();
    if e.name.as_deref().is_none_or(str::is_empty) {
        out.push("name is missing or not a string");
    }
    if e.pm_exec_path.as_deref().is_none_or(str::is_empty) {
        out.push("pm_exec_path is missing or not a string");
    }
    if e.pm_pid_path.is_none() {
        out.push("pm_pid_path is missing or not a string");
    }
    match e.env {
        EnvShape::Missing => out.push("env is missing"),
        EnvShape::NotObject => out.push("env is not an object"),
        EnvShape::Object { .. } => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> FileMeta {
        FileMeta {
            size: 0,
            mtime: None,
            mode: None,
        }
    }

    fn parse(s: &str) -> DumpParse {
        parse_bytes(s.as_bytes(), meta())
    }

    #[test]
    fn real_pm2_samples_parse() {
        for sample in [
            include_str!("../testdata/samples/dump.pm2.sample.json"),
            include_str!("../testdata/samples/dump.pm2.daemon-sigterm.sample.json"),
        ] {
            let DumpParse::Apps { entries, .. } = parse(sample) else {
                panic!("sample did not parse");
            };
            assert!(!entries.is_empty());
            for e in &entries {
                assert!(entry_problems(e).is_empty(), "{e:?}");
                assert!(matches!(
                    e.env,
                    EnvShape::Object {
                        pm2_home: Some(_),
                        ..
                    }
                ));
            }
        }
    }

    #[test]
    fn classifies_the_corruptions_pm2_mishandles() {
        assert!(matches!(parse(""), DumpParse::Empty { .. }));
        assert!(matches!(parse(" \n"), DumpParse::Empty { .. }));
        assert!(matches!(
            parse("null"),
            DumpParse::NotArray { kind: "null", .. }
        ));
        assert!(matches!(
            parse("{}"),
            DumpParse::NotArray {
                kind: "an object",
                ..
            }
        ));
        assert!(matches!(
            parse("[{\"name\":\"a\"},"),
            DumpParse::NotJson {
                js: JsVerdict::Garbage,
                ..
            }
        ));
        assert!(matches!(
            parse("this is not json \u{0}\u{1} garbage"),
            DumpParse::NotJson {
                js: JsVerdict::Garbage,
                ..
            }
        ));
        assert!(matches!(
            parse("[{name: 'a', env: {},}, // comment\n]"),
            DumpParse::NotJson {
                js: JsVerdict::Literal,
                ..
            }
        ));
        assert!(matches!(
            parse("(process.mainModule.require(\"fs\").writeFileSync(\"/x\", \"\"), [])"),
            DumpParse::NotJson {
                js: JsVerdict::Code,
                ..
            }
        ));
        assert_eq!(parse("[]").apps().map(<[_]>::len), Some(0));
        // Code words inside strings of a truncated dump are not code.
        assert!(matches!(
            parse(
                r#"[{"name":"w","pm_exec_path":"/srv/worker-process.js","note":"a => b function"#
            ),
            DumpParse::NotJson {
                js: JsVerdict::Garbage,
                ..
            }
        ));
    }

    /// Deep nesting is valid JSON: it must come back as a refused entry or a
    /// parse error, never a stack overflow, and never as a valid app.
    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        let refused = |p: DumpParse| match p {
            DumpParse::NotJson { .. } => true,
            DumpParse::Apps { entries, .. } => {
                entries.iter().all(|e| !entry_problems(e).is_empty())
            }
            _ => false,
        };
        let deep = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert!(refused(parse(&deep)));
        let deep_env = format!(
            "[{{\"name\":\"a\",\"env\":{}1{}}}]",
            "{\"a\":".repeat(50_000),
            "}".repeat(50_000)
        );
        assert!(refused(parse(&deep_env)));
        let deep_entry = format!("[{}1{}]", "{\"a\":".repeat(50_000), "}".repeat(50_000));
        assert!(refused(parse(&deep_entry)));
    }

    #[test]
    fn entry_validation_names_the_missing_keys() {
        let DumpParse::Apps { entries, .. } = parse(
            r#"[{"name":"noscript"}, 5, {"name":"x","pm_exec_path":"/a.js","pm_pid_path":"/p","env":[]}]"#,
        ) else {
            panic!()
        };
        assert_eq!(
            entry_problems(&entries[0]),
            vec![
                "pm_exec_path is missing or not a string",
                "pm_pid_path is missing or not a string",
                "env is missing"
            ]
        );
        assert_eq!(
            entry_problems(&entries[1]),
            vec!["the element is not an object"]
        );
        assert_eq!(entry_problems(&entries[2]), vec!["env is not an object"]);
    }

    #[test]
    fn secret_keys_are_named_never_valued() {
        let DumpParse::Apps { entries, .. } = parse(
            r#"[{"name":"a","env":{"GITHUB_TOKEN":"ghp_x","DB_PASSWORD":"hunter2","EMPTY_SECRET":"","PATH":"/bin","PM2_HOME":"/h"}}]"#,
        ) else {
            panic!()
        };
        assert_eq!(
            entries[0].env,
            EnvShape::Object {
                pm2_home: Some("/h".into()),
                secret_keys: vec!["GITHUB_TOKEN".into(), "DB_PASSWORD".into()],
                ports: vec![],
            }
        );
        assert!(!format!("{:?}", entries[0]).contains("hunter2"));
    }

    #[test]
    fn ports_come_from_port_like_keys() {
        let DumpParse::Apps { entries, .. } = parse(
            r#"[{"name":"a","env":{"PORT":"3000","HTTP_PORT":8080,"SPORT":"1","DB_PORT":"x","PORT2":"9"}}]"#,
        ) else {
            panic!()
        };
        let EnvShape::Object { ports, .. } = &entries[0].env else {
            panic!()
        };
        assert_eq!(
            ports,
            &vec![("PORT".to_string(), 3000), ("HTTP_PORT".to_string(), 8080)]
        );
    }

    #[test]
    fn wrong_field_types_do_not_hide_the_rest() {
        let DumpParse::Apps { entries, .. } =
            parse(r#"[{"name":7,"restart_time":"many","env":{}}]"#)
        else {
            panic!()
        };
        assert_eq!(entries[0].name, None);
        assert_eq!(entries[0].restart_time, None);
    }
}
