//! tracing setup: human-readable text, or one JSON object per line with LOG_FORMAT=json. Every
//! JSON line starts with `service`, the component that wrote it, derived from the line's target
//! (its module path: `sincro_core::lite::…` is `lite`, see [`service_of`]) so no log call has
//! to say it; the `request` span adds `request_id` and `route`, a send's span `message_id`,
//! audited calls `action` and `user_id` (the seed's log fields). Message content and secrets
//! are never passed to a log macro.

use crate::config::LogFormat;
use std::io::{self, Write};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The component of lines whose target names none of the others.
pub const SERVICE: &str = "daemon";

/// The component a log target (a module path) belongs to.
pub fn service_of(target: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("sincro_core::lite", "lite"),
        ("sincro_core::business", "business"),
        ("sincro_core::outbound", "queue"),
        ("sincro_core::rate_limiter", "queue"),
        ("sincro_core::ingest", "ingest"),
        ("sincro_core::leads", "ingest"),
        ("sincro_core::hub", "stream"),
        ("sincro_whatsapp::http::stream", "stream"),
        ("sincro_whatsapp::http", "api"),
        ("sincro_whatsapp::access", "api"),
        ("warp", "api"),
        ("sincro_core::store", "store"),
        ("sincro_whatsapp::database", "store"),
        ("sincro_whatsapp::embedded_pg", "store"),
        ("tokio_postgres", "store"),
        ("sincro_core::alerts", "alerts"),
        ("sincro_core::telemetry", "alerts"),
        ("sincro_core::supervision", "supervisor"),
        ("sincro_core::daemon", "supervisor"),
        ("sincro_core::nodes", "nodes"),
        ("sincro_sim", "sim"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| {
            target.starts_with(prefix)
                && matches!(target.as_bytes().get(prefix.len()), None | Some(b':'))
        })
        .map_or(SERVICE, |(_, service)| service)
}

/// Library targets held at a level of their own unless the filter names them: warp's
/// per-request trace lines (the access log says the same), and tokio-postgres's and hyper's
/// debug lines, which print statement parameters and raw traffic (phone numbers, key hashes)
/// that must never reach the logs.
const QUIETED: &[(&str, &str)] = &[
    ("warp", "warp::filters::trace=warn"),
    ("tokio_postgres", "tokio_postgres=info"),
    ("hyper", "hyper=info"),
    ("reqwest", "reqwest=info"),
    ("chromiumoxide", "chromiumoxide=info"),
];

fn with_quiet_warp(filter: &str) -> String {
    let mut out = filter.to_string();
    for (name, directive) in QUIETED {
        if !filter.contains(name) {
            out.push(',');
            out.push_str(directive);
        }
    }
    out
}

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(format: LogFormat, filter: &str) {
    let filter =
        EnvFilter::try_new(with_quiet_warp(filter)).unwrap_or_else(|_| EnvFilter::new("info"));
    let result = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(io::stderr)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(ServiceTagged)
            .try_init(),
    };
    let _ = result;
}

/// Writes each JSON log line to stderr with the `service` field put in front.
#[derive(Clone, Copy)]
struct ServiceTagged;

struct TaggedWriter {
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for ServiceTagged {
    type Writer = TaggedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        TaggedWriter { buf: Vec::new() }
    }
}

impl Write for TaggedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TaggedWriter {
    fn drop(&mut self) {
        let line = tag_line(&self.buf);
        let _ = io::stderr().lock().write_all(&line);
    }
}

/// `{"target":"sincro_core::lite::x",…}` → `{"service":"lite","target":…}`; anything that is
/// not a JSON object is left as it is.
pub fn tag_line(line: &[u8]) -> Vec<u8> {
    match line.first() {
        Some(b'{') => {
            let service = target_of(line).map_or(SERVICE, service_of);
            let mut out = Vec::with_capacity(line.len() + 32);
            out.extend_from_slice(b"{\"service\":\"");
            out.extend_from_slice(service.as_bytes());
            out.extend_from_slice(b"\"");
            if line.get(1) != Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(&line[1..]);
            out
        }
        _ => line.to_vec(),
    }
}

/// The `target` of a JSON log line (module paths have no quotes or escapes to undo).
fn target_of(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"target\":\"";
    let start = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = line[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&line[start..start + len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_get_the_service_field() {
        let tagged = tag_line(b"{\"level\":\"INFO\",\"target\":\"sincro_core::lite::session\"}\n");
        let v: serde_json::Value = serde_json::from_slice(&tagged).unwrap();
        assert_eq!(v["service"], "lite");
        assert_eq!(v["level"], "INFO");
        let empty: serde_json::Value = serde_json::from_slice(&tag_line(b"{}")).unwrap();
        assert_eq!(empty["service"], SERVICE);
    }

    #[test]
    fn targets_name_their_component() {
        for (target, service) in [
            ("sincro_core::lite::session::lifecycle", "lite"),
            ("sincro_core::business::number", "business"),
            ("sincro_core::outbound::lane", "queue"),
            ("sincro_core::ingest::drain", "ingest"),
            ("sincro_core::hub", "stream"),
            ("sincro_whatsapp::http::stream::connection", "stream"),
            ("sincro_whatsapp::http::messages", "api"),
            ("sincro_whatsapp::access", "api"),
            ("sincro_core::store::migrate", "store"),
            ("sincro_core::litex", SERVICE),
            ("sincro_whatsapp::app", SERVICE),
        ] {
            assert_eq!(service_of(target), service, "{target}");
        }
    }
}
