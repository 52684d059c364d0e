//! `ocipack bench`: each subcommand runs on fixtures with a tiny budget and
//! prints the JSON shape the README documents. No timing is asserted.

mod common;

use common::{fixtures, json, ocipack_cmd, run_ok};

fn limits() -> [&'static str; 5] {
    ["--json", "--bytes", "1MiB", "--seconds", "0.2"]
}

#[test]
fn bench_hash_reports_speeds_and_features() {
    let out = json(&run_ok(
        ocipack_cmd()
            .args(["bench", "hash", "--compare", "--threads", "2"])
            .args(limits()),
    ));
    assert!(out["sha_extensions"].is_boolean(), "{out}");
    assert_eq!(out["arch"], std::env::consts::ARCH);
    assert!(out["in_use"]["implementation"]
        .as_str()
        .unwrap()
        .starts_with("sha2"));
    for s in [&out["in_use"], &out["others"][0]] {
        assert!(s["per_core_mb_s"].as_f64().unwrap() > 0.0, "{out}");
        assert!(s["per_core_cpu_mb_s"].is_number(), "{out}");
        assert!(s["all_cores_mb_s"].as_f64().unwrap() > 0.0, "{out}");
        assert_eq!(s["threads"], 2);
    }
}

#[test]
fn bench_layers_reports_each_layer_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("base");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixtures().join("base"))
        .arg(&layout)
        .status()
        .unwrap();
    assert!(cp.success());
    let before = common::trees::fingerprint(&layout);
    let out = json(&run_ok(
        ocipack_cmd()
            .args([
                "bench",
                "layers",
                &format!("oci:{}:base-amd64", layout.display()),
            ])
            .args(limits()),
    ));
    assert_eq!(out["platform"], "linux/amd64", "{out}");
    let layers = out["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    for l in layers {
        assert!(l["digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(l["bytes_read"].as_u64().unwrap() > 0, "{l}");
        assert!(l["bytes_uncompressed"].as_u64().unwrap() > 0, "{l}");
        assert!(["io", "codec", "hash"].contains(&l["bound"].as_str().unwrap()));
        for k in [
            "seconds",
            "read_s",
            "digest_s",
            "decompress_s",
            "diff_id_s",
            "mb_s",
            "ratio_to_hash",
        ] {
            assert!(l[k].is_number(), "{k}: {l}");
        }
    }
    assert_eq!(common::trees::fingerprint(&layout), before);
}

#[test]
fn bench_dir_reports_every_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), "hello ".repeat(50_000)).unwrap();
    std::fs::write(
        dir.join("sub/b.bin"),
        (0..200_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let out = json(&run_ok(
        ocipack_cmd()
            .args(["bench", "dir", dir.to_str().unwrap(), "--threads", "2"])
            .args(limits()),
    ));
    assert!(out["entries"].as_u64().unwrap() >= 3, "{out}");
    let rows = out["rows"].as_array().unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r["compression"].as_str().unwrap(), r["level"]))
        .collect();
    assert_eq!(names[0], "none null");
    assert_eq!(names.len(), 1 + 9 + 4, "{names:?}");
    assert!(names.contains(&"gzip 9".to_string()) && names.contains(&"zstd 19".to_string()));
    assert_eq!(rows[0]["size"], out["tar_bytes"]);
    for r in rows {
        assert!(r["size"].as_u64().unwrap() > 0, "{r}");
        assert!(r["size_ratio"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["ratio_to_floor"].is_number(), "{r}");
    }
    // Text compresses: gzip 9 is smaller than the tar.
    let g9 = rows
        .iter()
        .find(|r| r["compression"] == "gzip" && r["level"] == 9)
        .unwrap();
    assert!(g9["size_ratio"].as_f64().unwrap() < 1.0, "{g9}");
}
