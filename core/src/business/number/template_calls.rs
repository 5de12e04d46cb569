//! The number's template management calls to Meta: syncing the list into the store,
//! creating and deleting templates, each halting the number when Meta refuses the token.

use super::Inner;
use crate::business::BusinessError;
use crate::business::graph::GraphError;
use crate::business::templates::{self, SyncReport};
use serde_json::{Value, json};

impl Inner {
    pub(super) async fn sync_templates(&self) -> Result<SyncReport, BusinessError> {
        let list = match self.client.list_templates(&self.record.waba_id).await {
            Ok(l) => l,
            Err(e) => return Err(self.on_error(e).await),
        };
        let mut client = self.shared.pool.get().await?;
        let tx = client.transaction().await?;
        let r = &self.record;
        let report = templates::replace_all(
            &tx,
            &self.shared.sealer,
            r.usuario_id,
            r.connection_id,
            &list,
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }

    pub(super) async fn create_template(&self, body: Value) -> Result<Value, BusinessError> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
        let (Some(name), Some(language)) = (text("name"), text("language")) else {
            return Err(BusinessError::Invalid(
                "a template needs name and language".into(),
            ));
        };
        let created = match self
            .client
            .create_template(&self.record.waba_id, &body)
            .await
        {
            Ok(c) => c,
            Err(e) => return Err(self.on_error(e).await),
        };
        let id = created.get("id").map(|v| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        });
        let status = created
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("PENDING");
        let category = created
            .get("category")
            .and_then(Value::as_str)
            .map(String::from)
            .or(text("category"));
        let client = self.shared.pool.get().await?;
        let r = &self.record;
        templates::insert_created(
            &client,
            r.usuario_id,
            r.connection_id,
            id.as_deref(),
            &name,
            &language,
            category.as_deref(),
            status,
            body.get("components").unwrap_or(&json!([])),
        )
        .await
    }

    pub(super) async fn delete_template(
        &self,
        name: String,
        language: Option<String>,
    ) -> Result<u64, BusinessError> {
        let client = self.shared.pool.get().await?;
        let r = &self.record;
        let hsm = match &language {
            Some(l) => Some(
                templates::meta_id(&client, r.connection_id, &name, l)
                    .await?
                    .ok_or(BusinessError::NotFound)?,
            ),
            None => None,
        };
        if let Err(e) = self
            .client
            .delete_template(&r.waba_id, &name, hsm.as_deref())
            .await
        {
            if let GraphError::Api(m) = &e
                && m.code == 100
                && templates::delete(&client, r.connection_id, &name, language.as_deref()).await?
                    > 0
            {
                // Meta no longer has it: our rows were stale.
                return Ok(0);
            }
            return Err(self.on_error(e).await);
        }
        templates::delete(&client, r.connection_id, &name, language.as_deref()).await
    }
}
