//! Who acts, with `AUTH_MODE=jwt`, on the real servers: the user of the bearer token (HS256 secret,
//! or ES256 keys from a JWKS served by a tiny axum server). No, a badly signed or an expired token
//! is 401 and decides nothing; issuing for, listing or using another user's coupons is 403. The
//! default mode (the userId a request names, as in the course) is what tests/api.rs exercises.

mod support;

use campus_common::auth::{Auth, AuthMode};
use campus_common::config::AuthArgs;
use campus_testkit::jwt::{self, EcKey, HS256_SECRET, JwksServer, claims};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Env, Servers};

fn assert_refused(what: &str, got: (u16, String, Value), status: u16, code: &str) {
    let (s, challenge, body) = got;
    assert_eq!(s, status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    if status == 401 {
        assert!(challenge.starts_with("Bearer"), "{what}: `{challenge}`");
    }
}

async fn env_with(auth: AuthArgs) -> Env {
    let topic = campus_testkit::fresh_topic("coupon-request", 2).await;
    Env::start_custom(
        campus_testkit::kafka(),
        topic,
        Servers {
            auth: Auth::from_args(&auth).expect("auth settings"),
            ..Servers::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_bearer_mode_issues_lists_and_uses_only_for_the_tokens_user() {
    let env = env_with(AuthArgs {
        mode: AuthMode::Jwt,
        jwt_hs256_key: Some(HS256_SECRET.to_owned().into()),
        ..AuthArgs::default()
    })
    .await;
    let worker = env.start_worker();
    // The admin listener is not user-facing: no token there.
    let event = env.create_event(10).await;
    let one = jwt::hs256(HS256_SECRET, &claims(1, 300));
    let two = jwt::hs256(HS256_SECRET, &claims("2", 300));
    let issue = |body: Value, bearer: Option<String>| {
        let env = &env;
        async move {
            env.send_as(Method::POST, "/coupons", Some(body), bearer.as_deref())
                .await
        }
    };
    let body = |user: Option<i64>| match user {
        Some(u) => json!({"userId": u, "couponEventId": event}),
        None => json!({"couponEventId": event}),
    };

    assert_refused(
        "no token",
        issue(body(Some(1)), None).await,
        401,
        "unauthorized",
    );
    for (what, token) in [
        (
            "bad signature",
            jwt::hs256("not-the-secret-but-as-long-as-it-32", &claims(1, 300)),
        ),
        ("expired", jwt::hs256(HS256_SECRET, &claims(1, -3600))),
    ] {
        assert_refused(
            what,
            issue(body(Some(1)), Some(token)).await,
            401,
            "invalid_token",
        );
    }
    assert_refused(
        "user 1 issuing for user 2",
        issue(body(Some(2)), Some(one.clone())).await,
        403,
        "forbidden",
    );
    assert_eq!(env.redis_count(event).await, 0, "refusals decided nothing");

    let (s, _, mine) = issue(body(Some(1)), Some(one.clone())).await;
    assert_eq!((s, mine["userId"].as_i64()), (201, Some(1)), "{mine}");
    let (s, _, theirs) = issue(body(None), Some(two.clone())).await;
    assert_eq!((s, theirs["userId"].as_i64()), (201, Some(2)), "{theirs}");
    env.wait_drained(event, 2).await;

    // Listing: one's own, named or not.
    assert_refused(
        "user 1 listing user 2's coupons",
        env.send_as(Method::GET, "/coupons?userId=2", None, Some(&one))
            .await,
        403,
        "forbidden",
    );
    assert_refused(
        "listing without a token",
        env.send_as(Method::GET, "/coupons?userId=1", None, None)
            .await,
        401,
        "unauthorized",
    );
    for path in ["/coupons", "/coupons?userId=1"] {
        let (s, _, list) = env.send_as(Method::GET, path, None, Some(&one)).await;
        assert_eq!(s, 200, "{path}: {list}");
        assert_eq!(list["userId"], 1, "{list}");
        assert_eq!(list["coupons"][0]["id"], mine["couponId"], "{list}");
    }

    // Using: only the owner.
    let use_path = format!("/coupons/{}/use", mine["couponId"].as_str().unwrap());
    assert_refused(
        "user 2 using user 1's coupon",
        env.send_as(Method::POST, &use_path, Some(json!({})), Some(&two))
            .await,
        403,
        "forbidden",
    );
    assert_refused(
        "using without a token",
        env.send_as(Method::POST, &use_path, Some(json!({})), None)
            .await,
        401,
        "unauthorized",
    );
    let (_, _, list) = env.send_as(Method::GET, "/coupons", None, Some(&one)).await;
    assert_eq!(
        list["coupons"].as_array().map(Vec::len),
        Some(1),
        "still usable: {list}"
    );
    let (s, _, used) = env
        .send_as(Method::POST, &use_path, Some(json!({})), Some(&one))
        .await;
    assert_eq!(s, 200, "{used}");
    assert!(used["usedAt"].is_string(), "{used}");
    let unknown = format!("/coupons/{}/use", uuid::Uuid::now_v7());
    let (s, _, _) = env
        .send_as(Method::POST, &unknown, Some(json!({})), Some(&one))
        .await;
    assert_eq!(s, 404);

    // The document offers the bearer scheme and says where it answers 401/403.
    let (_, doc) = env.get("/api-docs/openapi.json").await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
        "JWT"
    );
    for (path, method) in [
        ("/coupons", "post"),
        ("/coupons", "get"),
        ("/coupons/{id}/use", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op["responses"]["401"].is_object(), "{method} {path}");
        assert!(op["responses"]["403"].is_object(), "{method} {path}");
        assert_eq!(
            op["security"],
            json!([{}, {"bearer": []}]),
            "{method} {path}"
        );
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_bearer_mode_issues_for_the_tokens_user_only() {
    let key = EcKey::generate("coupons-1");
    let stranger = EcKey::generate("elsewhere");
    let jwks = JwksServer::start(&[&key]).await;
    let env = env_with(AuthArgs {
        mode: AuthMode::Jwt,
        jwks_url: Some(jwks.url.clone()),
        user_claim: "uid".to_owned(),
        ..AuthArgs::default()
    })
    .await;
    let event = env.create_event(10).await;
    let token = |user: i64, ttl: i64| {
        let mut c = claims("someone@example.org", ttl);
        c["uid"] = json!(user);
        c
    };
    let issue = |user: Option<i64>, bearer: String| {
        let env = &env;
        let body = match user {
            Some(u) => json!({"userId": u, "couponEventId": event}),
            None => json!({"couponEventId": event}),
        };
        async move {
            env.send_as(Method::POST, "/coupons", Some(body), Some(&bearer))
                .await
        }
    };
    assert_refused(
        "a key the JWKS does not hold",
        issue(Some(5), stranger.sign(&token(5, 300))).await,
        401,
        "invalid_token",
    );
    assert_refused(
        "expired",
        issue(Some(5), key.sign(&token(5, -3600))).await,
        401,
        "invalid_token",
    );
    assert_refused(
        "user 5 issuing for user 6",
        issue(Some(6), key.sign(&token(5, 300))).await,
        403,
        "forbidden",
    );
    let (s, _, issued) = issue(None, key.sign(&token(5, 300))).await;
    assert_eq!((s, issued["userId"].as_i64()), (201, Some(5)), "{issued}");
    let (s, _, again) = issue(Some(5), key.sign(&token(5, 300))).await;
    assert_eq!(
        (s, again["error"]["code"].as_str()),
        (409, Some("already_issued"))
    );
    assert_eq!(env.redis_count(event).await, 1);
}

/// Bad settings stop the binary at start-up with one line naming the variable (before any
/// connection), and never print the secret.
#[test]
fn bad_auth_settings_are_one_start_up_line() {
    for (env, want) in [
        (&[("AUTH_MODE", "jwt")][..], "exactly one key source"),
        (
            &[
                ("AUTH_MODE", "jwt"),
                ("AUTH_JWT_SECRET", "hunter2-too-short"),
            ][..],
            "AUTH_JWT_SECRET must be at least 32 bytes",
        ),
        (
            &[("AUTH_MODE", "none"), ("AUTH_JWKS_URL", "https://idp/jwks")][..],
            "AUTH_JWKS_URL set while AUTH_MODE is none",
        ),
        (&[("AUTH_MODE", "oauth")][..], "--auth-mode"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_campus-coupon"))
            .arg("api")
            .env("KAFKA_BROKERS", "127.0.0.1:1")
            .env("MYSQL_URL", "mysql://root@127.0.0.1:1/x")
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!out.status.success(), "{env:?}: {out:?}");
        assert_eq!(lines.len(), 1, "{env:?}: {lines:?}");
        assert!(
            lines[0].starts_with("error:") && lines[0].contains(want),
            "{env:?}: {lines:?}"
        );
        assert!(
            !stderr.contains("hunter2")
                && !String::from_utf8_lossy(&out.stdout).contains("hunter2")
        );
    }
}
