//! The committed CRD is what the types generate, and every field is documented.

use serde_json::Value;

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/campusplatforms.yaml")
}

#[test]
fn committed_crd_is_up_to_date() {
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == campus_operator::crd_yaml(),
        "crds/campusplatforms.yaml is stale: run `cargo run -p campus-operator --bin crdgen crds`"
    );
}

fn undocumented(path: &str, schema: &Value, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let p = format!("{path}.{name}");
            if sub
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                out.push(p.clone());
            }
            undocumented(&p, sub, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(&format!("{path}[]"), items, out);
    }
}

#[test]
fn every_spec_and_status_field_is_documented() {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(campus_operator::crd::CampusPlatform::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    undocumented("", &schema["properties"]["spec"], &mut missing);
    undocumented("", &schema["properties"]["status"], &mut missing);
    // Kubernetes' own types (resources, env, conditions) bring their own documentation, except
    // for a few inner fields upstream leaves undocumented.
    missing.retain(|p| {
        !p.contains(".env[].") && !p.contains(".resources.") && !p.contains(".conditions[].")
    });
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
    let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Ready", "Reason", "Topics", "Workloads", "DLQ", "Age"]
    );
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "campus");
    let policy =
        &schema["properties"]["spec"]["properties"]["topics"]["properties"]["deletionPolicy"];
    assert_eq!(policy["enum"], serde_json::json!(["Retain", "Delete"]));
    let partitions =
        &schema["properties"]["spec"]["properties"]["topics"]["properties"]["partitions"];
    assert_eq!(
        (
            partitions["minimum"].as_f64(),
            partitions["maximum"].as_f64()
        ),
        (Some(1.0), Some(1000.0))
    );
}

/// Every sample deserializes (unknown fields rejected) and passes validation.
#[test]
fn samples_are_valid_platforms() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let mut cr: campus_operator::crd::CampusPlatform =
            serde_json::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cr.metadata.namespace = Some("default".into());
        if let Err(problems) = campus_operator::controller::validate::validate(&cr) {
            panic!("{}: {problems}", path.display());
        }
        n += 1;
    }
    assert!(n >= 2, "expected at least a minimal and a full sample");
}
