//! tracing setup: human-readable text, or one JSON object per line with LOG_FORMAT=json. Every
//! JSON line carries `"service":"sincro-whatsapp"`; request spans add `action` and `user_id`
//! (the seed's log fields). Message content and secrets are never passed to a log macro.

use crate::config::LogFormat;
use std::io::{self, Write};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub const SERVICE: &str = "sincro-whatsapp";

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
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

/// `{"a":1}` → `{"service":"sincro-whatsapp","a":1}`; anything else unchanged.
fn tag_line(line: &[u8]) -> Vec<u8> {
    match line.first() {
        Some(b'{') => {
            let mut out = Vec::with_capacity(line.len() + 32);
            out.extend_from_slice(b"{\"service\":\"");
            out.extend_from_slice(SERVICE.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_get_the_service_field() {
        let tagged = tag_line(b"{\"level\":\"INFO\"}\n");
        let v: serde_json::Value = serde_json::from_slice(&tagged).unwrap();
        assert_eq!(v["service"], SERVICE);
        assert_eq!(v["level"], "INFO");
        let empty: serde_json::Value = serde_json::from_slice(&tag_line(b"{}")).unwrap();
        assert_eq!(empty["service"], SERVICE);
    }
}
