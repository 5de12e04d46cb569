//! The inbox commits of a scenario, read from the daemon's `/metrics` before and after it:
//! how many group commits the POSTs' 200s waited for, how many rows each carried, and how long
//! each took. With one batch committing at a time, a single-message flood's rate is about the
//! rows per commit over the commit's time; set next to the disk's own flush time
//! (`pg_test_fsync`), it tells whether the commits wait for the disk or for a core.

/// The two histograms' sums and counts at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    commits: f64,
    seconds: f64,
    rows: f64,
}

/// What happened between two snapshots.
#[derive(Debug, Clone, Copy)]
pub struct Commits {
    pub count: f64,
    pub rows_each: f64,
    pub mean_ms: f64,
}

impl Snapshot {
    /// Reads `/metrics` of the daemon at `base`; zeros when a series is not there yet.
    pub async fn take(http: &reqwest::Client, base: &str) -> Result<Snapshot, reqwest::Error> {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(Snapshot::parse(&text))
    }

    fn parse(text: &str) -> Snapshot {
        let value = |series: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(series)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0.0)
        };
        Snapshot {
            commits: value("sincro_inbox_commit_seconds_count"),
            seconds: value("sincro_inbox_commit_seconds_sum"),
            rows: value("sincro_inbox_group_commit_rows_sum"),
        }
    }

    /// The commits since `earlier`.
    pub fn since(&self, earlier: &Snapshot) -> Commits {
        let count = self.commits - earlier.commits;
        let per = |total: f64| if count > 0.0 { total / count } else { 0.0 };
        Commits {
            count,
            rows_each: per(self.rows - earlier.rows),
            mean_ms: per(self.seconds - earlier.seconds) * 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sums_and_counts_and_takes_the_difference() {
        let before = Snapshot::parse(
            "# TYPE sincro_inbox_commit_seconds histogram\n\
             sincro_inbox_commit_seconds_bucket{le=\"0.0005\"} 1\n\
             sincro_inbox_commit_seconds_sum 0.004\n\
             sincro_inbox_commit_seconds_count 2\n\
             sincro_inbox_group_commit_rows_sum 3\n\
             sincro_inbox_group_commit_rows_count 2\n",
        );
        let after = Snapshot::parse(
            "sincro_inbox_commit_seconds_sum 0.016\n\
             sincro_inbox_commit_seconds_count 6\n\
             sincro_inbox_group_commit_rows_sum 15\n",
        );
        let c = after.since(&before);
        assert_eq!(c.count, 4.0);
        assert_eq!(c.rows_each, 3.0);
        assert!((c.mean_ms - 3.0).abs() < 1e-9, "{}", c.mean_ms);
        // Before any commit: nothing, not a division by zero.
        let none = Snapshot::parse("").since(&Snapshot::default());
        assert_eq!((none.count, none.rows_each, none.mean_ms), (0.0, 0.0, 0.0));
    }
}
