//! Whether the browser Lite sessions need is on this machine. Checked once at start: without
//! it every Lite session would only fail later with "cannot start chromium", so the API refuses
//! to start sessions instead and says how to install it (`doctor` also starts it once).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to install the browser the daemon expects.
pub const INSTALL_HINT: &str = "install it with `apt-get install chromium` (Debian/Ubuntu) or set CHROMIUM_PATH to the browser's executable";

/// The executable Lite sessions start: `CHROMIUM_PATH`, else `chromium` on `PATH` (as
/// `core/src/lite/browser.rs` does). Err says what was looked for.
pub fn locate(configured: Option<&Path>) -> Result<PathBuf, String> {
    let wanted = configured.unwrap_or(Path::new("chromium"));
    if wanted.components().count() > 1 || wanted.is_absolute() {
        return if is_executable(wanted) {
            Ok(wanted.to_path_buf())
        } else {
            Err(format!(
                "CHROMIUM_PATH {} is not an executable file; {INSTALL_HINT}",
                wanted.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(wanted))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            format!(
                "Chromium ({}) was not found on PATH; {INSTALL_HINT}",
                wanted.display()
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Starts the browser once, headless with the daemon's flags, on a throw-away profile, and
/// stops it again; how long it took to come up.
pub async fn try_start(lite: &sincro_core::lite::LiteSettings) -> Result<Duration, String> {
    use sincro_core::lite::browser::{Chromium, LaunchSpec};
    let exe = locate(lite.chromium_path.as_deref())?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary profile: {e}"))?;
    let spec = LaunchSpec::with_mode(
        Some(exe),
        dir.path().join("profile"),
        &lite.chromium_args,
        lite.launch_timeout,
        lite.single_process,
    );
    let started = Instant::now();
    let mut chromium = Chromium::launch(&spec).await.map_err(|e| e.to_string())?;
    let took = started.elapsed();
    chromium.terminate(Duration::from_secs(5)).await;
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_browser_says_how_to_install_it() {
        let e = locate(Some(Path::new("/nonexistent/chromium"))).unwrap_err();
        assert!(e.contains("apt-get install chromium"), "{e}");
        let e = locate(Some(Path::new("no-such-browser-here"))).unwrap_err();
        assert!(e.contains("not found on PATH"), "{e}");
        assert_eq!(
            locate(Some(Path::new("/bin/sh"))).unwrap(),
            PathBuf::from("/bin/sh")
        );
    }
}
