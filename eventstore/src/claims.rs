//! Unique claims as a write-side index: which values of a scope are taken right now (a
//! command picks a free one, then claims it in its append, which the unique key makes
//! atomic across processes).

use crate::error::StoreError;
use crate::EventStore;

impl EventStore {
    /// Those of `candidates` that are claimed in `scope`.
    pub async fn claimed_values(
        &self,
        scope: &str,
        candidates: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("SELECT value FROM unique_claims WHERE scope = $1 AND value = ANY($2)")
            .await?;
        let rows = client.query(&statement, &[&scope, &candidates]).await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(StoreError::from))
            .collect()
    }
}
