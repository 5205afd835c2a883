//! Service settings kept as JSON documents in the object store beside the catalog (saved query
//! definitions, lookup tables), so that every node opening the store sees them. One way to load
//! and save them.

use logwell_model::ApiError;
use logwell_storage::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// A settings document from the object store; the first time, the copy an older version kept in
/// `data_dir` under the same name (then saved to the store); empty when there is neither.
pub(crate) async fn load<T: DeserializeOwned + Serialize + Default>(
    engine: &Engine,
    data_dir: &Path,
    name: &str,
) -> Result<T, ApiError> {
    let unreadable = |e: serde_json::Error| {
        ApiError::unavailable(format!("settings document {name} is unreadable: {e}"))
    };
    if let Some(bytes) = engine.get_document(name).await? {
        return serde_json::from_slice(&bytes).map_err(unreadable);
    }
    let Ok(old) = std::fs::read(data_dir.join(name)) else {
        return Ok(T::default());
    };
    let value: T = serde_json::from_slice(&old).map_err(unreadable)?;
    save(engine, name, &value).await?;
    Ok(value)
}

/// Saves a settings document whole.
pub(crate) async fn save<T: Serialize>(
    engine: &Engine,
    name: &str,
    value: &T,
) -> Result<(), ApiError> {
    let body = serde_json::to_vec_pretty(value).expect("settings serialise");
    engine.put_document(name, body.into()).await
}
