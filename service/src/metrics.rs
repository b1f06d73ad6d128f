//! A small metrics registry in the Prometheus text exposition format
//! (version 0.0.4): counters and a duration summary, nothing else needed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What `GET /metrics` reports. One per process; never holds a secret.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// (route, method, status code) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → (sum of seconds in µs, count).
    durations: Mutex<BTreeMap<String, (u64, u64)>>,
    pub handshake_failures: AtomicU64,
    pub handshake_timeouts: AtomicU64,
    pub ldap_errors: AtomicU64,
    pub crl_refreshes: AtomicU64,
    pub crl_refresh_failures: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_idle_closed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            requests: Mutex::default(),
            durations: Mutex::default(),
            handshake_failures: AtomicU64::new(0),
            handshake_timeouts: AtomicU64::new(0),
            ldap_errors: AtomicU64::new(0),
            crl_refreshes: AtomicU64::new(0),
            crl_refresh_failures: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_idle_closed: AtomicU64::new(0),
        }
    }
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub fn dec(c: &AtomicU64) {
    // Saturating: a gauge never wraps below zero.
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
}

impl Metrics {
    /// Count one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let mut r = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *r.entry((route.to_string(), method.to_string(), status)).or_insert(0) += 1;
        drop(r);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let mut d = self.durations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = d.entry(route.to_string()).or_insert((0, 0));
        e.0 = e.0.saturating_add(micros);
        e.1 += 1;
    }

    /// The text exposition: `# HELP`, `# TYPE`, then the samples of each family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        head(
            &mut out,
            "dirbroker_http_requests_total",
            "counter",
            "HTTP requests answered, by route, method and status code.",
        );
        for ((route, method, code), n) in self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter()
        {
            let _ = writeln!(
                out,
                "dirbroker_http_requests_total{{route=\"{}\",method=\"{}\",code=\"{code}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        head(&mut out, "dirbroker_http_request_duration_seconds", "summary", "Time to answer HTTP requests, by route.");
        for (route, (micros, count)) in self.durations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter()
        {
            let secs = *micros as f64 / 1e6;
            let r = escape(route);
            let _ = writeln!(out, "dirbroker_http_request_duration_seconds_sum{{route=\"{r}\"}} {secs}");
            let _ = writeln!(out, "dirbroker_http_request_duration_seconds_count{{route=\"{r}\"}} {count}");
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (name, kind, help, value) in [
            (
                "dirbroker_tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed (bad or revoked client certificate, protocol errors).",
                load(&self.handshake_failures),
            ),
            (
                "dirbroker_tls_handshake_timeouts_total",
                "counter",
                "TLS handshakes not finished within handshake_timeout_s.",
                load(&self.handshake_timeouts),
            ),
            (
                "dirbroker_ldap_errors_total",
                "counter",
                "Directory operations that failed while answering requests or refreshing the CRL.",
                load(&self.ldap_errors),
            ),
            ("dirbroker_crl_refreshes_total", "counter", "CRL reloads from the directory.", load(&self.crl_refreshes)),
            (
                "dirbroker_crl_refresh_failures_total",
                "counter",
                "CRL reloads that failed (the previous CRL stays in force).",
                load(&self.crl_refresh_failures),
            ),
            ("dirbroker_connections_total", "counter", "TCP connections accepted.", load(&self.connections_total)),
            ("dirbroker_connections_open", "gauge", "TCP connections open now.", load(&self.connections_open)),
            (
                "dirbroker_connections_refused_total",
                "counter",
                "TCP connections closed at once: their source held max_connections_per_source already.",
                load(&self.connections_refused),
            ),
            (
                "dirbroker_connections_idle_closed_total",
                "counter",
                "Connections closed after idle_timeout_s without a request (HTTP/1.1 and HTTP/2).",
                load(&self.connections_idle_closed),
            ),
        ] {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        let up = self.started.elapsed().as_secs_f64();
        head(&mut out, "dirbroker_uptime_seconds", "gauge", "Seconds since this process started serving.");
        let _ = writeln!(out, "dirbroker_uptime_seconds {up}");
        out
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label value escaping of the text format: backslash, double quote, newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let m = Metrics::default();
        m.observe("/healthz", "GET", 200, Duration::from_millis(3));
        m.observe("/healthz", "GET", 200, Duration::from_millis(1));
        inc(&m.handshake_failures);
        let text = m.render();
        assert!(
            text.contains("dirbroker_http_requests_total{route=\"/healthz\",method=\"GET\",code=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("dirbroker_tls_handshake_failures_total 1"), "{text}");
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = name.trim_end_matches("_sum").trim_end_matches("_count");
                assert!(typed.contains(name) || typed.contains(base), "{line} before its TYPE");
            }
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
