//! WebSocket event stream tests (issue 3).
