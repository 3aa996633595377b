//! Turning an ecosystem file into PM2's list of app objects, format by
//! format, the way PM2 7 reads it (`Common.parseConfig`, `API._startJson`).

use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// The largest ecosystem file (or evaluated output) we read.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// `.js`/`.cjs`: evaluated with node, `require`d.
    Js,
    /// `.mjs`: evaluated with node, `import`ed (its `default` export).
    Mjs,
    /// `.json`/`.json5`: strict JSON, else JSON5 (PM2 evaluates it as a JS expression).
    Json,
    /// `.yml`/`.yaml`.
    Yaml,
}

impl SourceFormat {
    pub fn of(path: &Path) -> Option<SourceFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "js" | "cjs" => SourceFormat::Js,
            "mjs" => SourceFormat::Mjs,
            "json" | "json5" => SourceFormat::Json,
            "yml" | "yaml" => SourceFormat::Yaml,
            _ => return None,
        })
    }

    pub fn is_javascript(self) -> bool {
        matches!(self, SourceFormat::Js | SourceFormat::Mjs)
    }
}

/// Parses JSON as PM2 accepts it: strict JSON first, then JSON5 (comments,
/// unquoted keys, single quotes, trailing commas), which PM2 also takes
/// because it evaluates `.json` files as a JavaScript expression.
pub fn parse_json(text: &str) -> Result<Value, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(strict) => json5::from_str::<Value>(text)
            .map_err(|_| format!("not valid JSON (nor JSON5): {strict}")),
    }
}

/// Parses YAML with merge keys (`<<: *base`) applied, as js-yaml does.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    let mut doc: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    doc.apply_merge()
        .map_err(|e| format!("cannot apply YAML merge keys: {e}"))?;
    serde_json::to_value(doc).map_err(|e| format!("YAML that JSON cannot hold: {e}"))
}

/// The app list inside an evaluated config: `apps`, else `pm2`, else the
/// config itself; a single object is one app (`API._startJson`).
pub fn apps_of(config: Value) -> Result<Vec<Value>, String> {
    let list = match config {
        Value::Object(mut m) => match m.remove("apps").filter(|v| !v.is_null()) {
            Some(apps) => apps,
            None => match m.remove("pm2").filter(|v| !v.is_null()) {
                Some(apps) => apps,
                None => Value::Object(m),
            },
        },
        other => other,
    };
    match list {
        Value::Array(a) => Ok(a),
        Value::Object(_) => Ok(vec![list]),
        Value::Null => Err("the file exports nothing (null or undefined)".into()),
        other => Err(format!(
            "the file exports {}, not an app list",
            kind_of(&other)
        )),
    }
}

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            SourceFormat::of(Path::new("ecosystem.config.cjs")),
            Some(SourceFormat::Js)
        );
        assert_eq!(
            SourceFormat::of(Path::new("x.MJS")),
            Some(SourceFormat::Mjs)
        );
        assert_eq!(
            SourceFormat::of(Path::new("x.yaml")),
            Some(SourceFormat::Yaml)
        );
        assert_eq!(SourceFormat::of(Path::new("x.toml")), None);
        assert_eq!(SourceFormat::of(Path::new("ecosystem")), None);
    }

    #[test]
    fn json_falls_back_to_json5() {
        let v = parse_json("// comment\n{apps: [{name: 'a', script: 'a.js',},],}").unwrap();
        assert_eq!(v["apps"][0]["name"], "a");
        let err = parse_json("{apps: [").unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn yaml_applies_merge_keys() {
        let v = parse_yaml(
            "base: &base\n  max_restarts: 10\napps:\n  - <<: *base\n    name: a\n    script: a.js\n",
        )
        .unwrap();
        assert_eq!(v["apps"][0]["max_restarts"], 10);
        assert!(parse_yaml("apps: [").is_err());
    }

    #[test]
    fn apps_are_found_like_pm2() {
        assert_eq!(apps_of(json!({"apps": [{"a": 1}]})).unwrap().len(), 1);
        assert_eq!(apps_of(json!({"pm2": [{"a": 1}, {}]})).unwrap().len(), 2);
        assert_eq!(apps_of(json!([{}, {}, {}])).unwrap().len(), 3);
        assert_eq!(
            apps_of(json!({"name": "solo", "script": "s.js"})).unwrap()[0]["name"],
            "solo"
        );
        assert!(apps_of(json!(null)).unwrap_err().contains("nothing"));
        assert!(apps_of(json!(42)).unwrap_err().contains("a number"));
    }
}
