//! `spec.auth`'s CEL rules, enforced by the real API server (scripts/kube.sh): mode `Jwt` needs a
//! way to verify tokens, exactly one of `secretRef` and `jwksUrl`, an `https://` JWKS unless
//! allowed, no HS256 with a JWKS. The operator checks the same (crd/auth.rs).

mod support;

use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn the_api_server_refuses_unusable_auth_settings() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-auth").await;
    let base = sample("minimal.yaml", "auth", "kafka:9092");
    let secret = json!({"name": "campus-jwt", "key": "hs256"});
    let cases: [(&str, Value, &str); 5] = [
        (
            "Jwt without jwt",
            json!({"mode": "Jwt"}),
            "spec.auth: Invalid value: mode Jwt needs jwt",
        ),
        (
            "neither secretRef nor jwksUrl",
            json!({"mode": "Jwt", "jwt": {"issuer": "idp"}}),
            "spec.auth.jwt: Invalid value: give exactly one of secretRef and jwksUrl",
        ),
        (
            "both",
            json!({"mode": "Jwt", "jwt": {"secretRef": secret, "jwksUrl": "https://idp/jwks"}}),
            "spec.auth.jwt: Invalid value: give exactly one of secretRef and jwksUrl",
        ),
        (
            "a plain-HTTP JWKS",
            json!({"mode": "Jwt", "jwt": {"jwksUrl": "http://idp/jwks"}}),
            "spec.auth.jwt: Invalid value: jwksUrl must be https://",
        ),
        (
            "HS256 with a JWKS",
            json!({"mode": "Jwt", "jwt": {"jwksUrl": "https://idp/jwks", "algorithm": "HS256"}}),
            "spec.auth.jwt: Invalid value: a JWKS serves public keys",
        ),
    ];
    for (what, auth, want) in cases {
        let mut cr = base.clone();
        cr["spec"]["auth"] = auth;
        match apply_platform(&client, &ns.name, &cr).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{what}: {s:?}");
                assert!(s.message.contains(want), "{what}: {}", s.message);
            }
            other => panic!("{what}: not refused: {other:?}"),
        }
    }
    for auth in [
        json!({"mode": "Jwt", "jwt": {"secretRef": secret, "issuer": "campus-idp", "userClaim": "uid"}}),
        json!({"mode": "Jwt", "jwt": {"secretRef": secret, "algorithm": "ES256"}}),
        json!({"mode": "Jwt", "jwt": {"jwksUrl": "http://idp.campus.svc/jwks", "allowInsecureJwksUrl": true}}),
        json!({"mode": "None"}),
    ] {
        let mut cr = base.clone();
        cr["spec"]["auth"] = auth.clone();
        let applied = apply_platform(&client, &ns.name, &cr)
            .await
            .unwrap_or_else(|e| panic!("{auth}: {e}"));
        let kept = serde_json::to_value(&applied.spec.auth).unwrap();
        for (k, v) in auth.as_object().unwrap() {
            assert_eq!(&kept[k], v, "{auth}: the API server kept {kept}");
        }
    }
}
