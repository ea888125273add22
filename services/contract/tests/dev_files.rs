//! The container and dev-loop files agree with each other and with the code, so a renamed image,
//! target, binary, values key, Service or port fails the suite instead of a newcomer's first run:
//!
//! - `docker/Containerfile`: targets, binaries, ports, user (and `docker/Containerfile.scratch`,
//!   its twin); `scripts/images.sh`: the binaries it packs; the workspace: the binaries that exist.
//! - The ports: this crate's [`campus_contract::port`] against the images' `EXPOSE`, the
//!   operator's default `OPS_ADDR` and the port its builders give the APIs; `helm/campus`'s expose
//!   Services and operator Deployment against both (rendered by `$CAMPUS_CACHE/bin/helm`, which
//!   scripts/deps.sh installs: without it that test is skipped, except on CI (`CI=true`)).
//! - `skaffold.yaml`: its artifacts are the Containerfile's targets, the values it sets exist in
//!   `helm/campus/values.yaml`, its profiles' activation; `scripts/local.sh` serves the APIs on the
//!   host ports `kind-config.yaml` maps the chart's API NodePorts to.
//!
//! What the real skaffold can check, scripts/chart-test.sh checks with it (`skaffold_checks`): the
//! config and its profiles, the chart rendered as skaffold deploys it, the images it deploys,
//! port-forwards against rendered Services, and kind-config.yaml against the kind profile's
//! NodePorts and the port-forward profile's local ports.
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

/// The value at a dotted helm values path (`images.content.repository`).
fn get_path<'a>(values: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(values, |v, k| v.as_object().and_then(|o| o.get(k)))
}

