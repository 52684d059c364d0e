//! Secrets that stay out of argv: `--password-stdin`, `OCIPACK_PASSWORD`,
//! or a prompt on the terminal with echo off.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::OnceLock;

use anyhow::{bail, Context};

/// The environment variable holding the registry password.
pub const PASSWORD_ENV: &str = "OCIPACK_PASSWORD";

/// The password for `user`: from stdin when `from_stdin`, else from
/// `$OCIPACK_PASSWORD`, else asked on the terminal. Read once per process
/// (source and destination share it).
pub fn password(user: &str, from_stdin: bool) -> anyhow::Result<String> {
    static READ: OnceLock<String> = OnceLock::new();
    if let Some(p) = READ.get() {
        return Ok(p.clone());
    }
    let p = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin (--password-stdin)")?;
        let p = line.trim_end_matches(['\n', '\r']).to_string();
        if p.is_empty() {
            bail!("--password-stdin: stdin holds no password");
        }
        p
    } else if let Some(p) = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()) {
        p
    } else if std::io::stdin().is_terminal() {
        prompt(&format!("Password for {user}: "))?
    } else {
        bail!(
            "no password for {user}: give it with --password-stdin or ${PASSWORD_ENV} \
             (stdin is not a terminal to ask on)"
        );
    };
    Ok(READ.get_or_init(|| p).clone())
}

/// Reads a line from the terminal on stdin with echo off (restored after,
/// also when reading fails).
fn prompt(text: &str) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{text}");
    let _ = err.flush();
    // SAFETY: termios is plain data; tcgetattr fills it for fd 0, which
    // is a terminal (checked by the caller).
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have = unsafe { libc::tcgetattr(0, &mut saved) } == 0;
    if have {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a valid termios for fd 0.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
    }
    read.context("reading the password from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
