//! The conventions a skopeo/crane user expects (issue 13): credential
//! sources that keep secrets out of argv, containers' auth-file order and
//! `host/repo` keys, private CAs with `--cert-dir`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use common::registry::Registry;
use common::{fixtures, json, ocipack_cmd, require_tool, run_fail, run_ok};

const BASE_AMD64: &str = "sha256:6b242a4976301a05f55f0528e0d8ac0cd345b43c1ff8bae78ac8b4707abb90fc";

fn base_src() -> String {
    format!("oci:{}:base-amd64", fixtures().join("base").display())
}

/// `ocipack push base-amd64 DEST --json` with `extra` arguments.
fn push(dest: &str, extra: &[&str]) -> Command {
    let mut c = ocipack_cmd();
    c.args(["push", &base_src(), dest, "--json"])
        .args(extra)
        .stdin(Stdio::null());
    c
}

/// Runs `cmd` with `input` on stdin; returns (success, stdout, stderr).
fn with_stdin(cmd: &mut Command, input: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn auth_json(entries: &[(&str, &str)]) -> String {
    let e: Vec<String> = entries
        .iter()
        .map(|(k, up)| {
            let b = base64::engine::general_purpose::STANDARD.encode(up);
            format!(r#""{k}":{{"auth":"{b}"}}"#)
        })
        .collect();
    format!(r#"{{"auths":{{{}}}}}"#, e.join(","))
}

#[test]
fn passwords_stay_out_of_argv() {
    let reg = Registry::start_basic("alice", "s3cret");

    // --creds USER --password-stdin
    let (ok, out, err) = with_stdin(
        &mut push(&reg.url("c/a:1"), &["--creds", "alice", "--password-stdin"]),
        "s3cret\n",
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["digest"], BASE_AMD64);

    // --username with the password in the environment
    let out =
        run_ok(push(&reg.url("c/a:2"), &["--username", "alice"]).env("OCIPACK_PASSWORD", "s3cret"));
    assert_eq!(json(&out)["digest"], BASE_AMD64);
    // both from the environment
    run_ok(
        push(&reg.url("c/a:3"), &[])
            .env("OCIPACK_USERNAME", "alice")
            .env("OCIPACK_PASSWORD", "s3cret"),
    );

    // A user without a password and no terminal to ask on: a clear error.
    let err = run_fail(&mut push(&reg.url("c/a:4"), &["--creds", "alice"]));
    assert!(err.contains("no password for alice"), "{err}");
    assert!(err.contains("--password-stdin"), "{err}");
    let err = run_fail(&mut push(&reg.url("c/a:4"), &["--password-stdin"]));
    assert!(err.contains("--password-stdin needs"), "{err}");
    assert!(reg.manifest("c/a", "4").is_none());
}

#[test]
fn auth_files_in_order_and_most_specific_key() {
    let reg = Registry::start_basic("alice", "s3cret");
    let tmp = tempfile::tempdir().unwrap();
    let host = reg.host();

    // $XDG_RUNTIME_DIR/containers/auth.json: a wrong host entry, the right
    // one for c/ok: the repository key wins for c/ok only.
    let runtime = tmp.path().join("run");
    std::fs::create_dir_all(runtime.join("containers")).unwrap();
    std::fs::write(
        runtime.join("containers/auth.json"),
        auth_json(&[
            (&host, "alice:wrong"),
            (&format!("{host}/c/ok"), "alice:s3cret"),
        ]),
    )
    .unwrap();
    let out = run_ok(push(&reg.url("c/ok:1"), &[]).env("XDG_RUNTIME_DIR", &runtime));
    assert_eq!(json(&out)["digest"], BASE_AMD64);
    let err = run_fail(push(&reg.url("c/other:1"), &[]).env("XDG_RUNTIME_DIR", &runtime));
    assert!(err.contains("credentials rejected"), "{err}");

    // ~/.config/containers/auth.json comes after it: the runtime file's
    // host entry (wrong) is found first; alone, the config file works.
    let config = tmp.path().join("config");
    std::fs::create_dir_all(config.join("containers")).unwrap();
    std::fs::write(
        config.join("containers/auth.json"),
        auth_json(&[(&host, "alice:s3cret")]),
    )
    .unwrap();
    let err = run_fail(
        push(&reg.url("c/other:2"), &[])
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", &config),
    );
    assert!(err.contains("credentials rejected"), "{err}");
    run_ok(push(&reg.url("c/other:2"), &[]).env("XDG_CONFIG_HOME", &config));

    // --authfile and $REGISTRY_AUTH_FILE name the only file read.
    let good = tmp.path().join("good.json");
    std::fs::write(&good, auth_json(&[(&host, "alice:s3cret")])).unwrap();
    run_ok(
        push(
            &reg.url("c/other:3"),
            &["--authfile", good.to_str().unwrap()],
        )
        .env("XDG_RUNTIME_DIR", &runtime),
    );
    run_ok(
        push(&reg.url("c/other:4"), &[])
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("REGISTRY_AUTH_FILE", &good),
    );

    // --no-creds: nothing is looked up.
    let err =
        run_fail(push(&reg.url("c/other:5"), &["--no-creds"]).env("REGISTRY_AUTH_FILE", &good));
    assert!(err.contains("authentication failed"), "{err}");
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn make_certs(dir: &Path) {
    require_tool("openssl", "openssl");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ocipack test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    // A client certificate signed by the same CA.
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=ocipack client",
        ],
    ]
    .concat());
    std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.cert",
        "-days",
        "2",
        "-extfile",
        "client.cnf",
    ]);
}

