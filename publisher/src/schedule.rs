//! The publisher's own scheduler: a run on every tick of `publisher.schedule`.

use std::str::FromStr;

use chrono::Utc;
use cron::Schedule;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::error::error_chain;
use crate::{PublishError, Publisher};

impl Publisher {
    /// Runs [`publish_once`](Self::publish_once) on every tick of `publisher.schedule` (UTC)
    /// until `cancel` fires.
    ///
    /// A failed run is logged and the loop waits for the next tick. Ticks that pass while a
    /// run is in progress are skipped. On cancellation a run in progress stops at its next
    /// row and leaves `latest.json` as it was; its objects are removed by the next run.
    /// Returns an error only when the schedule is not a valid cron expression.
    pub async fn run_scheduled(&self, cancel: CancellationToken) -> Result<(), PublishError> {
        let schedule =
            Schedule::from_str(&self.schedule).map_err(|source| PublishError::InvalidSchedule {
                schedule: self.schedule.clone(),
                source,
            })?;
        info!(schedule = %self.schedule, "publisher scheduler started");

        loop {
            let Some(next_run) = schedule.upcoming(Utc).next() else {
                warn!(schedule = %self.schedule, "the schedule has no future run; scheduler stopped");
                return Ok(());
            };
            info!(next_run = %next_run.to_rfc3339(), "next publisher run scheduled");

            let wait = (next_run - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }

            match self.publish_once(&cancel).await {
                Ok(_) => {}
                Err(PublishError::Cancelled) => break,
                Err(PublishError::LockHeld { lock }) => {
                    warn!(%lock, "the publisher lock is held by another run; this tick is skipped");
                }
                Err(run_error) => {
                    error!(error = %error_chain(&run_error), "publisher run failed; retrying at the next tick");
                }
            }
        }
        info!("publisher scheduler stopped");
        Ok(())
    }
}
