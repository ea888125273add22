#!/usr/bin/env python3
"""Write an OCI image archive (one layer) from a directory, without a container engine.

    oci-image.py OUT.tar NAME:TAG ROOTFS [--entrypoint JSON] [--cmd JSON] [--user U] [--env K=V]...
                 [--workdir DIR]

The archive is an OCI image layout in a tar (what `ctr images import` and `podman load` read), its
index naming the image NAME:TAG (io.containerd.image.name and org.opencontainers.image.ref.name).
The layer is the uncompressed tar of ROOTFS: files owned by root, mtime 0, sorted, so the same input
gives the same image digest.
"""

import argparse
import hashlib
import io
import json
import os
import tarfile


def layer_tar(rootfs, out):
    """The layer tar of ROOTFS into the file OUT."""
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for dirpath, dirnames, filenames in os.walk(rootfs):
            for n in dirnames + filenames:
                paths.append(os.path.join(dirpath, n))
        for p in sorted(paths, key=lambda p: os.path.relpath(p, rootfs)):
            info = tar.gettarinfo(p, arcname=os.path.relpath(p, rootfs))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isreg():
                with open(p, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def blob(tar, data):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def blob_file(tar, path):
    digest = sha256_file(path)
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = os.path.getsize(path)
    with open(path, "rb") as f:
        tar.addfile(info, f)
    return {"digest": f"sha256:{digest}", "size": info.size}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("name")
    ap.add_argument("rootfs")
    ap.add_argument("--entrypoint", type=json.loads)
    ap.add_argument("--cmd", type=json.loads)
    ap.add_argument("--user")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--workdir")
    a = ap.parse_args()

    layer = a.out + ".layer"
    layer_tar(a.rootfs, layer)
    diff_id = "sha256:" + sha256_file(layer)
    config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + a.env}
    if a.entrypoint is not None:
        config["Entrypoint"] = a.entrypoint
    if a.cmd is not None:
        config["Cmd"] = a.cmd
    if a.user:
        config["User"] = a.user
    if a.workdir:
        config["WorkingDir"] = a.workdir
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "scripts/oci-image.py"}],
    }
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w") as tar:
        layer_desc = blob_file(tar, layer)
        layer_desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
        config_desc = blob(tar, json.dumps(image_config, sort_keys=True).encode())
        config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }
        manifest_desc = blob(tar, json.dumps(manifest, sort_keys=True).encode())
        manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
        manifest_desc["annotations"] = {
            "io.containerd.image.name": a.name,
            "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[1],
        }
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [manifest_desc]}
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps(index, sort_keys=True).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, a.out)
    print(f"oci-image: {a.name} {manifest_desc['digest']} ({os.path.getsize(layer) / 1e6:.1f} MB layer)")
    os.remove(layer)


if __name__ == "__main__":
    main()
