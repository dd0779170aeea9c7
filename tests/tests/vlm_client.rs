//! earl-vlm's client against the loopback server: every fault path, the cache, the limits.

use std::time::{Duration, Instant};

use earl_tests::fake_vlm::{FakeVlm, Fault};
use earl_vlm::{
    ApiKey, Cache, CacheKey, ChatRequest, Client, ClientConfig, ResponseSchema, Sampling, VlmError,
};
use serde_json::json;

fn config(server: &FakeVlm) -> ClientConfig {
    let mut c = ClientConfig::new(server.url(), "fake-qwen");
    c.timeout = Duration::from_millis(300);
    c.max_attempts = 4;
    c.backoff_base = Duration::from_millis(5);
    c.backoff_max = Duration::from_millis(200);
    c.parse_attempts = 3;
    c
}

fn request(text: &str) -> ChatRequest {
    ChatRequest {
        system: "be brief".into(),
        images: vec![],
        text: text.into(),
        schema: Some(ResponseSchema {
            name: "plain".into(),
            schema: json!({"type": "string"}),
        }),
        sampling: Sampling::default(),
    }
}

fn key(k: &str) -> Option<CacheKey> {
    Some(CacheKey {
        key: k.into(),
        template: "t@1".into(),
    })
}

#[tokio::test]
async fn sends_the_openai_shape_with_the_key() {
    let server = FakeVlm::start().await;
    let mut cfg = config(&server);
    cfg.api_key = Some(ApiKey::new("sk-test"));
    let client = Client::new(cfg, None).unwrap();
    let reply = client.chat(&request("hello")).await.unwrap();
    assert_eq!(reply.text, "OK");
    assert!(reply.tokens_in > 0);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-test"));
    let body = &seen[0].body;
    assert_eq!(body["model"], "fake-qwen");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert!(body.get("guided_json").is_none());
    let u = client.usage();
    assert_eq!((u.requests, u.retries, u.failures), (1, 0, 0));
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let server = FakeVlm::start().await;
    let mut cfg = config(&server);
    // Without Retry-After the first backoff would be >= 2.5 s.
    cfg.backoff_base = Duration::from_secs(5);
    cfg.backoff_max = Duration::from_secs(10);
    let client = Client::new(cfg, None).unwrap();
    let retry = || Fault::TooMany {
        retry_after: "0.05".into(),
    };
    server.push([retry(), retry()]);
    let t = Instant::now();
    client.chat(&request("x")).await.unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(server.requests(), 3);
    assert_eq!(client.usage().retries, 2);
}

#[tokio::test]
async fn retries_5xx_drops_hangs_and_malformed_bodies() {
    let server = FakeVlm::start().await;
    let client = Client::new(config(&server), None).unwrap();
    for fault in [
        Fault::Status(500),
        Fault::Status(503),
        Fault::Drop,
        Fault::Hang(Duration::from_secs(2)),
        Fault::Malformed,
    ] {
        server.push([fault.clone()]);
        let reply = client.chat(&request("x")).await;
        assert_eq!(reply.unwrap().text, "OK", "after {fault:?}");
    }
    assert_eq!(server.requests(), 10);
    let u = client.usage();
    assert_eq!((u.requests, u.retries, u.failures), (10, 5, 0));
}

#[tokio::test]
async fn gives_up_after_max_attempts_naming_the_last_error() {
    let server = FakeVlm::start().await;
    server.rule("always-down", Fault::Status(502));
    let client = Client::new(config(&server), None).unwrap();
    let err = client.chat(&request("always-down")).await.unwrap_err();
    match &err {
        VlmError::Exhausted { attempts, last, .. } => {
            assert_eq!(*attempts, 4);
            assert!(last.contains("502"), "{last}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 4);
    assert_eq!(client.usage().failures, 1);
}

#[tokio::test]
async fn does_not_retry_client_errors() {
    let server = FakeVlm::start().await;
    server.push([Fault::Status(400)]);
    let client = Client::new(config(&server), None).unwrap();
    let err = client.chat(&request("x")).await.unwrap_err();
    assert!(matches!(err, VlmError::Http { status: 400, .. }), "{err:?}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let server = FakeVlm::start().await;
    let mut cfg = config(&server);
    drop(server);
    tokio::time::sleep(Duration::from_millis(20)).await;
    cfg.max_attempts = 2;
    let client = Client::new(cfg, None).unwrap();
    let err = client.chat(&request("x")).await.unwrap_err();
    assert!(
        matches!(err, VlmError::Exhausted { attempts: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_replies_are_re_asked_with_a_new_seed_then_rejected() {
    let server = FakeVlm::start().await;
    let client = Client::new(config(&server), None).unwrap();
    let parse = |r: &str| {
        if r == "OK" {
            Ok(())
        } else {
            Err(format!("want OK, got {r}"))
        }
    };
    server.push([Fault::Content("nonsense".into())]);
    let a = client
        .ask(None, || Ok(request("one")), parse)
        .await
        .unwrap();
    assert!(!a.cached);
    server.rule("two", Fault::Content("{\"bbox\": [1, 2]".into()));
    let err = client
        .ask(None, || Ok(request("two")), parse)
        .await
        .unwrap_err();
    match err {
        VlmError::Rejected { raw, attempts, .. } => {
            assert_eq!(raw, "{\"bbox\": [1, 2]");
            assert_eq!(attempts, 3);
        }
        other => panic!("{other:?}"),
    }
    let seeds: Vec<_> = server.seen()[2..]
        .iter()
        .map(|s| s.body["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [0, 1, 2]);
    assert_eq!(client.usage().rejected, 1);
}

#[tokio::test]
async fn cache_answers_reruns_without_requests() {
    let server = FakeVlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ok = |r: &str| Ok::<_, String>(r.to_string());
    {
        let client = Client::new(config(&server), Some(Cache::open(dir.path()).unwrap())).unwrap();
        let a = client
            .ask(key("k1"), || Ok(request("a")), ok)
            .await
            .unwrap();
        let b = client
            .ask(key("k1"), || Ok(request("a")), ok)
            .await
            .unwrap();
        assert!(!a.cached && b.cached);
        assert_eq!(client.usage().cache_hits, 1);
    }
    // A new process: same cache directory, nothing is sent.
    let client = Client::new(config(&server), Some(Cache::open(dir.path()).unwrap())).unwrap();
    let c = client
        .ask(key("k1"), || Ok(request("a")), ok)
        .await
        .unwrap();
    assert!(c.cached);
    assert_eq!(c.value, "OK");
    assert_eq!(server.requests(), 1);
    // A cached reply the current parser refuses is asked again.
    let strict = |_: &str| Err::<(), _>("stricter now".to_string());
    let _ = client.ask(key("k1"), || Ok(request("a")), strict).await;
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let server = FakeVlm::start().await;
    server.set_latency(Duration::from_millis(30));
    let mut cfg = config(&server);
    cfg.concurrency = 4;
    let client = Client::new(cfg, None).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let client = client.clone();
        tasks.spawn(async move { client.chat(&request(&format!("r{i}"))).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(server.max_in_flight(), 4);
    let u = client.usage();
    assert_eq!(u.requests, 16);
    assert!(u.latency_p50_ms >= 30.0, "{u}");
}
