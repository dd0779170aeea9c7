//! From source records to checked triplets: column extraction (Arrow batches, JSONL lines)
//! into [`RawRow`], then [`check`] turns each into a `Triplet` or a reason to reject it.

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use earl_format::{ImageBlob, Scores, Triplet};
use sha2::{Digest, Sha256};

use crate::recipe::{Choose, Recipe};

/// An image as the source gives it.
#[derive(Debug, Clone)]
pub(crate) enum ImageRef {
    Bytes(Vec<u8>),
    /// A path, relative to the source folder unless absolute.
    Path(String),
    Missing,
}

/// One source row, before any check.
#[derive(Debug, Clone)]
pub(crate) struct RawRow {
    /// `file:row`, for messages and rejects.
    pub locator: String,
    pub upstream_id: Option<String>,
    pub instructions: Vec<String>,
    pub source: ImageRef,
    pub target: ImageRef,
    pub task: Option<String>,
    pub scores: [Option<f64>; 4],
    pub extra: Option<String>,
    pub split: Option<String>,
    /// A defect found while reading the row (bad JSON, non-UTF-8), rejected as is.
    pub defect: Option<(&'static str, String)>,
}

impl RawRow {
    fn broken(locator: String, reason: &'static str, detail: String) -> RawRow {
        RawRow {
            locator,
            upstream_id: None,
            instructions: Vec::new(),
            source: ImageRef::Missing,
            target: ImageRef::Missing,
            task: None,
            scores: [None; 4],
            extra: None,
            split: None,
            defect: Some((reason, detail)),
        }
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch.column_by_name(name).ok_or_else(|| {
        let have: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        format!(
            "missing column `{name}` (the file has: {}); fix the recipe's [columns]",
            have.join(", ")
        )
    })
}

fn strings(col: &ArrayRef, name: &str) -> Result<Vec<Option<String>>, String> {
    let utf8 = arrow::compute::cast(col, &DataType::Utf8)
        .map_err(|e| format!("column `{name}` is {}, not text: {e}", col.data_type()))?;
    Ok(utf8
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

fn floats(col: &ArrayRef, name: &str) -> Result<Vec<Option<f64>>, String> {
    let f = arrow::compute::cast(col, &DataType::Float64)
        .map_err(|e| format!("column `{name}` is {}, not a number: {e}", col.data_type()))?;
    Ok(f.as_primitive::<Float64Type>().iter().collect())
}

fn images(col: &ArrayRef, name: &str) -> Result<Vec<ImageRef>, String> {
    let n = col.len();
    let binary_at = |a: &ArrayRef| -> Result<Vec<Option<Vec<u8>>>, String> {
        let b = arrow::compute::cast(a, &DataType::Binary)
            .map_err(|e| format!("column `{name}`: cannot read image bytes: {e}"))?;
        Ok(b.as_binary::<i32>()
            .iter()
            .map(|v| v.map(<[u8]>::to_vec))
            .collect())
    };
    match col.data_type() {
        DataType::Struct(_) => {
            let s = col.as_struct();
            let bytes = match s.column_by_name("bytes") {
                Some(b) => binary_at(b)?,
                None => vec![None; n],
            };
            let paths = match s.column_by_name("path") {
                Some(p) => strings(p, name)?,
                None => vec![None; n],
            };
            Ok((0..n)
                .map(|i| match (s.is_valid(i), &bytes[i], &paths[i]) {
                    (false, _, _) => ImageRef::Missing,
                    (true, Some(b), _) => ImageRef::Bytes(b.clone()),
                    (true, None, Some(p)) if !p.is_empty() => ImageRef::Path(p.clone()),
                    _ => ImageRef::Missing,
                })
                .collect())
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Ok(binary_at(col)?
            .into_iter()
            .map(|b| b.map_or(ImageRef::Missing, ImageRef::Bytes))
            .collect()),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(strings(col, name)?
            .into_iter()
            .map(|p| p.map_or(ImageRef::Missing, ImageRef::Path))
            .collect()),
        other => Err(format!(
            "column `{name}` is {other}; an image column must be a {{bytes, path}} struct, binary, or a path"
        )),
    }
}

fn instruction_lists(col: &ArrayRef, name: &str) -> Result<Vec<Vec<String>>, String> {
    match col.data_type() {
        DataType::List(_) | DataType::LargeList(_) => {
            let list = arrow::compute::cast(col, &DataType::new_list(DataType::Utf8, true))
                .map_err(|e| format!("column `{name}`: not a list of text: {e}"))?;
            let list = list.as_list::<i32>();
            Ok((0..list.len())
                .map(|i| {
                    if list.is_null(i) {
                        return Vec::new();
                    }
                    let v = list.value(i);
                    v.as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(str::to_string)
                        .collect()
                })
                .collect())
        }
        _ => Ok(strings(col, name)?
            .into_iter()
            .map(|s| s.into_iter().collect())
            .collect()),
    }
}

/// The rows of one Arrow batch under `recipe`. A missing or mistyped column fails the batch.
pub(crate) fn from_batch(
    batch: &RecordBatch,
    recipe: &Recipe,
    file: &str,
    first_row: u64,
) -> Result<Vec<RawRow>, String> {
    let c = &recipe.columns;
    let n = batch.num_rows();
    let opt_strings = |name: &Option<String>| -> Result<Vec<Option<String>>, String> {
        match name {
            Some(name) => strings(column(batch, name)?, name),
            None => Ok(vec![None; n]),
        }
    };
    let ids = opt_strings(&c.id)?;
    let suffix = opt_strings(&c.id_suffix)?;
    let task = opt_strings(&c.task)?;
    let split = opt_strings(&c.split)?;
    let instructions = match (&c.instructions, &c.instruction) {
        (Some(name), _) | (None, Some(name)) => instruction_lists(column(batch, name)?, name)?,
        (None, None) => return Err("the recipe names no instruction column".into()),
    };
    let source = images(column(batch, &c.source_image)?, &c.source_image)?;
    let target = images(column(batch, &c.target_image)?, &c.target_image)?;
    let score_cols = [&c.sc_score_1, &c.sc_score_2, &c.pq_score, &c.o_score];
    let mut scores = Vec::new();
    for name in score_cols {
        scores.push(match name {
            Some(name) => floats(column(batch, name)?, name)?,
            None => vec![None; n],
        });
    }
    let mut keep = Vec::new();
    for name in &c.keep {
        if let Some(col) = batch.column_by_name(name) {
            keep.push((name.as_str(), col));
        }
    }
    let options = FormatOptions::default();
    let formatters: Vec<(&str, &ArrayRef, ArrayFormatter)> = keep
        .iter()
        .filter_map(|(name, col)| {
            ArrayFormatter::try_new(col.as_ref(), &options)
                .ok()
                .map(|f| (*name, *col, f))
        })
        .collect();
    Ok((0..n)
        .map(|i| {
            let extra = (!formatters.is_empty()).then(|| {
                let obj: serde_json::Map<String, serde_json::Value> = formatters
                    .iter()
                    .filter(|(_, col, _)| col.is_valid(i))
                    .map(|(name, col, f)| {
                        let text = f.value(i).to_string();
                        let v = if col.data_type().is_numeric() {
                            text.parse::<f64>()
                                .ok()
                                .and_then(|x| serde_json::Number::from_f64(x).map(Into::into))
                        } else {
                            None
                        };
                        (
                            name.to_string(),
                            v.unwrap_or(serde_json::Value::String(text)),
                        )
                    })
                    .collect();
                serde_json::Value::Object(obj).to_string()
            });
            let upstream_id = match (&ids[i], &suffix[i]) {
                (Some(id), Some(s)) => Some(format!("{id}-{s}")),
                (Some(id), None) => Some(id.clone()),
                (None, _) if c.id.is_none() => Some(format!("{file}:{}", first_row + i as u64)),
                (None, _) => None,
            };
            RawRow {
                locator: format!("{file}:{}", first_row + i as u64),
                upstream_id,
                instructions: instructions[i].clone(),
                source: source[i].clone(),
                target: target[i].clone(),
                task: task[i].clone(),
                scores: [scores[0][i], scores[1][i], scores[2][i], scores[3][i]],
                extra,
                split: split[i].clone(),
                defect: None,
            }
        })
        .collect())
}

/// One JSONL line under `recipe`: images are paths (relative to the file's folder).
pub(crate) fn from_json_line(line: &[u8], recipe: &Recipe, locator: String) -> RawRow {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => return RawRow::broken(locator, "bad_utf8", format!("line is not UTF-8: {e}")),
    };
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return RawRow::broken(locator, "bad_json", format!("line is not JSON: {e}")),
    };
    let c = &recipe.columns;
    let get = |name: &Option<String>| name.as_ref().and_then(|n| v.get(n));
    let text_of = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let image = |name: &str| match v.get(name) {
        Some(serde_json::Value::String(p)) => ImageRef::Path(p.clone()),
        Some(serde_json::Value::Object(o)) => o
            .get("path")
            .and_then(|p| p.as_str())
            .map_or(ImageRef::Missing, |p| ImageRef::Path(p.into())),
        _ => ImageRef::Missing,
    };
    let instructions = match get(&c.instructions).or_else(|| get(&c.instruction)) {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(text_of).collect(),
        Some(x) => text_of(x).into_iter().collect(),
        None => Vec::new(),
    };
    let num = |name: &Option<String>| get(name).and_then(|x| x.as_f64());
    let upstream_id = match get(&c.id) {
        Some(x) => text_of(x),
        None if c.id.is_none() => Some(locator.clone()),
        None => None,
    };
    RawRow {
        upstream_id,
        instructions,
        source: image(&c.source_image),
        target: image(&c.target_image),
        task: get(&c.task).and_then(text_of),
        scores: [
            num(&c.sc_score_1),
            num(&c.sc_score_2),
            num(&c.pq_score),
            num(&c.o_score),
        ],
        extra: None,
        split: get(&c.split).and_then(text_of),
        defect: None,
        locator,
    }
}

/// Why a row is not written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Reject {
        reason: &'static str,
        detail: String,
    },
    /// Below a score filter of the recipe: dropped on purpose, counted.
    Filtered(&'static str),
}

/// Checks a row and, when sound, builds its triplet. Both images are fully decoded.
pub(crate) fn check(
    row: RawRow,
    recipe: &Recipe,
    root: &Path,
    default_split: &str,
    limits: &earl_image::Limits,
) -> Result<Triplet, Verdict> {
    let reject = |reason: &'static str, detail: String| Verdict::Reject { reason, detail };
    if let Some((reason, detail)) = row.defect {
        return Err(reject(reason, detail));
    }
    let upstream_id = match row.upstream_id {
        Some(id) if !id.trim().is_empty() => id,
        _ => {
            return Err(reject(
                "missing_id",
                "the id column is empty or null".into(),
            ));
        }
    };
    let instructions: Vec<String> = row
        .instructions
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let usable: Vec<&String> = instructions.iter().filter(|s| !s.is_empty()).collect();
    if usable.is_empty() {
        let what = if instructions.is_empty() {
            "no instruction"
        } else {
            "only empty or blank instructions"
        };
        return Err(reject("empty_instruction", format!("{what} for this row")));
    }
    let instruction = match recipe.instruction.choose {
        Choose::First => usable[0].clone(),
        Choose::Seeded => {
            let mut h = Sha256::new();
            h.update(recipe.instruction.seed.to_le_bytes());
            h.update(upstream_id.as_bytes());
            let d = h.finalize();
            let k = u64::from_le_bytes(d[..8].try_into().unwrap_or_default());
            usable[(k % usable.len() as u64) as usize].clone()
        }
    };
    let names = ["sc_score_1", "sc_score_2", "pq_score", "o_score"];
    for (v, name) in row.scores.iter().zip(names) {
        if v.is_some_and(|x| !x.is_finite()) {
            return Err(reject(
                "nan_score",
                format!("{name} is {}", v.unwrap_or_default()),
            ));
        }
    }
    let f = &recipe.filters;
    let [sc1, sc2, pq, o] = row.scores;
    let below =
        |v: Option<f64>, min: Option<f32>| min.is_some_and(|m| v.is_none_or(|v| v < m as f64));
    if below(o, f.min_o_score) {
        return Err(Verdict::Filtered("filtered_o_score"));
    }
    let sc_min = match (sc1, sc2) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if below(sc_min, f.min_sc_score) {
        return Err(Verdict::Filtered("filtered_sc_score"));
    }
    if below(pq, f.min_pq_score) {
        return Err(Verdict::Filtered("filtered_pq_score"));
    }
    let source = load_image(row.source, root, limits)
        .map_err(|(r, d)| reject(r, format!("source image: {d}")))?;
    let target = load_image(row.target, root, limits)
        .map_err(|(r, d)| reject(r, format!("target image: {d}")))?;
    Ok(Triplet {
        id: format!("{}/{}", recipe.name, upstream_id),
        source_dataset: recipe.name.clone(),
        upstream_id,
        split: row.split.unwrap_or_else(|| default_split.to_string()),
        task: row.task,
        instruction,
        instructions,
        source,
        target,
        scores: Scores {
            sc_score_1: sc1.map(|v| v as f32),
            sc_score_2: sc2.map(|v| v as f32),
            pq_score: pq.map(|v| v as f32),
            o_score: o.map(|v| v as f32),
        },
        extra: row.extra,
        cot: None,
    })
}

/// Reads (for paths) and fully decodes an image, keeping its encoded bytes unchanged.
fn load_image(
    image: ImageRef,
    root: &Path,
    limits: &earl_image::Limits,
) -> Result<ImageBlob, (&'static str, String)> {
    let bytes = match image {
        ImageRef::Bytes(b) => b,
        ImageRef::Path(p) => {
            let path = root.join(&p);
            let size = std::fs::metadata(&path)
                .map_err(|e| ("missing_image", format!("{}: {e}", path.display())))?;
            if size.len() > limits.max_bytes {
                return Err((
                    "image_too_large",
                    format!(
                        "{} is {} bytes, over {}",
                        path.display(),
                        size.len(),
                        limits.max_bytes
                    ),
                ));
            }
            std::fs::read(&path)
                .map_err(|e| ("missing_image", format!("{}: {e}", path.display())))?
        }
        ImageRef::Missing => {
            return Err((
                "missing_image",
                "no image bytes and no readable path".into(),
            ));
        }
    };
    if bytes.is_empty() {
        return Err(("empty_image", "0 bytes".into()));
    }
    let info = earl_image::probe(&bytes).map_err(|e| (e.reason_code(), e.to_string()))?;
    earl_image::decode_rgb(&bytes, limits).map_err(|e| (e.reason_code(), e.to_string()))?;
    Ok(ImageBlob {
        bytes,
        width: info.width,
        height: info.height,
        format: info.format.as_str().to_string(),
    })
}
