//! Meta Graph API simulator (see DESIGN.md section 7).
