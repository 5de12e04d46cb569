//! Runs the real `sincro-whatsapp` binary as a child process with a clean environment and
//! collects its JSON log lines.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_sincro-whatsapp");

pub fn command(args: &[&str], env: &HashMap<String, String>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A running daemon process and every stderr line it printed so far.
pub struct Daemon {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub addr: String,
    /// The task collecting `lines`; it ends when the process closes stderr.
    reader: tokio::task::JoinHandle<()>,
}

/// Starts `serve` with LOG_FORMAT=json on port 0 and waits for its "listening" line.
pub async fn serve(mut env: HashMap<String, String>) -> Daemon {
    env.insert("LOG_FORMAT".into(), "json".into());
    env.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
    let mut child = command(&["serve"], &env).spawn().expect("spawn daemon");
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let sink = lines.clone();
    let reader = tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = rx.recv().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "listening"
            {
                return v["addr"].as_str().unwrap().to_string();
            }
        }
        panic!("daemon exited before listening: {:?}", "see lines");
    })
    .await
    .expect("daemon listening within 60 s");
    Daemon {
        child,
        lines,
        addr,
        reader,
    }
}

impl Daemon {
    /// Waits at most `within` for the process to exit, then for its last log lines: the exit
    /// can be seen before the lines written just before it were read.
    pub async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("daemon exits in time")
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.reader).await;
        status
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }
}
