//! `[config]`: the image config edit (env, entrypoint, user, labels...).

use super::context::{Cx, R};
use super::schema::*;
use super::validate::check_port;
use super::*;

impl Cx<'_> {
    pub(super) fn config(&self, c: &RawConfig) -> R<ConfigEdit> {
        let mut out = ConfigEdit::default();
        if let Some(u) = &c.user {
            if u.get_ref().trim().is_empty() || u.get_ref().contains(char::is_whitespace) {
                return Err(self.err(u.span(), "user must be a name or uid[:gid] without spaces"));
            }
            out.user = Some(u.get_ref().clone());
        }
        if let Some(w) = &c.workdir {
            out.workdir = Some(self.abs_path(w)?);
        }
        for v in &c.volumes {
            out.volumes.push(self.abs_path(v)?);
        }
        out.entrypoint = c
            .entrypoint
            .as_ref()
            .map(|v| v.iter().map(|s| s.get_ref().clone()).collect());
        out.cmd = c
            .cmd
            .as_ref()
            .map(|v| v.iter().map(|s| s.get_ref().clone()).collect());
        for p in &c.exposed_ports {
            self.at(p, check_port(p.get_ref()))?;
            let v = p.get_ref();
            out.exposed_ports.push(if v.contains('/') {
                v.clone()
            } else {
                format!("{v}/tcp")
            });
        }
        out.stop_signal = c.stop_signal.as_ref().map(|s| s.get_ref().clone());
        for (k, v) in &c.env.set {
            self.at(v, super::vars::check_name(k))?;
            out.env.set.insert(k.clone(), v.get_ref().clone());
        }
        for (which, map, dst) in [
            ("prepend", &c.env.prepend, &mut out.env.prepend),
            ("append", &c.env.append, &mut out.env.append),
        ] {
            for (k, items) in map {
                let mut list = Vec::new();
                for s in items {
                    self.at(s, super::vars::check_name(k))?;
                    if s.get_ref().is_empty() || s.get_ref().contains(':') {
                        return Err(self.err(
                            s.span(),
                            format!("{which} {k}: one non-empty item per string, without ':'"),
                        ));
                    }
                    list.push(s.get_ref().clone());
                }
                dst.insert(k.clone(), list);
            }
        }
        for (k, v) in &c.labels {
            if k.is_empty() {
                return Err(self.err(v.span(), "empty label key"));
            }
            out.labels.insert(k.clone(), v.get_ref().clone());
        }
        if let Some(h) = &c.healthcheck {
            let span = h.span();
            let h = h.get_ref();
            let test: Vec<String> = h.test.iter().map(|s| s.get_ref().clone()).collect();
            match test.first().map(String::as_str) {
                Some("NONE") if test.len() == 1 => {}
                Some("CMD" | "CMD-SHELL") if test.len() > 1 => {}
                _ => {
                    return Err(self.err(
                        h.test.first().map_or(span, |s| s.span()),
                        "healthcheck.test: [\"CMD\", args...], [\"CMD-SHELL\", \"command\"] or [\"NONE\"]",
                    ))
                }
            }
            let retries = match &h.retries {
                None => None,
                Some(r) => Some(
                    u64::try_from(*r.get_ref())
                        .map_err(|_| self.err(r.span(), "retries must not be negative"))?,
                ),
            };
            out.healthcheck = Some(Healthcheck {
                test,
                interval: self.duration(&h.interval)?,
                timeout: self.duration(&h.timeout)?,
                start_period: self.duration(&h.start_period)?,
                start_interval: self.duration(&h.start_interval)?,
                retries,
            });
        }
        Ok(out)
    }
}
