//! The CRD's CEL rules (`x-kubernetes-validations`): the API server itself refuses a platform that
//! breaks a cross-field rule, with the rule's message, before the operator sees it. The operator
//! checks the same rules (controller/validate.rs) for platforms stored under an older CRD.

mod support;

use serde_json::{Value, json};
use support::*;

/// Applies `cr` and returns the API server's refusal (code 422) as its message.
async fn refusal(client: &kube::Client, ns: &str, cr: &Value) -> String {
    match apply_platform(client, ns, cr).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            s.message
        }
        Err(other) => panic!("not an API refusal: {other}"),
        Ok(_) => panic!("accepted: {cr}"),
    }
}

#[tokio::test]
async fn cross_field_rules_are_enforced_by_the_api_server() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-cel").await;
    let base = sample("minimal.yaml", "cel", "kafka:9092");

    let autoscaling = json!({"minReplicas": 5, "maxReplicas": 2});
    let pipeline = json!({"name": "access-log"});
    let cases: [(&str, &str, Value, &str); 8] = [
        (
            "redis with url and urlSecretRef",
            "/spec/redis",
            json!({"url": "redis://r:6379", "urlSecretRef": {"name": "s", "key": "k"}}),
            "spec.redis: Invalid value: give exactly one of url and urlSecretRef",
        ),
        (
            "redis with neither",
            "/spec/redis",
            json!({"keyPrefix": "x:"}),
            "spec.redis: Invalid value: give exactly one of url and urlSecretRef",
        ),
        (
            "elasticsearch with both",
            "/spec/elasticsearch",
            json!({"url": "http://e:9200", "urlSecretRef": {"name": "s", "key": "k"}}),
            "spec.elasticsearch: Invalid value: give exactly one of url and urlSecretRef",
        ),
        (
            "a worker group's minReplicas above maxReplicas",
            "/spec/content/groups/cache/autoscaling",
            autoscaling.clone(),
            "spec.content.groups.cache.autoscaling: Invalid value: minReplicas must not exceed maxReplicas",
        ),
        (
            "the native indexer's minReplicas above maxReplicas",
            "/spec/logging/native/autoscaling",
            autoscaling,
            "spec.logging.native.autoscaling: Invalid value: minReplicas must not exceed maxReplicas",
        ),
        (
            "a topic overridden twice",
            "/spec/topics/overrides",
            json!([{"name": "post.original", "partitions": 6}, {"name": "post.original"}]),
            "spec.topics: Invalid value: overrides must name each topic at most once",
        ),
        (
            "two Logstash pipelines with one name",
            "/spec/logging/logstash/pipelines",
            json!([pipeline.clone(), pipeline]),
            "spec.logging.logstash: Invalid value: pipelines must have distinct names",
        ),
        (
            "a plain-HTTP OpenAI base URL",
            "/spec/openai",
            json!({"baseUrl": "http://fake-openai/v1"}),
            "spec.openai: Invalid value: baseUrl must be https://",
        ),
    ];
    for (what, pointer, value, want) in cases {
        let mut cr = base.clone();
        set(&mut cr, pointer, value);
        let message = refusal(&client, &ns.name, &cr).await;
        assert!(message.contains(want), "{what}: {message}");
    }

    // The same platform without the faults is accepted (the rules hold for valid specs).
    let mut good = base.clone();
    set(
        &mut good,
        "/spec/content/groups/cache/autoscaling",
        json!({"minReplicas": 2, "maxReplicas": 2}),
    );
    set(
        &mut good,
        "/spec/topics/overrides",
        json!([{"name": "post.original"}, {"name": "post.inspected"}]),
    );
    set(
        &mut good,
        "/spec/openai",
        json!({"baseUrl": "http://fake-openai/v1", "allowInsecureBaseUrl": true}),
    );
    apply_platform(&client, &ns.name, &good)
        .await
        .expect("a valid platform is accepted");
}

