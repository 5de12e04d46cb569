//! The embedded PostgreSQL default (`src/embedded_pg.rs`) against real PostgreSQL: the existing
//! server path, the private cluster (initdb once, reuse, stop, stale `postmaster.pid`, dying
//! with the daemon) and the errors a machine without PostgreSQL gets.
//!
//! Needs a PostgreSQL server on the default address and the server binaries installed. Nothing
//! here mutates the process environment: the binary search is injected through the options.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sincro_whatsapp::embedded_pg::{
    BinarySearch, DEFAULT_SERVER_URL, DatabaseSource, EmbeddedPgError, EmbeddedPgOptions, resolve,
    start_private,
};
use tokio_postgres::{Client, NoTls};

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Set for the child process of [`private_cluster_dies_with_the_daemon`].
const HELPER_ENV: &str = "SINCRO_EMBEDDED_PG_HELPER_DIR";

/// A URL on which nothing listens: a port the kernel just handed out and took back.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("postgres://postgres@127.0.0.1:{port}")
}

/// Options that cannot use the default server, so a private cluster is started.
fn private_opts(data_dir: &Path) -> EmbeddedPgOptions {
    let mut opts = EmbeddedPgOptions::new(data_dir);
    opts.default_server_url = closed_port_url();
    opts
}

async fn client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Pids of the processes of the cluster in `pgdata`: the postmaster and all its children run
/// with it as working directory (their command lines do not name it).
fn processes_of(pgdata: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == pgdata))
        .collect()
}

/// Waits (bounded) until no process of `pgdata` is left; returns the survivors.
async fn wait_for_no_processes(pgdata: &Path, limit: Duration) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let left = processes_of(pgdata);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `pid` runs (a zombie awaiting its reaper does not count).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
        !state.starts_with('Z')
    })
}

