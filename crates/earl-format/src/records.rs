//! Plain records and their Arrow form. The writer and every stage speak these types; only this
//! module knows how they map to columns.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Float32Array, Float32Builder, ListArray, ListBuilder,
    RecordBatch, StringArray, StringBuilder, StructArray, UInt16Array, UInt16Builder, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, Float32Type, UInt16Type};

use crate::schema::{SchemaKind, arrow_type};
use crate::{FormatError, Result};

/// An encoded image exactly as the source stored it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageBlob {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// `png`, `jpeg`, `webp`, `gif`, `bmp` or `tiff`.
    pub format: String,
}

/// Quality scores some sources carry (OmniEdit's VIEScore-style filters).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scores {
    pub sc_score_1: Option<f32>,
    pub sc_score_2: Option<f32>,
    pub pq_score: Option<f32>,
    pub o_score: Option<f32>,
}

/// A chain-of-thought annotation of a triplet (filled by `cot-annotate`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cot {
    pub text: Option<String>,
    /// `[x1, y1, x2, y2]` in original source-image pixels.
    pub bbox: Option<[f32; 4]>,
    pub model: String,
    /// Prompt template as `id@version`.
    pub prompt: String,
    pub raw: String,
    /// `ok`, or the reason the annotation is unusable.
    pub status: String,
}

/// One editing example: source image, instruction, target image (`triplet.v1`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Triplet {
    pub id: String,
    pub source_dataset: String,
    pub upstream_id: String,
    pub split: String,
    pub task: Option<String>,
    pub instruction: String,
    pub instructions: Vec<String>,
    pub source: ImageBlob,
    pub target: ImageBlob,
    pub scores: Scores,
    /// Other upstream columns, verbatim, as a JSON object.
    pub extra: Option<String>,
    pub cot: Option<Cot>,
}

/// One pre-tokenized example (`tokens.v1`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenRow {
    pub id: String,
    pub source_dataset: String,
    pub upstream_id: String,
    pub split: String,
    pub instruction: String,
    pub source_codes: Vec<u16>,
    pub source_h: u16,
    pub source_w: u16,
    pub target_codes: Vec<u16>,
    pub target_h: u16,
    pub target_w: u16,
    pub cot_text: Option<String>,
    /// `[x1, y1, x2, y2]` in resized source pixels.
    pub cot_bbox: Option<[f32; 4]>,
    pub vq_checkpoint: String,
    pub image_area: u32,
}

fn strings<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    it.for_each(|v| b.append_option(v));
    Arc::new(b.finish())
}

fn images<'a>(it: impl Iterator<Item = &'a [u8]>) -> ArrayRef {
    let mut bytes = BinaryBuilder::new();
    let mut len = 0;
    for b in it {
        bytes.append_value(b);
        len += 1;
    }
    let path: ArrayRef = Arc::new(StringArray::new_null(len));
    let DataType::Struct(fields) = arrow_type(crate::schema::Column::Image) else {
        unreachable!("image column is a struct")
    };
    Arc::new(StructArray::new(
        fields,
        vec![Arc::new(bytes.finish()), path],
        None,
    ))
}

fn f32s(it: impl Iterator<Item = Option<f32>>) -> ArrayRef {
    Arc::new(it.collect::<Float32Array>())
}

fn string_lists<'a>(it: impl Iterator<Item = &'a [String]>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for list in it {
        list.iter().for_each(|s| b.values().append_value(s));
        b.append(true);
    }
    Arc::new(b.finish())
}

fn u16_lists<'a>(it: impl Iterator<Item = &'a [u16]>) -> ArrayRef {
    let mut b = ListBuilder::new(UInt16Builder::new());
    for list in it {
        b.values().append_slice(list);
        b.append(true);
    }
    Arc::new(b.finish())
}

