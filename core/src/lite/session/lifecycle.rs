//! Browser lifecycle of a Lite session: launch and page load, health checks and recycling,
//! profile snapshots, the login storage kept sealed, stopping (gracefully or with a logout) and
//! the wipe after a logout.

use super::page::open_page;
use super::{CALL_TIMEOUT, FINAL, LiteSessionMessage, SessionState};
use crate::lite::browser::{Chromium, LaunchSpec};
use crate::lite::login_storage::{self, LoginStorage};
use crate::lite::{LiteError, Status, bridge, profile, reason, store};
use crate::seal::Purpose;
use ractor::ActorRef;
use std::time::{Duration, Instant};

impl SessionState {
    /// Launches Chromium on the session's profile (restored from the snapshot if the directory
    /// is missing), opens the page with the bridge and starts the health ticks.
    pub(super) async fn boot(
        &mut self,
        myself: &ActorRef<LiteSessionMessage>,
    ) -> Result<(), LiteError> {
        if self.running.is_some() {
            self.close_browser(true).await;
        }
        let started = Instant::now();
        self.synced = false;
        self.connected = false;
        self.qr_cycles = 0;
        self.set_status(Status::Starting, None, None).await?;
        store::claim(&self.args.shared.pool, self.id(), &self.args.shared.node_id).await?;
        let profile_dir = self.settings.profile_dir(self.id());
        if !profile_dir.exists() {
            if let Some(archive) =
                store::load_snapshot(&self.args.shared.pool, &self.args.shared.sealer, self.id())
                    .await?
            {
                let dir = profile_dir.clone();
                let files = tokio::task::spawn_blocking(move || profile::unpack(&archive, &dir))
                    .await
                    .map_err(|e| LiteError::Invalid(e.to_string()))??;
                tracing::info!(session = %self.id(), files, "profile restored from its snapshot");
            } else {
                crate::private_fs::create_dir_all(&profile_dir)?;
            }
        }
        let spec = LaunchSpec::with_mode(
            self.settings.chromium_path.clone(),
            profile_dir,
            &self.settings.chromium_args,
            self.settings.launch_timeout,
            self.settings.single_process,
        );
        let kept = login_storage::load(&self.args.shared.pool, &self.args.shared.sealer, self.id())
            .await?;
        let chromium = Chromium::launch(&spec).await?;
        self.boot_gen += 1;
        let running = tokio::time::timeout(
            self.settings.launch_timeout,
            open_page(
                chromium,
                myself.clone(),
                self.boot_gen,
                &self.settings.web_url,
                kept.as_ref(),
            ),
        )
        .await
        .map_err(|_| LiteError::Timeout(self.settings.launch_timeout))??;
        self.running = Some(running);
        self.booted_at = Some(started);
        self.health_failures = 0;
        tracing::info!(session = %self.id(), elapsed_ms = started.elapsed().as_millis() as u64, "page loaded");
        if let Some(r) = &mut self.running {
            let tick =
                myself.send_interval(self.settings.health_interval, || LiteSessionMessage::Health);
            r.tasks.push(tick);
        }
        Ok(())
    }

    /// Reads the page's login storage and keeps it sealed (see [`login_storage`]).
    pub(super) async fn keep_login_storage(&mut self) {
        let Some(r) = &self.running else {
            return;
        };
        let kept: Result<LoginStorage, LiteError> = async {
            let kept = login_storage::capture(&r.page).await?;
            login_storage::save(
                &self.args.shared.pool,
                &self.args.shared.sealer,
                self.id(),
                &kept,
            )
            .await?;
            Ok(kept)
        }
        .await;
        match kept {
            Ok(k) => {
                tracing::debug!(session = %self.id(), keys = k.items.len(), "login storage kept")
            }
            Err(e) => tracing::warn!(session = %self.id(), error = %e, "login storage not kept"),
        }
    }

    /// Logged out from the phone: STOPPED with reason LOGOUT, browser gone, profile and
    /// snapshot wiped, session ended.
    pub(super) async fn logged_out(
        &mut self,
        myself: &ActorRef<LiteSessionMessage>,
    ) -> Result<(), LiteError> {
        tracing::info!(session = %self.id(), "logged out; wiping the profile");
        self.close_browser(false).await;
        self.wipe().await?;
        self.set_status(Status::Stopped, Some(reason::LOGOUT), None)
            .await?;
        crate::alerts::raise(
            &self.args.shared,
            crate::alerts::conditions::lite_logged_out(self.id(), self.args.usuario_id),
        );
        self.finish(myself, reason::LOGOUT);
        Ok(())
    }

    pub(super) async fn wipe(&mut self) -> Result<(), LiteError> {
        let dir = self.settings.session_dir(self.id());
        tokio::task::spawn_blocking(move || profile::wipe(&dir))
            .await
            .map_err(|e| LiteError::Invalid(e.to_string()))??;
        store::clear_snapshot(&self.args.shared.pool, self.id()).await?;
        Ok(())
    }

    pub(super) fn finish(&mut self, myself: &ActorRef<LiteSessionMessage>, why: &str) {
        self.finished = true;
        myself.stop(Some(format!("{FINAL}{why}")));
    }

