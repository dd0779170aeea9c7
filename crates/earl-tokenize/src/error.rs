//! Why tokenizing (or rendering) failed, with what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error(transparent)]
    Format(#[from] earl_format::FormatError),
    #[error("VQ tokenizer: {0}")]
    Vq(#[from] earl_vq::VqError),
    #[error(
        "cannot get the VQ tokenizer {repo} from the Hub: {reason}\n\
         To use the real tokenizer without network here, download it where there is one \
         (`huggingface-cli download {repo} config.json model.safetensors --local-dir <folder>`), \
         copy the folder over and pass `--vq <folder>`; for a demo with random weights use \
         `--vq tiny-random`"
    )]
    Hub { repo: String, reason: String },
    #[error(
        "{}: not a VQ tokenizer folder ({reason}); it needs config.json and model.safetensors \
         as in BAAI/Emu3-VisionTokenizer (`huggingface-cli download BAAI/Emu3-VisionTokenizer \
         --local-dir <folder>`), or use `--vq tiny-random` for a demo",
        path.display()
    )]
    NotAModel { path: PathBuf, reason: String },
    #[error("{0}")]
    Input(String),
}
