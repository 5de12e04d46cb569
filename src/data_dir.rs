//! `DATA_DIR` kept private: browser profiles (a linked WhatsApp login), sealed media and
//! snapshots live there, so no other local user may read or enter them. The directories
//! holding sessions and media are 0700, even when an older install created them wider; the
//! files in them are written 0600 (`sincro_core::private_fs`, and Chromium runs with umask
//! 077). `DATA_DIR` itself stays as the operator made it: the private PostgreSQL cluster under
//! it runs as another user, in a 0700 directory of its own. The process umask is left alone:
//! tests run several daemons and other code in one process.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Subdirectories that hold session data (`lite/`) and media files (`media/`).
const PRIVATE: &[&str] = &["lite", "media"];

/// Makes the private subdirectories 0700.
pub fn harden(data_dir: &Path) -> std::io::Result<()> {
    for sub in PRIVATE {
        let dir = data_dir.join(sub);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
