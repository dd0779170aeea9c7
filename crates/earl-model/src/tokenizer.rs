//! The Emu3 text tokenizer: Qwen's byte-level BPE plus the Emu3 special and vision tokens.
//!
//! Ids: the BPE ranks of `qwen.tiktoken` come first (0..151643), then `<|endoftext|>`,
//! `<|im_start|>`, `<|im_end|>`, `<|extra_0|>`..`<|extra_204|>`, then every line of
//! `emu3_vision_tokens.txt` in order. Every id is derived from those files at load time.
//!
//! Special tokens written in the text are encoded as specials (upstream encodes with
//! `allowed_special = "all"`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};
use tiktoken_rs::CoreBPE;

use crate::error::{Error, Result};

/// Qwen's pre-tokenizer pattern (the same as upstream's tiktoken `pat_str`).
pub const PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// sha256 of the `qwen.tiktoken` that upstream Emu3 ships and that the golden ids were made with.
pub const RANKS_SHA256: &str = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186";

/// Environment variable naming the ranks file explicitly.
pub const RANKS_ENV: &str = "EARL_TIKTOKEN_FILE";

/// Where `qwen.tiktoken` sits inside a Python environment's site-packages (PyPI `dashscope`).
const RANKS_IN_SITE_PACKAGES: &str = "dashscope/resources/qwen.tiktoken";

/// The Emu3 vision-token list, bundled (a copy of upstream's `emu3_vision_tokens.txt`).
pub const VISION_TOKENS: &str = include_str!("../assets/emu3_vision_tokens.txt");

const EXTRA_TOKENS: usize = 205;

/// Ids of the tokens the sequence layout uses, looked up by name at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// `<|extra_203|>`, starts every sequence.
    pub bos: i64,
    /// `<|extra_204|>`, ends every target.
    pub eos: i64,
    /// `<|endoftext|>` (the tokenizer's pad token; collation pads input ids with 0).
    pub pad: i64,
    /// `<|image token|>`, between the "h*w" size text and the first visual token.
    pub img: i64,
    /// `<|image start|>`.
    pub boi: i64,
    /// `<|image end|>`.
    pub eoi: i64,
    /// `<|extra_200|>`, after every row of visual tokens.
    pub eol: i64,
    /// `<|extra_201|>`, after the last row.
    pub eof: i64,
    /// `<|visual token 000000|>`; visual token `c` is `visual0 + c`.
    pub visual0: i64,
    /// How many consecutive visual tokens follow `visual0` (32768 for Emu3).
    pub visual_count: i64,
}

/// Qwen BPE + Emu3 specials. Cheap to share by reference; encoding is thread-safe.
pub struct Emu3Tokenizer {
    bpe: CoreBPE,
    /// Number of BPE ranks; special ids start here.
    n_ranks: i64,
    /// Special token names in id order (id = n_ranks + index).
    specials: Vec<String>,
    special_ids: FxHashMap<String, i64>,
    ids: SpecialIds,
}

impl std::fmt::Debug for Emu3Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emu3Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.ids)
            .finish()
    }
}

/// Finds `qwen.tiktoken`: `explicit`, else `$EARL_TIKTOKEN_FILE`, else
/// `lib/python*/site-packages/dashscope/resources/qwen.tiktoken` under `$VIRTUAL_ENV`, else the
/// same under the workspace's `.venv` (where the setup script installs PyPI `dashscope`).
pub fn find_ranks_file(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return existing(path.to_path_buf(), "the path given");
    }
    if let Some(path) = std::env::var_os(RANKS_ENV) {
        return existing(PathBuf::from(path), RANKS_ENV);
    }
    let workspace_venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    let venvs = std::env::var_os("VIRTUAL_ENV")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_venv]);
    let mut looked = Vec::new();
    for venv in venvs {
        let lib = venv.join("lib");
        if let Ok(entries) = std::fs::read_dir(&lib) {
            let mut pythons: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("python"))
                })
                .collect();
            pythons.sort();
            for python in pythons {
                let candidate = python.join("site-packages").join(RANKS_IN_SITE_PACKAGES);
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
        looked.push(
            lib.join("python*/site-packages")
                .join(RANKS_IN_SITE_PACKAGES),
        );
    }
    let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    Err(Error::RanksNotFound(format!(
        "looked in {}; install it with `.venv/bin/pip install dashscope` or set {RANKS_ENV}",
        looked.join(", ")
    )))
}

