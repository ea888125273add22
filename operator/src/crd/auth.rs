//! Who the content and coupon APIs' requests act for: `spec.auth`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backing::SecretKeyRef;

/// Who the content and coupon APIs' requests act for (the log API has no users; the coupon admin
/// listener is never exposed and checks no token).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.mode != 'Jwt' || has(self.jwt)",
    "message": "mode Jwt needs jwt: a secretRef or a jwksUrl to verify tokens with",
}]))]
pub struct AuthSpec {
    /// `None` (the default, as in the course): a request acts for the `userId` it names, so anyone
    /// can post, follow, issue, list and use coupons as anyone. `Jwt`: the user comes from a
    /// bearer token (`Authorization: Bearer <JWT>`) checked as `jwt` says; no, an invalid or an
    /// expired token is 401, a `userId` (body, path or query) other than the token's is 403, and
    /// a post is changed or deleted only by its author. Public reads stay open.
    #[serde(default)]
    pub mode: AuthMode,
    /// How tokens are verified in mode `Jwt` (`AUTH_*` in the content and coupon API containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
}

/// How the APIs learn who calls them.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AuthMode {
    /// Requests act for the `userId` they name (the course's APIs).
    #[default]
    None,
    /// A JWT bearer token names the user.
    Jwt,
}

/// Token verification: a key from a Secret, or the keys of a JWKS. Exactly one of `secretRef` and
/// `jwksUrl`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.secretRef) != has(self.jwksUrl)",
        "message": "give exactly one of secretRef and jwksUrl",
    },
    {
        "rule": "!has(self.jwksUrl) || self.jwksUrl.startsWith('https://') || (has(self.allowInsecureJwksUrl) && self.allowInsecureJwksUrl)",
        "message": "jwksUrl must be https:// (whoever can change the keys on the way can sign as anyone); set allowInsecureJwksUrl: true for a plain-HTTP issuer you trust",
    },
    {
        "rule": "!has(self.jwksUrl) || !has(self.algorithm) || self.algorithm != 'HS256'",
        "message": "a JWKS serves public keys: algorithm HS256 needs a secretRef",
    },
]))]
pub struct JwtSpec {
    /// The Secret key holding what tokens are checked with: the HS256 shared secret, at least 32
    /// bytes (`algorithm: HS256`, the default; `AUTH_JWT_SECRET`), or a PEM public key
    /// (`algorithm: RS256` or `ES256`; `AUTH_JWT_PUBLIC_KEY`). Read by the pods through
    /// `secretKeyRef`, never copied into a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The one signing algorithm accepted (`AUTH_JWT_ALGORITHM`); with `secretRef` it also says what
    /// the Secret holds. Unset: HS256 with `secretRef`, each key's own `alg` with `jwksUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<JwtAlgorithm>,
    /// The issuer's JWKS, e.g. `https://idp.example/.well-known/jwks.json` (`AUTH_JWKS_URL`): its
    /// keys are cached and fetched again, at most every 10 s, when a token names an unknown `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub jwks_url: Option<String>,
    /// Allow a plain `http://` `jwksUrl` (an issuer on the cluster network you trust).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_jwks_url: bool,
    /// The issuer (`iss`) every token must name (`AUTH_JWT_ISSUER`); unset: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub issuer: Option<String>,
    /// An audience (`aud`) every token must name (`AUTH_JWT_AUDIENCE`); unset: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub audience: Option<String>,
    /// The claim holding the user id, a positive integer or a string of one (`AUTH_USER_CLAIM`);
    /// default `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub user_claim: Option<String>,
}

/// A JWT signing algorithm.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256 and an RSA public key.
    RS256,
    /// ECDSA on P-256 with SHA-256 and an EC public key.
    ES256,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
        }
    }
}

