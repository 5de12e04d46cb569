//! The daemon process's own gauges: resident memory, open files, threads and tokio tasks, read
//! from `/proc/self` (Linux) and the runtime.

/// Sets `sincro_process_resident_memory_bytes`, `sincro_process_open_fds`,
/// `sincro_process_threads` and `sincro_tokio_tasks_alive`.
pub fn sample() {
    if let Some(rss) = resident_bytes() {
        metrics::gauge!("sincro_process_resident_memory_bytes").set(rss as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("sincro_process_open_fds").set(fds.count() as f64);
    }
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        metrics::gauge!("sincro_process_threads").set(tasks.count() as f64);
    }
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        metrics::gauge!("sincro_tokio_tasks_alive").set(rt.metrics().num_alive_tasks() as f64);
    }
}

/// Resident set size: `/proc/self/statm`'s second field, in pages.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_memory() {
        assert!(super::resident_bytes().unwrap() > 1 << 20);
    }
}
