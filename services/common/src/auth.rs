//! Who calls an API (feature `http-api`).
//!
//! - Mode `none` (the default, the course's shape): nobody is authenticated; a request acts for the
//!   `userId` it names in its body, path or query.
//! - Mode `jwt`: every request that acts for a user carries `Authorization: Bearer <JWT>`. The token
//!   is verified with [`jsonwebtoken`] against an HS256 shared secret, a PEM public key (RSA, EC or
//!   Ed25519) or the keys of a JWKS (fetched with reqwest, cached, fetched again — at most once per
//!   `--auth-jwks-min-refresh-ms` — when a token names an unknown `kid`); `exp` (required) and `nbf`
//!   are checked, and `iss`/`aud` when configured. The user is the configured claim (default
//!   `sub`): a positive integer or a string of one.
//!
//! The [`Caller`] extractor gives the handler the authenticated user (none in mode `none`). Its
//! rejections use the JSON error shape: a missing token is `401 unauthorized`, an invalid, expired
//! or unverifiable one `401 invalid_token`, both with `WWW-Authenticate: Bearer`; a JWKS that
//! cannot be fetched when no key is cached is `503`. A `userId` that differs from the token's user
//! is `403 forbidden` ([`Caller::acting_for`], [`Caller::ensure`]).

use std::collections::HashSet;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::{AuthArgs, ExposeSecret};
use crate::http::ApiError;

/// How an API learns who calls it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Nobody is authenticated: a request acts for the `userId` it names (the course's APIs).
    #[default]
    None,
    /// A JWT bearer token names the user.
    Jwt,
}

/// The smallest HS256 secret accepted: 256 bits, the hash's size (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// The error code of a request without a bearer token.
pub const UNAUTHORIZED: &str = "unauthorized";
/// The error code of a token that is malformed, badly signed, expired or names no user.
pub use crate::http::INVALID_TOKEN;
/// The error code of a request that names a user other than the token's.
pub const FORBIDDEN: &str = "forbidden";

/// The verifier an API shares between its handlers: cheap to clone.
#[derive(Clone, Default)]
pub struct Auth {
    jwt: Option<Arc<Jwt>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Mode `none`.
    pub fn none() -> Self {
        Self::default()
    }

