//! Re-sealing everything under the current key (`sincro-whatsapp reseal`), so an old key can be
//! retired and what it sealed, in old database backups, becomes unreadable once the key is
//! destroyed (crypto erasure). Every sealed value is found wherever it lies, without a list of
//! columns to keep up to date: each `text` column holding `sw1.` values and each string inside
//! `jsonb` columns, in every table of the schema, and every file under `DATA_DIR/media`. Each
//! value is opened with the purpose it was sealed for and sealed again for it under the current
//! key, a small batch at a time; a row changed meanwhile is left for the next run (updates
//! compare the old value). [`references`] counts what still names a key id.

use super::PrivacyError;
use crate::seal::Sealer;
use deadpool_postgres::{GenericClient, Pool};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Values read per statement.
const BATCH: i64 = 500;

/// What a re-seal did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResealReport {
    /// Values in the database sealed again.
    pub values: u64,
    /// Media files sealed again.
    pub files: u64,
    /// Sealed values or files no configured key opens (left as they are).
    pub unreadable: u64,
}

/// A column that may hold sealed values.
struct Column {
    table: String,
    name: String,
    json: bool,
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every text and jsonb column of the schema's tables.
async fn columns(client: &impl GenericClient) -> Result<Vec<Column>, PrivacyError> {
    let rows = client
        .query(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text
             FROM information_schema.columns c
             JOIN information_schema.tables t
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.data_type IN ('text', 'jsonb', 'character varying')
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Column {
            table: r.get(0),
            name: r.get(1),
            json: r.get::<_, String>(2) == "jsonb",
        })
        .collect())
}

/// The SQL test for "holds a sealed value not under `current`" on `col`.
fn stale_filter(col: &Column, current: &str) -> String {
    let c = ident(&col.name);
    if col.json {
        // Key ids are letters, digits, `_` and `-`: nothing a regular expression reads specially.
        format!("{c}::text LIKE '%\"sw1.%' AND {c}::text ~ '\"sw1\\.(?!{current}\\.)'")
    } else {
        // `_` is a LIKE wildcard; key ids may contain it.
        let current = current.replace('_', "\\_");
        format!("{c} LIKE 'sw1.%' AND {c} NOT LIKE 'sw1.{current}.%'")
    }
}

/// Re-seals every sealed value in the database and every media file under the current key.
pub async fn reseal_all(
    pool: &Pool,
    sealer: &Sealer,
    data_dir: &Path,
) -> Result<ResealReport, PrivacyError> {
    let client = pool.get().await?;
    let current = sealer.current_key_id().to_string();
    let mut report = ResealReport::default();
    for col in columns(&client).await? {
        reseal_column(&client, sealer, &col, &current, &mut report).await?;
    }
    for path in media_files(data_dir)? {
        reseal_file(sealer, &path, &current, &mut report).await?;
    }
    Ok(report)
}

async fn reseal_column(
    client: &impl GenericClient,
    sealer: &Sealer,
    col: &Column,
    current: &str,
    report: &mut ResealReport,
) -> Result<(), PrivacyError> {
    let (t, c) = (ident(&col.table), ident(&col.name));
    let select = format!(
        "SELECT ctid::text, {c}::text FROM {t} WHERE ctid > $1::text::tid AND {} ORDER BY ctid LIMIT {BATCH}",
        stale_filter(col, current)
    );
    let cast = if col.json { "::jsonb" } else { "" };
    let update = format!(
        "UPDATE {t} SET {c} = $2::text{cast} WHERE ctid = $1::text::tid AND {c}::text = $3"
    );
    let mut after = "(0,0)".to_string();
    loop {
        let rows = client.query(&select, &[&after]).await?;
        for row in &rows {
            let (ctid, old): (String, String) = (row.get(0), row.get(1));
            after = ctid.clone();
            let new = if col.json {
                let mut v: Value = serde_json::from_str(&old)
                    .map_err(|e| PrivacyError::Files(format!("{}.{}: {e}", col.table, col.name)))?;
                reseal_json(sealer, &mut v, current, report);
                v.to_string()
            } else {
                match sealer.reseal(&old) {
                    Some(v) => v,
                    None => {
                        report.unreadable += 1;
                        continue;
                    }
                }
            };
            if new != old {
                let changed = client.execute(&update, &[&ctid, &new, &old]).await?;
                if !col.json {
                    report.values += changed;
                }
            }
        }
        if (rows.len() as i64) < BATCH {
            return Ok(());
        }
    }
}

/// Re-seals every sealed string inside `v` not under `current`.
fn reseal_json(sealer: &Sealer, v: &mut Value, current: &str, report: &mut ResealReport) {
    match v {
        Value::String(s) if Sealer::key_id_of(s).is_some_and(|id| id != current) => {
            match sealer.reseal(s) {
                Some(new) => {
                    *s = new;
                    report.values += 1;
                }
                None => report.unreadable += 1,
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| reseal_json(sealer, x, current, report)),
        Value::Object(o) => o
            .values_mut()
            .for_each(|x| reseal_json(sealer, x, current, report)),
        _ => {}
    }
}

/// Every file under `DATA_DIR/media` (both layouts: `media/<id>`, `media/<user>/<id>`),
/// temporary files aside.
fn media_files(data_dir: &Path) -> Result<Vec<PathBuf>, PrivacyError> {
    let mut out = Vec::new();
    let mut dirs = vec![data_dir.join("media")];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(PrivacyError::Files(format!("{}: {e}", dir.display()))),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_none_or(|x| x != "tmp") {
                out.push(path);
            }
        }
    }
    Ok(out)
}

async fn reseal_file(
    sealer: &Sealer,
    path: &Path,
    current: &str,
    report: &mut ResealReport,
) -> Result<(), PrivacyError> {
    let io = |e: std::io::Error| PrivacyError::Files(format!("{}: {e}", path.display()));
    let text = String::from_utf8(tokio::fs::read(path).await.map_err(io)?).unwrap_or_default();
    let text = text.trim();
    match Sealer::key_id_of(text) {
        Some(id) if id != current => {}
        _ => return Ok(()),
    }
    let Some(new) = sealer.reseal(text) else {
        report.unreadable += 1;
        return Ok(());
    };
    crate::media_store::write_atomically(path, new.as_bytes())
        .await
        .map_err(io)?;
    report.files += 1;
    Ok(())
}

/// How many database values and media files are still sealed under `key_id`: after a
/// re-seal, zero says the key can be removed from `ENCRYPTION_KEY`.
pub async fn references(pool: &Pool, data_dir: &Path, key_id: &str) -> Result<u64, PrivacyError> {
    let client = pool.get().await?;
    let needle = format!("sw1.{key_id}.");
    let like = format!("%{}%", needle.replace('_', "\\_"));
    let mut count = 0u64;
    for col in columns(&client).await? {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {}::text LIKE $1",
            ident(&col.table),
            ident(&col.name)
        );
        count += client.query_one(&sql, &[&like]).await?.get::<_, i64>(0) as u64;
    }
    for path in media_files(data_dir)? {
        let text = tokio::fs::read(&path).await.unwrap_or_default();
        if text.starts_with(needle.as_bytes()) {
            count += 1;
        }
    }
    Ok(count)
}
