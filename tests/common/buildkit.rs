//! OCI layouts written the way BuildKit's `--output type=oci,tar=false,
//! dest=DIR,name=NAME` writes them, built from the committed fixture blobs
//! (no BuildKit daemon in CI). What is reproduced, from moby/buildkit:
//!
//! - `exporter/oci/export.go`: NAME is normalised (`ParseNormalizedNamed` +
//!   `TagNameOnly`: `base-riscv64` -> `docker.io/library/base-riscv64:latest`)
//!   and the root descriptor gets `org.opencontainers.image.created`;
//! - `client/ociindex/ociindex.go` (`StoreIndex.Put`): the `index.json` entry
//!   carries `io.containerd.image.name` = the full name and
//!   `org.opencontainers.image.ref.name` = its tag part (`latest`); an entry
//!   with the same pair is replaced, others are kept (so several exports into
//!   one directory accumulate, all tagged `latest`); compact `json.Marshal`;
//! - `exporter/containerimage/writer.go`: without attestations a single
//!   platform's manifest is the root, with its platform; with attestations
//!   (buildx's default provenance, `nerdctl build --provenance`) the root is
//!   an image index holding the image manifest (with platform) and an
//!   attestation manifest (platform `unknown/unknown`, annotations
//!   `vnd.docker.reference.type: attestation-manifest` and
//!   `vnd.docker.reference.digest`, one `application/vnd.in-toto+json`
//!   layer, config with os/architecture `unknown`); manifests and the index
//!   are `json.MarshalIndent(.., "", "  ")`, field order as Go's structs.
//!
//! The image's own config and layer blobs are the fixture's, byte for byte;
//! only the manifest is rewritten (BuildKit's carries `mediaType`).

use std::fs;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const INTOTO: &str = "application/vnd.in-toto+json";

/// One `--output type=oci,tar=false,dest=DEST,name=NAME` export of the
/// fixture image `SRC_LAYOUT:SRC_TAG` (a single-platform image manifest).
pub struct Export<'a> {
    pub src_layout: &'a Path,
    pub src_tag: &'a str,
    pub dest: &'a Path,
    pub name: &'a str,
    /// Add a provenance attestation manifest (the root becomes an index).
    pub attest: bool,
}

/// `sha256:<hex>` of bytes.
fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn blob_path(layout: &Path, d: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(d.strip_prefix("sha256:").expect("sha256 digest"))
}

fn write_blob(dest: &Path, bytes: &[u8]) -> String {
    let d = digest(bytes);
    fs::write(blob_path(dest, &d), bytes).expect("write blob");
    d
}

