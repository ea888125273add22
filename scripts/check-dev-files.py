#!/usr/bin/env python3
"""Cross-checks the files of the container and dev-loop setup against each other and the code, so a
renamed image, target, binary, values key, Service or port fails CI instead of a newcomer's first run.

  skaffold.yaml            artifacts, helm values it sets, port-forwards (every profile)
  kind-config.yaml         node ports mapped to localhost
  docker/Containerfile     targets, binaries, ports, user  (and docker/Containerfile.scratch, its twin)
  helm/campus              rendered with skaffold's values: Services, NodePorts, image values
  scripts/local.sh         the local mode's API ports
  scripts/images.sh        the binaries it packs
  services/common/src/config.rs   the default HTTP_ADDR/OPS_ADDR ports
  Cargo workspace          the binaries that exist

Run by scripts/chart-test.sh; prints one line per check and 'check-dev-files: N passed, N failed'.
"""
import copy
import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELM = os.path.join(os.environ.get("CAMPUS_CACHE", os.path.expanduser("~/.cache/campus")), "bin", "helm")
TARGETS = ["operator", "content", "coupon", "log"]
passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"check-dev-files: ok   {what}")
    else:
        failed += 1
        print(f"check-dev-files: FAIL {what}{': ' + detail if detail else ''}", file=sys.stderr)


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def containerfile_stages(path):
    """Stage name -> {from, entrypoint, cmd, expose, user, copy} of a Containerfile."""
    stages, cur = {}, None
    text = re.sub(r"\\\n", " ", read(path))
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            name = m.group(2) or f"stage{len(stages)}"
            base = stages.get(m.group(1), {})
            cur = stages[name] = {"from": m.group(1), "entrypoint": base.get("entrypoint"), "cmd": base.get("cmd"),
                                  "expose": list(base.get("expose", [])), "user": base.get("user"), "copy": [], "run": []}
        elif word in ("ENTRYPOINT", "CMD"):
            cur[word.lower()] = json.loads(rest)
        elif word == "EXPOSE":
            cur["expose"] += [int(p.split("/")[0]) for p in rest.split()]
        elif word == "USER":
            cur["user"] = rest.strip()
        elif word == "COPY":
            cur["copy"].append(rest)
        elif word == "RUN":
            cur["run"].append(rest)
    return stages


def workspace_bins():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"], cwd=ROOT))
    return {p["name"]: sorted(t["name"] for t in p["targets"] if "bin" in t["kind"]) for p in meta["packages"]}


def set_path(values, dotted, value):
    keys = dotted.split(".")
    for k in keys[:-1]:
        values = values.setdefault(k, {})
    values[keys[-1]] = value


def get_path(values, dotted):
    for k in dotted.split("."):
        if not isinstance(values, dict) or k not in values:
            raise KeyError(dotted)
        values = values[k]
    return values


