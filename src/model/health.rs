//! Health checks (SPEC §13): the declarative checks of the configuration's `[health]` and of a
//! release in the index, and the report their evaluation produces. Plain values: running them is
//! [`crate::steps::health`]'s.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One declarative check: an HTTP request, a TCP connect or a command, `required` unless it says
/// `required = false` (then it is *wanted*: its failure is a warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCheck", into = "RawCheck")]
pub struct HealthCheck {
    /// A run-parts name (`[A-Za-z0-9_-]+`): the result's key is `KIND:NAME`.
    pub name: String,
    pub probe: Probe,
    pub required: bool,
    /// The bound on one attempt; `[health] check_timeout` when `None`.
    pub timeout: Option<Duration>,
}

/// What a check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A GET of `url`, passing when the status is `status` and the body contains `body`.
    Http {
        url: String,
        status: u16,
        body: Option<String>,
    },
    /// A TCP connect to `HOST:PORT`.
    Tcp { address: String },
    /// `sh -c COMMAND` in the root with the hook environment: exit 0 passes, 75 is
    /// inconclusive, anything else fails.
    Command { command: String },
}

impl Probe {
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Http { .. } => "http",
            Probe::Tcp { .. } => "tcp",
            Probe::Command { .. } => "command",
        }
    }
}

impl HealthCheck {
    /// The stable key of its result.
    pub fn key(&self) -> String {
        format!("{}:{}", self.probe.kind(), self.name)
    }
}

/// The TOML form: `{ name = "api", http = "http://…", status = 200, body = "ok" }`,
/// `{ name = "db", tcp = "127.0.0.1:5432" }`, `{ name = "smoke", command = "…" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
}

fn yes() -> bool {
    true
}

impl TryFrom<RawCheck> for HealthCheck {
    type Error = String;
    fn try_from(raw: RawCheck) -> Result<HealthCheck, String> {
        let name = raw.name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "health check name `{name}` is not a run-parts name ([A-Za-z0-9_-]+)"
            ));
        }
        let http_fields = raw.status.is_some() || raw.body.is_some();
        let probe = match (raw.http, raw.tcp, raw.command) {
            (Some(url), None, None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "health check `{name}`: `http` must be an http:// or https:// URL, not `{url}`"
                    ));
                }
                Probe::Http {
                    url,
                    status: raw.status.unwrap_or(200),
                    body: raw.body,
                }
            }
            (None, Some(address), None) => Probe::Tcp { address },
            (None, None, Some(command)) => Probe::Command { command },
            _ => {
                return Err(format!(
                    "health check `{name}` needs exactly one of `http`, `tcp` and `command`"
                ));
            }
        };
        if !matches!(probe, Probe::Http { .. }) && http_fields {
            return Err(format!(
                "health check `{name}`: `status` and `body` belong to an `http` check"
            ));
        }
        let timeout = match raw.timeout {
            None => None,
            Some(text) => {
                let d = humantime::parse_duration(&text).map_err(|e| {
                    format!(
                        "health check `{name}`: invalid timeout `{text}` ({e}); write e.g. \"10s\""
                    )
                })?;
                if d.is_zero() || d > crate::tomlfile::MAX_DURATION {
                    return Err(format!(
                        "health check `{name}`: timeout `{text}` must be above zero and at most 7 days"
                    ));
                }
                Some(d)
            }
        };
        Ok(HealthCheck {
            name,
            probe,
            required: raw.required,
            timeout,
        })
    }
}

impl From<HealthCheck> for RawCheck {
    fn from(c: HealthCheck) -> RawCheck {
        let mut raw = RawCheck {
            name: c.name,
            http: None,
            status: None,
            body: None,
            tcp: None,
            command: None,
            required: c.required,
            timeout: c.timeout.map(|d| humantime::format_duration(d).to_string()),
        };
        match c.probe {
            Probe::Http { url, status, body } => {
                raw.http = Some(url);
                raw.status = Some(status);
                raw.body = body;
            }
            Probe::Tcp { address } => raw.tcp = Some(address),
            Probe::Command { command } => raw.command = Some(command),
        }
        raw
    }
}

/// What a host does when a required check fails (`[health] on_failure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Back to the run's restore point, in the same invocation (exit 6).
    #[default]
    Rollback,
    /// The new release stays; the run is left unhealthy for a person (exit 7).
    Stop,
}

/// How one check came out (its last attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    /// Exit 75 of a program or command: it cannot tell (yet).
    Inconclusive,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Failed => "failed",
        }
    }
}

