//! WhatsApp Web simulator (see DESIGN.md section 7).