#[test]
fn skaffold_builds_the_containerfile_targets_into_the_chart_values() {
    let mut c = Checks::default();
    let stages = containerfile_stages("docker/Containerfile");
    let sk = yaml("skaffold.yaml");

    // --- One artifact per target, built from docker/Containerfile (skaffold render builds nothing).
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

    // --- The values skaffold sets exist in values.yaml (helm ignores unknown keys), and name each
    // artifact's repository and tag in one block.
    let release = &sk["deploy"]["helm"]["releases"][0];
    let chart_path = release["chartPath"].as_str().unwrap_or_default();
    let values = yaml(&format!("{chart_path}/values.yaml"));
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
    let set_values = release["setValues"].as_object().into_iter().flatten();
    let patched = sk["profiles"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["patches"].as_array().into_iter().flatten())
        .filter_map(|p| {
            p["path"]
                .as_str()?
                .strip_prefix("/deploy/helm/releases/0/setValues/")
        });
    let set_keys: BTreeSet<&str> = set_values.map(|(k, _)| k.as_str()).chain(patched).collect();
    for k in set_keys {
        c.check(
            get_path(&values, k).is_some(),
            format!("values key {k} (set by skaffold) exists in values.yaml"),
            "",
        );
    }

    // --- Which profile a context gets, and that kind loads images instead of pushing them.
    let profile = |name: &str| {
        sk["profiles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let activates_on = |p: &Value, context: &str| {
        p["activation"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["kubeContext"] == context)
    };
    c.check(
        activates_on(&profile("kind"), "^kind-"),
        "profile kind activates on kind-* contexts",
        "",
    );
    c.check(
        profile("kind")["build"]["local"]["push"] == false,
        "profile kind loads images into the node (build.local.push: false)",
        "",
    );
    c.check(
        activates_on(&profile("port-forward"), "!^kind-"),
        "profile port-forward activates on every other context",
        "",
    );
    c.finish();
}

#[test]
fn local_mode_serves_the_apis_on_kinds_host_ports() {
    let mut c = Checks::default();
    let kind = yaml("kind-config.yaml");
    c.check(
        kind["apiVersion"] == "kind.x-k8s.io/v1alpha4" && kind["kind"] == "Cluster",
        "kind-config.yaml is a kind.x-k8s.io/v1alpha4 Cluster",
        "",
    );
    // NodePort → host port (scripts/chart-test.sh checks, with the real skaffold, that these are
    // exactly the chart's NodePorts, on the port-forward profile's local ports).
    let host_port: BTreeMap<u64, u64> = kind["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["extraPortMappings"].as_array().into_iter().flatten())
        .filter_map(|m| Some((m["containerPort"].as_u64()?, m["hostPort"].as_u64()?)))
        .collect();
    let values = yaml("helm/campus/values.yaml");
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
        let node_port = values["expose"]["nodePorts"][format!("{api}Api")].as_u64();
        let kind_port = node_port.and_then(|p| host_port.get(&p).copied());
        c.check(
            kind_port.is_some() && local_ports.get(api).copied() == kind_port,
            format!(
                "the {api} API is localhost:{:?} in the local mode and on kind",
                local_ports.get(api)
            ),
            format!("expose.nodePorts.{api}Api {node_port:?} is mapped to {kind_port:?}"),
        );
    }
    c.finish();
}

/// `scripts/local.sh` runs exactly the contract's workers (binary and sub-command) and creates
/// exactly its topics: a worker added, renamed or moved to another binary on one side fails here.
#[test]
fn local_mode_runs_the_contracts_workers_and_topics() {
    let mut c = Checks::default();
    let local_sh = read("scripts/local.sh");
    // name | binary | sub-command | address variable | port
    let workers: BTreeSet<(String, String)> = local_sh
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 5 && f[2].starts_with("worker ") && f[3] == "OPS_ADDR")
                .then(|| (f[1].to_owned(), f[2].to_owned()))
        })
        .collect();
    let contract: BTreeSet<(String, String)> = campus_contract::WORKERS
        .iter()
        .map(|w| (w.binary().to_owned(), w.command.join(" ")))
        .collect();
    c.check(
        workers == contract,
        "scripts/local.sh's PROCESSES run the contract's workers",
        format!("local.sh {workers:?}, contract {contract:?}"),
    );
    let topics: BTreeSet<&str> = local_sh
        .lines()
        .find_map(|l| l.strip_prefix("TOPICS=\""))
        .map(|l| l.trim_end_matches('"').split_whitespace())
        .into_iter()
        .flatten()
        .filter_map(|t| t.split(':').next())
        .collect();
    let all: BTreeSet<&str> = campus_contract::topic::ALL.iter().copied().collect();
    c.check(
        topics == all,
        "scripts/local.sh's TOPICS are the contract's topics",
        format!("local.sh {topics:?}, contract {all:?}"),
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

/// `helm template` of the chart, with the expose Services.
fn render(helm: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new(helm)
        .args(["template", "campus"])
        .arg(root().join("helm/campus"))
        .args(["--namespace", "campus", "--set", "expose.enabled=true"])
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
fn chart_ports_agree_with_the_contract_and_the_images() {
    let Some(helm) = helm() else {
        return;
    };
    let mut c = Checks::default();
    let objects = match render(&helm) {
        Ok(objects) => objects,
        Err(e) => {
            c.check(false, "the chart renders (expose.enabled=true)", e);
            return c.finish();
        }
    };
    let stages = containerfile_stages("docker/Containerfile");
    let operator_expose = stages
        .get("operator")
        .map(|s| s.expose.clone())
        .unwrap_or_default();
    let exposed: Vec<&Value> = objects
        .iter()
        .filter(|o| kind_of(o) == "Service" && name_of(o).contains("-expose-"))
        .collect();
    c.check(
        exposed.len() == 3,
        "the chart has an expose Service per API",
        format!(
            "{:?}",
            exposed.iter().map(|o| name_of(o)).collect::<Vec<_>>()
        ),
    );
    for o in exposed {
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
    let operators: Vec<&Value> = objects
        .iter()
        .filter(|o| kind_of(o) == "Deployment" && name_of(o).ends_with("-operator"))
        .collect();
    c.check(operators.len() == 1, "the chart deploys the operator", "");
    for o in operators {
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
    c.finish();
}