impl AuthSpec {
    /// What is wrong with the settings, as sentences (the CRD's CEL rules again, for a platform
    /// stored under an older CRD, and the shape of the values).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(jwt) = &self.jwt else {
            if self.mode == AuthMode::Jwt {
                out.push(
                    "auth.mode Jwt needs auth.jwt: a secretRef or a jwksUrl to verify tokens with"
                        .to_owned(),
                );
            }
            return out;
        };
        match (&jwt.secret_ref, &jwt.jwks_url) {
            (Some(_), Some(_)) => {
                out.push("auth.jwt: give either secretRef or jwksUrl, not both".to_owned())
            }
            (None, None) => {
                out.push("auth.jwt: one of secretRef and jwksUrl is required".to_owned())
            }
            _ => {}
        }
        if let Some(r) = &jwt.secret_ref
            && (r.name.is_empty() || r.key.is_empty())
        {
            out.push("auth.jwt.secretRef needs a Secret name and key".to_owned());
        }
        if let Some(url) = &jwt.jwks_url {
            let url = url.trim();
            if !(url.starts_with("https://")
                || (jwt.allow_insecure_jwks_url && url.starts_with("http://")))
            {
                out.push(format!(
                    "auth.jwt.jwksUrl must be https:// (whoever can change the keys on the way can sign as anyone), got `{url}`; \
                     set auth.jwt.allowInsecureJwksUrl: true for a plain-HTTP issuer you trust"
                ));
            }
            if jwt.algorithm == Some(JwtAlgorithm::HS256) {
                out.push(
                    "auth.jwt: a JWKS serves public keys: algorithm HS256 needs a secretRef"
                        .to_owned(),
                );
            }
        }
        for (what, v) in [
            ("issuer", &jwt.issuer),
            ("audience", &jwt.audience),
            ("userClaim", &jwt.user_claim),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                out.push(format!("auth.jwt.{what} must not be empty when given"));
            }
        }
        out
    }

    /// The verification settings in force: `Some` in mode `Jwt` only.
    pub fn jwt(&self) -> Option<&JwtSpec> {
        match self.mode {
            AuthMode::Jwt => self.jwt.as_ref(),
            AuthMode::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> AuthSpec {
        serde_yaml::from_str(yaml).expect("parses")
    }

    #[test]
    fn jwt_needs_exactly_one_key_source_and_a_safe_jwks_url() {
        assert!(AuthSpec::default().problems().is_empty());
        assert!(spec("{mode: None}").problems().is_empty());
        assert!(
            spec("{mode: Jwt, jwt: {secretRef: {name: s, key: k}}}")
                .problems()
                .is_empty()
        );
        assert!(
            spec("{mode: Jwt, jwt: {jwksUrl: 'https://idp/jwks', algorithm: ES256}}")
                .problems()
                .is_empty()
        );
        assert!(
            spec("{mode: Jwt, jwt: {jwksUrl: 'http://idp/jwks', allowInsecureJwksUrl: true}}")
                .problems()
                .is_empty()
        );
        let problems = |y: &str| spec(y).problems();
        assert_eq!(
            problems("{mode: Jwt}"),
            ["auth.mode Jwt needs auth.jwt: a secretRef or a jwksUrl to verify tokens with"]
        );
        assert_eq!(
            problems("{mode: Jwt, jwt: {issuer: x}}"),
            ["auth.jwt: one of secretRef and jwksUrl is required"]
        );
        assert_eq!(
            problems("{mode: Jwt, jwt: {secretRef: {name: s, key: k}, jwksUrl: 'https://i/j'}}"),
            ["auth.jwt: give either secretRef or jwksUrl, not both"]
        );
        let p = problems("{mode: Jwt, jwt: {jwksUrl: 'http://idp/jwks', algorithm: HS256}}");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("auth.jwt.jwksUrl must be https://"),
            "{p:?}"
        );
        assert_eq!(
            problems("{mode: Jwt, jwt: {secretRef: {name: s, key: ''}, userClaim: ' '}}"),
            [
                "auth.jwt.secretRef needs a Secret name and key",
                "auth.jwt.userClaim must not be empty when given"
            ]
        );
        // Switched off, the settings may stay (checked, and ignored).
        let off = spec("{mode: None, jwt: {jwksUrl: 'https://idp/jwks'}}");
        assert!(off.problems().is_empty() && off.jwt().is_none());
        assert!(serde_yaml::from_str::<AuthSpec>("{mode: Oauth}").is_err());
    }

    /// The operator refuses what the CRD's rules refuse (a platform stored under an older CRD).
    #[test]
    fn validation_reports_the_problems() {
        use crate::build::fixtures::{MINIMAL, platform};
        let cr = platform(&format!("{MINIMAL}  auth: {{mode: Jwt}}\n"));
        let e = crate::controller::validate::validate(&cr).unwrap_err();
        assert_eq!(
            e.0,
            ["auth.mode Jwt needs auth.jwt: a secretRef or a jwksUrl to verify tokens with"]
        );
        let cr = platform(&format!(
            "{MINIMAL}  auth: {{mode: Jwt, jwt: {{secretRef: {{name: s, key: k}}}}}}\n"
        ));
        let p = crate::controller::validate::validate(&cr).unwrap();
        assert!(p.auth.jwt().is_some());
    }
}
