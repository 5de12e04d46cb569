//! Finding the PostgreSQL server binaries (`initdb`, `postgres`) for the private cluster.
//!
//! Distributions put them in different places: Debian/Ubuntu keep them off `PATH` under
//! `/usr/lib/postgresql/<version>/bin` (several versions may be installed side by side), other
//! systems put them on `PATH`. The search is a plain value ([`BinarySearch`]) so tests can point
//! it anywhere without touching the process environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::EmbeddedPgError;

/// The directory distributions following the Debian layout install versioned binaries under.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Bound on `postgres --version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `initdb` and `postgres` are looked for; a directory qualifies when it holds both.
#[derive(Debug, Clone, Default)]
pub struct BinarySearch {
    /// `PG_BIN_DIR`: when set it is the only directory searched, so an explicit choice is never
    /// silently replaced by another installation.
    pub override_dir: Option<PathBuf>,
    /// A `PATH`-style list searched next (`None`: not searched).
    pub path: Option<OsString>,
    /// Directories holding `<version>/bin` subdirectories, searched last, newest version first.
    pub versioned_roots: Vec<PathBuf>,
}

impl BinarySearch {
    /// `PG_BIN_DIR` and `PATH` from the environment, then the Debian layout.
    pub fn from_env() -> Self {
        Self {
            override_dir: std::env::var_os("PG_BIN_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            path: std::env::var_os("PATH"),
            versioned_roots: vec![PathBuf::from(DEBIAN_ROOT)],
        }
    }

    /// The directories to look in, in preference order (not yet checked).
    fn directories(&self) -> Vec<PathBuf> {
        if let Some(dir) = &self.override_dir {
            return vec![dir.clone()];
        }
        let mut dirs: Vec<PathBuf> = self
            .path
            .as_ref()
            .map(|p| {
                std::env::split_paths(p)
                    .filter(|d| d.is_absolute())
                    .collect()
            })
            .unwrap_or_default();
        for root in &self.versioned_roots {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let key = version_key(&e.file_name().to_string_lossy())?;
                    Some((key, e.path().join("bin")))
                })
                .collect();
            versions.sort_by(|a, b| b.0.cmp(&a.0));
            dirs.extend(versions.into_iter().map(|(_, bin)| bin));
        }
        dirs
    }

    /// Every qualifying directory, deduplicated after resolving symlinks (a `PATH` entry that
    /// links into `/usr/lib/postgresql/15/bin` is that installation).
    pub(crate) fn candidates(&self) -> Vec<Binaries> {
        let mut found: Vec<Binaries> = Vec::new();
        for dir in self.directories() {
            let (Some(initdb), Some(postgres)) = (
                executable(&dir.join("initdb")),
                executable(&dir.join("postgres")),
            ) else {
                continue;
            };
            if !found.iter().any(|b| b.postgres == postgres) {
                found.push(Binaries { initdb, postgres });
            }
        }
        found
    }

    /// For error messages: what was searched.
    pub(crate) fn describe(&self) -> String {
        if let Some(dir) = &self.override_dir {
            return format!("PG_BIN_DIR={}", dir.display());
        }
        let mut parts = Vec::new();
        if let Some(path) = &self.path {
            parts.push(format!("PATH={}", path.to_string_lossy()));
        }
        for root in &self.versioned_roots {
            parts.push(format!("{}/<version>/bin", root.display()));
        }
        if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Picks the binaries for a cluster: the first candidate, or, for an existing cluster, the
    /// first whose major version matches the cluster's `PG_VERSION` (a cluster cannot be opened
    /// by another major version).
    pub(crate) async fn select(
        &self,
        cluster_version: Option<&str>,
        data_dir: &Path,
    ) -> Result<Selected, EmbeddedPgError> {
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Err(EmbeddedPgError::NoBinaries {
                searched: self.describe(),
            });
        }
        let mut seen = Vec::new();
        for bins in candidates {
            let version = bins.version().await?;
            match cluster_version {
                Some(want) if major_of(&version) != want => {
                    seen.push(format!("{version} in {}", bins.dir().display()));
                }
                _ => return Ok(Selected { bins, version }),
            }
        }
        Err(EmbeddedPgError::VersionMismatch {
            data_dir: data_dir.to_owned(),
            cluster: cluster_version.unwrap_or_default().to_owned(),
            found: seen.join(", "),
        })
    }
}

/// A directory's `initdb` and `postgres`, symlinks resolved.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

/// The chosen binaries and their version (`15.8`).
#[derive(Debug, Clone)]
pub(crate) struct Selected {
    pub bins: Binaries,
    pub version: String,
}

impl Binaries {
    fn dir(&self) -> &Path {
        self.postgres.parent().unwrap_or(Path::new("/"))
    }

    /// `postgres --version` is answered before the server's refuse-to-run-as-root check, so
    /// this works for any user.
    async fn version(&self) -> Result<String, EmbeddedPgError> {
        let context = || format!("running {} --version", self.postgres.display());
        let mut cmd = tokio::process::Command::new(&self.postgres);
        cmd.arg("--version").kill_on_drop(true);
        let output = tokio::time::timeout(VERSION_TIMEOUT, cmd.output())
            .await
            .map_err(|_| EmbeddedPgError::io(context(), std::io::ErrorKind::TimedOut.into()))?
            .map_err(|e| EmbeddedPgError::io(context(), e))?;
        let text = String::from_utf8_lossy(&output.stdout);
        parse_version(&text).ok_or_else(|| {
            EmbeddedPgError::io(
                context(),
                std::io::Error::other(format!("unexpected output {:?}", text.trim())),
            )
        })
    }
}

fn executable(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
        std::fs::canonicalize(path).ok()
    } else {
        None
    }
}

/// `15` → `[15]`, `9.6` → `[9, 6]`; anything else is not a version directory.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|p| p.parse().ok()).collect()
}

/// `postgres (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)` → `15.8`.
fn parse_version(output: &str) -> Option<String> {
    let rest = output.split("(PostgreSQL)").nth(1)?;
    let version = rest.split_whitespace().next()?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_owned())
}

/// The major version as `PG_VERSION` spells it: `15.8` → `15`, `9.6.24` → `9.6`,
/// `17beta1` → `17`.
pub(crate) fn major_of(version: &str) -> String {
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let first = &version[..digits_end(version)];
    match first.parse::<u32>() {
        Ok(n) if n < 10 => {
            let rest = version[first.len()..].trim_start_matches('.');
            format!("{first}.{}", &rest[..digits_end(rest)])
        }
        _ => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)\n").as_deref(),
            Some("15.8")
        );
        assert_eq!(major_of("15.8"), "15");
        assert_eq!(major_of("9.6.24"), "9.6");
        assert_eq!(major_of("17beta1"), "17");
        assert_eq!(version_key("9.6"), Some(vec![9, 6]));
        assert_eq!(version_key("main"), None);
    }
}