fn bboxes(it: impl Iterator<Item = Option<[f32; 4]>>) -> ArrayRef {
    let mut b = ListBuilder::new(Float32Builder::new());
    for bbox in it {
        match bbox {
            Some(v) => {
                b.values().append_slice(&v);
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

impl Triplet {
    /// These rows as one `triplet.v1` batch.
    pub fn to_batch(rows: &[Triplet]) -> Result<RecordBatch> {
        let cot =
            |f: fn(&Cot) -> Option<&str>| strings(rows.iter().map(|r| r.cot.as_ref().and_then(f)));
        let columns: Vec<ArrayRef> = vec![
            strings(rows.iter().map(|r| Some(r.id.as_str()))),
            strings(rows.iter().map(|r| Some(r.source_dataset.as_str()))),
            strings(rows.iter().map(|r| Some(r.upstream_id.as_str()))),
            strings(rows.iter().map(|r| Some(r.split.as_str()))),
            strings(rows.iter().map(|r| r.task.as_deref())),
            strings(rows.iter().map(|r| Some(r.instruction.as_str()))),
            string_lists(rows.iter().map(|r| r.instructions.as_slice())),
            images(rows.iter().map(|r| r.source.bytes.as_slice())),
            strings(rows.iter().map(|r| Some(r.source.format.as_str()))),
            Arc::new(rows.iter().map(|r| r.source.width).collect::<UInt32Array>()),
            Arc::new(
                rows.iter()
                    .map(|r| r.source.height)
                    .collect::<UInt32Array>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| r.source.bytes.len() as u64)
                    .collect::<UInt64Array>(),
            ),
            images(rows.iter().map(|r| r.target.bytes.as_slice())),
            strings(rows.iter().map(|r| Some(r.target.format.as_str()))),
            Arc::new(rows.iter().map(|r| r.target.width).collect::<UInt32Array>()),
            Arc::new(
                rows.iter()
                    .map(|r| r.target.height)
                    .collect::<UInt32Array>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| r.target.bytes.len() as u64)
                    .collect::<UInt64Array>(),
            ),
            f32s(rows.iter().map(|r| r.scores.sc_score_1)),
            f32s(rows.iter().map(|r| r.scores.sc_score_2)),
            f32s(rows.iter().map(|r| r.scores.pq_score)),
            f32s(rows.iter().map(|r| r.scores.o_score)),
            strings(rows.iter().map(|r| r.extra.as_deref())),
            cot(|c| c.text.as_deref()),
            bboxes(rows.iter().map(|r| r.cot.as_ref().and_then(|c| c.bbox))),
            cot(|c| Some(c.model.as_str())),
            cot(|c| Some(c.prompt.as_str())),
            cot(|c| Some(c.raw.as_str())),
            cot(|c| Some(c.status.as_str())),
        ];
        Ok(RecordBatch::try_new(SchemaKind::Triplet.arrow(), columns)?)
    }

    /// The rows of a `triplet.v1` batch (any writer's: column types are normalised first).
    pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Triplet>> {
        let c = Columns::new(batch, SchemaKind::Triplet)?;
        let (src, tgt) = (
            c.binary_of_struct("source_image")?,
            c.binary_of_struct("target_image")?,
        );
        let (ids, ds, up, split) = (
            c.str("id")?,
            c.str("source_dataset")?,
            c.str("upstream_id")?,
            c.str("split")?,
        );
        let (task, instr, instrs) = (
            c.str("task")?,
            c.str("instruction")?,
            c.list("instructions")?,
        );
        let (sfmt, sw, sh) = (
            c.str("source_format")?,
            c.u32("source_width")?,
            c.u32("source_height")?,
        );
        let (tfmt, tw, th) = (
            c.str("target_format")?,
            c.u32("target_width")?,
            c.u32("target_height")?,
        );
        let scores = [
            c.f32("sc_score_1")?,
            c.f32("sc_score_2")?,
            c.f32("pq_score")?,
            c.f32("o_score")?,
        ];
        let extra = c.str("extra")?;
        let (cot_text, cot_bbox) = (c.str("cot_text")?, c.list("cot_bbox")?);
        let (cot_model, cot_prompt) = (c.str("cot_model")?, c.str("cot_prompt")?);
        let (cot_raw, cot_status) = (c.str("cot_raw")?, c.str("cot_status")?);
        let opt = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        let score = |a: &Float32Array, i: usize| a.is_valid(i).then(|| a.value(i));
        (0..batch.num_rows())
            .map(|i| {
                let blob = |bytes: &arrow::array::BinaryArray,
                            fmt: &StringArray,
                            w: &UInt32Array,
                            h: &UInt32Array| ImageBlob {
                    bytes: if bytes.is_valid(i) {
                        bytes.value(i).to_vec()
                    } else {
                        Vec::new()
                    },
                    width: w.value(i),
                    height: h.value(i),
                    format: fmt.value(i).to_string(),
                };
                let cot = cot_status.is_valid(i).then(|| Cot {
                    text: opt(&cot_text, i),
                    bbox: bbox_at(&cot_bbox, i),
                    model: opt(&cot_model, i).unwrap_or_default(),
                    prompt: opt(&cot_prompt, i).unwrap_or_default(),
                    raw: opt(&cot_raw, i).unwrap_or_default(),
                    status: cot_status.value(i).to_string(),
                });
                Ok(Triplet {
                    id: ids.value(i).to_string(),
                    source_dataset: ds.value(i).to_string(),
                    upstream_id: up.value(i).to_string(),
                    split: split.value(i).to_string(),
                    task: opt(&task, i),
                    instruction: instr.value(i).to_string(),
                    instructions: string_list_at(&instrs, i),
                    source: blob(&src, &sfmt, &sw, &sh),
                    target: blob(&tgt, &tfmt, &tw, &th),
                    scores: Scores {
                        sc_score_1: score(&scores[0], i),
                        sc_score_2: score(&scores[1], i),
                        pq_score: score(&scores[2], i),
                        o_score: score(&scores[3], i),
                    },
                    extra: opt(&extra, i),
                    cot,
                })
            })
            .collect()
    }
}

impl TokenRow {
    /// These rows as one `tokens.v1` batch.
    pub fn to_batch(rows: &[TokenRow]) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            strings(rows.iter().map(|r| Some(r.id.as_str()))),
            strings(rows.iter().map(|r| Some(r.source_dataset.as_str()))),
            strings(rows.iter().map(|r| Some(r.upstream_id.as_str()))),
            strings(rows.iter().map(|r| Some(r.split.as_str()))),
            strings(rows.iter().map(|r| Some(r.instruction.as_str()))),
            u16_lists(rows.iter().map(|r| r.source_codes.as_slice())),
            Arc::new(rows.iter().map(|r| r.source_h).collect::<UInt16Array>()),
            Arc::new(rows.iter().map(|r| r.source_w).collect::<UInt16Array>()),
            u16_lists(rows.iter().map(|r| r.target_codes.as_slice())),
            Arc::new(rows.iter().map(|r| r.target_h).collect::<UInt16Array>()),
            Arc::new(rows.iter().map(|r| r.target_w).collect::<UInt16Array>()),
            strings(rows.iter().map(|r| r.cot_text.as_deref())),
            bboxes(rows.iter().map(|r| r.cot_bbox)),
            strings(rows.iter().map(|r| Some(r.vq_checkpoint.as_str()))),
            Arc::new(rows.iter().map(|r| r.image_area).collect::<UInt32Array>()),
        ];
        Ok(RecordBatch::try_new(SchemaKind::Tokens.arrow(), columns)?)
    }

    /// The rows of a `tokens.v1` batch. A grid whose length is not `h * w` is an error.
    pub fn from_batch(batch: &RecordBatch) -> Result<Vec<TokenRow>> {
        let c = Columns::new(batch, SchemaKind::Tokens)?;
        let (ids, ds, up, split) = (
            c.str("id")?,
            c.str("source_dataset")?,
            c.str("upstream_id")?,
            c.str("split")?,
        );
        let instr = c.str("instruction")?;
        let (sc, sh, sw) = (
            c.list("source_codes")?,
            c.u16("source_h")?,
            c.u16("source_w")?,
        );
        let (tc, th, tw) = (
            c.list("target_codes")?,
            c.u16("target_h")?,
            c.u16("target_w")?,
        );
        let (cot_text, cot_bbox) = (c.str("cot_text")?, c.list("cot_bbox")?);
        let (vq, area) = (c.str("vq_checkpoint")?, c.u32("image_area")?);
        (0..batch.num_rows())
            .map(|i| {
                let codes = |l: &ListArray, h: u16, w: u16, name: &str| -> Result<Vec<u16>> {
                    let v = l.value(i);
                    let v = v.as_primitive::<UInt16Type>();
                    if v.len() != h as usize * w as usize {
                        return Err(FormatError::Column {
                            column: name.into(),
                            reason: format!(
                                "row {}: {} codes for a {h}x{w} grid",
                                ids.value(i),
                                v.len()
                            ),
                        });
                    }
                    Ok(v.values().to_vec())
                };
                Ok(TokenRow {
                    id: ids.value(i).to_string(),
                    source_dataset: ds.value(i).to_string(),
                    upstream_id: up.value(i).to_string(),
                    split: split.value(i).to_string(),
                    instruction: instr.value(i).to_string(),
                    source_codes: codes(&sc, sh.value(i), sw.value(i), "source_codes")?,
                    source_h: sh.value(i),
                    source_w: sw.value(i),
                    target_codes: codes(&tc, th.value(i), tw.value(i), "target_codes")?,
                    target_h: th.value(i),
                    target_w: tw.value(i),
                    cot_text: cot_text.is_valid(i).then(|| cot_text.value(i).to_string()),
                    cot_bbox: bbox_at(&cot_bbox, i),
                    vq_checkpoint: vq.value(i).to_string(),
                    image_area: area.value(i),
                })
            })
            .collect()
    }
}

