//! Recipes: `datasets/<name>.toml`, compiled into the binary so `earl-data ingest omniedit` works
//! from anywhere; `--recipe-file` reads a user's own.

use serde::{Deserialize, Serialize};

/// Which columns of the source mean what, and how to pick the instruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub license: String,
    /// Hub dataset id used when `--source` is not given.
    #[serde(default)]
    pub hub: Option<String>,
    /// `parquet`, `arrow`, `jsonl` or `auto`.
    #[serde(default = "auto")]
    pub format: String,
    /// Which files of a Hub repository or folder to read (glob on the relative path).
    #[serde(default)]
    pub files: Option<String>,
    pub columns: Columns,
    #[serde(default)]
    pub instruction: InstructionRule,
    #[serde(default)]
    pub filters: Filters,
}

fn auto() -> String {
    "auto".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// Upstream id column; without one, rows are named `<file>:<row>`.
    pub id: Option<String>,
    /// A column appended to the id (`<id>-<suffix>`) when the id alone is not unique.
    pub id_suffix: Option<String>,
    pub source_image: String,
    pub target_image: String,
    /// A single instruction column...
    pub instruction: Option<String>,
    /// ...or a list of alternative instructions.
    pub instructions: Option<String>,
    pub task: Option<String>,
    pub sc_score_1: Option<String>,
    pub sc_score_2: Option<String>,
    pub pq_score: Option<String>,
    pub o_score: Option<String>,
    /// Other columns kept verbatim in `extra` (JSON).
    #[serde(default)]
    pub keep: Vec<String>,
    /// A column holding the split name; otherwise the file name or folder decides.
    pub split: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choose {
    /// The first non-empty instruction.
    #[default]
    First,
    /// One chosen by a hash of (seed, upstream id): independent of order, ranks and resumes.
    Seeded,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionRule {
    #[serde(default)]
    pub choose: Choose,
    #[serde(default)]
    pub seed: u64,
}

/// Optional score thresholds; rows below them are counted as filtered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    pub min_o_score: Option<f32>,
    /// Applies to `min(sc_score_1, sc_score_2)`.
    pub min_sc_score: Option<f32>,
    pub min_pq_score: Option<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("no built-in recipe `{0}`; built-in: {1}. Use --recipe-file for your own")]
    Unknown(String, String),
    #[error("recipe {0}: {1}")]
    Parse(String, String),
    #[error("recipe {0}: give `columns.instruction` or `columns.instructions`")]
    NoInstruction(String),
}

const BUILTIN: &[(&str, &str)] = &[
    ("omniedit", include_str!("../../../datasets/omniedit.toml")),
    (
        "magicbrush",
        include_str!("../../../datasets/magicbrush.toml"),
    ),
    (
        "humanedit",
        include_str!("../../../datasets/humanedit.toml"),
    ),
    ("aurora", include_str!("../../../datasets/aurora.toml")),
    ("vismin", include_str!("../../../datasets/vismin.toml")),
    ("generic", include_str!("../../../datasets/generic.toml")),
];

impl Recipe {
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(n, _)| *n).collect()
    }

    pub fn builtin(name: &str) -> Result<Recipe, RecipeError> {
        let (_, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| RecipeError::Unknown(name.into(), Self::builtin_names().join(", ")))?;
        Self::parse(name, text)
    }

    pub fn parse(origin: &str, text: &str) -> Result<Recipe, RecipeError> {
        let r: Recipe =
            toml::from_str(text).map_err(|e| RecipeError::Parse(origin.into(), e.to_string()))?;
        if r.columns.instruction.is_none() && r.columns.instructions.is_none() {
            return Err(RecipeError::NoInstruction(origin.into()));
        }
        Ok(r)
    }

    /// The recipe's own TOML text, as recorded in manifests.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_recipe_parses() {
        for name in Recipe::builtin_names() {
            let r = Recipe::builtin(name).unwrap();
            assert_eq!(r.name, name);
        }
        let omni = Recipe::builtin("omniedit").unwrap();
        assert_eq!(omni.instruction.choose, Choose::Seeded);
        assert_eq!(
            omni.columns.instructions.as_deref(),
            Some("edited_prompt_list")
        );
    }

    #[test]
    fn unknown_names_and_fields_are_errors() {
        assert!(
            Recipe::builtin("nope")
                .unwrap_err()
                .to_string()
                .contains("omniedit")
        );
        let bad =
            "name='x'\n[columns]\nsource_image='a'\ntarget_image='b'\ninstruction='c'\nbogus=1\n";
        assert!(Recipe::parse("x", bad).is_err());
    }
}
