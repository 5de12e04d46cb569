//! HTTP-level tests of the WhatsApp Web simulator's control routes. A "fake page" speaks the page
//! channel protocol (`/sim/ws`) directly, so these run without a browser.

mod fake_page;
mod login;
mod messages;
