//! The base image's installed packages, from its package database: dpkg's
//! `/var/lib/dpkg/status`, apk's `/lib/apk/db/installed` (rpm's sqlite
//! database is not read).

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// `deb` or `apk` (the purl type).
    pub kind: &'static str,
    /// The purl namespace: the distro id from os-release (`debian`,
    /// `ubuntu`, `alpine`).
    pub namespace: String,
}

impl Package {
    /// `pkg:deb/debian/NAME@VERSION?arch=ARCH` (purl-spec, the version
    /// percent-encoded: `1:2.3+b1` is `1%3A2.3%2Bb1`).
    pub fn purl(&self) -> String {
        format!(
            "pkg:{}/{}/{}@{}?arch={}",
            self.kind,
            self.namespace,
            encode(&self.name),
            encode(&self.version),
            encode(&self.arch)
        )
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `ID` of an os-release file (`debian` when absent).
pub fn os_id(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        l.strip_prefix("ID=")
            .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

/// Installed packages of a dpkg status file: stanzas whose `Status` ends in
/// `installed` (not `config-files`, not half-installed).
pub fn dpkg(status: &str, namespace: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in status.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
        };
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        if field("Status").is_some_and(|s| !s.ends_with(" installed")) {
            continue;
        }
        out.push(Package {
            name,
            version,
            arch: field("Architecture").unwrap_or_else(|| "all".into()),
            kind: "deb",
            namespace: namespace.to_string(),
        });
    }
    out.sort();
    out.dedup();
    out
}

/// Installed packages of an apk database (`P:` name, `V:` version, `A:` arch).
pub fn apk(installed: &str, namespace: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in installed.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        if let (Some(name), Some(version)) = (field("P:"), field("V:")) {
            out.push(Package {
                name,
                version,
                arch: field("A:").unwrap_or_else(|| "noarch".into()),
                kind: "apk",
                namespace: namespace.to_string(),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_installed_only_with_purls() {
        let status = "Package: libc6\nStatus: install ok installed\nArchitecture: riscv64\n\
                      Version: 2.36-9+deb12u4\nDescription: x\n more\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                      Package: tzdata\nStatus: install ok installed\nArchitecture: all\n\
                      Version: 1:2024a-0\n";
        let p = dpkg(status, "debian");
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0].purl(),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=riscv64"
        );
        assert_eq!(p[1].purl(), "pkg:deb/debian/tzdata@1%3A2024a-0?arch=all");
        assert_eq!(os_id("NAME=x\nID=ubuntu\n").as_deref(), Some("ubuntu"));
    }

    #[test]
    fn apk_database() {
        let db = "C:Q1x\nP:musl\nV:1.2.4-r2\nA:aarch64\n\nP:busybox\nV:1.36.1-r5\nA:aarch64\n";
        let p = apk(db, "alpine");
        assert_eq!(p[0].name, "busybox");
        assert_eq!(p[1].purl(), "pkg:apk/alpine/musl@1.2.4-r2?arch=aarch64");
    }
}
