//! The chain-of-thought answer for one edit: a plan in four parts and the edit box.

use serde::Deserialize;

use crate::reply::find_json;

/// Bounds on a CoT answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CotLimits {
    /// Longest accepted part (change, location, preserve, outcome), in characters.
    pub max_part_chars: usize,
    /// Shortest accepted part, in characters after trimming.
    pub min_part_chars: usize,
}

impl Default for CotLimits {
    fn default() -> Self {
        CotLimits {
            max_part_chars: 600,
            min_part_chars: 3,
        }
    }
}

/// A validated answer; the box is in pixels of the image as sent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CotAnswer {
    pub change: String,
    pub location: String,
    pub preserve: String,
    pub outcome: String,
    pub bbox: [f64; 4],
}

impl CotAnswer {
    /// The reasoning trace as one paragraph, in the order an editor thinks: what, where,
    /// what stays, the result.
    pub fn trace(&self) -> String {
        [&self.change, &self.location, &self.preserve, &self.outcome]
            .iter()
            .map(|p| {
                let p = p.trim();
                if p.ends_with(['.', '!', '?']) {
                    p.to_string()
                } else {
                    format!("{p}.")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Parse and check a reply for an image sent at `width`x`height`.
pub fn parse_cot(
    reply: &str,
    width: u32,
    height: u32,
    limits: &CotLimits,
) -> Result<CotAnswer, String> {
    let value = find_json(reply).ok_or_else(|| "reply holds no complete JSON".to_string())?;
    let a: CotAnswer =
        serde_json::from_value(value).map_err(|e| format!("reply does not fit the schema: {e}"))?;
    for (name, part) in [
        ("change", &a.change),
        ("location", &a.location),
        ("preserve", &a.preserve),
        ("outcome", &a.outcome),
    ] {
        let n = part.trim().chars().count();
        if n < limits.min_part_chars {
            return Err(format!("\"{name}\" is empty or too short ({n} characters)"));
        }
        if n > limits.max_part_chars {
            return Err(format!(
                "\"{name}\" is {n} characters, over the limit of {}",
                limits.max_part_chars
            ));
        }
    }
    let [x1, y1, x2, y2] = a.bbox;
    if a.bbox.iter().any(|v| !v.is_finite()) {
        return Err("bbox holds a non-finite number".into());
    }
    let (w, h) = (width as f64, height as f64);
    if x1 < 0.0 || y1 < 0.0 || x2 > w || y2 > h {
        return Err(format!(
            "bbox [{x1}, {y1}, {x2}, {y2}] is outside the {width}x{height} image"
        ));
    }
    if x1 >= x2 || y1 >= y2 {
        return Err(format!(
            "bbox [{x1}, {y1}, {x2}, {y2}] is empty (need x1 < x2 and y1 < y2)"
        ));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(bbox: &str, change: &str) -> String {
        format!(
            "{{\"change\": \"{change}\", \"location\": \"the sky\", \"preserve\": \"the house\", \
             \"outcome\": \"an orange sky\", \"bbox\": {bbox}}}"
        )
    }

    #[test]
    fn accepts_a_good_answer_and_builds_the_trace() {
        let a = parse_cot(
            &reply("[0, 0, 100, 40.5]", "Recolour the sky"),
            100,
            80,
            &CotLimits::default(),
        )
        .unwrap();
        assert_eq!(a.bbox, [0.0, 0.0, 100.0, 40.5]);
        assert_eq!(
            a.trace(),
            "Recolour the sky. the sky. the house. an orange sky."
        );
        let fenced = format!("```json\n{}\n```", reply("[1, 2, 3, 4]", "x y z"));
        assert!(parse_cot(&fenced, 10, 10, &CotLimits::default()).is_ok());
    }

    #[test]
    fn rejects_bad_boxes_and_parts() {
        let l = CotLimits::default();
        let why = |r: String| parse_cot(&r, 100, 80, &l).unwrap_err();
        assert!(why(reply("[0, 0, 101, 40]", "abc")).contains("outside"));
        assert!(why(reply("[-1, 0, 10, 40]", "abc")).contains("outside"));
        assert!(why(reply("[50, 0, 50, 40]", "abc")).contains("empty"));
        assert!(why(reply("[0, 30, 10, 20]", "abc")).contains("empty"));
        assert!(why(reply("[0, 0, 10]", "abc")).contains("schema"));
        assert!(why(reply("[0, 0, 10, 10]", "  ")).contains("\"change\" is empty"));
        assert!(why(reply("[0, 0, 10, 10]", &"a".repeat(601))).contains("over the limit"));
        assert!(why("{\"change\": \"abc\"}".into()).contains("schema"));
        assert!(why("Sorry, I can't help.".into()).contains("no complete JSON"));
    }
}
