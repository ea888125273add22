//! The container and dev-loop files agree with each other and with the code, so a renamed image,
//! target, binary, values key, Service or port fails the suite instead of a newcomer's first run:
//!
//! - `docker/Containerfile`: targets, binaries, ports, user (and `docker/Containerfile.scratch`,
//!   its twin); `scripts/images.sh`: the binaries it packs; the workspace: the binaries that exist.
//! - The ports: this crate's [`campus_contract::port`] against the images' `EXPOSE`, the
//!   operator's default `OPS_ADDR` and the port its builders give the APIs.
//! - `skaffold.yaml` (artifacts, the helm values it sets, port-forwards, every profile),
//!   `helm/campus` rendered with skaffold's values (Services, NodePorts, image values),
//!   `kind-config.yaml` (node ports mapped to localhost) and `scripts/local.sh` (the local mode's
//!   API ports). The chart is rendered by `$CAMPUS_CACHE/bin/helm` (scripts/deps.sh installs it):
//!   without it this test is skipped, except on CI (`CI=true`), where it fails.
//!
//! Each test runs all its checks and fails listing every check that did not hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use campus_contract::port;
use serde::Deserialize;
use serde_json::{Value, json};

const TARGETS: [&str; 4] = ["operator", "content", "coupon", "log"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

/// Runs every check, then fails naming each one that did not hold.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl AsRef<str>, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            eprintln!("ok   {}", what.as_ref());
        } else {
            let detail = detail.to_string();
            let sep = if detail.is_empty() { "" } else { ": " };
            self.failed
                .push(format!("FAIL {}{sep}{detail}", what.as_ref()));
        }
    }

    fn finish(self) {
        eprintln!("{} passed, {} failed", self.passed, self.failed.len());
        assert!(self.failed.is_empty(), "\n{}", self.failed.join("\n"));
    }
}

/// What a stage of a Containerfile sets (inherited from the stage it is built `FROM`).
#[derive(Debug, Clone, Default, PartialEq)]
struct Stage {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    expose: Vec<u16>,
    user: Option<String>,
    run: Vec<String>,
}

/// What a runtime image is: entrypoint, command, ports, user.
type Runtime<'a> = (
    &'a Option<Vec<String>>,
    &'a Option<Vec<String>>,
    &'a [u16],
    &'a Option<String>,
);

impl Stage {
    fn runtime(&self) -> Runtime<'_> {
        (&self.entrypoint, &self.cmd, &self.expose, &self.user)
    }
}

/// Stage name → what it sets, of a Containerfile.
fn containerfile_stages(path: &str) -> BTreeMap<String, Stage> {
    let text = read(path).replace("\\\n", " ");
    let mut stages: BTreeMap<String, Stage> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        if word.eq_ignore_ascii_case("FROM") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let base = words.first().copied().unwrap_or_default();
            let name = match words.as_slice() {
                [_, r#as, name, ..] if r#as.eq_ignore_ascii_case("AS") => (*name).to_owned(),
                _ => format!("stage{}", stages.len()),
            };
            let inherited = stages.get(base).cloned().unwrap_or_default();
            stages.insert(
                name.clone(),
                Stage {
                    run: Vec::new(),
                    ..inherited
                },
            );
            current = Some(name);
            continue;
        }
        let Some(stage) = current.as_ref().and_then(|c| stages.get_mut(c)) else {
            continue;
        };
        let exec_form = || -> Vec<String> {
            serde_json::from_str(rest).unwrap_or_else(|e| panic!("{path}: {line}: {e}"))
        };
        match word.to_ascii_uppercase().as_str() {
            "ENTRYPOINT" => stage.entrypoint = Some(exec_form()),
            "CMD" => stage.cmd = Some(exec_form()),
            "EXPOSE" => stage.expose.extend(rest.split_whitespace().map(|p| {
                p.split('/')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .unwrap_or_else(|| panic!("{path}: EXPOSE {p}"))
            })),
            "USER" => stage.user = Some(rest.to_owned()),
            "RUN" => stage.run.push(rest.to_owned()),
            _ => {}
        }
    }
    stages
}

/// Package → its binaries, from `cargo metadata`.
fn workspace_bins() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let mut bins = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let mut names: Vec<String> = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.contains(&json!("bin")))
            })
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        bins.insert(p["name"].as_str().unwrap_or_default().to_owned(), names);
    }
    bins
}

