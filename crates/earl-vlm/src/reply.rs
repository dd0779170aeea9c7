//! Finding the JSON in a model's reply: plain, inside a ``` fence, between delimiter lines,
//! or embedded in prose. Servers that ignore `response_format` produce all of these.

use serde_json::Value;

/// The first JSON value found in `reply`, trying the whole text, then fenced blocks, then
/// the outermost `{...}` or `[...]` span.
pub fn find_json(reply: &str) -> Option<Value> {
    candidates(reply)
        .into_iter()
        .find_map(|c| serde_json::from_str::<Value>(c.trim()).ok())
}

fn candidates(reply: &str) -> Vec<&str> {
    let mut out = vec![reply];
    // ```json ... ``` or ``` ... ```
    let mut rest = reply;
    while let Some(start) = rest.find("```") {
        let body = &rest[start + 3..];
        let body = body.strip_prefix("json").unwrap_or(body);
        match body.find("```") {
            Some(end) => {
                out.push(&body[..end]);
                rest = &body[end + 3..];
            }
            None => break,
        }
    }
    // The outermost span only: a list inside a cut-off object must not pass for an answer.
    let first = reply.find(['{', '[']);
    if let Some(a) = first {
        let close = if reply[a..].starts_with('{') {
            '}'
        } else {
            ']'
        };
        if let Some(b) = reply.rfind(close)
            && a < b
        {
            out.push(&reply[a..=b]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_json_in_common_wrappers() {
        assert_eq!(find_json(" {\"a\": 1} ").unwrap()["a"], 1);
        assert_eq!(find_json("x\n```json\n{\"a\": 2}\n```\ny").unwrap()["a"], 2);
        assert_eq!(find_json("```\n[1, 2]\n```").unwrap()[1], 2);
        assert_eq!(
            find_json("||V^=^V||\n{\"a\": 3}\n||V^=^V||").unwrap()["a"],
            3
        );
        assert_eq!(
            find_json("Sure! {\"a\": 4} Hope it helps.").unwrap()["a"],
            4
        );
        assert_eq!(find_json("7").unwrap(), 7);
        assert!(find_json("{\"a\": [1, 2], \"b\": \"cut").is_none());
        assert!(find_json("no json here").is_none());
        assert!(find_json("{\"score\": [9, 2], \"reasoning\": \"cut").is_none());
        assert_eq!(find_json("scores: [1, 2] ok").unwrap()[0], 1);
    }
}