async fn kept_value(url: &str) -> String {
    client(url)
        .await
        .query_one("SELECT v FROM kept", &[])
        .await
        .expect("the row written by the first run")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_cluster_is_started_reused_and_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    // As a daemon's private DATA_DIR would be; under root the code makes it traversable.
    set_mode(dir.path(), 0o700);
    let opts = private_opts(dir.path());

    // First start: no server answers, so initdb + start.
    let source = resolve(&opts).await.expect("resolve");
    let DatabaseSource::Private { url, guard } = source else {
        panic!("expected a private cluster, got {source:?}");
    };
    assert!(guard.initialized(), "the first start runs initdb");
    if unsafe { libc::geteuid() } == 0 {
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o701, "search bit only, no listing");
    }
    assert_eq!(url, guard.url());
    assert!(url.ends_with("/sincro_whatsapp"), "{url}");
    let pgdata = guard.data_dir().to_owned();
    assert_eq!(
        pgdata,
        std::fs::canonicalize(dir.path())
            .unwrap()
            .join("postgres/data")
    );
    {
        let db = client(&url).await;
        let name: String = db
            .query_one("SELECT current_database()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(name, "sincro_whatsapp");
        db.batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('first run')")
            .await
            .unwrap();
    }
    assert!(processes_of(&pgdata).contains(&(guard.pid() as i32)));
    guard.stop().await;
    assert_eq!(
        wait_for_no_processes(&pgdata, Duration::from_secs(5)).await,
        Vec::<i32>::new(),
        "no process of the cluster survives stop"
    );
    assert!(!pgdata.join("postmaster.pid").exists(), "clean shutdown");

    // Second start on the same DATA_DIR: the cluster and its data are reused.
    let DatabaseSource::Private { url, guard } = resolve(&opts).await.expect("second resolve")
    else {
        panic!("expected a private cluster");
    };
    assert!(!guard.initialized(), "no second initdb");
    assert_eq!(kept_value(&url).await, "first run");

    // A killed run leaves postmaster.pid naming a dead pid: the next start must not mind.
    let pid = guard.pid() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !guard.has_exited() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(guard.has_exited());
    assert!(
        wait_for_no_processes(&pgdata, Duration::from_secs(30))
            .await
            .is_empty()
    );
    assert!(
        pgdata.join("postmaster.pid").exists(),
        "a killed run leaves its lock file"
    );
    drop(guard); // already exited: nothing to stop
    let guard = start_private(&opts)
        .await
        .expect("start after a killed run");
    assert!(!guard.initialized());
    assert_eq!(kept_value(guard.url()).await, "first run");
    guard.stop().await;

    // A postmaster.pid whose pid now belongs to a live, unrelated process (pid reuse after a
    // reboot) would make PostgreSQL refuse to start.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    std::fs::write(
        pgdata.join("postmaster.pid"),
        format!("{}\n{}\n", sleeper.id(), pgdata.display()),
    )
    .unwrap();
    let guard = start_private(&opts)
        .await
        .expect("start despite a reused pid");
    assert_eq!(kept_value(guard.url()).await, "first run");
    guard.stop().await;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(
        wait_for_no_processes(&pgdata, Duration::from_secs(5))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_server_is_used_and_the_database_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let database = format!("sincro_embedded_pg_test_{}_{nanos}", std::process::id());
    let mut opts = EmbeddedPgOptions::new(dir.path());
    opts.database = database.clone();

    // Two daemons creating the database at the same moment both succeed.
    let (a, b) = tokio::join!(resolve(&opts), resolve(&opts));
    for source in [a, b] {
        match source.expect("resolve") {
            DatabaseSource::Server { url } => {
                assert_eq!(url, format!("{DEFAULT_SERVER_URL}/{database}"));
                let name: String = client(&url)
                    .await
                    .query_one("SELECT current_database()", &[])
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(name, database);
            }
            other => panic!("expected the default server, got {other:?}"),
        }
    }
    // Again, now that it exists.
    assert!(matches!(
        resolve(&opts).await,
        Ok(DatabaseSource::Server { .. })
    ));
    assert!(
        !dir.path().join("postgres").exists(),
        "no private cluster when a server answers"
    );

    let admin = client(&format!("{DEFAULT_SERVER_URL}/postgres")).await;
    admin
        .batch_execute(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn no_server_and_no_binaries_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = tempfile::tempdir().expect("tempdir");
    let mut opts = private_opts(dir.path());

    // PG_BIN_DIR set to an empty directory is the only place searched.
    opts.binaries = BinarySearch {
        override_dir: Some(empty.path().to_owned()),
        path: Some(OsString::from(empty.path())),
        versioned_roots: vec![empty.path().to_owned()],
    };
    let err = resolve(&opts).await.expect_err("nothing to use");
    assert!(matches!(err, EmbeddedPgError::NoPostgres { .. }), "{err:?}");
    let message = err.to_string();
    for needle in ["apt-get install postgresql", "DATABASE_URL", "PG_BIN_DIR"] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    assert!(!message.contains("password"), "{message}");

    // A configured URL that does not parse is reported, not silently replaced, and the error
    // does not repeat the password it may hold.
    let mut bad = opts.clone();
    bad.default_server_url = "postgres://postgres:s3cret@127.0.0.1:notaport".to_owned();
    let err = resolve(&bad).await.expect_err("invalid URL");
    assert!(matches!(err, EmbeddedPgError::InvalidUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");

    // Without PG_BIN_DIR: PATH and the versioned roots are searched, and hold nothing.
    opts.binaries = BinarySearch {
        override_dir: None,
        path: Some(OsString::from(empty.path())),
        versioned_roots: vec![empty.path().to_owned()],
    };
    let err = start_private(&opts).await.expect_err("no binaries");
    assert!(matches!(err, EmbeddedPgError::NoBinaries { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("apt-get install postgresql") && message.contains("DATABASE_URL"),
        "{message}"
    );
}

#[tokio::test]
async fn untraversable_parent_is_named_when_root() {
    if unsafe { libc::geteuid() } != 0 {
        return; // only root switches to the postgres user
    }
    let dir = tempfile::tempdir().expect("tempdir");
    set_mode(dir.path(), 0o700);
    let data_dir: PathBuf = dir.path().join("nested").join("data");
    let err = start_private(&private_opts(&data_dir))
        .await
        .expect_err("postgres cannot enter the tempdir");
    match &err {
        EmbeddedPgError::NotTraversable { dir: bad, user } => {
            assert_eq!(bad, &std::fs::canonicalize(dir.path()).unwrap());
            assert_eq!(user, "postgres");
        }
        other => panic!("expected NotTraversable, got {other:?}"),
    }
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

/// Run in a child process by [`private_cluster_dies_with_the_daemon`]: starts a private cluster,
/// prints the postmaster's pid and dies by SIGKILL, like a crashed or OOM-killed daemon.
#[test]
#[ignore = "helper, run in a child process by private_cluster_dies_with_the_daemon"]
fn helper_start_private_then_die() {
    let Some(dir) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let guard = runtime
        .block_on(start_private(&private_opts(Path::new(&dir))))
        .expect("start");
    println!("POSTMASTER_PID={}", guard.pid());
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_cluster_dies_with_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let run = tokio::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "embedded_pg::helper_start_private_then_die",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, dir.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("helper finished in time")
        .expect("helper ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The harness prints the test name on the same line, before the helper's output.
    let pid: i32 = stdout
        .split("POSTMASTER_PID=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!(
                "no pid from the helper: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .parse()
        .unwrap();

    let pgdata = std::fs::canonicalize(dir.path())
        .unwrap()
        .join("postgres/data");
    let left = wait_for_no_processes(&pgdata, Duration::from_secs(40)).await;
    assert!(left.is_empty() && !alive(pid), "survivors: {left:?}");
    // SIGINT (fast shutdown) rather than a crash: the lock file is removed.
    assert!(!pgdata.join("postmaster.pid").exists());
}
