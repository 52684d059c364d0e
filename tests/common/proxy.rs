//! A fault-injecting HTTP proxy on 127.0.0.1 between a client and a
//! registry. Rules pick requests by method and path and, on chosen
//! occurrences, answer an error status, cut the connection part-way
//! through the request or the response, stall, or forge a header. Every
//! request is logged so tests can check what was (re)sent.
//!
//! One request per connection: the proxy forwards with `Connection: close`
//! and relays the answer until the registry closes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What to do with a matching request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer this status without forwarding (the body is drained first).
    Status(u16),
    /// Answer 429 with `Retry-After: SECS`.
    TooMany(u64),
    /// Forward the head and this many body bytes, then cut both sides.
    CutRequest(usize),
    /// Forward the request; relay this many bytes of the answer's body, then cut.
    CutResponse(usize),
    /// Hold the connection without answering, then close it.
    Stall(Duration),
    /// Forward, but replace this header's value in the answer.
    ForgeHeader(&'static str, &'static str),
    /// Forward with this part of the path replaced (FROM, TO): a tag that
    /// another writer moved, as the client sees it.
    Rewrite(String, String),
    /// Forward, then send the answer's body one byte per interval (a
    /// connection that never stalls long enough to time out).
    Drip(Duration),
    /// Forward, and append this many bytes to the answer's body (with a
    /// matching Content-Length): a blob larger than its descriptor.
    Oversize(usize),
}

/// When a rule fires, counting matching requests from 1.
#[derive(Debug, Clone)]
pub enum When {
    Nth(Vec<usize>),
    Always,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    /// Substring of the request target (path and query).
    pub path: String,
    pub when: When,
    pub action: Action,
    seen: usize,
}

impl Rule {
    pub fn new(method: &'static str, path: impl Into<String>, when: When, action: Action) -> Rule {
        Rule {
            method,
            path: path.into(),
            when,
            action,
            seen: 0,
        }
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    /// The fault injected, if any.
    pub fault: Option<String>,
}

impl Logged {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Logged>>,
}

pub struct FaultProxy {
    pub port: u16,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            rules: Mutex::new(rules),
            log: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || {
                            let _ = handle(conn, &st);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FaultProxy {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.host())
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().expect("log").clone()
    }

    /// Replaces the rules (counters restart).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.state.rules.lock().expect("rules") = rules;
    }

    pub fn clear_log(&self) {
        self.state.log.lock().expect("log").clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(mut client: TcpStream, st: &State) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    // Read the request head.
    let mut buf = Vec::new();
    let mut tmp = [0u8; 64 * 1024];
    let head_end = loop {
        let n = client.read(&mut tmp)?;
        if n == 0 {
            return Ok(());
        }
        if buf.is_empty() && tmp[0] == 0x16 {
            // A TLS hello: this proxy speaks plain HTTP only.
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let content_length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    // Read the body.
    let mut body = buf[head_end..].to_vec();
    while body.len() < content_length {
        let n = client.read(&mut tmp)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }

    // Pick the fault.
    let action = {
        let mut rules = st.rules.lock().expect("rules");
        let mut chosen = None;
        for r in rules.iter_mut() {
            if r.method == method && target.contains(&r.path) {
                r.seen += 1;
                let fire = match &r.when {
                    When::Always => true,
                    When::Nth(ns) => ns.contains(&r.seen),
                };
                if fire && chosen.is_none() {
                    chosen = Some(r.action.clone());
                }
            }
        }
        chosen
    };
    st.log.lock().expect("log").push(Logged {
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
        body_len: body.len(),
        fault: action.as_ref().map(|a| format!("{a:?}")),
    });

    match action {
        Some(Action::Status(code)) => {
            let msg =
                format!(r#"{{"errors":[{{"code":"UNKNOWN","message":"injected fault {code}"}}]}}"#);
            write!(
                client,
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            )?;
            return Ok(());
        }
        Some(Action::TooMany(secs)) => {
            let msg = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#;
            write!(
                client,
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {secs}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            )?;
            return Ok(());
        }
        Some(Action::Stall(d)) => {
            std::thread::sleep(d);
            return Ok(());
        }
        _ => {}
    }

    // Forward with Connection: close.
    let mut up = TcpStream::connect(&st.upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let fwd_target = match &action {
        Some(Action::Rewrite(from, to)) => target.replace(from.as_str(), to),
        _ => target.clone(),
    };
    let mut fwd = format!("{method} {fwd_target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        if !k.eq_ignore_ascii_case("connection") {
            fwd.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    fwd.push_str("Connection: close\r\n\r\n");
    up.write_all(fwd.as_bytes())?;
    if let Some(Action::CutRequest(n)) = action {
        up.write_all(&body[..n.min(body.len())])?;
        up.flush()?;
        // Give the registry a moment to take the partial body in.
        std::thread::sleep(Duration::from_millis(100));
        let _ = up.shutdown(Shutdown::Both);
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    up.write_all(&body)?;

    // Relay the answer.
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let resp_head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(resp.len());
    match action {
        Some(Action::CutResponse(n)) => {
            let end = (resp_head_end + n).min(resp.len());
            client.write_all(&resp[..end])?;
            client.flush()?;
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Action::ForgeHeader(name, value)) => {
            let head = String::from_utf8_lossy(&resp[..resp_head_end]).to_string();
            let mut out = String::new();
            for line in head.split("\r\n") {
                match line.split_once(':') {
                    Some((k, _)) if k.trim().eq_ignore_ascii_case(name) => {
                        out.push_str(&format!("{k}: {value}\r\n"));
                    }
                    _ if line.is_empty() => {}
                    _ => {
                        out.push_str(line);
                        out.push_str("\r\n");
                    }
                }
            }
            out.push_str("\r\n");
            client.write_all(out.as_bytes())?;
            client.write_all(&resp[resp_head_end..])?;
        }
        Some(Action::Drip(every)) => {
            client.write_all(&resp[..resp_head_end])?;
            for b in &resp[resp_head_end..] {
                client.write_all(std::slice::from_ref(b))?;
                client.flush()?;
                std::thread::sleep(every);
            }
        }
        Some(Action::Oversize(extra)) => {
            let head = String::from_utf8_lossy(&resp[..resp_head_end]).to_string();
            let body_len = resp.len() - resp_head_end;
            let mut out = String::new();
            for line in head.split("\r\n") {
                match line.split_once(':') {
                    Some((k, _)) if k.trim().eq_ignore_ascii_case("content-length") => {
                        out.push_str(&format!("{k}: {}\r\n", body_len + extra));
                    }
                    _ if line.is_empty() => {}
                    _ => {
                        out.push_str(line);
                        out.push_str("\r\n");
                    }
                }
            }
            out.push_str("\r\n");
            client.write_all(out.as_bytes())?;
            client.write_all(&resp[resp_head_end..])?;
            client.write_all(&vec![b'!'; extra])?;
        }
        _ => client.write_all(&resp)?,
    }
    Ok(())
}
