//! Synthetic input in the exact OmniEdit Parquet layout, for benchmarks and kill/resume tests
//! that need thousands of rows (the embedded sample has 24).

use std::fs::File;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, StructArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// Writes `rows` OmniEdit-layout rows with `side`x`side` images (alternately PNG and JPEG)
/// to `path`, in row groups of `group` rows. Deterministic for a given `seed`.
pub fn write_omniedit(
    path: &Path,
    rows: usize,
    side: u32,
    group: usize,
    seed: u64,
) -> std::io::Result<u64> {
    let image_fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("omni_edit_id", DataType::Utf8, true),
        Field::new("task", DataType::Utf8, true),
        Field::new("src_img", DataType::Struct(image_fields.clone()), true),
        Field::new("edited_img", DataType::Struct(image_fields.clone()), true),
        Field::new(
            "edited_prompt_list",
            DataType::new_list(DataType::Utf8, true),
            true,
        ),
        Field::new("width", DataType::Int64, true),
        Field::new("height", DataType::Int64, true),
        Field::new("sc_score_1", DataType::Int64, true),
        Field::new("sc_score_2", DataType::Int64, true),
        Field::new("sc_reasoning", DataType::Utf8, true),
        Field::new("pq_score", DataType::Int64, true),
        Field::new("pq_reasoning", DataType::Utf8, true),
        Field::new("o_score", DataType::Float64, true),
    ]));
    let file = File::create(path)?;
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let mut w =
        ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(std::io::Error::other)?;
    let mut start = 0;
    while start < rows {
        let n = group.min(rows - start);
        let ids: Vec<String> = (start..start + n)
            .map(|i| format!("synthetic_{seed}_{i:07}"))
            .collect();
        let image_col = |salt: u64| -> ArrayRef {
            let mut b = BinaryBuilder::new();
            for i in start..start + n {
                b.append_value(encode_image(side, seed ^ salt ^ i as u64, i % 2 == 0));
            }
            let paths: ArrayRef = Arc::new(StringArray::new_null(n));
            Arc::new(StructArray::new(
                image_fields.clone(),
                vec![Arc::new(b.finish()), paths],
                None,
            ))
        };
        let mut prompts = ListBuilder::new(StringBuilder::new());
        for i in start..start + n {
            for k in 0..3 {
                prompts
                    .values()
                    .append_value(format!("Make picture {i} brighter (phrasing {k})."));
            }
            prompts.append(true);
        }
        let ints = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v; n])) };
        let texts = |s: &str| -> ArrayRef { Arc::new(StringArray::from(vec![s; n])) };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids)),
            texts("attribute_modification"),
            image_col(1),
            image_col(2),
            Arc::new(prompts.finish()),
            ints(side as i64),
            ints(side as i64),
            ints(9),
            ints(8),
            texts("The edit follows the instruction."),
            ints(7),
            texts("Looks natural."),
            Arc::new(Float64Array::from(vec![7.48; n])),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(std::io::Error::other)?;
        w.write(&batch).map_err(std::io::Error::other)?;
        start += n;
    }
    w.close().map_err(std::io::Error::other)?;
    Ok(std::fs::metadata(path)?.len())
}

/// A smooth colour gradient with a seeded tint, so codecs do real work.
fn encode_image(side: u32, seed: u64, png: bool) -> Vec<u8> {
    let tint = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    let img = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([
            (x * 255 / side) as u8,
            (y * 255 / side) as u8,
            tint ^ ((x + y) as u8),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    let format = if png {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    // Encoding an in-memory RGB image into a Vec cannot fail for these formats.
    img.write_to(&mut out, format)
        .expect("encoding a synthetic image");
    out.into_inner()
}
