//! The `biz_opaque_callback_data` this daemon puts on each Business send and Meta echoes on
//! every status of it: a send whose answer was lost is recognised by its `sent` status. Written
//! by the send path, read back by the webhook parser.

use uuid::Uuid;

const PREFIX: &str = "sincro:";

/// The `biz_opaque_callback_data` a send of message `id` carries.
pub fn data(id: Uuid) -> String {
    format!("{PREFIX}{id}")
}

/// The message id in a `biz_opaque_callback_data` this daemon set.
pub fn message_id(data: &str) -> Option<Uuid> {
    data.strip_prefix(PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_the_callers_own() {
        let id = Uuid::now_v7();
        assert_eq!(message_id(&data(id)), Some(id));
        assert_eq!(message_id("crm-msg-42"), None);
        assert_eq!(message_id("sincro:not-a-uuid"), None);
    }
}