/// `ParseNormalizedNamed` + `TagNameOnly` for the simple names the tests
/// use (no digest).
pub fn normalized_name(name: &str) -> String {
    let (first, _) = name.split_once('/').unwrap_or(("", name));
    let mut full = if !name.contains('/') {
        format!("docker.io/library/{name}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        name.to_string()
    } else {
        format!("docker.io/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') {
        full.push_str(":latest");
    }
    full
}

/// Go's `json.MarshalIndent(v, "", "  ")` layout of a compact JSON text
/// whose keys are already in Go struct order.
pub fn go_indent(compact: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let chars: Vec<char> = compact.chars().collect();
    let nl = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                if chars.get(i + 1) == Some(&close) {
                    out.push(c);
                    out.push(close);
                    i += 2;
                    continue;
                }
                out.push(c);
                depth += 1;
                nl(&mut out, depth);
            }
            '}' | ']' => {
                depth -= 1;
                nl(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                nl(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

fn desc(
    media_type: &str,
    d: &str,
    size: usize,
    annotations: &[(&str, &str)],
    platform: Option<&str>,
) -> String {
    let mut s = format!(r#"{{"mediaType":"{media_type}","digest":"{d}","size":{size}"#);
    if !annotations.is_empty() {
        let mut a = annotations.to_vec();
        a.sort(); // Go marshals map keys sorted
        let body: Vec<String> = a.iter().map(|(k, v)| format!(r#""{k}":"{v}""#)).collect();
        s.push_str(&format!(r#","annotations":{{{}}}"#, body.join(",")));
    }
    if let Some(p) = platform {
        s.push_str(&format!(r#","platform":{p}"#));
    }
    s.push('}');
    s
}

/// Go's ocispecs.Platform order: architecture, os, (os.version,
/// os.features,) variant.
fn platform_json(config: &Value) -> String {
    let arch = config["architecture"]
        .as_str()
        .expect("config architecture");
    let os = config["os"].as_str().expect("config os");
    match config.get("variant").and_then(|v| v.as_str()) {
        Some(v) => format!(r#"{{"architecture":"{arch}","os":"{os}","variant":"{v}"}}"#),
        None => format!(r#"{{"architecture":"{arch}","os":"{os}"}}"#),
    }
}

/// Writes (or adds to) the layout `dest` as BuildKit does; returns the
/// digest of the root descriptor written to `index.json`.
pub fn export(e: &Export) -> String {
    fs::create_dir_all(e.dest.join("blobs/sha256")).expect("mkdir blobs");
    // The fixture image.
    let idx: Value = serde_json::from_slice(
        &fs::read(e.src_layout.join("index.json")).expect("read index.json"),
    )
    .expect("parse index.json");
    let entry = idx["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == e.src_tag)
        .unwrap_or_else(|| panic!("{} has no tag {}", e.src_layout.display(), e.src_tag));
    let src_mf: Value = serde_json::from_slice(
        &fs::read(blob_path(e.src_layout, entry["digest"].as_str().unwrap()))
            .expect("read manifest"),
    )
    .expect("parse manifest");
    let cfg_d = src_mf["config"]["digest"].as_str().expect("config digest");
    let cfg_bytes = fs::read(blob_path(e.src_layout, cfg_d)).expect("read config");
    let config: Value = serde_json::from_slice(&cfg_bytes).expect("parse config");
    write_blob(e.dest, &cfg_bytes);
    let mut layers = Vec::new();
    for l in src_mf["layers"].as_array().expect("layers") {
        let d = l["digest"].as_str().unwrap();
        let bytes = fs::read(blob_path(e.src_layout, d)).expect("read layer");
        write_blob(e.dest, &bytes);
        layers.push(desc(
            l["mediaType"].as_str().unwrap(),
            d,
            bytes.len(),
            &[],
            None,
        ));
    }
    // commitDistributionManifest: schemaVersion, mediaType, config, layers.
    let mf = go_indent(&format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{},"layers":[{}]}}"#,
        desc(CONFIG, cfg_d, cfg_bytes.len(), &[], None),
        layers.join(",")
    ));
    let mf_d = write_blob(e.dest, mf.as_bytes());
    let platform = platform_json(&config);
    let name = normalized_name(e.name);
    let tag = name.rsplit(':').next().unwrap().to_string();
    let created = "2023-11-14T22:13:20Z"; // SOURCE_DATE_EPOCH=1700000000
    let root_annotations = [
        ("io.containerd.image.name", name.as_str()),
        ("org.opencontainers.image.created", created),
        ("org.opencontainers.image.ref.name", tag.as_str()),
    ];
    let root = if e.attest {
        // The provenance statement about the image manifest.
        let short = e.name.rsplit('/').next().unwrap();
        let (repo, _) = short.split_once(':').unwrap_or((short, ""));
        let plat = format!(
            "{}%2F{}",
            config["os"].as_str().unwrap(),
            config["architecture"].as_str().unwrap()
        );
        let stmt = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","subject":[{{"name":"pkg:docker/{repo}@{tag}?platform={plat}","digest":{{"sha256":"{}"}}}}],"predicate":{{"builder":{{"id":""}},"buildType":"https://mobyproject.org/buildkit@v1","metadata":{{"buildStartedOn":"{created}","buildFinishedOn":"{created}","completeness":{{"parameters":false,"environment":true,"materials":false}},"reproducible":false}}}}}}"#,
            mf_d.strip_prefix("sha256:").unwrap()
        );
        let stmt_d = write_blob(e.dest, stmt.as_bytes());
        let att_cfg = format!(
            r#"{{"architecture":"unknown","os":"unknown","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{stmt_d}"]}}}}"#
        );
        let att_cfg_d = write_blob(e.dest, att_cfg.as_bytes());
        let att_mf = go_indent(&format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{},"layers":[{}]}}"#,
            desc(CONFIG, &att_cfg_d, att_cfg.len(), &[], None),
            desc(
                INTOTO,
                &stmt_d,
                stmt.len(),
                &[(
                    "in-toto.io/predicate-type",
                    "https://slsa.dev/provenance/v0.2"
                )],
                None
            )
        ));
        let att_mf_d = write_blob(e.dest, att_mf.as_bytes());
        let index = go_indent(&format!(
            r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{},{}]}}"#,
            desc(MANIFEST, &mf_d, mf.len(), &[], Some(&platform)),
            desc(
                MANIFEST,
                &att_mf_d,
                att_mf.len(),
                &[
                    ("vnd.docker.reference.digest", mf_d.as_str()),
                    ("vnd.docker.reference.type", "attestation-manifest"),
                ],
                Some(r#"{"architecture":"unknown","os":"unknown"}"#)
            )
        ));
        let index_d = write_blob(e.dest, index.as_bytes());
        (
            desc(INDEX, &index_d, index.len(), &root_annotations, None),
            index_d,
        )
    } else {
        (
            desc(
                MANIFEST,
                &mf_d,
                mf.len(),
                &root_annotations,
                Some(&platform),
            ),
            mf_d.clone(),
        )
    };
    // StoreIndex.Put: replace the entry with the same (ref.name, name).
    fs::write(
        e.dest.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let mut kept = Vec::new();
    if let Ok(old) = fs::read(e.dest.join("index.json")) {
        let old: Value = serde_json::from_slice(&old).expect("parse old index.json");
        for m in old["manifests"].as_array().cloned().unwrap_or_default() {
            let a = &m["annotations"];
            if a["org.opencontainers.image.ref.name"] != tag.as_str()
                || a["io.containerd.image.name"] != name.as_str()
            {
                kept.push(reserialize_desc(&m));
            }
        }
    }
    kept.push(root.0);
    fs::write(
        e.dest.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{}]}}"#,
            kept.join(",")
        ),
    )
    .expect("write index.json");
    root.1
}

/// A descriptor read back from an index.json this module wrote, in Go order.
fn reserialize_desc(m: &Value) -> String {
    let ann: Vec<(String, String)> = m["annotations"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let ann_ref: Vec<(&str, &str)> = ann.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let platform = m.get("platform").map(platform_json);
    desc(
        m["mediaType"].as_str().unwrap(),
        m["digest"].as_str().unwrap(),
        m["size"].as_u64().unwrap() as usize,
        &ann_ref,
        platform.as_deref(),
    )
}