fn string_list_at(l: &ListArray, i: usize) -> Vec<String> {
    if l.is_null(i) {
        return Vec::new();
    }
    let v = l.value(i);
    let v = v.as_string::<i32>();
    v.iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect()
}

fn bbox_at(l: &ListArray, i: usize) -> Option<[f32; 4]> {
    if l.is_null(i) {
        return None;
    }
    let v = l.value(i);
    v.as_primitive::<Float32Type>()
        .values()
        .as_ref()
        .try_into()
        .ok()
}

/// The columns of a batch, cast to the types of `kind`'s schema.
struct Columns<'a> {
    batch: &'a RecordBatch,
    kind: SchemaKind,
}

impl<'a> Columns<'a> {
    fn new(batch: &'a RecordBatch, kind: SchemaKind) -> Result<Self> {
        crate::schema::check(kind, &batch.schema())?;
        Ok(Self { batch, kind })
    }

    fn get(&self, name: &str) -> Result<ArrayRef> {
        let spec = self.kind.fields().iter().find(|s| s.name == name);
        let want = arrow_type(spec.map(|s| s.column).ok_or_else(|| FormatError::Column {
            column: name.into(),
            reason: "not in schema".into(),
        })?);
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| FormatError::Column {
                column: name.into(),
                reason: "missing".into(),
            })?;
        if col.data_type() == &want {
            return Ok(col.clone());
        }
        arrow::compute::cast(col, &want).map_err(|e| FormatError::Column {
            column: name.into(),
            reason: format!("cannot read {} as {want}: {e}", col.data_type()),
        })
    }

    fn str(&self, name: &str) -> Result<StringArray> {
        Ok(self.get(name)?.as_string::<i32>().clone())
    }
    fn list(&self, name: &str) -> Result<ListArray> {
        Ok(self.get(name)?.as_list::<i32>().clone())
    }
    fn u16(&self, name: &str) -> Result<UInt16Array> {
        Ok(self.get(name)?.as_primitive::<UInt16Type>().clone())
    }
    fn u32(&self, name: &str) -> Result<UInt32Array> {
        Ok(self
            .get(name)?
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .clone())
    }
    fn f32(&self, name: &str) -> Result<Float32Array> {
        Ok(self.get(name)?.as_primitive::<Float32Type>().clone())
    }
    fn binary_of_struct(&self, name: &str) -> Result<arrow::array::BinaryArray> {
        let col = self.get(name)?;
        let bytes = col
            .as_struct()
            .column_by_name("bytes")
            .ok_or_else(|| FormatError::Column {
                column: name.into(),
                reason: "struct has no `bytes` field".into(),
            })?;
        Ok(bytes.as_binary::<i32>().clone())
    }
}