    /// Stop through the API.
    pub(super) async fn stop(&mut self, logout: bool) {
        self.finished = true;
        let result: Result<(), LiteError> = async {
            if logout {
                if let Some(r) = &self.running
                    && self.status == Status::Working
                {
                    // Unlink on the phone side, then wait (bounded) for the page to drop it.
                    if let Err(e) = bridge::call(&r.page, "logout", &[], CALL_TIMEOUT).await {
                        tracing::warn!(session = %self.id(), error = %e, "page logout failed; wiping anyway");
                    }
                    let until = Instant::now() + Duration::from_secs(5);
                    while Instant::now() < until {
                        let state = bridge::call(&r.page, "health", &[], Duration::from_secs(2))
                            .await
                            .ok()
                            .and_then(|v| v["state"].as_str().map(str::to_string));
                        if state.as_deref() != Some("CONNECTED") {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                self.close_browser(false).await;
                self.wipe().await?;
                self.set_status(Status::Stopped, Some(reason::LOGOUT), None).await?;
            } else {
                let was_working = self.status == Status::Working;
                self.close_browser(true).await;
                if was_working {
                    self.snapshot().await;
                }
                self.set_status(Status::Stopped, Some(reason::STOPPED), None).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(session = %self.id(), error = %e, "stopping the session");
        }
    }

    /// Ends the browser: a CDP `Browser.close` first when `graceful` (so the profile is
    /// flushed), then the process group is killed and reaped.
    pub(super) async fn close_browser(&mut self, graceful: bool) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        self.args.shared.lite_memory.forget(self.id());
        // No browser, no memory: a stopped or recycled session must not keep reporting the
        // Chromium it had (dashboards and alerts would count a zombie).
        crate::telemetry::chromium_gauges(self.id(), 0, 0);
        let grace = if graceful {
            // The request leaves at once (the CDP handler still runs); its answer may never
            // come (the browser is closing), so wait for the process instead.
            let _ = tokio::time::timeout(Duration::from_millis(300), r.browser.close()).await;
            Duration::from_secs(3)
        } else {
            Duration::ZERO
        };
        for t in &r.tasks {
            t.abort();
        }
        r.chromium.terminate(grace).await;
    }

    /// Saves the sealed login state to PostgreSQL.
    pub(super) async fn snapshot(&mut self) {
        self.keep_login_storage().await;
        let dir = self.settings.profile_dir(self.id());
        let packed = tokio::task::spawn_blocking(move || profile::pack(&dir)).await;
        let archive = match packed {
            Ok(Ok(Some(a))) => a,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(session = %self.id(), error = %e, "profile snapshot skipped");
                return;
            }
            Err(e) => {
                tracing::warn!(session = %self.id(), error = %e, "profile snapshot task failed");
                return;
            }
        };
        let sealed = self
            .args
            .shared
            .sealer
            .seal(Purpose::ProfileSnapshot, &archive);
        match store::save_snapshot(&self.args.shared.pool, self.id(), &sealed).await {
            Ok(()) => {
                tracing::debug!(session = %self.id(), bytes = archive.len(), "profile snapshot saved")
            }
            Err(e) => {
                tracing::warn!(session = %self.id(), error = %e, "profile snapshot not saved")
            }
        }
    }

    pub(super) async fn health(
        &mut self,
        myself: &ActorRef<LiteSessionMessage>,
    ) -> Result<(), LiteError> {
        let id = self.id();
        let Some(r) = &mut self.running else {
            return Ok(());
        };
        if let Some(exit) = r.chromium.try_wait() {
            return Err(LiteError::Page(format!("{}: {exit}", reason::BROWSER_DIED)));
        }
        match bridge::call(&r.page, "health", &[], CALL_TIMEOUT).await {
            Ok(_) => self.health_failures = 0,
            Err(e) => {
                self.health_failures += 1;
                tracing::warn!(session = %id, error = %e, failures = self.health_failures, "page health check failed");
                if self.health_failures >= 3 {
                    return Err(LiteError::Page(format!("page stopped answering: {e}")));
                }
            }
        }
        let pids = r.chromium.pids();
        let processes = pids.len();
        let pss = tokio::task::spawn_blocking(move || {
            pids.into_iter()
                .map(crate::lite::browser::pss_bytes)
                .sum::<u64>()
        })
        .await
        .unwrap_or(0);
        metrics::histogram!("sincro_lite_chromium_pss_bytes").record(pss as f64);
        crate::telemetry::chromium_gauges(id, pss, processes);
        self.args.shared.lite_memory.record(id, pss);
        if pss > self.settings.memory_limit_bytes {
            tracing::info!(session = %self.id(), pss_mib = pss >> 20, limit_mib = self.settings.memory_limit_bytes >> 20, "Chromium over its memory limit; recycling");
            metrics::counter!("sincro_lite_recycles_total").increment(1);
            if self.status == Status::Working {
                self.snapshot().await;
            }
            self.close_browser(true).await;
            self.set_status(Status::Starting, Some(reason::MEMORY_LIMIT), None)
                .await?;
            myself.cast(LiteSessionMessage::Boot).ok();
        }
        Ok(())
    }
}
