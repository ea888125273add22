//! The `AUTH_*` variables of the content and coupon API containers (`spec.auth`): set in mode
//! `Jwt` only (mode `None` is the services' default, so a platform without `auth` keeps its pod
//! templates). The key comes from its Secret through `secretKeyRef`; the rest are plain values in
//! the container's `env`, never in the service's ConfigMap that its workers share.

use campus_contract::env as var;
use k8s_openapi::api::core::v1::EnvVar;

use super::env::secret_env;
use crate::crd::JwtAlgorithm;
use crate::model::Platform;
use crate::plan::Service;

/// The services whose APIs act for users (the log API has none).
pub const SERVICES: [Service; 2] = [Service::Content, Service::Coupon];

/// The `AUTH_*` variables of `service`'s API container.
pub fn api_env(p: &Platform, service: Service) -> Vec<EnvVar> {
    let Some(jwt) = p.auth.jwt().filter(|_| SERVICES.contains(&service)) else {
        return Vec::new();
    };
    let plain = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    };
    let mut env = vec![plain(var::AUTH_MODE, "jwt")];
    if let Some(r) = &jwt.secret_ref {
        let algorithm = jwt.algorithm.unwrap_or(JwtAlgorithm::HS256);
        let key = match algorithm {
            JwtAlgorithm::HS256 => var::AUTH_JWT_SECRET,
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => var::AUTH_JWT_PUBLIC_KEY,
        };
        env.push(secret_env(key, r));
        env.push(plain(var::AUTH_JWT_ALGORITHM, algorithm.as_str()));
    }
    if let Some(url) = &jwt.jwks_url {
        env.push(plain(var::AUTH_JWKS_URL, url.trim()));
        if let Some(a) = jwt.algorithm {
            env.push(plain(var::AUTH_JWT_ALGORITHM, a.as_str()));
        }
    }
    for (name, value) in [
        (var::AUTH_JWT_ISSUER, &jwt.issuer),
        (var::AUTH_JWT_AUDIENCE, &jwt.audience),
        (var::AUTH_USER_CLAIM, &jwt.user_claim),
    ] {
        if let Some(v) = value {
            env.push(plain(name, v.trim()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::BuildInputs;
    use crate::build::fixtures::{MINIMAL, model};
    use k8s_openapi::api::apps::v1::Deployment;

    fn with_auth(auth: &str) -> Platform {
        model(&format!("{MINIMAL}  auth: {auth}\n"))
    }

    /// The API container of each service: name → (plain value, or `secret:<name>/<key>`).
    fn api_envs(p: &Platform) -> Vec<(String, Vec<(String, String)>)> {
        let desired = crate::build::Desired::build(p, &BuildInputs::new("test"));
        desired
            .deployments
            .iter()
            .filter(|d: &&Deployment| {
                d.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.ends_with("-api"))
            })
            .map(|d| {
                let env = crate::build::fixtures::container(d)
                    .env
                    .iter()
                    .flatten()
                    .filter(|e| e.name.starts_with("AUTH_"))
                    .map(|e| {
                        let v = match (&e.value, &e.value_from) {
                            (Some(v), _) => v.clone(),
                            (None, Some(f)) => {
                                let r = f.secret_key_ref.as_ref().expect("a Secret reference");
                                format!("secret:{}/{}", r.name, r.key)
                            }
                            _ => String::new(),
                        };
                        (e.name.clone(), v)
                    })
                    .collect();
                (d.metadata.name.clone().unwrap(), env)
            })
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn mode_none_sets_nothing() {
        for (_, env) in api_envs(&model(MINIMAL)) {
            assert!(env.is_empty(), "{env:?}");
        }
        // Settings kept while switched off are ignored.
        let p = with_auth("{mode: None, jwt: {jwksUrl: 'https://idp/jwks'}}");
        for (_, env) in api_envs(&p) {
            assert!(env.is_empty(), "{env:?}");
        }
    }

    #[test]
    fn an_hs256_secret_reaches_the_content_and_coupon_apis_through_secret_key_ref_only() {
        let p = with_auth(
            "{mode: Jwt, jwt: {secretRef: {name: campus-jwt, key: hs256}, issuer: campus-idp, audience: campus, userClaim: uid}}",
        );
        let want = pairs(&[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWT_SECRET", "secret:campus-jwt/hs256"),
            ("AUTH_JWT_ALGORITHM", "HS256"),
            ("AUTH_JWT_ISSUER", "campus-idp"),
            ("AUTH_JWT_AUDIENCE", "campus"),
            ("AUTH_USER_CLAIM", "uid"),
        ]);
        let envs = api_envs(&p);
        let names: Vec<&str> = envs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["blue-content-api", "blue-coupon-api", "blue-log-api"]
        );
        for (name, env) in &envs {
            if name == "blue-log-api" {
                assert!(env.is_empty(), "the log API has no users: {env:?}");
            } else {
                assert_eq!(env, &want, "{name}");
            }
        }
        // Never in a ConfigMap (the workers' too), and no worker gets them.
        let desired = crate::build::Desired::build(&p, &BuildInputs::new("test"));
        for cm in &desired.config_maps {
            let data = serde_json::to_string(&cm.data).unwrap();
            assert!(!data.contains("AUTH_"), "{data}");
        }
        for d in desired
            .deployments
            .iter()
            .filter(|d| !d.metadata.name.as_deref().unwrap().ends_with("-api"))
        {
            let c = &d
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0];
            assert!(c.env.iter().flatten().all(|e| !e.name.starts_with("AUTH_")));
        }
    }

    #[test]
    fn a_public_key_or_a_jwks() {
        let p = with_auth("{mode: Jwt, jwt: {secretRef: {name: idp, key: pem}, algorithm: ES256}}");
        assert_eq!(
            api_envs(&p)[1].1,
            pairs(&[
                ("AUTH_MODE", "jwt"),
                ("AUTH_JWT_PUBLIC_KEY", "secret:idp/pem"),
                ("AUTH_JWT_ALGORITHM", "ES256"),
            ])
        );
        let p = with_auth("{mode: Jwt, jwt: {jwksUrl: 'https://idp.example/jwks.json'}}");
        assert_eq!(
            api_envs(&p)[0].1,
            pairs(&[
                ("AUTH_MODE", "jwt"),
                ("AUTH_JWKS_URL", "https://idp.example/jwks.json")
            ])
        );
    }

    #[test]
    fn a_services_own_env_still_wins() {
        let p = model(&format!(
            "{MINIMAL}  auth: {{mode: Jwt, jwt: {{jwksUrl: 'https://idp/jwks'}}}}\n  coupon: {{env: [{{name: AUTH_USER_CLAIM, value: user_id}}]}}\n"
        ));
        let coupon = &api_envs(&p)[1].1;
        assert_eq!(
            coupon
                .iter()
                .filter(|(n, _)| n == "AUTH_USER_CLAIM")
                .collect::<Vec<_>>(),
            [&("AUTH_USER_CLAIM".to_owned(), "user_id".to_owned())]
        );
    }
}
