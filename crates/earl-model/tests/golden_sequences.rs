//! Parity of the tokenizer and the SFT layout with upstream (`golden/emu3_sequences.json`).

use earl_model::{Emu3Tokenizer, Grid, collate};
use serde_json::Value;

/// The tokenizer, or `None` (skip) when the ranks file is absent outside CI.
fn tokenizer() -> Option<Emu3Tokenizer> {
    match Emu3Tokenizer::load(None) {
        Ok(tok) => Some(tok),
        Err(e @ earl_model::Error::RanksNotFound(_)) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("under CI=true the tokenizer tests may not skip: {e}");
            }
            eprintln!("skipping: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn golden() -> Option<(Emu3Tokenizer, Value)> {
    let dir = earl_golden::dir()?;
    let tok = tokenizer()?;
    Some((
        tok,
        earl_golden::read_json(&dir.join("emu3_sequences.json")),
    ))
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn grid(v: &Value) -> (Vec<u16>, usize, usize) {
    let rows = v.as_array().unwrap();
    let w = rows[0].as_array().unwrap().len();
    let codes: Vec<u16> = rows
        .iter()
        .flat_map(|r| ids(r).into_iter().map(|c| c as u16))
        .collect();
    (codes, rows.len(), w)
}

#[test]
fn special_ids_match_upstream() {
    let Some((tok, g)) = golden() else { return };
    let want = &g["special_ids"];
    let s = tok.special();
    let pairs = [
        ("bos_token", s.bos),
        ("eos_token", s.eos),
        ("pad_token", s.pad),
        ("img_token", s.img),
        ("boi_token", s.boi),
        ("eoi_token", s.eoi),
        ("eol_token", s.eol),
        ("eof_token", s.eof),
        ("visual_token_0", s.visual0),
        ("visual_token_32767", s.visual0 + 32767),
    ];
    for (name, got) in pairs {
        assert_eq!(want[name].as_i64(), Some(got), "{name}");
    }
    assert_eq!(s.visual_count, 32768);
    assert_eq!(want["vocab_size"].as_u64(), Some(tok.vocab_size() as u64));
}

#[test]
fn text_cases_encode_and_decode_like_upstream() {
    let Some((tok, g)) = golden() else { return };
    for case in g["text_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = tok.encode(text).unwrap();
        assert_eq!(got, ids(&case["ids"]), "encoding {text:?}");
        assert_eq!(tok.decode(&got).unwrap(), text);
    }
}

#[test]
fn sft_samples_and_batch_match_upstream() {
    let Some((tok, g)) = golden() else { return };
    let mut samples = Vec::new();
    for (i, case) in g["sft_samples"].as_array().unwrap().iter().enumerate() {
        let (src, sh, sw) = grid(&case["source_tokens"]);
        let (tgt, th, tw) = grid(&case["target_tokens"]);
        let sample = tok
            .build_sample(
                Grid {
                    codes: &src,
                    h: sh,
                    w: sw,
                },
                case["instruction"].as_str().unwrap(),
                Grid {
                    codes: &tgt,
                    h: th,
                    w: tw,
                },
                case["cot"].as_str(),
            )
            .unwrap();
        assert_eq!(
            sample.input_ids,
            ids(&case["input_ids"]),
            "sample {i} input_ids"
        );
        assert_eq!(sample.labels, ids(&case["labels"]), "sample {i} labels");

        // The generated half reads back into the target grid.
        let first_label = sample.labels.iter().position(|&l| l != -100).unwrap();
        let parsed = tok
            .parse_image_block(&sample.input_ids[first_label..])
            .unwrap();
        assert_eq!(
            (parsed.codes, parsed.h, parsed.w),
            (tgt, th, tw),
            "sample {i} parse"
        );
        samples.push(sample);
    }

    let batch = collate(&samples).unwrap();
    let want = &g["sft_batch"];
    let rows = |t: &tch::Tensor| Vec::<Vec<i64>>::try_from(t).unwrap();
    let want_rows = |k: &str| {
        want[k]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&batch.input_ids), want_rows("input_ids"));
    assert_eq!(rows(&batch.attention_mask), want_rows("attention_mask"));
    assert_eq!(rows(&batch.labels), want_rows("labels"));
    assert_eq!(rows(&batch.position_ids), want_rows("position_ids"));
}

#[test]
fn layout_rejects_bad_grids() {
    let Some(tok) = tokenizer() else { return };
    let codes = [1u16, 2, 3];
    let err = tok
        .image_block(Grid {
            codes: &codes,
            h: 2,
            w: 2,
        })
        .unwrap_err();
    assert!(err.to_string().contains("2x2 needs 4 codes"), "{err}");
    let big = [40000u16];
    let err = tok
        .image_block(Grid {
            codes: &big,
            h: 1,
            w: 1,
        })
        .unwrap_err();
    assert!(err.to_string().contains("40000"), "{err}");

    let block = tok
        .image_block(Grid {
            codes: &[7, 8, 9, 10],
            h: 2,
            w: 2,
        })
        .unwrap();
    let mut cut = block.clone();
    cut.truncate(block.len() - 3);
    assert!(tok.parse_image_block(&cut).is_err());
    let mut wrong = block.clone();
    wrong[5] = tok.special().eos; // row 0, col 0 (after boi "2" "*" "2" img)
    assert!(
        tok.parse_image_block(&wrong)
            .unwrap_err()
            .to_string()
            .contains("row 0 col 0")
    );
}

#[test]
fn grammar_forces_a_well_formed_block() {
    let Some(tok) = tokenizer() else { return };
    let grammar = tok.image_grammar(3, 2).unwrap();
    tch::manual_seed(0);
    let logits = tch::Tensor::randn([2, tok.vocab_size() as i64], tch::kind::FLOAT_CPU);
    let mut ids = vec![Vec::new(), Vec::new()];
    for step in 0..grammar.len() {
        let next = grammar.constrain(step, &logits).unwrap().argmax(-1, false);
        for (row, id) in Vec::<i64>::try_from(&next).unwrap().into_iter().enumerate() {
            ids[row].push(id);
        }
    }
    for row in &ids {
        assert_eq!(row.last(), Some(&tok.special().eos));
        let grid = tok.parse_image_block(row).unwrap();
        assert_eq!((grid.h, grid.w, grid.codes.len()), (3, 2, 6));
    }
    assert!(grammar.constrain(grammar.len(), &logits).is_err());
    let small = tch::Tensor::zeros([1, 2048], tch::kind::FLOAT_CPU);
    assert!(
        grammar
            .constrain(5, &small)
            .unwrap_err()
            .to_string()
            .contains("vocab_size")
    );
}
