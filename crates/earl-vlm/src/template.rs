//! Prompt templates: TOML files with an id, a version, the prompt text and the reply schema.
//!
//! Text placeholders are `{name}` with a lower-case name; any other brace is literal, so JSON
//! examples can be written as they are. The built-in templates are the files in
//! `pipelines/prompts/`, compiled in; a user can point at their own file instead.

use std::path::Path;

use serde::Deserialize;

use crate::client::ResponseSchema;
use crate::error::{Result, VlmError};

/// One prompt template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    pub id: String,
    pub version: u32,
    #[serde(default)]
    pub description: String,
    /// Default `max_tokens` for replies to this prompt.
    pub max_tokens: Option<u32>,
    pub system: String,
    pub user: String,
    /// JSON schema of the reply, sent as `response_format` (and checked again by our parser).
    pub schema: Option<serde_json::Value>,
}

impl PromptTemplate {
    /// Parse TOML text; `origin` names it in errors. `placeholders` are the names the caller
    /// will fill: the template may use any of them and no other.
    pub fn from_toml(text: &str, origin: &str, placeholders: &[&str]) -> Result<Self> {
        let err = |reason: String| VlmError::Template {
            path: origin.to_string(),
            reason,
        };
        let t: PromptTemplate = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if t.id.is_empty() || !t.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(format!("id {:?} must be non-empty [A-Za-z0-9_]", t.id)));
        }
        if t.user.trim().is_empty() {
            return Err(err("the user text is empty".into()));
        }
        for text in [&t.system, &t.user] {
            for name in placeholder_names(text) {
                if !placeholders.contains(&name) {
                    return Err(err(format!(
                        "unknown placeholder {{{name}}}; this prompt can use {:?}",
                        placeholders
                    )));
                }
            }
        }
        Ok(t)
    }

    /// Read a template file.
    pub fn load(path: &Path, placeholders: &[&str]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| VlmError::Template {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text, &path.display().to_string(), placeholders)
    }

    /// `id@version`, recorded with every answer and part of the cache key.
    pub fn tag(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// The reply schema as the client sends it.
    pub fn response_schema(&self) -> Option<ResponseSchema> {
        self.schema.as_ref().map(|s| ResponseSchema {
            name: self.id.clone(),
            schema: s.clone(),
        })
    }

    /// The system and user texts with placeholders filled.
    pub fn render(&self, vars: &[(&str, &str)]) -> (String, String) {
        (fill(&self.system, vars), fill(&self.user, vars))
    }
}

/// Names of `{name}` placeholders in `text`.
fn placeholder_names(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('}') {
            let name = &rest[..close];
            if is_name(name) {
                out.push(name);
            }
        }
    }
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The templates shipped in `pipelines/prompts/`.
pub mod builtin {
    use super::PromptTemplate;
    use crate::error::Result;

    pub const COT_EDIT: &str = include_str!("../../../pipelines/prompts/cot_edit.toml");
    pub const VIESCORE_SC: &str = include_str!("../../../pipelines/prompts/viescore_sc.toml");
    pub const VIESCORE_PQ: &str = include_str!("../../../pipelines/prompts/viescore_pq.toml");

    /// Placeholders of each kind of prompt.
    pub const COT_VARS: &[&str] = &["instruction", "width", "height"];
    pub const SC_VARS: &[&str] = &["instruction"];
    pub const PQ_VARS: &[&str] = &[];

    pub fn cot_edit() -> Result<PromptTemplate> {
        PromptTemplate::from_toml(COT_EDIT, "pipelines/prompts/cot_edit.toml", COT_VARS)
    }
    pub fn viescore_sc() -> Result<PromptTemplate> {
        PromptTemplate::from_toml(VIESCORE_SC, "pipelines/prompts/viescore_sc.toml", SC_VARS)
    }
    pub fn viescore_pq() -> Result<PromptTemplate> {
        PromptTemplate::from_toml(VIESCORE_PQ, "pipelines/prompts/viescore_pq.toml", PQ_VARS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_with_schemas() {
        for t in [
            builtin::cot_edit().unwrap(),
            builtin::viescore_sc().unwrap(),
            builtin::viescore_pq().unwrap(),
        ] {
            assert_eq!(t.version, 1);
            let s = t.response_schema().unwrap();
            assert_eq!(s.schema["type"], "object", "{}", t.id);
        }
    }

    #[test]
    fn fills_placeholders_and_keeps_json_braces() {
        let t = builtin::viescore_sc().unwrap();
        let (_, user) = t.render(&[("instruction", "make it {red}")]);
        assert!(user.contains("\"make it {red}\""), "{user}");
        assert!(user.contains("{\"reasoning\":"));
        assert!(!user.contains("{instruction}"));
    }

    #[test]
    fn refuses_unknown_placeholders_and_bad_files() {
        let text = "id = \"x\"\nversion = 1\nsystem = \"\"\nuser = \"see {colour}\"\n";
        let e = PromptTemplate::from_toml(text, "my.toml", &["instruction"]).unwrap_err();
        assert!(e.to_string().contains("{colour}") && e.to_string().contains("my.toml"));
        let e = PromptTemplate::from_toml("id = 3", "b.toml", &[]).unwrap_err();
        assert!(e.to_string().contains("b.toml"));
        let extra = format!("{text}temperature = 1\n");
        assert!(PromptTemplate::from_toml(&extra, "c.toml", &["colour"]).is_err());
    }
}
