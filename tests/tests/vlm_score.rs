//! VIEScore verifier and the `score` stage against the loopback server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use earl_tests::fake_vlm::{FakeVlm, Fault};
use earl_vlm::score::{ScoreOptions, ScoredRow, run};
use earl_vlm::{Client, ClientConfig, PromptTemplate, Verifier, VlmError};
use image::ImageEncoder;

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, seed]));
    let mut buf = Vec::new();
    image::codecs::png::PngEncoder::new(&mut buf)
        .write_image(&img, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    buf
}

fn config(server: &FakeVlm) -> ClientConfig {
    let mut c = ClientConfig::new(server.url(), "fake-judge");
    c.timeout = Duration::from_millis(300);
    c.max_attempts = 3;
    c.backoff_base = Duration::from_millis(5);
    c.backoff_max = Duration::from_millis(50);
    c.concurrency = 4;
    c
}

#[tokio::test]
async fn verifier_scores_and_combines() {
    let server = FakeVlm::start().await;
    let v = Verifier::new(Client::new(config(&server), None).unwrap()).unwrap();
    let (src, out) = (Arc::new(png(64, 48, 1)), Arc::new(png(64, 48, 2)));
    let s = v
        .score(src.clone(), out.clone(), "make it red")
        .await
        .unwrap();
    assert_eq!(s.pq, [8.0, 7.0]);
    assert_eq!(s.perceptual_quality, 7.0);
    assert_eq!(s.semantic_consistency, s.sc[0].min(s.sc[1]));
    assert!((s.overall - (s.semantic_consistency * 7.0).sqrt()).abs() < 1e-12);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let sc = seen
        .iter()
        .find(|s| s.images == 2)
        .expect("the SC request carries two images");
    assert!(sc.text.contains("\"make it red\""));
    assert_eq!(
        sc.body["response_format"]["json_schema"]["name"],
        "viescore_sc"
    );
}