/// Secrets stay secrets: the API server refuses Kafka credentials in `kafka.properties` (they
/// would go into a ConfigMap) and URLs with a password outside `urlSecretRef`, each with a
/// message that says where they belong; the same settings through Secrets are accepted.
#[tokio::test]
async fn credentials_outside_secrets_are_refused_by_the_api_server() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-cel-secrets").await;
    let base = sample("minimal.yaml", "secrets", "kafka:9092");
    let kafka_message = "spec.kafka: Invalid value: properties must not hold credentials (sasl.password, ssl.key.password, ssl.keystore.password, ssl.key.pem, sasl.oauthbearer.client.secret): put them in a Secret, its keys the property names, and name it in propertiesSecretRef";
    let url_message = "Invalid value: url must not carry a password (user:password@): put the URL in a Secret and name it in urlSecretRef";
    let mut cases: Vec<(String, &str, Value, String)> = Vec::new();
    for key in campus_operator::crd::backing::CREDENTIAL_PROPERTIES {
        cases.push((
            format!("kafka.properties with {key}"),
            "/spec/kafka/properties",
            json!({"security.protocol": "SASL_SSL", key: "s3cret"}),
            kafka_message.to_owned(),
        ));
    }
    for (what, pointer, url, field) in [
        (
            "a Redis URL with user and password",
            "/spec/redis",
            "redis://default:pw@redis:6379",
            "spec.redis",
        ),
        (
            "a Redis URL with a password alone",
            "/spec/redis",
            "redis://:pw@redis:6379/0",
            "spec.redis",
        ),
        (
            "an Elasticsearch URL with credentials",
            "/spec/elasticsearch",
            "https://elastic:changeme@es:9200",
            "spec.elasticsearch",
        ),
        (
            "credentials in the second of two Elasticsearch URLs",
            "/spec/elasticsearch",
            "http://es-1:9200,http://elastic:pw@es-2:9200",
            "spec.elasticsearch",
        ),
    ] {
        cases.push((
            what.to_owned(),
            pointer,
            json!({"url": url}),
            format!("{field}: {url_message}"),
        ));
    }
    for (what, pointer, value, want) in cases {
        let mut cr = base.clone();
        set(&mut cr, pointer, value);
        let message = refusal(&client, &ns.name, &cr).await;
        assert!(message.contains(&want), "{what}: {message}");
        // The operator's own validation says the same for platforms stored under an older CRD.
        let stored: campus_operator::crd::CampusPlatform = serde_json::from_value({
            let mut v = cr.clone();
            v["metadata"]["namespace"] = json!(ns.name);
            v
        })
        .unwrap();
        let problems = campus_operator::controller::validate::validate(&stored)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            problems.contains("propertiesSecretRef") || problems.contains("urlSecretRef"),
            "{what}: the operator's validation: {problems}"
        );
    }

    // Through Secrets (and a user without a password in the URL) they are accepted.
    let mut good = base.clone();
    set(
        &mut good,
        "/spec/kafka/properties",
        json!({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "campus"}),
    );
    set(
        &mut good,
        "/spec/kafka/propertiesSecretRef",
        json!({"name": "kafka-credentials"}),
    );
    set(
        &mut good,
        "/spec/redis",
        json!({"url": "redis://default@redis:6379"}),
    );
    set(
        &mut good,
        "/spec/elasticsearch",
        json!({"urlSecretRef": {"name": "es", "key": "url"}}),
    );
    let applied = apply_platform(&client, &ns.name, &good)
        .await
        .expect("credentials through Secrets are accepted");
    assert_eq!(
        applied
            .spec
            .kafka
            .properties_secret_ref
            .map(|r| r.name)
            .as_deref(),
        Some("kafka-credentials")
    );
}

/// Sets a JSON-pointer path, creating the objects on the way.
fn set(v: &mut Value, pointer: &str, value: Value) {
    let mut cur = v;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for p in &parts[..parts.len() - 1] {
        if cur.get(*p).is_none() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    cur[parts[parts.len() - 1]] = value;
}

/// The chart's platform (`--apply-platform`) is applied as strictly as the operator's children:
/// a typo in the chart's values is an error the operator logs, not a field quietly dropped.
#[tokio::test]
async fn the_charts_platform_is_applied_strictly() {
    use campus_operator::controller::apply::apply_as_chart;
    use kube::api::Api;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-chart-strict").await;
    let api: Api<campus_operator::crd::CampusPlatform> = Api::namespaced(client.clone(), &ns.name);
    let mut cr = sample("minimal.yaml", "chart", "kafka:9092");
    cr["metadata"]["namespace"] = json!(ns.name);
    let applied = apply_as_chart(&api, "chart", &cr).await;
    assert!(applied.is_ok(), "{applied:?}");
    let fields = applied.unwrap().metadata.managed_fields.unwrap_or_default();
    assert!(
        fields
            .iter()
            .any(|f| f.manager.as_deref() == Some("campus-chart")),
        "{fields:?}"
    );
    cr["spec"]["content"]["replicaz"] = json!(2);
    let err = apply_as_chart(&api, "chart", &cr)
        .await
        .expect_err("an unknown field is refused");
    let text = format!("{err:?}");
    assert!(
        text.contains(".spec.content.replicaz: field not declared in schema"),
        "{text}"
    );
}

/// Every apply of the operator is strict: a field the API server does not know is refused, not
/// silently dropped. (Kubernetes 1.37 refuses unknown fields in a server-side apply whatever the
/// fieldValidation; Strict also refuses duplicate fields and keeps older servers, which prune or
/// only warn, from dropping a field without an error.)
#[tokio::test]
async fn the_operators_applies_refuse_unknown_fields() {
    use campus_operator::controller::apply::apply_all;
    use kube::api::{Api, ApiResource, DynamicObject};
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-strict").await;
    let ar = ApiResource::erase::<campus_operator::crd::CampusPlatform>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);
    let mut cr = sample("minimal.yaml", "strict", "kafka:9092");
    let good: DynamicObject = serde_json::from_value(cr.clone()).unwrap();
    let applied = apply_all(&api, &[good]).await;
    assert!(applied.is_ok(), "{applied:?}");
    cr["spec"]["kafka"]["brokerz"] = json!("typo:9092");
    let bad: DynamicObject = serde_json::from_value(cr).unwrap();
    let err = apply_all(&api, &[bad])
        .await
        .expect_err("an unknown field is refused");
    let text = format!("{err:?}");
    assert!(
        text.contains(".spec.kafka.brokerz: field not declared in schema"),
        "{text}"
    );
}