    /// The verifier the arguments describe; a contradictory or unusable configuration is an error
    /// that says which setting to fix. Nothing is fetched here (a JWKS is fetched on first use).
    pub fn from_args(args: &AuthArgs) -> anyhow::Result<Self> {
        let secret = args
            .jwt_hs256_key
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty());
        let inline_key = given(&args.jwt_public_key);
        let jwks_url = given(&args.jwks_url);
        let algorithm = given(&args.jwt_algorithm);
        if args.mode == AuthMode::None {
            let set: Vec<&str> = [
                (secret.is_some(), "AUTH_JWT_SECRET"),
                (inline_key.is_some(), "AUTH_JWT_PUBLIC_KEY"),
                (
                    args.jwt_public_key_file.is_some(),
                    "AUTH_JWT_PUBLIC_KEY_FILE",
                ),
                (jwks_url.is_some(), "AUTH_JWKS_URL"),
                (algorithm.is_some(), "AUTH_JWT_ALGORITHM"),
                (given(&args.issuer).is_some(), "AUTH_JWT_ISSUER"),
                (given(&args.audience).is_some(), "AUTH_JWT_AUDIENCE"),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
            anyhow::ensure!(
                set.is_empty(),
                "{} set while AUTH_MODE is none: no token would be checked; set AUTH_MODE=jwt, or unset {}",
                set.join(", "),
                if set.len() == 1 { "it" } else { "them" }
            );
            return Ok(Self::none());
        }
        if inline_key.is_some() && args.jwt_public_key_file.is_some() {
            anyhow::bail!("give AUTH_JWT_PUBLIC_KEY or AUTH_JWT_PUBLIC_KEY_FILE, not both");
        }
        let public_key = match (&args.jwt_public_key_file, inline_key) {
            (Some(path), _) => Some(std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "AUTH_JWT_PUBLIC_KEY_FILE: cannot read {}: {e}",
                    path.display()
                )
            })?),
            (None, Some(k)) => Some(k.to_owned()),
            (None, None) => None,
        };
        let sources = usize::from(secret.is_some())
            + usize::from(public_key.is_some())
            + usize::from(jwks_url.is_some());
        anyhow::ensure!(
            sources == 1,
            "AUTH_MODE=jwt needs exactly one key source: AUTH_JWT_SECRET (HS256), AUTH_JWT_PUBLIC_KEY[_FILE] (PEM) or AUTH_JWKS_URL; {} given",
            sources
        );
        let algorithm = algorithm
            .map(|a| {
                Algorithm::from_str(a).map_err(|_| {
                    anyhow::anyhow!(
                        "AUTH_JWT_ALGORITHM `{a}` is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
                    )
                })
            })
            .transpose()?;
        let keys = if let Some(secret) = secret {
            anyhow::ensure!(
                secret.len() >= MIN_SECRET_BYTES,
                "AUTH_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (HS256 needs a 256-bit key), got {}",
                secret.len()
            );
            let key = DecodingKey::from_secret(secret.as_bytes())
                .map_err(|e| anyhow::anyhow!("AUTH_JWT_SECRET: {e}"))?;
            Keys::Static(StaticKey::new(key, algorithm, Algorithm::HS256)?)
        } else if let Some(pem) = public_key {
            let (key, default) = parse_public_pem(pem.trim().as_bytes())?;
            Keys::Static(StaticKey::new(key, algorithm, default)?)
        } else {
            let url = jwks_url.expect("one source is given");
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("AUTH_JWKS_URL `{url}` is not a URL: {e}"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "https" | "http"),
                "AUTH_JWKS_URL must be an http(s) URL, got `{url}`"
            );
            if algorithm.is_some_and(|a| a.family() == AlgorithmFamily::Hmac) {
                anyhow::bail!("AUTH_JWT_ALGORITHM: a JWKS serves public keys, not HMAC secrets");
            }
            Keys::Jwks(Jwks::new(
                parsed,
                algorithm,
                Duration::from_secs(args.jwks_cache_secs),
                args.jwks_min_refresh,
            )?)
        };
        let user_claim = args.user_claim.trim();
        anyhow::ensure!(!user_claim.is_empty(), "AUTH_USER_CLAIM must not be empty");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = args.leeway_secs;
        validation.validate_nbf = true;
        let mut required = HashSet::from(["exp".to_owned()]);
        match given(&args.issuer) {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.insert("iss".to_owned());
            }
            None => validation.iss = None,
        }
        match given(&args.audience) {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.insert("aud".to_owned());
            }
            // Without a configured audience a token's `aud` names someone else's API or nobody's:
            // not this check's business (jsonwebtoken would refuse every token that has one).
            None => validation.validate_aud = false,
        }
        validation.required_spec_claims = required;
        Ok(Self {
            jwt: Some(Arc::new(Jwt {
                keys,
                validation,
                user_claim: user_claim.to_owned(),
            })),
        })
    }

    pub fn mode(&self) -> AuthMode {
        if self.jwt.is_some() {
            AuthMode::Jwt
        } else {
            AuthMode::None
        }
    }

    /// Describes the configuration for the start-up log (never a key).
    pub fn describe(&self) -> String {
        match &self.jwt {
            None => "none: requests act for the userId they name".to_owned(),
            Some(j) => {
                let keys = match &j.keys {
                    Keys::Static(k) => format!("a static {:?} key", k.algorithm),
                    Keys::Jwks(k) => format!("the JWKS at {}", k.url),
                };
                format!(
                    "jwt: bearer tokens checked against {keys}, user from claim `{}`",
                    j.user_claim
                )
            }
        }
    }

    /// The caller of a request with these headers: anonymous in mode `none`, else the token's user.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(jwt) = &self.jwt else {
            return Ok(Caller::anonymous());
        };
        let token = bearer_token(headers)?;
        let user = jwt.verify(token).await?;
        Ok(Caller { user: Some(user) })
    }
}