/// One check's result; `key` is stable across versions of this tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// `health.d:NAME`, `http:NAME`, `tcp:NAME` or `command:NAME`.
    pub key: String,
    pub outcome: Outcome,
    /// A required check decides whether the release stays; a wanted one only warns.
    pub required: bool,
    /// What the last attempt saw (`HTTP 200`, `connection refused`, `exit 1: …`).
    pub measured: String,
    /// How many times it ran.
    pub attempts: u32,
    /// Where it was declared: `config`, `release 2.0.0` or `health.d`.
    pub source: String,
}

/// What the checks say of the host, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check passed (or there is none).
    Healthy,
    /// Every required check passed; a wanted one did not.
    Warned,
    /// No required check failed, but one could not tell: a person decides.
    Inconclusive,
    /// A required check failed.
    Failed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Warned => "warned",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Failed => "failed",
        }
    }

    /// The release may stay.
    pub fn passed(self) -> bool {
        matches!(self, Verdict::Healthy | Verdict::Warned)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every check of one evaluation, worst first, and what they say together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub verdict: Verdict,
    pub results: Vec<HealthResult>,
}

impl HealthReport {
    /// The report of `results`: sorted worst first (failed required first), then by key.
    pub fn new(mut results: Vec<HealthResult>) -> HealthReport {
        let rank = |r: &HealthResult| (r.outcome != Outcome::Passed, r.required, r.outcome);
        results.sort_by(|a, b| rank(b).cmp(&rank(a)).then_with(|| a.key.cmp(&b.key)));
        let verdict = results
            .iter()
            .map(|r| match (r.outcome, r.required) {
                (Outcome::Passed, _) => Verdict::Healthy,
                (_, false) => Verdict::Warned,
                (Outcome::Inconclusive, true) => Verdict::Inconclusive,
                (Outcome::Failed, true) => Verdict::Failed,
            })
            .max()
            .unwrap_or(Verdict::Healthy);
        HealthReport { verdict, results }
    }

    /// The keys of the required checks that did not pass.
    pub fn blocking(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.required && r.outcome != Outcome::Passed)
            .map(|r| r.key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<HealthCheck, String> {
        #[derive(Deserialize)]
        struct One {
            check: HealthCheck,
        }
        toml::from_str::<One>(text)
            .map(|o| o.check)
            .map_err(|e| e.to_string())
    }

    fn result(key: &str, outcome: Outcome, required: bool) -> HealthResult {
        HealthResult {
            key: key.into(),
            outcome,
            required,
            measured: String::new(),
            attempts: 1,
            source: "config".into(),
        }
    }

    #[test]
    fn checks_parse_and_read_back() {
        let c = check("check = { name = \"api\", http = \"http://127.0.0.1:8080/\", body = \"ok\", timeout = \"3s\" }").unwrap();
        assert_eq!(c.key(), "http:api");
        assert!(c.required);
        assert_eq!(c.timeout, Some(Duration::from_secs(3)));
        assert!(matches!(c.probe, Probe::Http { status: 200, .. }));
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<HealthCheck>(&text).unwrap(), c);
        let t =
            check("check = { name = \"db\", tcp = \"127.0.0.1:5432\", required = false }").unwrap();
        assert_eq!((t.key().as_str(), t.required), ("tcp:db", false));
        for bad in [
            "check = { name = \"x\" }",
            "check = { name = \"x\", tcp = \"a:1\", command = \"true\" }",
            "check = { name = \"x y\", tcp = \"a:1\" }",
            "check = { name = \"x\", tcp = \"a:1\", status = 200 }",
            "check = { name = \"x\", http = \"ftp://a\" }",
            "check = { name = \"x\", tcp = \"a:1\", timeout = \"soon\" }",
            "check = { name = \"x\", tcp = \"a:1\", colour = 1 }",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verdicts() {
        let v = |rs: Vec<HealthResult>| HealthReport::new(rs).verdict;
        assert_eq!(v(vec![]), Verdict::Healthy);
        assert_eq!(
            v(vec![
                result("a", Outcome::Passed, true),
                result("b", Outcome::Failed, false)
            ]),
            Verdict::Warned
        );
        assert_eq!(
            v(vec![
                result("a", Outcome::Inconclusive, true),
                result("b", Outcome::Failed, false)
            ]),
            Verdict::Inconclusive
        );
        let report = HealthReport::new(vec![
            result("a", Outcome::Passed, true),
            result("b", Outcome::Inconclusive, true),
            result("c", Outcome::Failed, true),
        ]);
        assert_eq!(report.verdict, Verdict::Failed);
        assert_eq!(report.blocking(), ["c", "b"]);
        assert!(!report.verdict.passed() && Verdict::Warned.passed());
    }
}
