#!/usr/bin/env python3
"""Wraps raw layer tars (made by GNU tar, bsdtar, Python's tarfile...) in an
image of an OCI layout, the way a hand-rolled pipeline would: each tar is
compressed (or not) as it is, its sha256 is the diff_id, and the config and
manifest JSON are written by hand. Nothing in the tars is rewritten.

usage: mkimage.py LAYOUT TAG [--docker] [--compress gzip|none] TAR...
"""

import gzip
import hashlib
import json
import os
import sys


def main(argv):
    args = argv[1:]
    docker = "--docker" in args
    args = [a for a in args if a != "--docker"]
    compress = "gzip"
    if "--compress" in args:
        i = args.index("--compress")
        compress = args[i + 1]
        del args[i : i + 2]
    layout, tag, tars = args[0], args[1], args[2:]
    if docker:
        mt_manifest = "application/vnd.docker.distribution.manifest.v2+json"
        mt_config = "application/vnd.docker.container.image.v1+json"
        mt_layer = {
            "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "none": "application/vnd.docker.image.rootfs.diff.tar",
        }[compress]
    else:
        mt_manifest = "application/vnd.oci.image.manifest.v1+json"
        mt_config = "application/vnd.oci.image.config.v1+json"
        mt_layer = {
            "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
            "none": "application/vnd.oci.image.layer.v1.tar",
        }[compress]
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    layers, diff_ids = [], []
    for t in tars:
        with open(t, "rb") as f:
            raw = f.read()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        blob = gzip.compress(raw, mtime=0) if compress == "gzip" else raw
        layers.append(dict(mediaType=mt_layer, **put(blob)))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "mkimage.py " + os.path.basename(t)} for t in tars],
    }
    cfg = dict(mediaType=mt_config, **put(json.dumps(config).encode()))
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt_manifest,
        "config": cfg,
        "layers": layers,
    }
    man = dict(mediaType=mt_manifest, **put(json.dumps(manifest).encode()))
    man["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index_path = os.path.join(layout, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    index["manifests"] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ] + [man]
    with open(index_path, "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main(sys.argv)