/// The authenticated user of a request, if the API authenticates (mode `jwt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caller {
    user: Option<u64>,
}

impl Caller {
    /// Nobody is authenticated (mode `none`).
    pub fn anonymous() -> Self {
        Self { user: None }
    }

    /// The token's user (mode `jwt`); every user id a token gives is within `1..=i64::MAX`.
    pub fn authenticated(user: u64) -> Self {
        Self { user: Some(user) }
    }

    /// The token's user; `None` in mode `none`.
    pub fn user(&self) -> Option<u64> {
        self.user
    }

    /// The user a request acts for. Without a token (mode `none`): `given`, whatever the client
    /// named (the handler checks it as before). With one: the token's user — a `given` id that
    /// differs is `403 forbidden`; an omitted one is the token's.
    pub fn acting_for<T>(&self, given: Option<T>, field: &str) -> Result<Option<T>, ApiError>
    where
        T: Copy + PartialEq + Display + TryFrom<u64>,
    {
        let Some(user) = self.user else {
            return Ok(given);
        };
        let own = T::try_from(user).map_err(|_| invalid("the token's user id is out of range"))?;
        match given {
            Some(g) if g != own => Err(forbidden(format!(
                "{field} {g} is not the authenticated user ({user})"
            ))),
            _ => Ok(Some(own)),
        }
    }

    /// `403 forbidden` unless the token's user is `owner` (`what` says whose the thing is in the
    /// message); always allowed in mode `none`.
    pub fn ensure<T>(&self, owner: T, what: impl FnOnce() -> String) -> Result<(), ApiError>
    where
        T: Copy + PartialEq + TryFrom<u64>,
    {
        let Some(user) = self.user else {
            return Ok(());
        };
        match T::try_from(user) {
            Ok(own) if own == owner => Ok(()),
            _ => Err(forbidden(format!(
                "{}: the authenticated user ({user}) may not act for another user",
                what()
            ))),
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Auth::from_ref(state).caller(&parts.headers).await
    }
}

/// `403 forbidden` in the JSON error shape.
pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, FORBIDDEN, message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, INVALID_TOKEN, message)
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case, RFC 7235).
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
            "a bearer token is required (Authorization: Bearer <JWT>)",
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value
        .to_str()
        .map_err(|_| invalid("the Authorization header is not text"))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid("the bearer token is empty"));
    }
    Ok(token)
}

/// A setting that is given and not blank.
fn given(o: &Option<String>) -> Option<&str> {
    o.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A PEM public key and the algorithm it signs with by default.
fn parse_public_pem(pem: &[u8]) -> anyhow::Result<(DecodingKey, Algorithm)> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((k, Algorithm::RS256));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        // A P-384 point is 97 bytes uncompressed (P-256: 65).
        let alg = match k.try_get_as_bytes().map(<[u8]>::len) {
            Ok(97) => Algorithm::ES384,
            _ => Algorithm::ES256,
        };
        return Ok((k, alg));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((k, Algorithm::EdDSA));
    }
    anyhow::bail!(
        "AUTH_JWT_PUBLIC_KEY is not a PEM public key (RSA, EC P-256/P-384 or Ed25519, `-----BEGIN PUBLIC KEY-----`)"
    )
}

struct Jwt {
    keys: Keys,
    /// Everything but the algorithms, which come with each key.
    validation: Validation,
    user_claim: String,
}

enum Keys {
    Static(StaticKey),
    Jwks(Jwks),
}

/// One key with the one algorithm it is accepted for (no algorithm confusion: a token naming
/// another algorithm is refused before any verification).
#[derive(Clone)]
struct StaticKey {
    key: DecodingKey,
    algorithm: Algorithm,
    kid: Option<String>,
}

impl StaticKey {
    fn new(
        key: DecodingKey,
        configured: Option<Algorithm>,
        default: Algorithm,
    ) -> anyhow::Result<Self> {
        let algorithm = configured.unwrap_or(default);
        anyhow::ensure!(
            algorithm.family() == key.family(),
            "AUTH_JWT_ALGORITHM {algorithm:?} does not fit the key (a {:?} key)",
            key.family()
        );
        Ok(Self {
            key,
            algorithm,
            kid: None,
        })
    }
}