#[test]
fn private_ca_with_cert_dir() {
    let tmp = tempfile::tempdir().unwrap();
    make_certs(tmp.path());
    let reg = Registry::start_tls(
        &tmp.path().join("server.pem"),
        &tmp.path().join("server.key"),
    );
    let certs = tmp.path().join("certs.d");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(tmp.path().join("ca.pem"), certs.join("ca.crt")).unwrap();

    // Not in the system store: refused at once, saying what to do.
    let start = std::time::Instant::now();
    let err = run_fail(&mut push(&reg.url("tls/base:1"), &[]));
    assert!(err.contains("TLS certificate not trusted"), "{err}");
    assert!(err.contains("--cert-dir"), "{err}");
    assert!(start.elapsed().as_secs() < 10, "a TLS failure was retried");
    // Said once, by ocipack, not also by the verifier's own log.
    assert!(!err.contains("rustls_platform_verifier"), "{err}");

    let out = run_ok(&mut push(
        &reg.url("tls/base:1"),
        &["--cert-dir", certs.to_str().unwrap()],
    ));
    assert_eq!(json(&out)["digest"], BASE_AMD64);

    // skopeo, trusting the same directory, reads what was pushed.
    require_tool("skopeo", "skopeo");
    let raw = Command::new("skopeo")
        .env("HOME", tmp.path())
        .args(["inspect", "--raw", "--cert-dir", certs.to_str().unwrap()])
        .arg(reg.url("tls/base:1"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let manifest = std::fs::read(
        fixtures()
            .join("base/blobs/sha256")
            .join(BASE_AMD64.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(raw.stdout, manifest);

    // A missing --cert-dir is named.
    let err = run_fail(&mut push(
        &reg.url("tls/base:2"),
        &["--cert-dir", "/nonexistent-certs"],
    ));
    assert!(err.contains("/nonexistent-certs"), "{err}");
}

/// The exit status and stderr of `ocipack ARGS`.
fn status(args: &[&str]) -> (i32, String) {
    let out = ocipack_cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_tell_a_bad_image_from_an_error() {
    let base = |tag: &str| format!("oci:{}:{tag}", fixtures().join("base").display());
    // A check that ran and failed: 3.
    let (code, err) = status(&["verify", &base("base-amd64"), "--arch", "arm64"]);
    assert_eq!(code, 3, "{err}");
    // A guard failing inside package (amd64 payload for arm64): 3.
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = status(&[
        "package",
        "--arch",
        "arm64",
        "--base",
        &base("base"),
        "--artifact",
        &format!(
            "oci:{}:cross-android-amd64",
            fixtures().join("artifacts").display()
        ),
        "--recipe",
        &common::repo()
            .join("layouts/fixtures/package.toml")
            .display()
            .to_string(),
        "--out",
        &format!("oci:{}:x", tmp.path().display()),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("guard"), "{err}");
    // The check could not run: 1.
    let (code, err) = status(&["verify", "oci:/nonexistent-layout:x", "--arch", "arm64"]);
    assert_eq!(code, 1, "{err}");
    // The command line does not parse: 2.
    let (code, _) = status(&["verify", "--no-such-flag"]);
    assert_eq!(code, 2);
    let (_, help) = (0, run_ok(ocipack_cmd().arg("--help")));
    assert!(help.contains("3 a check failed"), "{help}");
}

#[test]
fn platform_quiet_and_digestfile() {
    let base = format!("oci:{}:base", fixtures().join("base").display());
    // --platform is --arch, in crane's os/arch[/variant] spelling too.
    let by_arch = json(&run_ok(
        ocipack_cmd().args(["inspect", &base, "--arch", "arm64", "--json"]),
    ));
    let by_platform = json(&run_ok(ocipack_cmd().args([
        "inspect",
        &base,
        "--platform",
        "linux/arm64/v8",
        "--json",
    ])));
    assert_eq!(by_arch["digest"], by_platform["digest"]);
    assert_eq!(
        by_arch["media_type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // verify takes it too (the fixture base is no complete toolchain
    // image, so both spellings fail the same check).
    let img = format!("oci:{}:base-amd64", fixtures().join("base").display());
    let arch = ocipack_cmd()
        .args(["verify", &img, "--arch", "amd64"])
        .output()
        .unwrap();
    let platform = ocipack_cmd()
        .args(["verify", &img, "--platform", "linux/amd64"])
        .output()
        .unwrap();
    assert_eq!(arch.status.code(), platform.status.code());
    assert_eq!(arch.stdout, platform.stdout);
    let (code, err) = status(&["verify", &img, "--platform", "windows/amd64"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("only linux"), "{err}");

    // skopeo's --digestfile format; -q leaves stderr empty.
    let tmp = tempfile::tempdir().unwrap();
    let digest_file = tmp.path().join("digest");
    let out = ocipack_cmd()
        .args(["-q", "copy", &base_src()])
        .arg(format!("oci:{}:x", tmp.path().join("l").display()))
        .arg("--digestfile")
        .arg(&digest_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&digest_file).unwrap(), BASE_AMD64);
}

#[test]
fn completions_and_man_pages() {
    let script = run_ok(ocipack_cmd().args(["completions", "bash"]));
    // bash sources it and registers the completion.
    let mut bash = Command::new("bash")
        .args(["--norc", "-c", "source /dev/stdin && complete -p ocipack"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = bash.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ocipack"));
    assert!(run_ok(ocipack_cmd().args(["completions", "zsh"])).starts_with("#compdef ocipack"));
    assert!(run_ok(ocipack_cmd().args(["completions", "fish"])).contains("complete -c ocipack"));

    let dir = tempfile::tempdir().unwrap();
    run_ok(ocipack_cmd().arg("man").arg(dir.path()));
    let copy = std::fs::read_to_string(dir.path().join("ocipack-copy.1")).unwrap();
    assert!(copy.contains(".TH ocipack-copy"), "{copy}");
    assert!(copy.contains("cert\\-dir"), "{copy}");
    assert!(dir.path().join("ocipack.1").exists());
}

#[test]
fn label_prefix_is_a_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("out");
    let s = |p: &Path| p.display().to_string();
    let package = |prefix: Option<&str>, tag: &str| {
        let mut c = ocipack_cmd();
        c.env("SOURCE_DATE_EPOCH", "1700000000").args([
            "package",
            "--arch",
            "amd64",
            "--base",
            &format!("oci:{}:base", s(&fixtures().join("base"))),
            "--artifact",
            &format!(
                "oci:{}:cross-android-amd64",
                s(&fixtures().join("artifacts"))
            ),
            "--recipe",
            &s(&common::repo().join("layouts/fixtures/package.toml")),
            "--out",
            &format!("oci:{}:{tag}", s(&layout)),
            "--run-id",
            "run-7",
            "--json",
        ]);
        if let Some(p) = prefix {
            c.env("OCIPACK_LABEL_PREFIX", p);
        }
        json(&run_ok(&mut c))
    };
    let labels = |tag: &str| {
        let r = json(&run_ok(ocipack_cmd().args([
            "inspect",
            &format!("oci:{}:{tag}", s(&layout)),
            "--json",
        ])));
        r["config"]["labels"].clone()
    };
    let default = package(None, "d");
    let custom = package(Some("com.example.ci"), "c");
    assert_eq!(labels("d")["org.kataglyphis.run-id"], "run-7");
    let l = labels("c");
    assert_eq!(l["com.example.ci.run-id"], "run-7");
    assert!(l.get("org.kataglyphis.run-id").is_none(), "{l}");
    assert_ne!(default["digest"], custom["digest"]);
    // The flag spelling, and a bad prefix is a usage error.
    let (code, err) = status(&["--label-prefix", "Not A Name", "inspect", "oci:x:y"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("reverse-DNS"), "{err}");
}

#[test]
fn client_certificate_from_cert_dir() {
    let tmp = tempfile::tempdir().unwrap();
    make_certs(tmp.path());
    let ca = tmp.path().join("ca.pem");
    let reg = Registry::start_tls_with(
        &tmp.path().join("server.pem"),
        &tmp.path().join("server.key"),
        Some(&ca),
    );
    let certs = tmp.path().join("certs.d");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    // The CA alone: the registry refuses the connection.
    run_fail(&mut push(
        &reg.url("mtls/base:1"),
        &["--cert-dir", certs.to_str().unwrap(), "--retries", "0"],
    ));
    // With the client pair (NAME.cert + NAME.key) it works.
    std::fs::copy(tmp.path().join("client.cert"), certs.join("client.cert")).unwrap();
    std::fs::copy(tmp.path().join("client.key"), certs.join("client.key")).unwrap();
    let out = run_ok(&mut push(
        &reg.url("mtls/base:1"),
        &["--cert-dir", certs.to_str().unwrap()],
    ));
    assert_eq!(json(&out)["digest"], BASE_AMD64);
}

#[test]
fn password_stdin_for_one_side() {
    let reg = Registry::start_basic("alice", "s3cret");
    // The source is a layout (no credentials), the destination's user
    // reads the password from stdin.
    let (ok, out, err) = with_stdin(
        &mut push(
            &reg.url("d/a:1"),
            &["--dest-creds", "alice", "--password-stdin"],
        ),
        "s3cret\n",
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["digest"], BASE_AMD64);
}

#[test]
fn password_prompt_on_a_terminal_does_not_echo() {
    let script = require_tool("script", "util-linux");
    let reg = Registry::start_basic("alice", "s3cret");
    let cmd = format!(
        "'{}' push '{}' '{}' --creds alice",
        env!("CARGO_BIN_EXE_ocipack"),
        base_src(),
        reg.url("tty/a:1")
    );
    // `script` gives ocipack a terminal; the password is typed once the
    // prompt is up.
    let mut child = Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .env("DOCKER_CONFIG", "/nonexistent-ocipack-test-docker-config")
        .env("XDG_RUNTIME_DIR", "/nonexistent-ocipack-test-runtime-dir")
        .env("XDG_CONFIG_HOME", "/nonexistent-ocipack-test-config-home")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("OCIPACK_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    stdin.write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Password for alice:"), "{text}");
    assert!(!text.contains("s3cret"), "the password was echoed: {text}");
    assert!(reg.manifest("tty/a", "1").is_some());
}
