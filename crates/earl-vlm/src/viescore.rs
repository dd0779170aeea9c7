//! VIEScore-style verification: semantic consistency (source + edited + instruction) and
//! perceptual quality (edited alone), each two scores 0-10, combined as
//! `overall = sqrt(min(SC) * min(PQ))`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::KeyParts;
use crate::client::{ChatRequest, Client};
use crate::config::Sampling;
use crate::error::Result;
use crate::image_prep::{ImagePrep, prepare, sha256_hex};
use crate::reply::find_json;
use crate::template::{PromptTemplate, builtin};

/// Scores parsed from one reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreReply {
    pub scores: Vec<f64>,
    pub reasoning: Option<String>,
}

/// Parse a verifier reply that must hold exactly `expected` scores in 0..=10.
///
/// Accepted shapes: `{"score": [..], "reasoning": ..}` (plain, fenced, between delimiter
/// lines or inside prose), a bare list `[6, 4]`, a bare number `7` (one score). Refused:
/// non-numeric scores, the wrong number of scores, values outside 0-10, replies with no
/// complete JSON (a cut-off reply is re-asked rather than guessed at).
pub fn parse_scores(reply: &str, expected: usize) -> std::result::Result<ScoreReply, String> {
    let value = find_json(reply).ok_or_else(|| "reply holds no complete JSON".to_string())?;
    let (scores, reasoning) = match &value {
        Value::Object(map) => {
            let s = map
                .get("score")
                .or_else(|| map.get("scores"))
                .ok_or_else(|| "reply has no \"score\" field".to_string())?;
            let reasoning = map
                .get("reasoning")
                .and_then(Value::as_str)
                .map(str::to_string);
            (s.clone(), reasoning)
        }
        other => (other.clone(), None),
    };
    let scores: Vec<f64> = match scores {
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN)],
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| format!("score {v} is not a number"))
            })
            .collect::<std::result::Result<_, _>>()?,
        other => {
            return Err(format!(
                "score {other} is not a number or a list of numbers"
            ));
        }
    };
    if scores.len() != expected {
        return Err(format!(
            "{} score(s) where {expected} were asked for",
            scores.len()
        ));
    }
    if let Some(bad) = scores
        .iter()
        .find(|s| !(s.is_finite() && (0.0..=10.0).contains(*s)))
    {
        return Err(format!("score {bad} is outside 0-10"));
    }
    Ok(ScoreReply { scores, reasoning })
}

/// The verdict on one edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VieScore {
    /// [edit success, over-editing], 0-10.
    pub sc: [f64; 2],
    /// [naturalness, artifacts], 0-10.
    pub pq: [f64; 2],
    /// min(sc)
    pub semantic_consistency: f64,
    /// min(pq)
    pub perceptual_quality: f64,
    /// sqrt(semantic_consistency * perceptual_quality), 0-10.
    pub overall: f64,
    pub sc_reasoning: Option<String>,
    pub pq_reasoning: Option<String>,
}

impl VieScore {
    pub fn combine(sc: [f64; 2], pq: [f64; 2]) -> Self {
        let semantic_consistency = sc[0].min(sc[1]);
        let perceptual_quality = pq[0].min(pq[1]);
        VieScore {
            sc,
            pq,
            semantic_consistency,
            perceptual_quality,
            overall: (semantic_consistency * perceptual_quality).sqrt(),
            sc_reasoning: None,
            pq_reasoning: None,
        }
    }
}

/// Asks a VLM to score edits. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Verifier {
    client: Client,
    sc: Arc<PromptTemplate>,
    pq: Arc<PromptTemplate>,
    prep: ImagePrep,
    sampling: Sampling,
}

impl Verifier {
    /// A verifier with the built-in templates.
    pub fn new(client: Client) -> Result<Self> {
        Self::with_templates(client, builtin::viescore_sc()?, builtin::viescore_pq()?)
    }

    /// A verifier with the user's own templates (see `pipelines/prompts/viescore_*.toml`;
    /// SC may use `{instruction}`, PQ nothing).
    pub fn with_templates(client: Client, sc: PromptTemplate, pq: PromptTemplate) -> Result<Self> {
        let sampling = Sampling {
            max_tokens: sc.max_tokens.unwrap_or(512),
            ..Sampling::default()
        };
        Ok(Verifier {
            client,
            sc: Arc::new(sc),
            pq: Arc::new(pq),
            prep: ImagePrep {
                multiple_of: None,
                ..ImagePrep::default()
            },
            sampling,
        })
    }

    pub fn with_image_prep(mut self, prep: ImagePrep) -> Self {
        self.prep = prep;
        self
    }

    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Score an edit: `source` and `edited` are encoded image bytes. The SC and PQ questions
    /// are asked concurrently; a reply that fails [`parse_scores`] is re-asked, then the edit
    /// is rejected ([`crate::VlmError::Rejected`]).
    pub async fn score(
        &self,
        source: Arc<Vec<u8>>,
        edited: Arc<Vec<u8>>,
        instruction: &str,
    ) -> Result<VieScore> {
        let sc = self.ask(&self.sc, vec![source, edited.clone()], instruction);
        let pq = self.ask(&self.pq, vec![edited], instruction);
        let (sc, pq) = tokio::join!(sc, pq);
        let (sc, pq) = (sc?, pq?);
        let mut v = VieScore::combine([sc.scores[0], sc.scores[1]], [pq.scores[0], pq.scores[1]]);
        v.sc_reasoning = sc.reasoning;
        v.pq_reasoning = pq.reasoning;
        Ok(v)
    }

