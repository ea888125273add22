//! Who acts, in both modes, on the real servers: by default (`AUTH_MODE=none`) the user a request
//! names, as in the course; with `AUTH_MODE=jwt` the user of the bearer token (HS256 secret, or
//! ES256 keys from a JWKS served by a tiny axum server), with 401 for no, a badly signed or an
//! expired token, 403 for another user's id or post, and public reads still open.

mod support;

use campus_testkit::jwt::{self, EcKey, HS256_SECRET, JwksServer, claims};
use reqwest::Method;
use serde_json::{Value, json};
use support::Platform;

async fn count(p: &Platform, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&p.pool)
        .await
        .unwrap()
}

fn post_body(user: Option<u64>) -> Value {
    let mut b = json!({"title": "mine", "content": "words", "categoryId": 1});
    if let Some(u) = user {
        b["userId"] = json!(u);
    }
    b
}

fn assert_refused(what: &str, got: (u16, String, Value), status: u16, code: &str) {
    let (s, challenge, body) = got;
    assert_eq!(s, status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    if status == 401 {
        assert!(challenge.starts_with("Bearer"), "{what}: `{challenge}`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_none_acts_for_whoever_the_request_names_as_in_the_course() {
    let mut p = Platform::new().await;
    p.start_api().await;
    // A token is not looked at, and anyone may write as anyone.
    p.bearer = Some("not even a JWT".to_owned());
    let post = p.create_post(1, 1, "alice's", "post").await;
    let id = post["id"].as_u64().unwrap();
    let (s, v) = p
        .put(
            &format!("/posts/{id}"),
            json!({"title": "edited by anyone", "content": "c", "categoryId": 1}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = p.get("/list/inbox/2").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = p
        .post("/follows", json!({"followerId": 4, "followeeId": 3}))
        .await;
    assert_eq!(s, 201, "{v}");
    // Without a userId the request is invalid, as before.
    let (s, v) = p.post("/posts", post_body(None)).await;
    assert_eq!(
        (s, v["error"]["details"]["userId"].as_str()),
        (422, Some("is required"))
    );
    // The document offers the bearer scheme either way.
    let (_, doc) = p.get("/api-docs/openapi.json").await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "{doc}"
    );
    for (path, method) in [
        ("/posts", "post"),
        ("/posts/{id}", "put"),
        ("/posts/{id}", "delete"),
        ("/list/inbox/{userId}", "get"),
        ("/follows", "post"),
        ("/follows/{followerId}/{followeeId}", "delete"),
    ] {
        let op = &doc["paths"][path][method];
        for status in ["401", "403"] {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path}: {status}"
            );
        }
        assert_eq!(
            op["security"],
            json!([{}, {"bearer": []}]),
            "{method} {path}"
        );
    }
    let detail = &doc["paths"]["/posts/{id}/detail"]["get"];
    assert!(
        detail["security"].is_null() && detail["responses"]["401"].is_null(),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_bearer_mode_acts_only_for_the_tokens_user() {
    let mut p = Platform::new().await;
    p.start_api_with(&["--auth-mode", "jwt", "--auth-jwt-secret", HS256_SECRET])
        .await;
    let alice = jwt::hs256(HS256_SECRET, &claims(1, 300));
    let bob = jwt::hs256(HS256_SECRET, &claims("2", 300));
    let forged = jwt::hs256("another-secret-of-at-least-32-bytes!", &claims(1, 300));
    let expired = jwt::hs256(HS256_SECRET, &claims(1, -3600));
    let posts = || async { count(&p, "SELECT COUNT(*) FROM posts").await };

    // 401: no token, a badly signed one, an expired one, garbage; nothing is written.
    let create = |token: Option<String>, body: Value| {
        let p = &p;
        async move {
            p.send_as(Method::POST, "/posts", Some(body), token.as_deref())
                .await
        }
    };
    assert_refused(
        "no token",
        create(None, post_body(Some(1))).await,
        401,
        "unauthorized",
    );
    for (what, token) in [
        ("bad signature", forged.clone()),
        ("expired", expired),
        ("garbage", "abc".to_owned()),
    ] {
        assert_refused(
            what,
            create(Some(token), post_body(Some(1))).await,
            401,
            "invalid_token",
        );
    }
    // 403: another user's id.
    assert_refused(
        "alice posting as bob",
        create(Some(alice.clone()), post_body(Some(2))).await,
        403,
        "forbidden",
    );
    assert_eq!(posts().await, 0);

    // 201: one's own id, or none (the token's user).
    let (s, _, own) = create(Some(alice.clone()), post_body(Some(1))).await;
    assert_eq!(s, 201, "{own}");
    assert_eq!(own["userId"], 1);
    let (s, _, implied) = create(Some(bob.clone()), post_body(None)).await;
    assert_eq!(s, 201, "{implied}");
    assert_eq!(
        (implied["userId"].as_u64(), implied["userName"].as_str()),
        (Some(2), Some("bob"))
    );

    // Editing and deleting: only the author.
    let id = own["id"].as_u64().unwrap();
    let edit = json!({"title": "hijacked", "content": "c", "categoryId": 1});
    let path = format!("/posts/{id}");
    assert_refused(
        "bob editing alice's post",
        p.send_as(Method::PUT, &path, Some(edit.clone()), Some(&bob))
            .await,
        403,
        "forbidden",
    );
    assert_refused(
        "bob deleting alice's post",
        p.send_as(Method::DELETE, &path, None, Some(&bob)).await,
        403,
        "forbidden",
    );
    assert_refused(
        "editing without a token",
        p.send_as(Method::PUT, &path, Some(edit.clone()), None)
            .await,
        401,
        "unauthorized",
    );
    assert_eq!(
        count(&p, &format!("SELECT version FROM posts WHERE id = {id}")).await,
        1,
        "refused edits changed nothing"
    );
    let (s, _, v) = p
        .send_as(
            Method::PUT,
            &path,
            Some(json!({"title": "edited", "content": "c", "categoryId": 2})),
            Some(&alice),
        )
        .await;
    assert_eq!((s, v["title"].as_str()), (200, Some("edited")), "{v}");

    // Inboxes: one's own only.
    assert_refused(
        "alice reading bob's inbox",
        p.send_as(Method::GET, "/list/inbox/2", None, Some(&alice))
            .await,
        403,
        "forbidden",
    );
    assert_refused(
        "an inbox without a token",
        p.send_as(Method::GET, "/list/inbox/1", None, None).await,
        401,
        "unauthorized",
    );
    let (s, _, v) = p
        .send_as(Method::GET, "/list/inbox/1", None, Some(&alice))
        .await;
    assert_eq!(s, 200, "{v}");

    // Follows act for the token's user.
    let follow = |body: Value, token: &str| {
        let p = &p;
        let token = token.to_owned();
        async move {
            p.send_as(Method::POST, "/follows", Some(body), Some(&token))
                .await
        }
    };
    assert_refused(
        "alice making carol follow bob",
        follow(json!({"followerId": 3, "followeeId": 2}), &alice).await,
        403,
        "forbidden",
    );
    let (s, _, v) = follow(json!({"followeeId": 4}), &alice).await;
    assert_eq!(s, 201, "{v}");
    assert_refused(
        "alice unfollowing for bob",
        p.send_as(Method::DELETE, "/follows/2/1", None, Some(&alice))
            .await,
        403,
        "forbidden",
    );
    let (s, _, v) = p
        .send_as(Method::DELETE, "/follows/1/4", None, Some(&alice))
        .await;
    assert_eq!(s, 204, "{v}");
    // A user changes only themself.
    assert_refused(
        "alice renaming bob",
        p.send_as(
            Method::PUT,
            "/users/2",
            Some(json!({"name": "bobby"})),
            Some(&alice),
        )
        .await,
        403,
        "forbidden",
    );
    let (s, _, v) = p
        .send_as(
            Method::PUT,
            "/users/1",
            Some(json!({"name": "alicia"})),
            Some(&alice),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Public reads need no token.
    for path in [
        format!("/posts/{id}/detail"),
        "/users".to_owned(),
        "/categories".to_owned(),
        "/users/1/followers".to_owned(),
    ] {
        let (s, _, v) = p.send_as(Method::GET, &path, None, None).await;
        assert_eq!(s, 200, "{path}: {v}");
    }
    let (s, _, v) = p
        .send_as(Method::GET, "/list/search?keyword=x", None, None)
        .await;
    assert_ne!(s, 401, "{v}");

    // Deleting one's own post.
    let (s, _, v) = p.send_as(Method::DELETE, &path, None, Some(&alice)).await;
    assert_eq!(s, 204, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_bearer_mode_with_issuer_and_audience() {
    let key = EcKey::generate("campus-1");
    let stranger = EcKey::generate("campus-1");
    let jwks = JwksServer::start(&[&key]).await;
    let mut p = Platform::new().await;
    p.start_api_with(&[
        "--auth-mode",
        "jwt",
        "--auth-jwks-url",
        &jwks.url,
        "--auth-jwt-issuer",
        "https://idp.campus.test",
        "--auth-jwt-audience",
        "campus",
    ])
    .await;
    let token = |user: u64, ttl: i64, aud: &str| {
        let mut c = claims(user, ttl);
        c["iss"] = json!("https://idp.campus.test");
        c["aud"] = json!(aud);
        c
    };
    let carol = key.sign(&token(3, 300, "campus"));
    let dave = key.sign(&token(4, 300, "campus"));
    let send = |method: Method, path: String, body: Option<Value>, bearer: String| {
        let p = &p;
        async move { p.send_as(method, &path, body, Some(&bearer)).await }
    };
    for (what, bearer) in [
        (
            "signed by a key the JWKS does not hold (its kid)",
            stranger.sign(&token(3, 300, "campus")),
        ),
        ("expired", key.sign(&token(3, -3600, "campus"))),
        ("another audience", key.sign(&token(3, 300, "billing"))),
    ] {
        assert_refused(
            what,
            send(
                Method::POST,
                "/posts".into(),
                Some(post_body(Some(3))),
                bearer,
            )
            .await,
            401,
            "invalid_token",
        );
    }
    assert_refused(
        "carol posting as dave",
        send(
            Method::POST,
            "/posts".into(),
            Some(post_body(Some(4))),
            carol.clone(),
        )
        .await,
        403,
        "forbidden",
    );
    let (s, _, post) = send(
        Method::POST,
        "/posts".into(),
        Some(post_body(Some(3))),
        carol.clone(),
    )
    .await;
    assert_eq!((s, post["userId"].as_u64()), (201, Some(3)), "{post}");
    let path = format!("/posts/{}", post["id"]);
    let edit = json!({"title": "t", "content": "c", "categoryId": 1});
    assert_refused(
        "dave editing carol's post",
        send(Method::PUT, path.clone(), Some(edit.clone()), dave.clone()).await,
        403,
        "forbidden",
    );
    let (s, _, v) = send(Method::PUT, path, Some(edit), carol).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(jwks.fetches(), 1, "the JWKS was fetched once and cached");
}
