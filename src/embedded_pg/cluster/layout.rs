//! The directories of the private cluster and their ownership: [`Layout`] with its private
//! directories, and preparing them for the user PostgreSQL runs as when the daemon is root.

use super::{MAX_SOCKET_PATH, SUPERUSER};
use crate::embedded_pg::EmbeddedPgError;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tracing::info;

/// Paths of the private cluster (absolute: children run with another working directory).
pub(super) struct Layout {
    pub(super) data_dir: PathBuf,
    pub(super) cluster: PathBuf,
    pub(super) pgdata: PathBuf,
    pub(super) initdb_tmp: PathBuf,
    pub(super) run: PathBuf,
    pub(super) log: PathBuf,
}

impl Layout {
    pub(super) fn prepare(data_dir: &Path) -> Result<Self, EmbeddedPgError> {
        fs::create_dir_all(data_dir)
            .map_err(|e| EmbeddedPgError::io(format!("creating {}", data_dir.display()), e))?;
        let data_dir = fs::canonicalize(data_dir)
            .map_err(|e| EmbeddedPgError::io(format!("resolving {}", data_dir.display()), e))?;
        let cluster = data_dir.join("postgres");
        create_private_dir(&cluster)?;
        Ok(Self {
            pgdata: cluster.join("data"),
            initdb_tmp: cluster.join("data.initdb"),
            run: cluster.join("run"),
            log: cluster.join("postgres.log"),
            data_dir,
            cluster,
        })
    }

    pub(super) fn cluster_version(&self) -> Option<String> {
        fs::read_to_string(self.pgdata.join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The socket directory, unless its socket path would exceed `sun_path` (a deep DATA_DIR):
    /// then the server listens on TCP only.
    pub(super) fn socket_dir(&self) -> Option<&Path> {
        let len = self.run.as_os_str().len() + "/.s.PGSQL.65535".len();
        (len <= MAX_SOCKET_PATH).then_some(self.run.as_path())
    }
}

pub(super) fn create_private_dir(path: &Path) -> Result<(), EmbeddedPgError> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(EmbeddedPgError::io(
            format!("creating {}", path.display()),
            e,
        )),
    }
}

/// The system user the server runs as when the daemon is root (PostgreSQL refuses root).
pub(super) struct RunAs {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) groups: Vec<u32>,
}

impl RunAs {
    pub(super) fn needed() -> Result<Option<Self>, EmbeddedPgError> {
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let (uid, gid) = lookup_user(SUPERUSER).ok_or(EmbeddedPgError::NoPostgresUser)?;
        Ok(Some(Self {
            uid,
            gid,
            groups: group_list(SUPERUSER, gid),
        }))
    }

    /// Whether this user may enter `meta`'s directory (classic mode bits; ACLs are ignored).
    pub(super) fn can_search(&self, meta: &fs::Metadata) -> bool {
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if meta.gid() == self.gid || self.groups.contains(&meta.gid()) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }
}

pub(super) fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

pub(super) fn group_list(name: &str, gid: u32) -> Vec<u32> {
    let Ok(cname) = CString::new(name) else {
        return vec![gid];
    };
    let mut groups = vec![0 as libc::gid_t; 64];
    for _ in 0..3 {
        let mut count = groups.len() as libc::c_int;
        let rc =
            unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return groups;
        }
        groups.resize(count.max(groups.len() as libc::c_int * 2) as usize, 0);
    }
    vec![gid]
}

/// Makes the cluster usable by `user`: DATA_DIR gets the search bit for others if needed (not
/// the read bit: its listing stays private), every directory above it must already be
/// traversable, and the cluster tree is (re)owned by `user`.
pub(super) fn prepare_for_user(layout: &Layout, user: &RunAs) -> Result<(), EmbeddedPgError> {
    let meta = |dir: &Path| {
        fs::metadata(dir)
            .map_err(|e| EmbeddedPgError::io(format!("inspecting {}", dir.display()), e))
    };
    let not_traversable = |dir: &Path| EmbeddedPgError::NotTraversable {
        user: SUPERUSER.to_owned(),
        dir: dir.to_owned(),
    };
    for dir in layout.data_dir.ancestors().skip(1) {
        if !user.can_search(&meta(dir)?) {
            return Err(not_traversable(dir));
        }
    }
    let data_meta = meta(&layout.data_dir)?;
    if !user.can_search(&data_meta) {
        let mode = (data_meta.mode() & 0o7777) | 0o001;
        fs::set_permissions(&layout.data_dir, fs::Permissions::from_mode(mode)).map_err(|e| {
            EmbeddedPgError::io(
                format!("making {} traversable", layout.data_dir.display()),
                e,
            )
        })?;
        info!(dir = %layout.data_dir.display(), mode = format!("{mode:o}"),
            "made DATA_DIR traversable for the postgres user");
        if !user.can_search(&meta(&layout.data_dir)?) {
            return Err(not_traversable(&layout.data_dir));
        }
    }
    let owned = |p: &Path| fs::symlink_metadata(p).map_or(true, |m| m.uid() == user.uid);
    if !owned(&layout.cluster) || !owned(&layout.pgdata) || !owned(&layout.run) {
        info!(dir = %layout.cluster.display(), "giving the cluster directory to the postgres user");
        chown_tree(&layout.cluster, user)?;
    }
    create_private_dir(&layout.run)?;
    chown(&layout.run, user)
}

pub(super) fn chown(path: &Path, user: &RunAs) -> Result<(), EmbeddedPgError> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
        .map_err(|e| EmbeddedPgError::io(format!("changing the owner of {}", path.display()), e))
}

pub(super) fn chown_tree(path: &Path, user: &RunAs) -> Result<(), EmbeddedPgError> {
    chown(path, user)?;
    let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if is_dir {
        let entries = fs::read_dir(path)
            .map_err(|e| EmbeddedPgError::io(format!("listing {}", path.display()), e))?;
        for entry in entries.flatten() {
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}