fn package_of(target: &str) -> String {
    format!("campus-{target}")
}

#[test]
fn containerfiles_build_and_pack_every_binary() {
    let mut c = Checks::default();
    let stages = containerfile_stages("docker/Containerfile");
    let scratch = containerfile_stages("docker/Containerfile.scratch");
    let bins = workspace_bins();

    c.check(
        TARGETS.iter().all(|t| stages.contains_key(*t)),
        format!("docker/Containerfile has the targets {TARGETS:?}"),
        format!("stages: {:?}", stages.keys().collect::<Vec<_>>()),
    );
    c.check(
        TARGETS.iter().all(|t| scratch.contains_key(*t)),
        format!("docker/Containerfile.scratch has the targets {TARGETS:?}"),
        format!("stages: {:?}", scratch.keys().collect::<Vec<_>>()),
    );
    let none = Stage::default();
    for t in TARGETS {
        let a = stages.get(t).unwrap_or(&none);
        let b = scratch.get(t).unwrap_or(&none);
        c.check(
            a.runtime() == b.runtime(),
            format!("target {t}: entrypoint, cmd, ports and user agree in both Containerfiles"),
            format!("{:?} vs {:?}", a.runtime(), b.runtime()),
        );
        let root_user = matches!(a.user.as_deref(), None | Some("" | "0" | "root" | "0:0"));
        c.check(
            !root_user && b.user == a.user,
            format!("target {t} runs as a non-root user ({:?})", a.user),
            "",
        );
    }

    let built = stages
        .get("builder")
        .map(|s| s.run.join(" "))
        .unwrap_or_default();
    let images_sh = read("scripts/images.sh");
    let packed: BTreeSet<&str> = images_sh
        .split_once("BINS=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(list, _)| list.split_whitespace().collect())
        .unwrap_or_default();
    for t in TARGETS {
        let pkg = package_of(t);
        let entry = stages
            .get(t)
            .and_then(|s| s.entrypoint.as_ref())
            .and_then(|e| e.first())
            .map(|e| e.rsplit('/').next().unwrap_or(e).to_owned())
            .unwrap_or_else(|| "?".to_owned());
        let have = bins.get(&pkg).cloned().unwrap_or_default();
        c.check(
            have.contains(&entry),
            format!("target {t} runs {entry}, a binary of package {pkg}"),
            format!("{pkg} has {have:?}"),
        );
        for b in &have {
            c.check(
                built.split_whitespace().any(|w| w == b) && packed.contains(b.as_str()),
                format!("binary {b} is copied out of the builder and packed by scripts/images.sh"),
                "",
            );
        }
        c.check(
            built.contains(&format!("-p {pkg}")),
            format!("the builder stage builds package {pkg}"),
            "",
        );
    }
    c.finish();
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push((path, text));
        }
    }
    out
}

#[test]
fn images_expose_the_contract_ports() {
    let mut c = Checks::default();
    let stages = containerfile_stages("docker/Containerfile");
    let (http_port, ops_port) = (port::API, port::OPS);
    let want: BTreeSet<u16> = [http_port, ops_port].into();
    for t in ["content", "coupon", "log"] {
        let expose = stages.get(t).map(|s| s.expose.clone()).unwrap_or_default();
        let mut sorted = expose.clone();
        sorted.sort_unstable();
        c.check(
            sorted == want.iter().copied().collect::<Vec<_>>(),
            format!(
                "image {t} exposes the code's HTTP_ADDR and OPS_ADDR ports ({http_port}, {ops_port})"
            ),
            format!("{expose:?}"),
        );
    }
    let operator_expose = stages
        .get("operator")
        .map(|s| s.expose.clone())
        .unwrap_or_default();
    // The operator's default OPS_ADDR (its clap flag in main.rs), when it is spelled there.
    let main_rs = std::fs::read_to_string(root().join("operator/src/main.rs")).unwrap_or_default();
    let default_ops = main_rs
        .split_once("OPS_ADDR, default_value = \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(addr, _)| addr.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok());
    if let Some(p) = default_ops {
        c.check(
            operator_expose.contains(&p),
            format!("the operator's default OPS_ADDR port {p} is exposed by its image"),
            format!("{operator_expose:?}"),
        );
    }
    let operator_src = sources(&root().join("operator/src"));
    c.check(
        operator_src.iter().any(|(_, text)| {
            text.contains("const API_PORT: i32 = campus_contract::port::API as i32;")
        }),
        format!("the operator runs the APIs on the contract's HTTP_ADDR port ({http_port})"),
        "no `const API_PORT: i32 = campus_contract::port::API as i32;` under operator/src",
    );
    c.finish();
}

/// `$CAMPUS_CACHE/bin/helm`; `None` (the test is skipped) when it is missing, except on CI.
fn helm() -> Option<PathBuf> {
    let helm = campus_testkit::cache_dir().join("bin/helm");
    if helm.is_file() {
        return Some(helm);
    }
    assert!(
        !campus_testkit::on_ci(),
        "CI=true but there is no {} (scripts/deps.sh installs it)",
        helm.display()
    );
    eprintln!(
        "SKIPPED: no {} to render the chart (scripts/deps.sh installs it)",
        helm.display()
    );
    None
}

/// The value at a dotted helm values path (`images.content.repository`).
fn get_path<'a>(values: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(values, |v, k| v.as_object().and_then(|o| o.get(k)))
}

