//! Local simulators of the two services sincro-whatsapp talks to, so that tests and `demo` run
//! with no internet: [`graph`] imitates Meta's Graph API (WhatsApp Business Cloud API) and
//! [`web`] imitates WhatsApp Web as a browser driver sees it.

pub mod graph;
pub mod web;
