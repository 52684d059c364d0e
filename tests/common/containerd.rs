//! A private containerd for tests: its own config, root, state and socket in
//! a temp dir, CRI disabled, no systemd. Started by the test, stopped (by PID)
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::tools::require;

pub struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    socket: PathBuf,
}

impl Containerd {
    /// Starts containerd and waits until it answers. Needs root.
    pub fn start() -> Containerd {
        require("containerd");
        require("ctr");
        require("runc");
        assert!(
            ocipack::unpack::is_root(),
            "the containerd tests need root (containerd mounts snapshots); run tests/run.sh as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("ocipack-containerd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{debug}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            debug = d.join("debug.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).expect("config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning containerd");
        let c = Containerd { dir, child, socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if c.socket.exists() && c.ctr(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not start; log:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Runs `ctr --address SOCKET ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running ctr")
    }

    /// Runs ctr and asserts success, returning stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports an oci-archive (all platforms) under `name`.
    pub fn import(&self, archive: &Path, name: &str) -> String {
        self.ctr_ok(&[
            "images",
            "import",
            "--all-platforms",
            "--index-name",
            name,
            &archive.display().to_string(),
        ])
    }

    /// Runs a container from `image` to completion (stdin closed, so an
    /// interactive default command exits) and returns its exit status and
    /// combined stdout+stderr. `ctr run` does not forward EOF from a closed
    /// stdin, so the output goes through `--log-uri file://` instead.
    pub fn run(&self, image: &str, id: &str, cmd: &[&str]) -> RunOutput {
        let log = self.dir.path().join(format!("{id}.log"));
        let uri = format!("file://{}", log.display());
        // runc keeps state in a global root by default; ours stays private.
        let runc_root = self.dir.path().join("runc").display().to_string();
        let mut args = vec![
            "run",
            "--rm",
            "--runc-root",
            &runc_root,
            "--log-uri",
            &uri,
            image,
            id,
        ];
        args.extend_from_slice(cmd);
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr");
        let mut output = std::fs::read_to_string(&log).unwrap_or_default();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        RunOutput {
            success: out.status.success(),
            output,
        }
    }
}

/// What a container printed and whether it exited 0.
pub struct RunOutput {
    pub success: bool,
    pub output: String,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SIGTERM by PID, then wait; escalate if it lingers.
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
