//! earl-model: the Emu3 text tokenizer, the SFT sequence layout and the Emu3 decoder LM in tch.
//!
//! # Public API
//!
//! Tokenizer ([`tokenizer`]):
//! - `Emu3Tokenizer::load(ranks: Option<&Path>) -> Result<Emu3Tokenizer>` finds Qwen's
//!   `qwen.tiktoken` (see [`tokenizer::find_ranks_file`]: the explicit path, else
//!   `$EARL_TIKTOKEN_FILE`, else `dashscope/resources/qwen.tiktoken` in the site-packages of
//!   `$VIRTUAL_ENV` or of the workspace's `.venv`); the vision tokens are the bundled
//!   `assets/emu3_vision_tokens.txt`. `Emu3Tokenizer::from_files(ranks, vision_tokens)` is explicit.
//! - `tok.encode(text) -> Result<Vec<i64>>` (special tokens written in the text are specials),
//!   `tok.decode(&ids) -> Result<String>`, `tok.vocab_size() -> usize`,
//!   `tok.special() -> &SpecialIds` (`bos, eos, pad, img, boi, eoi, eol, eof, visual0, visual_count`),
//!   `tok.visual_id(code: u16) -> Result<i64>`, `tok.token_id(name) -> Option<i64>`.
//!
//! Sequence layout ([`layout`]):
//! - `Grid { codes: &[u16], h: usize, w: usize }`: one image's VQ code grid, row-major.
//! - `tok.image_block(grid) -> Result<Vec<i64>>`,
//!   `tok.prompt_ids(source, instruction) -> Result<Vec<i64>>` (bos + source block + instruction),
//!   `tok.build_sample(source, instruction, target, cot: Option<&str>) -> Result<Sample>`,
//!   `tok.parse_image_block(&ids) -> Result<CodeGrid { codes: Vec<u16>, h, w }>` (generated ids
//!   back to a grid).
//! - `tok.image_grammar(h, w) -> Result<ImageGrammar>`: the forced/free token pattern of a target
//!   block + eos; `grammar.len()` steps, `grammar.constrain(step, &logits[B, V]) -> Result<Tensor>`
//!   sets forbidden tokens to -inf (use it inside the `generate` picker, counting steps).
//! - `Sample { input_ids: Vec<i64>, labels: Vec<i64> }` (labels `IGNORE_INDEX` = -100 over the prompt).
//! - `collate(&[Sample]) -> Result<Batch>`; `Batch { input_ids, attention_mask, labels,
//!   position_ids }`: CPU `Int64` tensors `[B, T]`, left-padded with `PAD_ID` = 0;
//!   `batch.to_device(device)`.
//!
//! Model ([`config`], [`model`], [`generate`], [`checkpoint`]):
//! - `Emu3Config::from_file(path) -> Result<Emu3Config>` (HF `config.json`, unknown keys kept in
//!   `extra` and written back on save).
//! - `Emu3ForCausalLM::new(vs.root(), &config) -> Result<Emu3ForCausalLM>`: variables named exactly
//!   like the upstream checkpoint (`model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`,
//!   ..., `lm_head.weight` unless `tie_word_embeddings`). New variables take the VarStore's kind
//!   (`vs.set_kind(Kind::BFloat16)` before `new` to build in bf16) and device.
//! - `model.forward(&input_ids, &position_ids, &attention_mask, train) -> Result<Tensor>` logits
//!   `[B, T, V]` in the weights' kind; `train` turns on `attention_dropout` (attention
//!   probabilities and both residual branches); gradients follow tch's grad mode.
//! - `Emu3ForCausalLM::loss(&logits, &labels) -> Result<Tensor>`: shifted mean cross-entropy
//!   (computed in f32), ignoring -100.
//! - `model.config() -> &Emu3Config`, `model.device() -> Device`.
//! - Per layer, for activation checkpointing: `model.embed(&input_ids) -> hidden`,
//!   `model.layer_inputs(&position_ids, &attention_mask) -> LayerInputs` (RoPE tables + mask, built
//!   once per step and shared by all layers), `model.layers() -> &[DecoderLayer]`,
//!   `layer.forward(&hidden, &inputs, None, train) -> hidden` (plain `Tensor`),
//!   `model.head(&hidden) -> logits` (final norm + lm_head).
//! - Generation with a KV cache: `model.generate(&prompt, &mask, n, |logits: &Tensor| -> Tensor)`
//!   (the closure picks the next token `[B]` from last-position logits `[B, V]`; returns the new
//!   tokens `[B, n]`; runs under no_grad, eval mode), `model.generate_greedy(&prompt, &mask, n)`,
//!   both `-> Result<Tensor>`; lower level `KvCache::new(num_layers)` +
//!   `model.forward_cached(&ids, &position_ids, &full_mask, &mut cache) -> Result<Tensor>`.
//! - `load_safetensors(&vs, dir) -> Result<()>` (single `model.safetensors` or sharded with
//!   `model.safetensors.index.json`; dtype converted to the variable's), `save_safetensors(&vs,
//!   &config, dir) -> Result<()>` (writes `config.json` and `model.safetensors`, or
//!   `model-0000i-of-0000n.safetensors` + index above `SHARD_BYTES` = 5 GB; atomic renames; stale
//!   weight files removed), `checkpoint::save_with_shard_size(&vs, &config, dir, bytes)`.
//!
//! All fallible functions return [`Error`].

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod generate;
pub mod grammar;
pub mod layout;
pub mod model;
pub mod tokenizer;

pub use checkpoint::{SHARD_BYTES, load_safetensors, save_safetensors};
pub use config::Emu3Config;
pub use error::{Error, Result};
pub use generate::{KvCache, LayerCache};
pub use grammar::ImageGrammar;
pub use layout::{Batch, CodeGrid, Grid, IGNORE_INDEX, PAD_ID, Sample, collate};
pub use model::{DecoderLayer, Emu3ForCausalLM, LayerInputs};
pub use tokenizer::{Emu3Tokenizer, SpecialIds};