impl Jwt {
    async fn verify(&self, token: &str) -> Result<u64, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("the bearer token is not a JWT ({})", reason(&e))))?;
        let claims = match &self.keys {
            Keys::Static(k) => {
                if header.alg != k.algorithm {
                    return Err(invalid(format!(
                        "the token is signed with {:?}; only {:?} is accepted",
                        header.alg, k.algorithm
                    )));
                }
                self.decode(token, k).map_err(|e| invalid(reason(&e)))?
            }
            Keys::Jwks(jwks) => {
                // Without a `kid` every cached key of the token's algorithm is tried.
                let candidates = jwks.keys_for(header.kid.as_deref(), header.alg).await?;
                let mut outcome = Err(invalid("no key verifies the token"));
                for k in &candidates {
                    match self.decode(token, k) {
                        Ok(claims) => {
                            outcome = Ok(claims);
                            break;
                        }
                        Err(e) => {
                            let signature = *e.kind() == ErrorKind::InvalidSignature;
                            outcome = Err(invalid(reason(&e)));
                            if !signature {
                                break;
                            }
                        }
                    }
                }
                outcome?
            }
        };
        self.user_of(&claims)
    }

    fn decode(
        &self,
        token: &str,
        k: &StaticKey,
    ) -> Result<Map<String, Value>, jsonwebtoken::errors::Error> {
        let mut validation = self.validation.clone();
        validation.algorithms = vec![k.algorithm];
        jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &validation).map(|d| d.claims)
    }

    fn user_of(&self, claims: &Map<String, Value>) -> Result<u64, ApiError> {
        let claim = &self.user_claim;
        let id = match claims.get(claim) {
            None | Some(Value::Null) => {
                return Err(invalid(format!("the token has no `{claim}` claim")));
            }
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match id {
            Some(id) if id >= 1 && i64::try_from(id).is_ok() => Ok(id),
            _ => Err(invalid(format!(
                "the token's `{claim}` claim is not a user id (a positive integer)"
            ))),
        }
    }
}

/// Why a token was refused, for the 401's message (never a key or the token itself).
fn reason(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature is not valid".to_owned(),
        ErrorKind::InvalidIssuer => "the token's issuer (iss) is not accepted".to_owned(),
        ErrorKind::InvalidAudience => "the token's audience (aud) is not accepted".to_owned(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "the token is malformed".to_owned(),
        _ => "the token cannot be verified".to_owned(),
    }
}

