//! A session's browser profile on disk and its sealed snapshot in PostgreSQL.
//!
//! The snapshot keeps only the login state (what WhatsApp Web stores in local storage,
//! IndexedDB and cookies), like whatsapp-web.js's RemoteAuth keeps `Default/`, `IndexedDB/`
//! and `Local Storage/`: caches and the rest are rebuilt by Chromium. The archive format is a
//! plain list of `(relative path, bytes)` records, sealed with `Purpose::ProfileSnapshot`
//! before it leaves this module. It is restored only into a missing profile directory (a fresh
//! disk, another node), never over a live one.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// What the snapshot takes, relative to the profile directory.
const KEEP: &[&str] = &[
    "Default/Local Storage",
    "Default/IndexedDB",
    "Default/Cookies",
    "Default/Cookies-journal",
];

/// Files never copied (LevelDB's lock is held by the running browser).
const SKIP_NAMES: &[&str] = &["LOCK"];

const MAGIC: &[u8; 8] = b"SWLPROF1";

/// Largest snapshot kept: a login state is a few MiB; more means caches crept in.
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// Packs the login state of `profile` into an archive (None when there is nothing to keep).
pub fn pack(profile: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut files = Vec::new();
    for keep in KEEP {
        collect(profile, &profile.join(keep), &mut files)?;
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    for (rel, path) in files {
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            // A LevelDB file compacted away while we walked: skip it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let rel = rel.as_bytes();
        out.write_all(&(rel.len() as u32).to_le_bytes())?;
        out.write_all(rel)?;
        out.write_all(&(data.len() as u64).to_le_bytes())?;
        out.write_all(&data)?;
        if out.len() > MAX_SNAPSHOT_BYTES {
            return Err(io::Error::other(format!(
                "profile login state is larger than {} MiB",
                MAX_SNAPSHOT_BYTES >> 20
            )));
        }
    }
    Ok(Some(out))
}

fn collect(root: &Path, path: &Path, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            collect(root, &entry?.path(), out)?;
        }
    } else if meta.is_file() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if SKIP_NAMES.contains(&name) {
            return Ok(());
        }
        let rel = path
            .strip_prefix(root)
            .map_err(io::Error::other)?
            .to_str()
            .ok_or_else(|| io::Error::other("non UTF-8 path in the profile"))?
            .to_string();
        out.push((rel, path.to_path_buf()));
    }
    Ok(())
}

/// Writes an archive into `profile` (which must not exist yet). Refuses paths that would
/// leave the directory.
pub fn unpack(archive: &[u8], profile: &Path) -> io::Result<usize> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut r = archive;
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad("not a profile snapshot"));
    }
    let tmp = profile.with_extension("restoring");
    let _ = std::fs::remove_dir_all(&tmp);
    crate::private_fs::create_dir_all(&tmp)?;
    let mut count = 0;
    while !r.is_empty() {
        let mut len4 = [0u8; 4];
        r.read_exact(&mut len4)?;
        let n = u32::from_le_bytes(len4) as usize;
        if n > 4096 || n > r.len() {
            return Err(bad("corrupt snapshot (path)"));
        }
        let rel = std::str::from_utf8(&r[..n]).map_err(|_| bad("corrupt snapshot (utf-8)"))?;
        let rel = PathBuf::from(rel);
        r = &r[n..];
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad("snapshot path leaves the profile"));
        }
        let mut len8 = [0u8; 8];
        r.read_exact(&mut len8)?;
        let n = u64::from_le_bytes(len8) as usize;
        if n > r.len() {
            return Err(bad("corrupt snapshot (data)"));
        }
        let dest = tmp.join(&rel);
        if let Some(parent) = dest.parent() {
            crate::private_fs::create_dir_all(parent)?;
        }
        crate::private_fs::write_sync(&dest, &r[..n])?;
        r = &r[n..];
        count += 1;
    }
    std::fs::rename(&tmp, profile)?;
    Ok(count)
}

/// Removes a profile directory (logout wipes the login state).
pub fn wipe(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_only_login_state() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("profile");
        std::fs::create_dir_all(p.join("Default/Local Storage/leveldb")).unwrap();
        std::fs::create_dir_all(p.join("Default/Cache")).unwrap();
        std::fs::write(p.join("Default/Local Storage/leveldb/000003.log"), b"login").unwrap();
        std::fs::write(p.join("Default/Local Storage/leveldb/LOCK"), b"").unwrap();
        std::fs::write(p.join("Default/Cache/big"), vec![0u8; 1000]).unwrap();
        let archive = pack(&p).unwrap().unwrap();
        let q = dir.path().join("restored");
        assert_eq!(unpack(&archive, &q).unwrap(), 1);
        assert_eq!(
            std::fs::read(q.join("Default/Local Storage/leveldb/000003.log")).unwrap(),
            b"login"
        );
        assert!(!q.join("Default/Cache").exists());
    }

    #[test]
    fn refuses_escaping_paths_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = MAGIC.to_vec();
        let rel = b"../evil";
        a.extend_from_slice(&(rel.len() as u32).to_le_bytes());
        a.extend_from_slice(rel);
        a.extend_from_slice(&1u64.to_le_bytes());
        a.push(b'x');
        assert!(unpack(&a, &dir.path().join("p")).is_err());
        assert!(unpack(b"garbage!", &dir.path().join("q")).is_err());
        assert!(pack(&dir.path().join("none")).unwrap().is_none());
    }
}
