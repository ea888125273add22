//! The bearer mode's public-key paths: a PEM public key (inline and from a file) and a JWKS served
//! by a tiny axum server — keys cached, fetched again for an unknown `kid` at most once per
//! `--auth-jwks-min-refresh-ms`, an issuer outage answered 503 only while no key was ever fetched.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use campus_common::auth::{Auth, AuthMode, INVALID_TOKEN};
use campus_common::config::AuthArgs;
use campus_testkit::jwt::{EcKey, JwksServer, claims};

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

fn jwt_args() -> AuthArgs {
    AuthArgs {
        mode: AuthMode::Jwt,
        ..AuthArgs::default()
    }
}

#[tokio::test]
async fn a_pem_public_key_verifies_es256_tokens_inline_or_from_a_file() {
    let key = EcKey::generate("k1");
    let other = EcKey::generate("k2");
    let mut args = jwt_args();
    args.jwt_public_key = Some(key.public_pem());
    let inline = Auth::from_args(&args).unwrap();
    let dir = std::env::temp_dir().join(format!("campus-auth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key.pem");
    std::fs::write(&file, key.public_pem()).unwrap();
    let mut args = jwt_args();
    args.jwt_public_key_file = Some(file.clone());
    let from_file = Auth::from_args(&args).unwrap();
    for auth in [&inline, &from_file] {
        let caller = auth
            .caller(&bearer(&key.sign(&claims(9, 60))))
            .await
            .unwrap();
        assert_eq!(caller.user(), Some(9));
        let e = auth
            .caller(&bearer(&other.sign(&claims(9, 60))))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNAUTHORIZED, INVALID_TOKEN)
        );
        assert!(e.message.contains("signature"), "{}", e.message);
        // An HS256 token made with the public key as its secret (algorithm confusion) is refused.
        let forged = campus_testkit::jwt::hs256(&key.public_pem(), &claims(1, 60));
        let e = auth.caller(&bearer(&forged)).await.unwrap_err();
        assert!(e.message.contains("only ES256"), "{}", e.message);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // Both at once is a start-up error.
    let mut args = jwt_args();
    args.jwt_public_key = Some(key.public_pem());
    args.jwt_public_key_file = Some(file);
    assert!(Auth::from_args(&args).is_err());
}

#[tokio::test]
async fn a_jwks_is_cached_and_fetched_again_for_an_unknown_kid_at_most_once_per_interval() {
    let old = EcKey::generate("old");
    let new = EcKey::generate("new");
    let jwks = JwksServer::start(&[&old]).await;
    let mut args = jwt_args();
    args.jwks_url = Some(jwks.url.clone());
    args.jwks_min_refresh = Duration::from_millis(800);
    let auth = Auth::from_args(&args).unwrap();
    assert_eq!(jwks.fetches(), 0, "nothing is fetched at start-up");

    for user in 1..=5 {
        let c = auth
            .caller(&bearer(&old.sign(&claims(user, 60))))
            .await
            .unwrap();
        assert_eq!(c.user(), Some(user));
    }
    assert_eq!(jwks.fetches(), 1, "the set is cached");
    // A token without a kid is checked against the keys of its algorithm.
    let c = auth
        .caller(&bearer(&old.sign_without_kid(&claims(6, 60))))
        .await
        .unwrap();
    assert_eq!(c.user(), Some(6));

    // The issuer rotates to a new key. The first token naming it is refused (the set was fetched
    // less than the interval ago), and a flood of made-up kids fetches nothing.
    jwks.publish(&[&old, &new]);
    let e = auth
        .caller(&bearer(&new.sign(&claims(7, 60))))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.code),
        (StatusCode::UNAUTHORIZED, INVALID_TOKEN)
    );
    assert!(e.message.contains("`new` is unknown"), "{}", e.message);
    let mut flood = Vec::new();
    for i in 0..20 {
        let forged = EcKey::generate(&format!("made-up-{i}"));
        let auth = auth.clone();
        flood.push(tokio::spawn(async move {
            auth.caller(&bearer(&forged.sign(&claims(1, 60)))).await
        }));
    }
    for f in flood {
        assert_eq!(
            f.await.unwrap().unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        jwks.fetches(),
        1,
        "unknown kids within the interval fetch nothing"
    );

    // After the interval, the unknown kid makes one fetch, which finds it.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let c = auth
        .caller(&bearer(&new.sign(&claims(7, 60))))
        .await
        .unwrap();
    assert_eq!(c.user(), Some(7));
    assert_eq!(jwks.fetches(), 2);

    // The issuer goes down: the cached keys keep working.
    jwks.set_available(false);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let c = auth
        .caller(&bearer(&old.sign(&claims(8, 60))))
        .await
        .unwrap();
    assert_eq!(c.user(), Some(8));
}

#[tokio::test]
async fn an_unreachable_jwks_with_nothing_cached_is_503_not_401() {
    let key = EcKey::generate("k");
    let jwks = JwksServer::start(&[&key]).await;
    jwks.set_available(false);
    let mut args = jwt_args();
    args.jwks_url = Some(jwks.url.clone());
    args.jwks_min_refresh = Duration::from_millis(300);
    let auth = Auth::from_args(&args).unwrap();
    let e = auth
        .caller(&bearer(&key.sign(&claims(1, 60))))
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE, "{}", e.message);
    jwks.set_available(true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let c = auth
        .caller(&bearer(&key.sign(&claims(1, 60))))
        .await
        .unwrap();
    assert_eq!(c.user(), Some(1));
    assert_eq!(jwks.fetches(), 2);
}