fn existing(path: PathBuf, from: &str) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::RanksNotFound(format!(
            "{} (from {from}) is not a file",
            path.display()
        )))
    }
}

impl Emu3Tokenizer {
    /// Loads the ranks found by [`find_ranks_file`] and the bundled vision tokens.
    pub fn load(ranks: Option<&Path>) -> Result<Self> {
        let path = find_ranks_file(ranks)?;
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        Self::from_parts(&bytes, &path, VISION_TOKENS)
    }

    /// Loads both files from explicit paths.
    pub fn from_files(ranks: &Path, vision_tokens: &Path) -> Result<Self> {
        let bytes = std::fs::read(ranks).map_err(Error::io(ranks))?;
        let vision = std::fs::read_to_string(vision_tokens).map_err(Error::io(vision_tokens))?;
        Self::from_parts(&bytes, ranks, &vision)
    }

    /// Builds the tokenizer from the ranks file's bytes (`origin` names it in errors) and the
    /// vision-token list (one token per line).
    pub fn from_parts(ranks: &[u8], origin: &Path, vision_tokens: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadFile {
            path: origin.to_path_buf(),
            reason,
        };
        let digest = hex::encode(Sha256::digest(ranks));
        if digest != RANKS_SHA256 {
            return Err(bad(format!(
                "sha256 {digest} is not Qwen's qwen.tiktoken ({RANKS_SHA256}); \
                 use dashscope/resources/qwen.tiktoken from PyPI `dashscope`"
            )));
        }
        let encoder = parse_ranks(ranks).map_err(bad)?;
        let n_ranks = encoder.len() as i64;

        let mut specials: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        specials.extend((0..EXTRA_TOKENS).map(|i| format!("<|extra_{i}|>")));
        specials.extend(
            vision_tokens
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
        let mut special_ids = FxHashMap::default();
        for (i, name) in specials.iter().enumerate() {
            if !(name.starts_with("<|")
                && name.ends_with("|>")
                && name[2..].find("|>") == Some(name.len() - 4))
            {
                return Err(Error::Tokenizer(format!(
                    "special token {name:?} is not of the form <|...|>; the vision-token list is malformed"
                )));
            }
            if special_ids
                .insert(name.clone(), n_ranks + i as i64)
                .is_some()
            {
                return Err(Error::Tokenizer(format!(
                    "special token {name:?} is listed twice"
                )));
            }
        }

        // CoreBPE only does the ordinary BPE: specials are split off before it sees the text.
        let mut bpe_specials = FxHashMap::default();
        bpe_specials.insert(specials[0].clone(), n_ranks as u32);
        let bpe = CoreBPE::new(encoder, bpe_specials, PATTERN)
            .map_err(|e| Error::Tokenizer(format!("building the BPE: {e}")))?;

        let id = |name: &str| {
            special_ids.get(name).copied().ok_or_else(|| {
                Error::Tokenizer(format!(
                    "special token {name} is missing from the vision-token list"
                ))
            })
        };
        let visual0 = id("<|visual token 000000|>")?;
        let visual_count = (0..)
            .take_while(|&i: &i64| {
                let index = (visual0 - n_ranks + i) as usize;
                specials
                    .get(index)
                    .is_some_and(|n| *n == format!("<|visual token {i:06}|>"))
            })
            .count() as i64;
        let ids = SpecialIds {
            bos: id("<|extra_203|>")?,
            eos: id("<|extra_204|>")?,
            pad: id("<|endoftext|>")?,
            img: id("<|image token|>")?,
            boi: id("<|image start|>")?,
            eoi: id("<|image end|>")?,
            eol: id("<|extra_200|>")?,
            eof: id("<|extra_201|>")?,
            visual0,
            visual_count,
        };
        Ok(Self {
            bpe,
            n_ranks,
            specials,
            special_ids,
            ids,
        })
    }

    /// Ranks plus specials: the model's vocabulary size (184622 for Emu3).
    pub fn vocab_size(&self) -> usize {
        self.n_ranks as usize + self.specials.len()
    }

    pub fn special(&self) -> &SpecialIds {
        &self.ids
    }

    /// The id of a special token by name, e.g. `"<|extra_5|>"`.
    pub fn token_id(&self, name: &str) -> Option<i64> {
        self.special_ids.get(name).copied()
    }

    /// The id of visual token `code`.
    pub fn visual_id(&self, code: u16) -> Result<i64> {
        if i64::from(code) >= self.ids.visual_count {
            return Err(Error::Layout(format!(
                "visual code {code} is outside the codebook (0..{}); were these codes made by a \
                 different VQ model?",
                self.ids.visual_count
            )));
        }
        Ok(self.ids.visual0 + i64::from(code))
    }

    /// Encodes text; special tokens written in it (`<|...|>` names of this vocabulary) become
    /// their ids, everything else goes through the Qwen pre-tokenizer and BPE.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        let mut plain_start = 0;
        let mut search = 0;
        while let Some(offset) = text[search..].find("<|") {
            let start = search + offset;
            let Some(len) = text[start + 2..].find("|>") else {
                break;
            };
            let end = start + 2 + len + 2;
            if let Some(&id) = self.special_ids.get(&text[start..end]) {
                self.encode_plain(&text[plain_start..start], &mut ids)?;
                ids.push(id);
                plain_start = end;
                search = end;
            } else {
                search = start + 1;
            }
        }
        self.encode_plain(&text[plain_start..], &mut ids)?;
        Ok(ids)
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<i64>) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let (ranks, _) = self.bpe.encode(text, &Default::default()).map_err(|e| {
            Error::Tokenizer(format!("encoding {:?}: {}", preview(text), e.message))
        })?;
        out.extend(ranks.into_iter().map(i64::from));
        Ok(())
    }

    /// Decodes ids back to text (specials by name). Invalid UTF-8, e.g. a character cut in two
    /// by the end of a generation, becomes U+FFFD.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut run: Vec<u32> = Vec::new();
        for &id in ids {
            if (0..self.n_ranks).contains(&id) {
                run.push(id as u32);
                continue;
            }
            self.flush(&mut run, &mut bytes)?;
            let name = usize::try_from(id - self.n_ranks)
                .ok()
                .and_then(|i| self.specials.get(i))
                .ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "id {id} is outside the vocabulary (0..{})",
                        self.vocab_size()
                    ))
                })?;
            bytes.extend_from_slice(name.as_bytes());
        }
        self.flush(&mut run, &mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn flush(&self, run: &mut Vec<u32>, bytes: &mut Vec<u8>) -> Result<()> {
        if !run.is_empty() {
            let decoded = self.bpe.decode_bytes(run).map_err(|e| {
                Error::Tokenizer(format!("decoding rank {}: not in the ranks file", e.token))
            })?;
            bytes.extend_from_slice(&decoded);
            run.clear();
        }
        Ok(())
    }
}