#[tokio::test]
async fn verifier_rejects_what_upstream_accepted_wrongly() {
    let server = FakeVlm::start().await;
    server.rule(
        "WORDS",
        Fault::Content(r#"{"score": "high", "reasoning": "good"}"#.into()),
    );
    server.rule(
        "ONE",
        Fault::Content(r#"{"score": [5], "reasoning": "one"}"#.into()),
    );
    server.rule(
        "BIG",
        Fault::Content(r#"{"score": [12, 3], "reasoning": "big"}"#.into()),
    );
    let v = Verifier::new(Client::new(config(&server), None).unwrap()).unwrap();
    let img = || Arc::new(png(32, 32, 3));
    for (marker, why) in [
        ("WORDS", "not a number"),
        ("ONE", "1 score"),
        ("BIG", "outside 0-10"),
    ] {
        let err = v.score(img(), img(), marker).await.unwrap_err();
        match err {
            VlmError::Rejected {
                reason, attempts, ..
            } => {
                assert!(reason.contains(why), "{marker}: {reason}");
                assert_eq!(attempts, 3);
            }
            other => panic!("{marker}: {other:?}"),
        }
    }
    // Prose, then a fenced reply: the prose is re-asked, the fenced one accepted.
    server.push([
        Fault::Content("Looks good to me!".into()),
        Fault::Content("```json\n{\"score\": [9, 9]}\n```".into()),
    ]);
    let before = server.requests();
    let retries = v.client().usage().retries;
    let ok = v.score(img(), img(), "fine").await.unwrap();
    assert!(ok.sc == [9.0, 9.0] || ok.pq == [9.0, 9.0], "{ok:?}");
    assert_eq!(server.requests() - before, 3);
    assert_eq!(v.client().usage().retries - retries, 1);
}

#[tokio::test]
async fn user_templates_replace_the_builtin_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sc.toml");
    std::fs::write(
        &path,
        "id = \"my_sc\"\nversion = 3\nsystem = \"judge\"\nuser = \"Rate: {instruction}\"\n",
    )
    .unwrap();
    let sc = PromptTemplate::load(&path, earl_vlm::template::builtin::SC_VARS).unwrap();
    let pq = earl_vlm::template::builtin::viescore_pq().unwrap();
    let server = FakeVlm::start().await;
    server.rule("Rate:", Fault::Content("[7, 6]".into()));
    let v = Verifier::with_templates(Client::new(config(&server), None).unwrap(), sc, pq).unwrap();
    let img = Arc::new(png(16, 16, 0));
    let s = v.score(img.clone(), img, "x").await.unwrap();
    assert_eq!(s.sc, [7.0, 6.0]);
    assert!(server.seen().iter().any(|s| s.text == "Rate: x"));
}

fn write_rows(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut lines = String::new();
    for i in 0..n {
        std::fs::write(dir.join(format!("img/s{i}.png")), png(40, 30, i as u8)).unwrap();
        std::fs::write(
            dir.join(format!("img/e{i}.png")),
            png(40, 30, 100 + i as u8),
        )
        .unwrap();
        let dataset = if i % 2 == 0 { "even" } else { "odd" };
        let edited = if i == 1 {
            "img/missing.png".to_string()
        } else {
            format!("img/e{i}.png")
        };
        lines.push_str(
            &serde_json::json!({
                "id": format!("r{i}"), "dataset": dataset, "source": format!("img/s{i}.png"),
                "edited": edited, "instruction": format!("edit number {i}"),
            })
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(dir.join("rows.jsonl"), lines).unwrap();
}

fn read_scores(out: &Path) -> Vec<ScoredRow> {
    std::fs::read_to_string(out.join("scores.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn score_stage_writes_rows_and_per_dataset_means() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    let n = 8;
    write_rows(&input, n);
    let server = FakeVlm::start().await;
    server.rule(
        "edit number 3",
        Fault::Content("{\"score\": [\"high\", 2]}".into()),
    );
    let opts = ScoreOptions::new(&input, &out, config(&server));
    let s = run(opts.clone()).await.unwrap();
    assert_eq!((s.rows, s.scored, s.rejected, s.failed), (8, 6, 1, 1));
    let rows = read_scores(&out);
    assert_eq!(rows.len(), 8);
    let by_id = |id: &str| rows.iter().find(|r| r.id == id).unwrap().clone();
    assert!(by_id("r1").reason.unwrap().contains("missing.png"));
    assert_eq!(by_id("r1").status, "failed");
    assert_eq!(by_id("r3").status, "rejected");
    let r0 = by_id("r0");
    assert_eq!(r0.status, "ok");
    assert_eq!(r0.pq, Some([8.0, 7.0]));
    let (even, odd) = (&s.per_dataset["even"], &s.per_dataset["odd"]);
    assert_eq!((even.rows, even.scored, odd.rows, odd.scored), (4, 4, 4, 2));
    assert_eq!(even.perceptual_quality, 7.0);
    let want: f64 = ["r0", "r2", "r4", "r6"]
        .iter()
        .map(|i| by_id(i).overall.unwrap())
        .sum();
    assert!((even.overall - want / 4.0).abs() < 1e-12);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["per_dataset"]["odd"]["scored"], 2);

    // A rerun retries only the failed row (its image is still missing: no request).
    let before = server.requests();
    let s = run(opts).await.unwrap();
    assert_eq!((s.skipped, s.failed), (7, 1));
    assert_eq!(server.requests(), before);
}

fn cached_answers(dir: &Path) -> usize {
    let files = std::fs::read_dir(dir).into_iter().flatten().flatten();
    files
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|f| f.path().extension().is_some_and(|e| e == "json"))
        .count()
}

#[tokio::test]
async fn a_killed_score_run_resumes_without_asking_answered_requests_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    let n = 16;
    write_rows(&input, n);
    let server = FakeVlm::start().await;
    server.set_latency(Duration::from_millis(10));
    let opts = ScoreOptions::new(&input, &out, config(&server));

    let task = tokio::spawn(run(opts.clone()));
    while server.answered() < 8 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task.abort();
    let _ = task.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stored = cached_answers(&out.join("vlm-cache"));
    let written = std::fs::read_to_string(out.join("scores.jsonl")).unwrap_or_default();
    let before = server.requests();

    let s = run(opts).await.unwrap();
    let done_before = written
        .lines()
        .filter(|l| !l.contains("\"failed\""))
        .count();
    assert_eq!(s.skipped as usize, done_before);
    assert_eq!((s.scored + s.skipped, s.failed), (15, 1));
    // Two answers per row with images (15 rows); only those not stored are asked for.
    assert!((1..30).contains(&stored), "stored {stored}");
    assert_eq!(server.requests() - before, 30 - stored);
    let ids: std::collections::HashSet<String> =
        read_scores(&out).into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 16);
}
