//! DevTools over a pipe, so no other local user can drive a session's browser.
//!
//! With `--remote-debugging-port`, Chromium serves DevTools on a loopback TCP port that any
//! process of any user on the machine can connect to and then read every chat, send messages
//! or steal the login. With `--remote-debugging-pipe` it reads commands from fd 3 and writes
//! answers to fd 4 (messages separated by a NUL byte), and only the process holding the other
//! ends (the daemon) can talk to it.
//!
//! chromiumoxide speaks DevTools over a WebSocket only, so the daemon bridges: it listens on
//! 127.0.0.1 at a path with a 128-bit random token, accepts exactly one connection on that path
//! (chromiumoxide's, made right away) and closes the listener; from then on the browser has no
//! open port at all, and the one established connection is the daemon's own. Frames are relayed
//! both ways until either side closes; the relay ends when the browser exits (its pipe closes).

use futures::{SinkExt, StreamExt};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::unix::pipe;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

/// The flag that makes Chromium talk DevTools on fds 3 and 4.
pub const FLAG: &str = "remote-debugging-pipe";

/// Id of the readiness probe: far above the ids chromiumoxide counts from 0, and within the
/// 32-bit integers DevTools accepts as ids. Its answer is never relayed.
const PROBE_ID: u64 = 2_000_000_000;

/// The two pipes before the fork: the child's ends are put on fds 3 and 4 in `pre_exec`.
pub struct Pipes {
    /// Chromium reads commands here (its fd 3).
    child_read: OwnedFd,
    /// Chromium writes answers here (its fd 4).
    child_write: OwnedFd,
    /// The daemon writes commands here.
    ours_write: OwnedFd,
    /// The daemon reads answers here.
    ours_read: OwnedFd,
}

fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh, open, and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Pipes {
    pub fn new() -> io::Result<Pipes> {
        let (child_read, ours_write) = pipe_pair()?;
        let (ours_read, child_write) = pipe_pair()?;
        Ok(Pipes {
            child_read,
            child_write,
            ours_write,
            ours_read,
        })
    }

    /// The raw fds the child must see as 3 and 4, for [`place_in_child`].
    pub fn child_fds(&self) -> (RawFd, RawFd) {
        (self.child_read.as_raw_fd(), self.child_write.as_raw_fd())
    }

    /// After the spawn: closes the child's ends here and starts the bridge. Returns the
    /// WebSocket URL chromiumoxide connects to (once).
    pub async fn bridge(self) -> io::Result<String> {
        let Pipes {
            child_read,
            child_write,
            ours_write,
            ours_read,
        } = self;
        drop(child_read);
        drop(child_write);
        let mut to_browser = pipe::Sender::from_owned_fd(ours_write)?;
        let mut from_browser = pipe::Receiver::from_owned_fd(ours_read)?;
        // Ready when DevTools answers; a browser that exits at start closes the pipe instead.
        to_browser
            .write_all(
                format!("{{\"id\":{PROBE_ID},\"method\":\"Browser.getVersion\"}}\0").as_bytes(),
            )
            .await?;
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if let Some(end) = pending.iter().position(|b| *b == 0) {
                let frame: Vec<u8> = pending.drain(..=end).collect();
                let answer: serde_json::Value =
                    serde_json::from_slice(&frame[..frame.len() - 1]).unwrap_or_default();
                if answer.get("id").and_then(serde_json::Value::as_u64) == Some(PROBE_ID) {
                    break;
                }
                continue;
            }
            let n = from_browser.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "Chromium closed its DevTools pipe",
                ));
            }
            pending.extend_from_slice(&buf[..n]);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let path = format!("/devtools/browser/{token}");
        let url = format!("ws://{}{path}", listener.local_addr()?);
        tokio::spawn(async move {
            // Connections on any other path are refused; the first on the token's path is
            // the daemon's, and then the listener is gone.
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let expected = path.clone();
                let check = move |req: &Request, resp: Response| {
                    if req.uri().path() == expected {
                        Ok(resp)
                    } else {
                        let mut refused = ErrorResponse::new(None);
                        *refused.status_mut() =
                            tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                        Err(refused)
                    }
                };
                if let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, check).await {
                    drop(listener);
                    relay(ws, to_browser, from_browser, pending).await;
                    return;
                }
            }
        });
        Ok(url)
    }
}

/// Moves the pipe ends to fds 3 and 4 in the forked child, before exec. Only async-signal-safe
/// calls. The ends are first copied above 9 so that placing one cannot overwrite the other.
///
/// # Safety
/// Call only between fork and exec.
pub unsafe fn place_in_child(read: RawFd, write: RawFd) -> io::Result<()> {
    // SAFETY: fcntl and dup2 on fds we own, in the child before exec.
    unsafe {
        let r = libc::fcntl(read, libc::F_DUPFD_CLOEXEC, 10);
        let w = libc::fcntl(write, libc::F_DUPFD_CLOEXEC, 10);
        if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Relays WebSocket text frames to the pipe (each followed by NUL) and NUL-separated messages
/// from the pipe to frames, until either side closes.
async fn relay(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    mut to_browser: pipe::Sender,
    mut from_browser: pipe::Receiver,
    mut pending: Vec<u8>,
) {
    let (mut ws_tx, mut ws_rx) = ws.split();
    let commands = async move {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let bytes = match msg {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            if to_browser.write_all(&bytes).await.is_err()
                || to_browser.write_all(&[0]).await.is_err()
            {
                break;
            }
        }
    };
    let answers = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(end) = pending.iter().position(|b| *b == 0) {
                let frame: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&frame[..frame.len() - 1]).into_owned();
                if ws_tx.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            let n = match from_browser.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
        }
        let _ = ws_tx.close().await;
    };
    // Either side ending ends both: the browser is gone, or chromiumoxide let go.
    tokio::select! {
        _ = commands => {}
        _ = answers => {}
    }
}