/// RFC 6902 `add`, `replace` and `remove`: the operations skaffold's profile patches use here.
fn json_patch(doc: &Value, patches: &Value) -> Result<Value, String> {
    let mut doc = doc.clone();
    for p in patches.as_array().into_iter().flatten() {
        let path = p["path"].as_str().ok_or("a patch without a path")?;
        let (parent, last) = path.rsplit_once('/').ok_or("a patch path without '/'")?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let target = doc
            .pointer_mut(parent)
            .ok_or_else(|| format!("patch path {path} does not exist"))?;
        let op = p["op"].as_str().unwrap_or_default();
        match (op, target) {
            ("add" | "replace", Value::Array(a)) => {
                let value = p["value"].clone();
                if op == "add" && last == "-" {
                    a.push(value);
                } else {
                    let i: usize = last.parse().map_err(|_| format!("index in {path}"))?;
                    match op {
                        "add" if i <= a.len() => a.insert(i, value),
                        "replace" if i < a.len() => a[i] = value,
                        _ => return Err(format!("patch path {path} does not exist")),
                    }
                }
            }
            ("add" | "replace", Value::Object(o)) => {
                if op == "replace" && !o.contains_key(&last) {
                    return Err(format!("patch path {path} does not exist"));
                }
                o.insert(last, p["value"].clone());
            }
            ("remove", Value::Array(a)) => {
                let i: usize = last.parse().map_err(|_| format!("index in {path}"))?;
                if i >= a.len() {
                    return Err(format!("patch path {path} does not exist"));
                }
                a.remove(i);
            }
            ("remove", Value::Object(o)) => {
                o.remove(&last)
                    .ok_or_else(|| format!("patch path {path} does not exist"))?;
            }
            _ => return Err(format!("patch {p} is not supported here")),
        }
    }
    Ok(doc)
}

/// skaffold's profile overlay, the parts this setup uses: patches, then whole-field replacement.
fn apply_profile(config: &Value, profile: &Value) -> Result<Value, String> {
    let mut out = json_patch(config, &profile["patches"])?;
    for key in ["build", "deploy", "portForward"] {
        let Some(over) = profile.get(key) else {
            continue;
        };
        if key == "portForward" {
            out[key] = over.clone();
        } else if let Some(fields) = over.as_object() {
            for (sub, val) in fields {
                out[key][sub] = val.clone();
            }
        }
    }
    Ok(out)
}

/// `helm template` of a skaffold release with its values files and set values.
fn render(
    helm: &Path,
    release: &Value,
    overrides: &BTreeMap<String, String>,
) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new(helm);
    cmd.arg("template")
        .arg(release["name"].as_str().unwrap_or_default())
        .arg(root().join(release["chartPath"].as_str().unwrap_or_default()))
        .arg("--namespace")
        .arg(release["namespace"].as_str().unwrap_or("default"));
    for f in release["valuesFiles"].as_array().into_iter().flatten() {
        cmd.arg("-f")
            .arg(root().join(f.as_str().unwrap_or_default()));
    }
    let mut set: Vec<(String, Value)> = release["setValues"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !overrides.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    set.extend(overrides.iter().map(|(k, v)| (k.clone(), json!(v))));
    for (k, v) in set {
        match v {
            Value::String(s) if s != "true" && s != "false" => {
                cmd.arg("--set-string").arg(format!("{k}={s}"))
            }
            Value::String(s) => cmd.arg("--set").arg(format!("{k}={s}")),
            other => cmd.arg("--set").arg(format!("{k}={other}")),
        };
    }
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", helm.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !v.is_null() {
            objects.push(v);
        }
    }
    Ok(objects)
}

