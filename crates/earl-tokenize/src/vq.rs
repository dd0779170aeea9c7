//! Which VQ tokenizer to use, from the string a user gives.

use std::path::PathBuf;

use earl_vq::{CONFIG_FILE, VqConfig, VqModel, WEIGHTS_FILE};
use tch::{Device, Kind};

use crate::TokenizeError;

/// `tiny-random`, a local folder with `config.json` + `model.safetensors`, or a Hub model id
/// (`hub:org/name[@rev]`, or `org/name` when no such folder exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VqSource {
    /// The tiny shape with weights seeded by 0: a demo that needs no download.
    TinyRandom,
    Local(PathBuf),
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl VqSource {
    pub fn parse(spec: &str) -> Result<Self, TokenizeError> {
        if spec == "tiny-random" {
            return Ok(VqSource::TinyRandom);
        }
        match earl_hub::Source::parse(spec) {
            Ok(earl_hub::Source::Local(path)) => Ok(VqSource::Local(path)),
            Ok(earl_hub::Source::Hub(h)) => Ok(VqSource::Hub {
                repo: h.repo,
                revision: h.revision,
            }),
            Err(e) => Err(TokenizeError::Input(format!(
                "--vq {spec}: {e}; give a folder, a Hub id (hub:org/name) or tiny-random"
            ))),
        }
    }

    /// Loads the model onto `device` in `kind`, downloading Hub weights into the HF cache.
    pub fn load(&self, device: Device, kind: Kind) -> Result<VqModel, TokenizeError> {
        match self {
            VqSource::TinyRandom => Ok(VqModel::random(&VqConfig::tiny(), 0, device, kind)?),
            VqSource::Local(dir) => {
                for file in [CONFIG_FILE, WEIGHTS_FILE] {
                    if !dir.join(file).is_file() {
                        return Err(TokenizeError::NotAModel {
                            path: dir.clone(),
                            reason: format!("no {file}"),
                        });
                    }
                }
                Ok(VqModel::load(dir, device, kind)?)
            }
            VqSource::Hub { repo, revision } => {
                let hub_err = |e: earl_hub::Error| TokenizeError::Hub {
                    repo: repo.clone(),
                    reason: e.to_string(),
                };
                let client = earl_hub::HubClient::from_env().map_err(hub_err)?;
                let dir = client
                    .model_dir(repo, revision.as_deref(), &[CONFIG_FILE, WEIGHTS_FILE])
                    .map_err(hub_err)?;
                Ok(VqModel::load(&dir, device, kind)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_kinds() {
        assert_eq!(
            VqSource::parse("tiny-random").unwrap(),
            VqSource::TinyRandom
        );
        assert_eq!(
            VqSource::parse("hub:BAAI/Emu3-VisionTokenizer@main").unwrap(),
            VqSource::Hub {
                repo: "BAAI/Emu3-VisionTokenizer".into(),
                revision: Some("main".into())
            }
        );
        assert_eq!(
            VqSource::parse("./weights/vq").unwrap(),
            VqSource::Local("./weights/vq".into())
        );
    }

    #[test]
    fn a_folder_without_weights_says_how_to_get_them() {
        let dir = tempfile::tempdir().unwrap();
        let err = VqSource::Local(dir.path().into())
            .load(Device::Cpu, Kind::Float)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("huggingface-cli download BAAI/Emu3-VisionTokenizer"),
            "{err}"
        );
        assert!(err.contains("tiny-random"), "{err}");
    }
}