    async fn ask(
        &self,
        template: &Arc<PromptTemplate>,
        images: Vec<Arc<Vec<u8>>>,
        instruction: &str,
    ) -> Result<ScoreReply> {
        let (system, text) = template.render(&[("instruction", instruction)]);
        let hashes: Vec<String> = images.iter().map(|b| sha256_hex(b)).collect();
        let tag = template.tag();
        let key = KeyParts {
            model: &self.client.config().model,
            template: &tag,
            system: &system,
            text: &text,
            images: &hashes,
            prep: &self.prep,
            sampling: &self.sampling,
            schema: template.schema.as_ref(),
        }
        .cache_key();
        let prep = self.prep.clone();
        let sampling = self.sampling.clone();
        let schema = template.response_schema();
        let build = move || {
            let urls = images
                .iter()
                .enumerate()
                .map(|(i, b)| Ok(prepare(b, &prep, &format!("image {}", i + 1))?.data_url))
                .collect::<Result<Vec<_>>>()?;
            Ok(ChatRequest {
                system,
                images: urls,
                text,
                schema,
                sampling,
            })
        };
        let answer = self
            .client
            .ask(Some(key), build, |reply| parse_scores(reply, 2))
            .await?;
        Ok(answer.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_shapes() {
        let ok = |r: &str, n| parse_scores(r, n).unwrap().scores;
        assert_eq!(
            ok("{\"score\": [8, 7], \"reasoning\": \"x\"}", 2),
            [8.0, 7.0]
        );
        assert_eq!(ok("```json\n{\"score\": [3, 9]}\n```", 2), [3.0, 9.0]);
        assert_eq!(ok("[6, 4.5]", 2), [6.0, 4.5]);
        assert_eq!(ok("7", 1), [7.0]);
        assert_eq!(ok("{\"score\": 7}", 1), [7.0]);
    }

    #[test]
    fn rejects_what_must_be_re_asked() {
        let err = |r: &str| parse_scores(r, 2).unwrap_err();
        assert!(err("{\"score\": \"high\"}").contains("not a number"));
        assert!(err("{\"score\": [\"high\", 3]}").contains("not a number"));
        assert!(err("{\"score\": [5]}").contains("1 score(s)"));
        assert!(err("7").contains("1 score(s)"));
        assert!(err("[11, 3]").contains("outside 0-10"));
        assert!(err("[-1, 3]").contains("outside 0-10"));
        assert!(err("{\"reasoning\": \"fine\"}").contains("no \"score\""));
        assert!(err("I cannot evaluate this image.").contains("no complete JSON"));
    }

    #[test]
    fn combines_by_min_and_geometric_mean() {
        let v = VieScore::combine([8.0, 2.0], [9.0, 8.0]);
        assert_eq!(v.semantic_consistency, 2.0);
        assert_eq!(v.perceptual_quality, 8.0);
        assert_eq!(v.overall, 4.0);
    }

    #[test]
    fn golden_replies_match_the_robust_rules() {
        let Some(dir) = earl_golden::dir() else {
            return;
        };
        let text = std::fs::read_to_string(dir.join("viescore_replies.json")).unwrap();
        let golden: Value = serde_json::from_str(&text).unwrap();
        let (mut accepted, mut refused) = (0, 0);
        for case in golden["replies"].as_array().unwrap() {
            let reply = case["reply"].as_str().unwrap();
            let upstream = &case["upstream_parse"];
            let up: Vec<&Value> = upstream["score"].as_array().into_iter().flatten().collect();
            match parse_scores(reply, 2) {
                // Whatever we accept, upstream read the same way.
                Ok(ours) => {
                    let want: Vec<f64> = up.iter().filter_map(|v| v.as_f64()).collect();
                    assert_eq!(ours.scores, want, "{reply}");
                    accepted += 1;
                }
                // Whatever we refuse, upstream failed on too, or accepted wrongly: a
                // non-numeric score, the wrong count, or a list guessed out of a cut-off reply.
                Err(why) => {
                    let guessed = upstream["reasoning"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("System:"))
                        && !reply.trim_start().starts_with('[');
                    let wrong = upstream == &Value::Bool(false)
                        || up.len() != 2
                        || !up.iter().all(|v| v.is_number())
                        || guessed;
                    assert!(
                        wrong,
                        "refused a reply upstream read correctly: {reply} ({why})"
                    );
                    refused += 1;
                }
            }
            // A bare number is a well-formed answer when one score is asked for.
            if reply.trim() == "7" {
                assert_eq!(parse_scores(reply, 1).unwrap().scores, [7.0]);
            }
        }
        // plain, fenced, delimited, bare list
        assert_eq!((accepted, refused), (4, 5));
    }
}