fn kind_of(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

#[test]
fn skaffold_chart_kind_and_local_mode_agree() {
    let Some(helm) = helm() else {
        return;
    };
    let mut c = Checks::default();
    let stages = containerfile_stages("docker/Containerfile");

    // --- skaffold.yaml: one artifact per target, built from docker/Containerfile.
    let sk = yaml("skaffold.yaml");
    let api_version = sk["apiVersion"].as_str().unwrap_or_default();
    c.check(
        api_version.starts_with("skaffold/v4beta") && sk["kind"] == "Config",
        format!("skaffold.yaml is a skaffold/v4beta Config ({api_version})"),
        "",
    );
    let arts: BTreeMap<String, Value> = sk["build"]["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["image"].as_str().unwrap_or_default().to_owned(),
                a.clone(),
            )
        })
        .collect();
    let want: BTreeSet<String> = TARGETS.iter().map(|t| format!("campus-{t}")).collect();
    c.check(
        arts.keys().cloned().collect::<BTreeSet<_>>() == want,
        "skaffold builds one image per Containerfile target",
        format!("artifacts {:?}", arts.keys().collect::<Vec<_>>()),
    );
    for (image, a) in &arts {
        let d = &a["docker"];
        let target = d["target"].as_str().unwrap_or_default();
        c.check(
            d["dockerfile"] == "docker/Containerfile"
                && stages.contains_key(target)
                && *image == format!("campus-{target}")
                && a["context"].as_str().unwrap_or(".") == ".",
            format!("artifact {image} builds target {target} of docker/Containerfile"),
            "",
        );
    }

    // --- skaffold's helm release: the values it sets exist, and name each artifact's repo and tag.
    let releases = sk["deploy"]["helm"]["releases"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let release = releases.first().cloned().unwrap_or(Value::Null);
    let chart_path = release["chartPath"].as_str().unwrap_or_default().to_owned();
    c.check(
        releases.len() == 1 && root().join(&chart_path).join("Chart.yaml").is_file(),
        format!("skaffold deploys the chart at {chart_path}"),
        "",
    );
    let values = yaml(&format!("{chart_path}/values.yaml"));
    for f in release["valuesFiles"].as_array().into_iter().flatten() {
        let f = f.as_str().unwrap_or_default();
        c.check(
            root().join(f).is_file(),
            format!("values file {f} exists"),
            "",
        );
    }
    let templates: BTreeMap<String, String> = release["setValueTemplates"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    for image in arts.keys() {
        let var: String = image
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
            .collect();
        let keys_of = |what: &str| -> Vec<&String> {
            let want = format!("{{{{.IMAGE_{what}_{var}}}}}");
            templates
                .iter()
                .filter(|(_, v)| **v == want)
                .map(|(k, _)| k)
                .collect()
        };
        let (repo_keys, tag_keys) = (keys_of("REPO"), keys_of("TAG"));
        let block = |k: &str| {
            k.rsplit_once('.')
                .map(|(b, _)| b.to_owned())
                .unwrap_or_default()
        };
        c.check(
            repo_keys.len() == 1
                && tag_keys.len() == 1
                && block(repo_keys[0]) == block(tag_keys[0]),
            format!("skaffold sets the repository and tag of {image} in one values block"),
            format!("{repo_keys:?} {tag_keys:?}"),
        );
        for k in repo_keys {
            match get_path(&values, k) {
                Some(default) => c.check(
                    default == image.as_str(),
                    format!("values {k} defaults to the image name {image}"),
                    format!("is {default}"),
                ),
                None => c.check(
                    false,
                    format!("values key {k} (set by skaffold) exists in values.yaml"),
                    "",
                ),
            }
        }
        for k in tag_keys {
            c.check(
                get_path(&values, k).is_some(),
                format!("values key {k} (set by skaffold) exists in values.yaml"),
                "",
            );
        }
    }
    for k in release["setValues"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        c.check(
            get_path(&values, k).is_some(),
            format!("values key {k} (set by skaffold) exists in values.yaml"),
            "",
        );
    }

    // --- Render the chart as skaffold deploys it, for the default, kind and port-forward profiles.
    let profiles: BTreeMap<String, Value> = sk["profiles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p.clone()))
        .collect();
    c.check(
        profiles.contains_key("kind") && profiles.contains_key("port-forward"),
        "skaffold has the profiles kind and port-forward",
        "",
    );
    let activates_on = |profile: &str, context: &str| {
        profiles.get(profile).is_some_and(|p| {
            p["activation"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["kubeContext"] == context)
        })
    };
    c.check(
        activates_on("kind", "^kind-"),
        "profile kind activates on kind-* contexts",
        "",
    );
    c.check(
        profiles
            .get("kind")
            .is_some_and(|p| p["build"]["local"]["push"] == false),
        "profile kind loads images into the node (build.local.push: false)",
        "",
    );
    c.check(
        activates_on("port-forward", "!^kind-"),
        "profile port-forward activates on every other context",
        "",
    );
    let placeholder: BTreeMap<String, String> = templates
        .keys()
        .map(|k| (k.clone(), "skaffold-placeholder".to_owned()))
        .collect();
    let mut without_profiles = sk.clone();
    if let Some(o) = without_profiles.as_object_mut() {
        o.remove("profiles");
    }
    // Profile name → (skaffold config with the profile applied, the rendered objects).
    let mut rendered: BTreeMap<&str, (Value, Vec<Value>)> = BTreeMap::new();
    for name in ["default", "kind", "port-forward"] {
        let cfg = if name == "default" {
            Ok(sk.clone())
        } else {
            apply_profile(
                &without_profiles,
                profiles.get(name).unwrap_or(&Value::Null),
            )
        };
        let result = cfg.and_then(|cfg| {
            let objects = render(&helm, &cfg["deploy"]["helm"]["releases"][0], &placeholder)?;
            Ok((cfg, objects))
        });
        match result {
            Ok((cfg, objects)) => {
                c.check(
                    true,
                    format!(
                        "the chart renders with skaffold's values ({name} profile): {} objects",
                        objects.len()
                    ),
                    "",
                );
                rendered.insert(name, (cfg, objects));
            }
            Err(e) => c.check(
                false,
                format!("the chart renders with skaffold's values ({name} profile)"),
                e,
            ),
        }
    }
    if rendered.len() != 3 {
        return c.finish();
    }

    // Every image the chart deploys from this repo is one skaffold builds (the rest are upstream).
    for (name, (_, objects)) in &rendered {
        let mut images = BTreeSet::new();
        for o in objects {
            if !matches!(
                kind_of(o),
                "Deployment" | "StatefulSet" | "Job" | "DaemonSet"
            ) {
                continue;
            }
            let spec = &o["spec"]["template"]["spec"];
            for ctr in ["containers", "initContainers"] {
                for container in spec[ctr].as_array().into_iter().flatten() {
                    images.insert(container["image"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        c.check(
            images.iter().any(|i| i.starts_with("skaffold-placeholder")),
            format!("{name}: the chart's own workloads take their image from skaffold's values"),
            format!("images {images:?}"),
        );
    }

    // Port-forwards point at Services the chart renders, on ports those Services have.
    for (name, (cfg, objects)) in &rendered {
        for pf in cfg["portForward"].as_array().into_iter().flatten() {
            let svc_name = pf["resourceName"].as_str().unwrap_or_default();
            let ns = pf["namespace"].as_str().unwrap_or("default");
            let svc = objects.iter().find(|o| {
                kind_of(o) == "Service"
                    && name_of(o) == svc_name
                    && o["metadata"]["namespace"].as_str() == Some(ns)
            });
            let ports: Vec<&Value> = svc
                .map(|s| {
                    s["spec"]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| &p["port"])
                        .collect()
                })
                .unwrap_or_default();
            c.check(
                pf["resourceType"] == "service" && svc.is_some() && ports.contains(&&pf["port"]),
                format!(
                    "{name}: port-forward service/{svc_name}:{} -> localhost:{} exists in the chart",
                    pf["port"], pf["localPort"]
                ),
                if svc.is_some() {
                    format!("service ports {ports:?}")
                } else {
                    "no such Service".to_owned()
                },
            );
        }
    }

    // --- kind-config.yaml maps exactly the chart's NodePorts, to the port-forward profile's ports.
    let kind = yaml("kind-config.yaml");
    c.check(
        kind["apiVersion"] == "kind.x-k8s.io/v1alpha4" && kind["kind"] == "Cluster",
        "kind-config.yaml is a kind.x-k8s.io/v1alpha4 Cluster",
        "",
    );
    let mappings: BTreeMap<u64, Value> = kind["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| {
            n["extraPortMappings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|m| (m["containerPort"].as_u64().unwrap_or_default(), m))
        .collect();
    let mut nodeports: BTreeMap<u64, String> = BTreeMap::new();
    for o in &rendered["kind"].1 {
        if kind_of(o) != "Service" || o["spec"]["type"] != "NodePort" {
            continue;
        }
        for p in o["spec"]["ports"].as_array().into_iter().flatten() {
            let node_port = p["nodePort"].as_u64();
            c.check(
                node_port.is_some(),
                format!("service/{} (NodePort) fixes its nodePorts", name_of(o)),
                format!("{p}"),
            );
            nodeports.insert(node_port.unwrap_or_default(), name_of(o).to_owned());
        }
    }
    c.check(
        nodeports.keys().eq(mappings.keys()),
        "kind-config.yaml maps exactly the chart's NodePorts (kind profile)",
        format!(
            "NodePorts {nodeports:?}, mapped {:?}",
            mappings.keys().collect::<Vec<_>>()
        ),
    );
    let forwards: BTreeMap<&str, &Value> = rendered["port-forward"].0["portForward"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pf| {
            (
                pf["resourceName"].as_str().unwrap_or_default(),
                &pf["localPort"],
            )
        })
        .collect();
    let mut host_of: BTreeMap<&str, &Value> = BTreeMap::new();
    for (port, svc) in &nodeports {
        let m = mappings.get(port).unwrap_or(&Value::Null);
        host_of.insert(svc, &m["hostPort"]);
        c.check(
            m["listenAddress"] == "127.0.0.1",
            format!("kind maps NodePort {port} on 127.0.0.1 only"),
            "",
        );
        let forward = forwards.get(svc.as_str()).copied().unwrap_or(&Value::Null);
        c.check(
            m["hostPort"] == *forward,
            format!(
                "service/{svc} is localhost:{} on kind and with skaffold's port-forward",
                m["hostPort"]
            ),
            format!("port-forward uses {forward}"),
        );
    }

    // --- The local mode serves each API on the port kind and skaffold use.
    let local_sh = read("scripts/local.sh");
    let local_ports: BTreeMap<&str, u64> = local_sh
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let api = f.first()?.strip_suffix("-api")?;
            let word = !api.is_empty() && api.chars().all(|ch| ch.is_alphanumeric() || ch == '_');
            (f.len() == 5 && word && !f[1].is_empty() && f[2] == "api" && f[3] == "HTTP_ADDR")
                .then(|| f[4].parse().ok().map(|p| (api, p)))?
        })
        .collect();
    for api in ["content", "coupon", "log"] {
        let svc = host_of
            .keys()
            .find(|s| s.ends_with(&format!("-expose-{api}-api")));
        let kind_port = svc.and_then(|s| host_of[s].as_u64());
        c.check(
            svc.is_some() && local_ports.get(api).copied() == kind_port,
            format!(
                "the {api} API is localhost:{:?} in the local mode and on kind",
                local_ports.get(api)
            ),
            format!("kind/skaffold: {kind_port:?}"),
        );
    }

    // --- The chart's ports agree with the contract and the images.
    let operator_expose = stages
        .get("operator")
        .map(|s| s.expose.clone())
        .unwrap_or_default();
    for o in &rendered["default"].1 {
        if kind_of(o) == "Service" && name_of(o).contains("-expose-") {
            c.check(
                o["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|p| p["targetPort"] == port::API),
                format!(
                    "service/{} targets the APIs' HTTP_ADDR port {}",
                    name_of(o),
                    port::API
                ),
                "",
            );
        }
        if kind_of(o) == "Deployment" && name_of(o).ends_with("-operator") {
            let ports: Vec<u64> = o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|ctr| ctr["ports"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| p["containerPort"].as_u64())
                .collect();
            c.check(
                !ports.is_empty()
                    && ports
                        .iter()
                        .all(|p| operator_expose.iter().any(|e| u64::from(*e) == *p)),
                format!(
                    "the operator's containerPorts {ports:?} are the ones its image exposes {operator_expose:?}"
                ),
                "",
            );
        }
    }
    c.finish();
}