/// Parses `base64-token rank` lines; ranks must be exactly 0..n so specials can follow them.
fn parse_ranks(bytes: &[u8]) -> std::result::Result<FxHashMap<Vec<u8>, u32>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut encoder = FxHashMap::default();
    encoder.reserve(160_000);
    for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let row = || format!("line {}", line_no + 1);
        let (token, rank) = line
            .split_once(' ')
            .ok_or_else(|| format!("{}: expected `<base64> <rank>`", row()))?;
        let token = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|e| format!("{}: bad base64: {e}", row()))?;
        let rank: u32 = rank
            .trim()
            .parse()
            .map_err(|e| format!("{}: bad rank: {e}", row()))?;
        if encoder.insert(token, rank).is_some() {
            return Err(format!("{}: token listed twice", row()));
        }
    }
    let mut ranks: Vec<u32> = encoder.values().copied().collect();
    ranks.sort_unstable();
    if ranks.iter().enumerate().any(|(i, &r)| r as usize != i) {
        return Err("ranks are not exactly 0..n".into());
    }
    Ok(encoder)
}

fn preview(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_wrong_ranks_file() {
        let err = Emu3Tokenizer::from_parts(b"YQ== 0\n", Path::new("x.tiktoken"), VISION_TOKENS)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.tiktoken") && err.contains("sha256"),
            "{err}"
        );
    }

    #[test]
    fn parses_ranks_and_rejects_gaps() {
        let ok = parse_ranks(b"YQ== 0\nYg== 1\n").unwrap();
        assert_eq!(ok[&b"b".to_vec()], 1);
        assert!(
            parse_ranks(b"YQ== 0\nYg== 2\n")
                .unwrap_err()
                .contains("0..n")
        );
        assert!(parse_ranks(b"YQ==0\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn explicit_missing_ranks_path_is_an_error() {
        let err = find_ranks_file(Some(Path::new("/nonexistent/qwen.tiktoken"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/qwen.tiktoken"));
    }
}
