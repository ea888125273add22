//! Bearer tokens for the APIs' `jwt` mode: HS256 tokens from a shared secret, ES256 tokens from a
//! P-256 key generated per test, and [`JwksServer`], a tiny JWKS endpoint (axum on port 0) that
//! counts its fetches and can rotate or withdraw its keys; [`send_as`], a request with a token.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// An HS256 secret long enough for the services (at least 32 bytes).
pub const HS256_SECRET: &str = "campus-test-hs256-secret-0123456789abcdef";

/// Seconds since the epoch.
pub fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Claims naming `user` (`sub`), issued now, expiring in `ttl_secs` (negative: expired).
pub fn claims(user: impl Into<Value>, ttl_secs: i64) -> Value {
    let now = now();
    json!({"sub": user.into(), "iat": now, "exp": now + ttl_secs})
}

/// `claims` signed with HS256 and `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("a secret"),
    )
    .expect("sign")
}

/// A P-256 signing key made for one test: ES256 tokens, its JWK and its PEM public key.
pub struct EcKey {
    pub kid: String,
    encoding: EncodingKey,
    /// The public point's coordinates, base64url.
    x: String,
    y: String,
    spki_der: Vec<u8>,
}

impl EcKey {
    pub fn generate(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generate");
        let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
        // The uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        let spki_der = pair
            .public_key()
            .as_der()
            .expect("SubjectPublicKeyInfo")
            .as_ref()
            .to_vec();
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..]),
            spki_der,
        }
    }

    /// `claims` signed with ES256, the header naming this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// `claims` signed with ES256 without a `kid`.
    pub fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding).expect("sign")
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
               "x": self.x, "y": self.y})
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.spki_der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }
}

/// A JWKS endpoint on 127.0.0.1 (port 0): `GET /jwks.json` answers the published keys, or 503
/// while [`JwksServer::set_available`] says so. Runs until the test's runtime ends.
#[derive(Clone)]
pub struct JwksServer {
    /// `http://127.0.0.1:<port>/jwks.json`.
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    available: Arc<AtomicBool>,
}

impl JwksServer {
    pub async fn start(keys: &[&EcKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = Self {
            url: format!("http://{}/jwks.json", listener.local_addr().expect("addr")),
            keys: Arc::default(),
            fetches: Arc::default(),
            available: Arc::new(AtomicBool::new(true)),
        };
        server.publish(keys);
        let state = server.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let s = state.clone();
                async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    if !s.available.load(Ordering::SeqCst) {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let keys = s.keys.lock().expect("poisoned").clone();
                    Ok(axum::Json(json!({ "keys": keys })))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    /// Replaces the published keys (a rotation).
    pub fn publish(&self, keys: &[&EcKey]) {
        *self.keys.lock().expect("poisoned") = keys.iter().map(|k| k.jwk()).collect();
    }

    /// `false`: every fetch is answered 503 (the issuer is down).
    pub fn set_available(&self, up: bool) {
        self.available.store(up, Ordering::SeqCst);
    }

    /// How many times the set was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// One request with this bearer token (or none): the status, the `WWW-Authenticate` header and the
/// JSON body (`null` when there is none).
pub async fn send_as(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<serde_json::Value>,
    bearer: Option<&str>,
) -> (u16, String, serde_json::Value) {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}