/// A JWKS: its keys cached, fetched again when stale or when a token names a key not in the
/// cache — at most once per `min_refresh`, one fetch at a time.
struct Jwks {
    url: reqwest::Url,
    client: reqwest::Client,
    /// Only keys of this algorithm are used, when set.
    algorithm: Option<Algorithm>,
    max_age: Duration,
    min_refresh: Duration,
    cache: RwLock<JwksCache>,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct JwksCache {
    keys: Vec<StaticKey>,
    /// When the keys were fetched (never: `None`).
    fetched: Option<Instant>,
    /// When a fetch was last started, successful or not (the rate limit).
    attempted: Option<Instant>,
}

/// How long one JWKS request may take.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS accepted.
const JWKS_MAX_BYTES: usize = 256 * 1024;

impl Jwks {
    fn new(
        url: reqwest::Url,
        algorithm: Option<Algorithm>,
        max_age: Duration,
        min_refresh: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("AUTH_JWKS_URL: cannot build an HTTP client: {e}"))?;
        Ok(Self {
            url,
            client,
            algorithm,
            max_age,
            min_refresh,
            cache: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The cached keys a token with this `kid` and algorithm may be signed with (fetching the set
    /// first when it is stale or has no such key, rate limits allowing).
    async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<StaticKey>, ApiError> {
        if self.algorithm.is_some_and(|a| a != alg) {
            return Err(invalid(format!(
                "the token is signed with {alg:?}; only {:?} is accepted",
                self.algorithm.expect("checked")
            )));
        }
        let (found, stale) = self.lookup(kid, alg);
        if !found.is_empty() && !stale {
            return Ok(found);
        }
        let fetched = self.refresh().await;
        let (found, _) = self.lookup(kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        match fetched {
            // No key has ever been fetched: the issuer's outage, not the client's fault.
            Err(e) if !self.ever_fetched() => {
                tracing::warn!(url = %self.url, error = %e, "JWKS unavailable");
                Err(ApiError::unavailable(
                    "the token signing keys cannot be fetched; try again shortly",
                ))
            }
            _ => Err(invalid(match kid {
                Some(kid) => format!("the token's signing key `{kid}` is unknown"),
                None => format!("no {alg:?} signing key is known"),
            })),
        }
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> (Vec<StaticKey>, bool) {
        let cache = self.cache.read().expect("poisoned");
        let found = cache
            .keys
            .iter()
            .filter(|k| k.algorithm == alg && (kid.is_none() || k.kid.as_deref() == kid))
            .cloned()
            .collect();
        let stale = cache.fetched.is_none_or(|at| at.elapsed() >= self.max_age);
        (found, stale)
    }

    fn ever_fetched(&self) -> bool {
        self.cache.read().expect("poisoned").fetched.is_some()
    }

    /// Fetches the set unless a fetch started less than `min_refresh` ago (then what is cached
    /// stays); concurrent callers wait for the one fetch.
    async fn refresh(&self) -> Result<(), String> {
        let _one = self.fetching.lock().await;
        {
            let mut cache = self.cache.write().expect("poisoned");
            if cache
                .attempted
                .is_some_and(|at| at.elapsed() < self.min_refresh)
            {
                return Err("rate limited".to_owned());
            }
            cache.attempted = Some(Instant::now());
        }
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
                let mut cache = self.cache.write().expect("poisoned");
                cache.keys = keys;
                cache.fetched = Some(Instant::now());
                Ok(())
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the cached keys");
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<StaticKey>, String> {
        let res = self
            .client
            .get(self.url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| crate::error::chain(&e))?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status()));
        }
        if res
            .content_length()
            .is_some_and(|n| n > JWKS_MAX_BYTES as u64)
        {
            return Err("the JWKS is too large".to_owned());
        }
        let body = res.bytes().await.map_err(|e| crate::error::chain(&e))?;
        if body.len() > JWKS_MAX_BYTES {
            return Err("the JWKS is too large".to_owned());
        }
        parse_jwks(&body, self.algorithm)
    }
}

/// The usable keys of a JWKS document: signature keys (`use` absent or `sig`) of a public-key
/// algorithm — the key's `alg`, else the one its type implies. Keys that cannot be used are
/// skipped (a set may hold encryption keys or algorithms this service does not know).
fn parse_jwks(body: &[u8], only: Option<Algorithm>) -> Result<Vec<StaticKey>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err("no `keys` array".to_owned());
    };
    let mut out = Vec::new();
    for k in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let Some(algorithm) = jwk_algorithm(&jwk) else {
            continue;
        };
        if algorithm.family() == AlgorithmFamily::Hmac || only.is_some_and(|a| a != algorithm) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        if key.family() != algorithm.family() {
            continue;
        }
        out.push(StaticKey {
            key,
            algorithm,
            kid: jwk.common.key_id.clone(),
        });
    }
    Ok(out)
}

fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return Algorithm::from_str(&alg.to_string()).ok();
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}

/// The OpenAPI document's `bearer` security scheme (HTTP bearer, JWT). Operations that act for a
/// user name it as optional (`security: [{}, {bearer: []}]`): required in mode `jwt`, ignored in
/// mode `none`.
pub struct BearerSecurity;

