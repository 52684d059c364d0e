//! Exit statuses, in one place (README "Exit codes", `ocipack --help`):
//! a pipeline can tell a bad image (3) from a failure to check it (1).

use std::fmt;

/// Any error: I/O, network, bad input, a registry refusing.
pub const ERROR: u8 = 1;
/// The command line does not parse (clap exits with it itself).
pub const USAGE: u8 = 2;
/// A check ran and the image failed it: architecture guards, index gates,
/// `verify`, `verify-chain`. skopeo and crane have no such code; 3 is the
/// first one free after the two every CLI uses.
pub const CHECK_FAILED: u8 = 3;

/// The text `ocipack --help` ends with.
pub const HELP: &str = "Exit status: 0 success; 1 error (I/O, network, bad input); \
2 usage error; 3 a check failed (guard, gate, verify, verify-chain).";

/// A check that ran and failed (exit status [`CHECK_FAILED`]).
#[derive(Debug)]
pub struct CheckFailed(pub String);

impl fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

/// The exit status for an error that ended a command.
pub fn code(e: &anyhow::Error) -> u8 {
    let failed_check = e.chain().any(|cause| {
        cause.is::<CheckFailed>()
            || cause.downcast_ref::<ocipack::Error>().is_some_and(|err| {
                matches!(err, ocipack::Error::Guard(_) | ocipack::Error::Gate { .. })
            })
    });
    if failed_check {
        CHECK_FAILED
    } else {
        ERROR
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn checks_have_their_own_code() {
        let e = anyhow::Error::new(CheckFailed("bad".into()));
        assert_eq!(code(&e), CHECK_FAILED);
        let r: anyhow::Result<()> = Err(ocipack::Error::Guard("amd64 binary".into()).into());
        assert_eq!(code(&r.context("verifying x").unwrap_err()), CHECK_FAILED);
        let gate = ocipack::Error::Gate {
            gate: "freshness".into(),
            reason: "moved".into(),
        };
        assert_eq!(code(&gate.into()), CHECK_FAILED);
        assert_eq!(code(&anyhow::anyhow!("network down")), ERROR);
        assert_ne!(USAGE, CHECK_FAILED);
    }
}
