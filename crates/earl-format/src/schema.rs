//! The versioned Arrow schemas, described once as a table of fields.
//!
//! Each field carries a short description and the `datasets` feature it maps to; the Arrow
//! schema, the `huggingface` schema metadata (so `datasets` decodes image columns as images),
//! the dataset card and the readable `schemas/*.md` are all generated from this one table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

/// Which of the two on-disk record types a dataset holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SchemaKind {
    /// Editing triplets with the upstream encoded images (`triplet.v1`).
    #[serde(rename = "triplet.v1")]
    Triplet,
    /// Pre-tokenized triplets: VQ code grids of both images (`tokens.v1`).
    #[serde(rename = "tokens.v1")]
    Tokens,
}

/// What a column holds, in the terms both Arrow and `datasets` understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Utf8,
    U16,
    U32,
    U64,
    F32,
    ListUtf8,
    ListU16,
    ListF32,
    /// An encoded image: `struct{bytes: binary, path: utf8}`, the `datasets` `Image` layout.
    Image,
}

/// One column of a schema.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub column: Column,
    pub nullable: bool,
    pub doc: &'static str,
}

const fn f(name: &'static str, column: Column, nullable: bool, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        column,
        nullable,
        doc,
    }
}

use Column::*;

const TRIPLET_V1: &[FieldSpec] = &[
    f(
        "id",
        Utf8,
        false,
        "Stable row id: `<source_dataset>/<upstream_id>`; unique in a dataset.",
    ),
    f(
        "source_dataset",
        Utf8,
        false,
        "Recipe name of the source dataset (e.g. `omniedit`).",
    ),
    f(
        "upstream_id",
        Utf8,
        false,
        "The row's id in the source dataset.",
    ),
    f(
        "split",
        Utf8,
        false,
        "Split name (`train`, `validation`, ...).",
    ),
    f(
        "task",
        Utf8,
        true,
        "Edit category when the source has one (OmniEdit `task`).",
    ),
    f(
        "instruction",
        Utf8,
        false,
        "The chosen editing instruction (non-empty).",
    ),
    f(
        "instructions",
        ListUtf8,
        false,
        "All alternative instructions, the chosen one included.",
    ),
    f(
        "source_image",
        Image,
        false,
        "Source image: the upstream encoded bytes, unchanged.",
    ),
    f(
        "source_format",
        Utf8,
        false,
        "Encoding of the source image: png, jpeg, webp, gif, bmp, tiff.",
    ),
    f("source_width", U32, false, "Source image width in pixels."),
    f(
        "source_height",
        U32,
        false,
        "Source image height in pixels.",
    ),
    f(
        "source_bytes",
        U64,
        false,
        "Size of the encoded source image in bytes.",
    ),
    f(
        "target_image",
        Image,
        false,
        "Edited (target) image: upstream encoded bytes, unchanged.",
    ),
    f(
        "target_format",
        Utf8,
        false,
        "Encoding of the target image.",
    ),
    f("target_width", U32, false, "Target image width in pixels."),
    f(
        "target_height",
        U32,
        false,
        "Target image height in pixels.",
    ),
    f(
        "target_bytes",
        U64,
        false,
        "Size of the encoded target image in bytes.",
    ),
    f(
        "sc_score_1",
        F32,
        true,
        "Semantic-consistency score 1 from the source, if any.",
    ),
    f(
        "sc_score_2",
        F32,
        true,
        "Semantic-consistency score 2 from the source, if any.",
    ),
    f(
        "pq_score",
        F32,
        true,
        "Perceptual-quality score from the source, if any.",
    ),
    f(
        "o_score",
        F32,
        true,
        "Overall score from the source, if any.",
    ),
    f(
        "extra",
        Utf8,
        true,
        "Other upstream columns kept verbatim, as a JSON object.",
    ),
    f(
        "cot_text",
        Utf8,
        true,
        "Chain-of-thought trace (cot-annotate).",
    ),
    f(
        "cot_bbox",
        ListF32,
        true,
        "Edit region `[x1, y1, x2, y2]` in original source pixels.",
    ),
    f("cot_model", Utf8, true, "Model that wrote the trace."),
    f(
        "cot_prompt",
        Utf8,
        true,
        "Prompt template id and version, `id@version`.",
    ),
    f("cot_raw", Utf8, true, "The model's raw reply."),
    f(
        "cot_status",
        Utf8,
        true,
        "`ok`, or why the annotation was not usable.",
    ),
];