/// The name of the scheme in `components.securitySchemes`.
pub const BEARER_SCHEME: &str = "bearer";

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT naming the user (claim `sub` by default). Required when the API runs with AUTH_MODE=jwt; ignored in the default mode, where a request acts for the userId it names.",
                    ))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mode: AuthMode) -> AuthArgs {
        AuthArgs {
            mode,
            ..AuthArgs::default()
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn hs256(claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    fn hs_auth(f: impl FnOnce(&mut AuthArgs)) -> anyhow::Result<Auth> {
        let mut a = args(AuthMode::Jwt);
        a.jwt_hs256_key = Some(SECRET.to_owned().into());
        f(&mut a);
        Auth::from_args(&a)
    }

    #[test]
    fn bad_configurations_are_refused_with_the_setting_to_fix() {
        let err = |a: AuthArgs| Auth::from_args(&a).unwrap_err().to_string();
        let mut a = args(AuthMode::None);
        a.jwks_url = Some("https://idp/jwks".into());
        assert!(err(a).contains("AUTH_JWKS_URL set while AUTH_MODE is none"));
        assert!(err(args(AuthMode::Jwt)).contains("exactly one key source"));
        let mut a = args(AuthMode::Jwt);
        a.jwt_hs256_key = Some("short".to_owned().into());
        assert!(err(a).contains("at least 32 bytes"));
        let mut a = args(AuthMode::Jwt);
        a.jwt_hs256_key = Some(SECRET.to_owned().into());
        a.jwks_url = Some("https://idp/jwks".into());
        assert!(err(a).contains("exactly one key source"));
        let mut a = args(AuthMode::Jwt);
        a.jwt_public_key = Some("not a key".into());
        assert!(err(a).contains("not a PEM public key"));
        let mut a = args(AuthMode::Jwt);
        a.jwks_url = Some("ftp://idp/jwks".into());
        assert!(err(a).contains("http(s) URL"));
        let e = hs_auth(|a| a.jwt_algorithm = Some("RS256".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not fit the key"), "{e}");
        let e = hs_auth(|a| a.jwt_algorithm = Some("none".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not one of"), "{e}");
        assert_eq!(
            Auth::from_args(&args(AuthMode::None)).unwrap().mode(),
            AuthMode::None
        );
        // The secret never prints, neither in the settings nor in the verifier.
        let mut a = args(AuthMode::Jwt);
        a.jwt_hs256_key = Some(SECRET.to_owned().into());
        let auth = Auth::from_args(&a).unwrap();
        let shown = format!("{a:?} {auth:?} {}", auth.describe());
        assert!(!shown.contains(SECRET), "{shown}");
    }

    #[tokio::test]
    async fn mode_none_ignores_any_token_and_acts_for_the_named_user() {
        let auth = Auth::none();
        let caller = auth.caller(&bearer("garbage")).await.unwrap();
        assert_eq!(caller.user(), None);
        assert_eq!(caller.acting_for(Some(7u64), "userId").unwrap(), Some(7));
        assert_eq!(caller.acting_for::<i64>(None, "userId").unwrap(), None);
        caller.ensure(7u64, || "post 1".into()).unwrap();
    }

    #[tokio::test]
    async fn hs256_tokens_name_the_user_and_bad_ones_are_401() {
        let auth = hs_auth(|a| {
            a.issuer = Some("campus-idp".into());
            a.audience = Some("campus".into());
        })
        .unwrap();
        let good = json_claims(42, "campus-idp", "campus", now() + 300);
        let caller = auth
            .caller(&bearer(&hs256(good.clone(), SECRET)))
            .await
            .unwrap();
        assert_eq!(caller.user(), Some(42));
        assert_eq!(caller.acting_for(None::<u64>, "userId").unwrap(), Some(42));
        assert_eq!(caller.acting_for(Some(42i64), "userId").unwrap(), Some(42));
        let e = caller.acting_for(Some(43u64), "userId").unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, FORBIDDEN));
        assert!(caller.ensure(42u64, || "post 1".into()).is_ok());
        assert_eq!(
            caller.ensure(5u64, || "post 1".into()).unwrap_err().status,
            StatusCode::FORBIDDEN
        );

        let refused = |headers: HeaderMap| {
            let auth = auth.clone();
            async move { auth.caller(&headers).await.unwrap_err() }
        };
        let e = refused(HeaderMap::new()).await;
        assert_eq!((e.status, e.code), (StatusCode::UNAUTHORIZED, UNAUTHORIZED));
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, "Basic dTpw".parse().unwrap());
        assert_eq!(refused(basic).await.code, UNAUTHORIZED);
        for (claims, secret, why) in [
            (
                good.clone(),
                "another-secret-another-secret-xx",
                "signature",
            ),
            (
                json_claims(42, "campus-idp", "campus", now() - 3600),
                SECRET,
                "expired",
            ),
            (
                json_claims(42, "evil", "campus", now() + 300),
                SECRET,
                "issuer",
            ),
            (
                json_claims(42, "campus-idp", "other", now() + 300),
                SECRET,
                "audience",
            ),
            (
                serde_json::json!({"sub": "42", "iss": "campus-idp", "aud": "campus"}),
                SECRET,
                "`exp`",
            ),
            (
                json_claims("alice", "campus-idp", "campus", now() + 300),
                SECRET,
                "not a user id",
            ),
            (
                json_claims(0, "campus-idp", "campus", now() + 300),
                SECRET,
                "not a user id",
            ),
        ] {
            let e = refused(bearer(&hs256(claims, secret))).await;
            assert_eq!(
                (e.status, e.code),
                (StatusCode::UNAUTHORIZED, INVALID_TOKEN),
                "{why}"
            );
            assert!(e.message.contains(why), "{why}: {}", e.message);
        }
        let e = refused(bearer("not.a.jwt")).await;
        assert_eq!(e.code, INVALID_TOKEN);
        // The answer says how to authenticate.
        use axum::response::IntoResponse;
        let res = refused(HeaderMap::new()).await.into_response();
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let res = refused(bearer("x.y.z")).await.into_response();
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
    }

    #[tokio::test]
    async fn the_user_claim_is_configurable_and_may_be_a_numeric_string() {
        let auth = hs_auth(|a| a.user_claim = "uid".into()).unwrap();
        let token = hs256(
            serde_json::json!({"sub": "x", "uid": "17", "exp": now() + 60}),
            SECRET,
        );
        assert_eq!(auth.caller(&bearer(&token)).await.unwrap().user(), Some(17));
        let token = hs256(serde_json::json!({"sub": 17, "exp": now() + 60}), SECRET);
        let e = auth.caller(&bearer(&token)).await.unwrap_err();
        assert!(e.message.contains("no `uid` claim"), "{}", e.message);
    }

    #[tokio::test]
    async fn an_algorithm_other_than_the_keys_is_refused() {
        // The classic confusion: a token "signed" with alg none, or HS256 over a public key.
        let auth = hs_auth(|_| {}).unwrap();
        let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
        let body = base64_url(&format!(r#"{{"sub":"1","exp":{}}}"#, now() + 60));
        let e = auth
            .caller(&bearer(&format!("{header}.{body}.")))
            .await
            .unwrap_err();
        assert_eq!(e.code, INVALID_TOKEN);
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS384),
            &serde_json::json!({"sub": "1", "exp": now() + 60}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap();
        let e = auth.caller(&bearer(&token)).await.unwrap_err();
        assert!(e.message.contains("only HS256"), "{}", e.message);
    }

    fn base64_url(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn json_claims(sub: impl Into<Value>, iss: &str, aud: &str, exp: i64) -> Value {
        serde_json::json!({"sub": sub.into(), "iss": iss, "aud": aud, "exp": exp, "iat": now()})
    }

    #[test]
    fn jwks_keep_signature_keys_of_public_key_algorithms() {
        let doc = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "a", "use": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "weird", "kid": "w"}
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes(), None).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| (k.kid.clone(), k.algorithm)).collect();
        assert_eq!(kids, [(Some("a".to_owned()), Algorithm::ES256)]);
        assert!(parse_jwks(b"{}", None).is_err());
        assert!(
            parse_jwks(doc.to_string().as_bytes(), Some(Algorithm::RS256))
                .unwrap()
                .is_empty()
        );
    }
}
