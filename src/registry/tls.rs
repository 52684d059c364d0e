//! Trust for registries with private CAs, in skopeo's `--cert-dir` layout
//! (containers-certs.d(5)): every `*.crt` is a CA added to the system trust
//! store, and a `NAME.cert`/`NAME.key` pair is a client certificate. Without
//! `--cert-dir`, the per-host directories containers tools read are used:
//! `~/.config/containers/certs.d/HOST`, `/etc/containers/certs.d/HOST`,
//! `/etc/docker/certs.d/HOST`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// CAs and an optional client identity from certificate directories.
#[derive(Default)]
pub(crate) struct CertDirs {
    pub roots: Vec<reqwest::Certificate>,
    pub identity: Option<reqwest::Identity>,
}

/// The directories searched for `host`.
pub(crate) fn cert_dirs(host: &str, cert_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = cert_dir {
        return vec![d.to_path_buf()];
    }
    let mut dirs = Vec::new();
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        dirs.push(Path::new(&h).join(".config/containers/certs.d").join(host));
    }
    dirs.push(Path::new("/etc/containers/certs.d").join(host));
    dirs.push(Path::new("/etc/docker/certs.d").join(host));
    dirs
}

/// Reads `dirs` (missing ones are skipped; a named `--cert-dir` must exist).
pub(crate) fn load(dirs: &[PathBuf], named: bool) -> Result<CertDirs> {
    let mut out = CertDirs::default();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => continue,
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut names: Vec<PathBuf> = entries
            .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
            .collect::<Result<_>>()?;
        // Sorted, so the client pair chosen does not depend on the file system.
        names.sort();
        for path in &names {
            let ext = path.extension().and_then(|e| e.to_str());
            match ext {
                Some("crt") => {
                    let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                        Error::invalid(
                            path.display().to_string(),
                            format!("not a PEM CA certificate: {e}"),
                        )
                    })?;
                    if certs.is_empty() {
                        return Err(Error::invalid(
                            path.display().to_string(),
                            "holds no PEM certificate",
                        ));
                    }
                    tracing::debug!("trusting CA {}", path.display());
                    out.roots.extend(certs);
                }
                Some("cert") => {
                    let key = path.with_extension("key");
                    if !key.exists() {
                        return Err(Error::invalid(
                            path.display().to_string(),
                            format!("client certificate without its key {}", key.display()),
                        ));
                    }
                    if out.identity.is_none() {
                        let mut pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                        pem.push(b'\n');
                        pem.extend(std::fs::read(&key).map_err(|e| Error::io(&key, e))?);
                        out.identity = Some(reqwest::Identity::from_pem(&pem).map_err(|e| {
                            Error::invalid(
                                path.display().to_string(),
                                format!("not a PEM client certificate and key: {e}"),
                            )
                        })?);
                    }
                }
                Some("key") if !path.with_extension("cert").exists() => {
                    return Err(Error::invalid(
                        path.display().to_string(),
                        format!(
                            "client key without its certificate {}",
                            path.with_extension("cert").display()
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// A TLS verification failure in `err`'s chain, said plainly with what to
/// do about it (such a failure is not worth retrying).
pub(crate) fn certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        let rustls_err = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(
            r @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented),
        ) = rustls_err
        {
            return Some(format!("TLS certificate not trusted: {r}"));
        }
        // Layers between reqwest and rustls may hide the type; rustls's
        // message for every certificate failure starts so.
        let text = e.to_string();
        if let Some(i) = text.find("invalid peer certificate") {
            return Some(format!("TLS certificate not trusted: {}", &text[i..]));
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_dir_must_exist_and_pairs_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = load(std::slice::from_ref(&missing), true).err().unwrap();
        assert!(err.to_string().contains("nope"), "{err}");
        // Default per-host directories may be absent.
        assert!(load(&[missing], false).unwrap().roots.is_empty());
        std::fs::write(dir.path().join("client.key"), "x").unwrap();
        let err = load(&[dir.path().to_path_buf()], true).err().unwrap();
        assert!(err.to_string().contains("client key without"), "{err}");
        std::fs::remove_file(dir.path().join("client.key")).unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not pem").unwrap();
        let err = load(&[dir.path().to_path_buf()], true).err().unwrap();
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn per_host_defaults() {
        let d = cert_dirs("reg.example:5000", None);
        assert!(d.contains(&PathBuf::from("/etc/containers/certs.d/reg.example:5000")));
        assert!(d.contains(&PathBuf::from("/etc/docker/certs.d/reg.example:5000")));
        assert_eq!(cert_dirs("h", Some(Path::new("/c"))), [PathBuf::from("/c")]);
    }
}