const TOKENS_V1: &[FieldSpec] = &[
    f(
        "id",
        Utf8,
        false,
        "Stable row id, as in the triplet dataset it came from.",
    ),
    f(
        "source_dataset",
        Utf8,
        false,
        "Recipe name of the source dataset.",
    ),
    f(
        "upstream_id",
        Utf8,
        false,
        "The row's id in the source dataset.",
    ),
    f("split", Utf8, false, "Split name."),
    f("instruction", Utf8, false, "The editing instruction."),
    f(
        "source_codes",
        ListU16,
        false,
        "VQ codes of the source image, row-major, `source_h * source_w`.",
    ),
    f("source_h", U16, false, "Rows of the source code grid."),
    f("source_w", U16, false, "Columns of the source code grid."),
    f(
        "target_codes",
        ListU16,
        false,
        "VQ codes of the target image, row-major.",
    ),
    f("target_h", U16, false, "Rows of the target code grid."),
    f("target_w", U16, false, "Columns of the target code grid."),
    f(
        "cot_text",
        Utf8,
        true,
        "Chain-of-thought trace, when the triplet had one.",
    ),
    f(
        "cot_bbox",
        ListF32,
        true,
        "Edit region `[x1, y1, x2, y2]` in resized source pixels.",
    ),
    f(
        "vq_checkpoint",
        Utf8,
        false,
        "sha256 of the VQ weights that made the codes.",
    ),
    f(
        "image_area",
        U32,
        false,
        "Target pixel area of the smart resize before encoding.",
    ),
];

impl SchemaKind {
    /// The version tag written in manifests, e.g. `triplet.v1`.
    pub fn tag(self) -> &'static str {
        match self {
            SchemaKind::Triplet => "triplet.v1",
            SchemaKind::Tokens => "tokens.v1",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Self> {
        [SchemaKind::Triplet, SchemaKind::Tokens]
            .into_iter()
            .find(|k| k.tag() == tag)
    }

    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            SchemaKind::Triplet => TRIPLET_V1,
            SchemaKind::Tokens => TOKENS_V1,
        }
    }

    /// The Arrow schema, with the `huggingface` metadata that tells `datasets` the features.
    pub fn arrow(self) -> SchemaRef {
        let fields: Vec<Field> = self
            .fields()
            .iter()
            .map(|s| Field::new(s.name, arrow_type(s.column), s.nullable))
            .collect();
        let features: serde_json::Map<String, serde_json::Value> = self
            .fields()
            .iter()
            .map(|s| (s.name.to_string(), hf_feature(s.column)))
            .collect();
        let meta = serde_json::json!({ "info": { "features": features } });
        let metadata = HashMap::from([("huggingface".to_string(), meta.to_string())]);
        Arc::new(Schema::new_with_metadata(fields, metadata))
    }

    /// Default shard size: image shards are large, token shards small.
    pub fn default_shard_bytes(self) -> u64 {
        match self {
            SchemaKind::Triplet => 256 << 20,
            SchemaKind::Tokens => 64 << 20,
        }
    }

    /// The readable description kept in `schemas/<tag>.md`.
    pub fn describe(self) -> String {
        let mut out = format!(
            "# `{}`\n\nGenerated from `crates/earl-format/src/schema.rs` by \
             `earl-data schema {} --markdown`; a test fails when the two disagree.\n\n\
             | column | Arrow type | nullable | `datasets` feature | meaning |\n\
             |---|---|---|---|---|\n",
            self.tag(),
            self.tag()
        );
        for s in self.fields() {
            out += &format!(
                "| `{}` | `{}` | {} | `{}` | {} |\n",
                s.name,
                type_name(s.column),
                if s.nullable { "yes" } else { "no" },
                hf_feature(s.column),
                s.doc
            );
        }
        out
    }
}

fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ])
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

pub(crate) fn arrow_type(c: Column) -> DataType {
    match c {
        Utf8 => DataType::Utf8,
        U16 => DataType::UInt16,
        U32 => DataType::UInt32,
        U64 => DataType::UInt64,
        F32 => DataType::Float32,
        ListUtf8 => list_of(DataType::Utf8),
        ListU16 => list_of(DataType::UInt16),
        ListF32 => list_of(DataType::Float32),
        Image => DataType::Struct(image_fields()),
    }
}

fn type_name(c: Column) -> &'static str {
    match c {
        Utf8 => "utf8",
        U16 => "uint16",
        U32 => "uint32",
        U64 => "uint64",
        F32 => "float32",
        ListUtf8 => "list<utf8>",
        ListU16 => "list<uint16>",
        ListF32 => "list<float32>",
        Image => "struct<bytes: binary, path: utf8>",
    }
}

/// The dtype name `datasets` uses for a scalar column.
fn hf_dtype(c: Column) -> &'static str {
    match c {
        Utf8 | ListUtf8 => "string",
        U16 | ListU16 => "uint16",
        U32 => "uint32",
        U64 => "uint64",
        F32 | ListF32 => "float32",
        Image => "image",
    }
}

fn hf_feature(c: Column) -> serde_json::Value {
    use serde_json::json;
    match c {
        Image => json!({ "_type": "Image" }),
        ListUtf8 | ListU16 | ListF32 => {
            json!({ "_type": "List", "feature": { "_type": "Value", "dtype": hf_dtype(c) } })
        }
        _ => json!({ "_type": "Value", "dtype": hf_dtype(c) }),
    }
}

/// The `dataset_info.features` entry of one column in a dataset card's YAML.
pub(crate) fn card_feature(s: &FieldSpec) -> String {
    match s.column {
        Image => format!("  - name: {}\n    dtype: image\n", s.name),
        ListUtf8 | ListU16 | ListF32 => {
            format!("  - name: {}\n    list: {}\n", s.name, hf_dtype(s.column))
        }
        c => format!("  - name: {}\n    dtype: {}\n", s.name, hf_dtype(c)),
    }
}

/// Checks that `found` carries every column of `kind` with the right type.
pub fn check(kind: SchemaKind, found: &Schema) -> crate::Result<()> {
    for spec in kind.fields() {
        let want = arrow_type(spec.column);
        match found.field_with_name(spec.name) {
            Err(_) => {
                return Err(crate::FormatError::Column {
                    column: spec.name.into(),
                    reason: format!("missing (schema {})", kind.tag()),
                });
            }
            Ok(field) if !same_shape(field.data_type(), &want) => {
                return Err(crate::FormatError::Column {
                    column: spec.name.into(),
                    reason: format!("type {} but {} wants {want}", field.data_type(), kind.tag()),
                });
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Type equality that ignores list item names/nullability and string/binary view variants
/// (other writers, pyarrow included, name list items differently).
fn same_shape(a: &DataType, b: &DataType) -> bool {
    use DataType as D;
    match (a, b) {
        (D::List(x) | D::LargeList(x), D::List(y)) => same_shape(x.data_type(), y.data_type()),
        (D::Struct(x), D::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| p.name() == q.name() && same_shape(p.data_type(), q.data_type()))
        }
        (D::Utf8 | D::LargeUtf8 | D::Utf8View, D::Utf8) => true,
        (D::Binary | D::LargeBinary | D::BinaryView, D::Binary) => true,
        _ => a == b,
    }
}
