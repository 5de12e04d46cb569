//! The number's throughput level read again from Meta each time its actor starts (the level
//! paces its sends; see `crate::business::throughput`): numbers connected before the daemon
//! kept the level get it, and a level Meta lowered is seen. A refused token halts the number
//! as any management call does.

use super::Inner;
use crate::business::BusinessError;
use crate::business::throughput::{self, Source};
use crate::store::StoreError;

impl Inner {
    /// Reads `throughput` from Meta and stores it; whether the stored level changed.
    pub(super) async fn refresh_level(&self) -> Result<bool, BusinessError> {
        let asked = time::OffsetDateTime::now_utc();
        let number = match self.client.phone_number(&self.record.phone_number_id).await {
            Ok(n) => n,
            Err(e) => return Err(self.on_error(e).await),
        };
        let Some(level) = throughput::level_of(&number) else {
            return Ok(false);
        };
        let mut client = self.shared.pool.get().await?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let changed = throughput::store_level(
            &tx,
            &self.shared.sealer,
            self.record.connection_id,
            &level,
            asked,
            Source::Graph,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(changed)
    }
}