def json_patch(doc, patches):
    doc = copy.deepcopy(doc)
    for p in patches:
        parts = [x.replace("~1", "/").replace("~0", "~") for x in p["path"].lstrip("/").split("/")]
        target = doc
        for k in parts[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        last = parts[-1]
        if p["op"] in ("replace", "add"):
            if isinstance(target, list):
                target.insert(len(target) if last == "-" else int(last), p["value"]) if p["op"] == "add" else target.__setitem__(int(last), p["value"])
            else:
                if p["op"] == "replace" and last not in target:
                    raise KeyError(f"patch path {p['path']} does not exist")
                target[last] = p["value"]
        elif p["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]
    return doc


def apply_profile(config, profile):
    """The parts of skaffold's profile overlay this setup uses: patches, then whole-field replacement."""
    out = json_patch(config, profile.get("patches", []))
    for key in ("build", "deploy", "portForward"):
        if key in profile:
            if key == "portForward":
                out[key] = profile[key]
            else:
                for sub, val in profile[key].items():
                    out.setdefault(key, {})[sub] = val
    return out


def render(release, overrides):
    """helm template of a skaffold release with its values files and set values (all strings)."""
    args = [HELM, "template", release["name"], os.path.join(ROOT, release["chartPath"]),
            "--namespace", release.get("namespace", "default")]
    for f in release.get("valuesFiles", []):
        args += ["-f", os.path.join(ROOT, f)]
    for k, v in {**release.get("setValues", {}), **overrides}.items():
        args += ["--set-string" if isinstance(v, str) and not v in ("true", "false") else "--set", f"{k}={v}"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def main():
    stages = containerfile_stages("docker/Containerfile")
    scratch = containerfile_stages("docker/Containerfile.scratch")
    bins = workspace_bins()

    # --- Containerfiles: the targets, what they run, as whom, on which ports; the scratch twin agrees.
    check(all(t in stages for t in TARGETS), f"docker/Containerfile has the targets {TARGETS}",
          f"stages: {sorted(stages)}")
    check(all(t in scratch for t in TARGETS), f"docker/Containerfile.scratch has the targets {TARGETS}",
          f"stages: {sorted(scratch)}")
    for t in TARGETS:
        a, b = stages.get(t, {}), scratch.get(t, {})
        same = all(a.get(k) == b.get(k) for k in ("entrypoint", "cmd", "expose", "user"))
        check(same, f"target {t}: entrypoint, cmd, ports and user agree in both Containerfiles",
              f"{ {k: a.get(k) for k in ('entrypoint', 'cmd', 'expose', 'user')} } vs { {k: b.get(k) for k in ('entrypoint', 'cmd', 'expose', 'user')} }")
        check(a.get("user") not in (None, "", "0", "root", "0:0") and b.get("user") == a.get("user"),
              f"target {t} runs as a non-root user ({a.get('user')})")
    pkg_of = {"operator": "campus-operator", "content": "campus-content", "coupon": "campus-coupon", "log": "campus-log"}
    built = " ".join(stages.get("builder", {}).get("run", []))
    packed = set(read("scripts/images.sh").split("BINS=\"", 1)[1].split("\"", 1)[0].split())
    for t, pkg in pkg_of.items():
        entry = os.path.basename((stages.get(t, {}).get("entrypoint") or ["?"])[0])
        have = bins.get(pkg, [])
        check(entry in have, f"target {t} runs {entry}, a binary of package {pkg}", f"{pkg} has {have}")
        for b in have:
            check(re.search(rf"(^|\s){re.escape(b)}(\s|$)", built) is not None and b in packed,
                  f"binary {b} is copied out of the builder and packed by scripts/images.sh")
        check(f"-p {pkg}" in built, f"the builder stage builds package {pkg}")

    # --- skaffold.yaml: one artifact per target, built from docker/Containerfile.
    sk = yaml.safe_load(read("skaffold.yaml"))
    check(sk.get("apiVersion", "").startswith("skaffold/v4beta") and sk.get("kind") == "Config",
          f"skaffold.yaml is a skaffold/v4beta Config ({sk.get('apiVersion')})")
    arts = {a["image"]: a for a in sk["build"]["artifacts"]}
    check(sorted(arts) == sorted(f"campus-{t}" for t in TARGETS), "skaffold builds one image per Containerfile target",
          f"artifacts {sorted(arts)}")
    for image, a in arts.items():
        d = a.get("docker", {})
        check(d.get("dockerfile") == "docker/Containerfile" and d.get("target") in stages
              and image == f"campus-{d.get('target')}" and a.get("context", ".") == ".",
              f"artifact {image} builds target {d.get('target')} of docker/Containerfile")

    # --- skaffold's helm release: the values it sets exist, and name each artifact's repo and tag.
    releases = sk["deploy"]["helm"]["releases"]
    check(len(releases) == 1 and os.path.isfile(os.path.join(ROOT, releases[0]["chartPath"], "Chart.yaml")),
          f"skaffold deploys the chart at {releases[0]['chartPath']}")
    release = releases[0]
    values = yaml.safe_load(read(os.path.join(release["chartPath"], "values.yaml")))
    for f in release.get("valuesFiles", []):
        check(os.path.isfile(os.path.join(ROOT, f)), f"values file {f} exists")
    templates = release.get("setValueTemplates", {})
    for image in arts:
        var = re.sub(r"[^A-Za-z0-9]", "_", image)
        repo_keys = [k for k, v in templates.items() if v == f"{{{{.IMAGE_REPO_{var}}}}}"]
        tag_keys = [k for k, v in templates.items() if v == f"{{{{.IMAGE_TAG_{var}}}}}"]
        check(len(repo_keys) == 1 and len(tag_keys) == 1 and repo_keys[0].rsplit(".", 1)[0] == tag_keys[0].rsplit(".", 1)[0],
              f"skaffold sets the repository and tag of {image} in one values block", f"{repo_keys} {tag_keys}")
        for k in repo_keys:
            try:
                default = get_path(values, k)
                check(default == image, f"values {k} defaults to the image name {image}", f"is {default!r}")
            except KeyError:
                check(False, f"values key {k} (set by skaffold) exists in values.yaml")
        for k in tag_keys:
            try:
                get_path(values, k)
                check(True, f"values key {k} (set by skaffold) exists in values.yaml")
            except KeyError:
                check(False, f"values key {k} (set by skaffold) exists in values.yaml")
    for k in list(release.get("setValues", {})):
        try:
            get_path(values, k)
            check(True, f"values key {k} (set by skaffold) exists in values.yaml")
        except KeyError:
            check(False, f"values key {k} (set by skaffold) exists in values.yaml")

    # --- Render the chart as skaffold deploys it, for the default, kind and port-forward profiles.
    profiles = {p["name"]: p for p in sk.get("profiles", [])}
    check({"kind", "port-forward"} <= set(profiles), "skaffold has the profiles kind and port-forward")
    kind_profile = profiles.get("kind", {})
    check(any(a.get("kubeContext") == "^kind-" for a in kind_profile.get("activation", [])),
          "profile kind activates on kind-* contexts")
    check(kind_profile.get("build", {}).get("local", {}).get("push") is False,
          "profile kind loads images into the node (build.local.push: false)")
    check(any(a.get("kubeContext") == "!^kind-" for a in profiles.get("port-forward", {}).get("activation", [])),
          "profile port-forward activates on every other context")
    placeholder = {k: "skaffold-placeholder" for k in templates}
    rendered = {}
    for name in ("default", "kind", "port-forward"):
        cfg = sk if name == "default" else apply_profile({k: v for k, v in sk.items() if k != "profiles"}, profiles[name])
        rel = cfg["deploy"]["helm"]["releases"][0]
        try:
            objs = render(rel, placeholder)
            rendered[name] = (cfg, rel, objs)
            check(True, f"the chart renders with skaffold's values ({name} profile): {len(objs)} objects")
        except (RuntimeError, KeyError) as e:
            check(False, f"the chart renders with skaffold's values ({name} profile)", str(e))
    if len(rendered) != 3:
        return

    # Every image the chart deploys from this repo is one skaffold builds (the rest are upstream images).
    for name, (cfg, rel, objs) in rendered.items():
        images = set()
        for o in objs:
            spec = o.get("spec", {}).get("template", {}).get("spec", {}) if o.get("kind") in ("Deployment", "StatefulSet", "Job", "DaemonSet") else {}
            images |= {c["image"] for c in spec.get("containers", []) + spec.get("initContainers", [])}
        ours = {i for i in images if i.startswith("skaffold-placeholder")}
        check(ours, f"{name}: the chart's own workloads take their image from skaffold's values", f"images {sorted(images)}")

    # Port-forwards point at Services the chart renders, on ports those Services have.
    for name, (cfg, rel, objs) in rendered.items():
        services = {(o["metadata"]["name"], o["metadata"].get("namespace")): o for o in objs if o["kind"] == "Service"}
        for pf in cfg.get("portForward", []):
            svc = services.get((pf["resourceName"], pf.get("namespace", "default")))
            ports = [p["port"] for p in svc["spec"]["ports"]] if svc else []
            check(pf["resourceType"] == "service" and svc is not None and pf["port"] in ports,
                  f"{name}: port-forward service/{pf['resourceName']}:{pf['port']} -> localhost:{pf.get('localPort')} exists in the chart",
                  f"service ports {ports}" if svc else "no such Service")

    # --- kind-config.yaml maps exactly the chart's NodePorts, to the port-forward profile's local ports.
    kind = yaml.safe_load(read("kind-config.yaml"))
    check(kind.get("apiVersion") == "kind.x-k8s.io/v1alpha4" and kind.get("kind") == "Cluster",
          "kind-config.yaml is a kind.x-k8s.io/v1alpha4 Cluster")
    mappings = {m["containerPort"]: m for n in kind.get("nodes", []) for m in n.get("extraPortMappings", [])}
    _, _, kind_objs = rendered["kind"]
    nodeports = {p["nodePort"]: o["metadata"]["name"] for o in kind_objs if o["kind"] == "Service"
                 and o["spec"].get("type") == "NodePort" for p in o["spec"]["ports"]}
    check(sorted(nodeports) == sorted(mappings), "kind-config.yaml maps exactly the chart's NodePorts (kind profile)",
          f"NodePorts {nodeports}, mapped {sorted(mappings)}")
    forwards = {pf["resourceName"]: pf.get("localPort") for pf in rendered["port-forward"][0].get("portForward", [])}
    host_of = {}
    for port, svc in nodeports.items():
        m = mappings.get(port, {})
        host_of[svc] = m.get("hostPort")
        check(m.get("listenAddress") == "127.0.0.1", f"kind maps NodePort {port} on 127.0.0.1 only")
        check(m.get("hostPort") == forwards.get(svc),
              f"service/{svc} is localhost:{m.get('hostPort')} on kind and with skaffold's port-forward",
              f"port-forward uses {forwards.get(svc)}")

    # --- The local mode serves each API on the port kind and skaffold use.
    local = read("scripts/local.sh")
    local_ports = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)-api\|[^|]+\|api\|HTTP_ADDR\|(\d+)$", local, re.M)}
    for api in ("content", "coupon", "log"):
        svc = next((s for s in host_of if s.endswith(f"-expose-{api}-api")), None)
        check(svc is not None and local_ports.get(api) == host_of.get(svc),
              f"the {api} API is localhost:{local_ports.get(api)} in the local mode and on kind",
              f"kind/skaffold: {host_of.get(svc)}")

    # --- Ports in the code, the images and the chart agree.
    # The ports live in the contract crate (services/contract), which both the services' flags
    # and the operator's builders read.
    contract_rs = read("services/contract/src/lib.rs")
    http_port = int(re.search(r"pub const API: u16 = (\d+);", contract_rs).group(1))
    ops_port = int(re.search(r"pub const OPS: u16 = (\d+);", contract_rs).group(1))
    for t in ("content", "coupon", "log"):
        check(sorted(stages[t]["expose"]) == sorted({http_port, ops_port}),
              f"image {t} exposes the code's HTTP_ADDR and OPS_ADDR ports ({http_port}, {ops_port})", f"{stages[t]['expose']}")
    main_rs = os.path.join(ROOT, "operator/src/main.rs")
    m = re.search(r'env = [\w:]*OPS_ADDR, default_value = "[\d.]+:(\d+)"', open(main_rs).read()) if os.path.exists(main_rs) else None
    if m:
        check(int(m.group(1)) in stages["operator"]["expose"],
              f"the operator's default OPS_ADDR port {m.group(1)} is exposed by its image")
    deploy_rs = os.path.join(ROOT, "operator/src/build/deployment.rs")
    m = re.search(r"pub const API_PORT: i32 = campus_contract::port::API as i32;", open(deploy_rs).read()) if os.path.exists(deploy_rs) else None
    check(m is not None, f"the operator runs the APIs on the contract's HTTP_ADDR port ({http_port})")
    _, _, objs = rendered["default"]
    for o in objs:
        if o["kind"] == "Service" and "-expose-" in o["metadata"]["name"]:
            check(all(p["targetPort"] == http_port for p in o["spec"]["ports"]),
                  f"service/{o['metadata']['name']} targets the APIs' HTTP_ADDR port {http_port}")
        if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-operator"):
            ports = [p["containerPort"] for c in o["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
            check(ports and all(p in stages["operator"]["expose"] for p in ports),
                  f"the operator's containerPorts {ports} are the ones its image exposes {stages['operator']['expose']}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failed check, with the reason
        check(False, "check-dev-files ran to the end", f"{type(e).__name__}: {e}")
    print(f"check-dev-files: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
