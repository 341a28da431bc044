//! A delivery's payload as the store keeps it in `deliveries.payload`.
//!
//! On SQLite it is kept LZ4-compressed (lz4_flex's block format, the uncompressed length
//! first), as a BLOB in the TEXT column; rows written before hold the JSON text, and both
//! are read. A GitHub payload is ~12 KB of JSON that repeats its URLs: compressed it fits in
//! the row's page instead of a page and three overflow pages, and SQLite, whose one writer
//! writes every delivery, writes, logs, checksums and checkpoints a quarter of the bytes.
//! The compression is done beside each request ([`Store::keep_payload`]), not by the
//! writer. On PostgreSQL it stays JSONB, whose TOAST compresses a large value by itself.

use serde_json::value::RawValue;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::types::Json;
use sqlx::{Decode, Encode, Postgres, Sqlite, Type, TypeInfo, ValueRef};

use super::{Backend, Store};

/// The most a kept payload may say it holds uncompressed, far above any body intake
/// accepts: a corrupt length is refused rather than allocated.
const MAX_UNPACKED: usize = 64 << 20;

/// A delivery's payload made ready for this store: on SQLite its compressed bytes.
#[derive(Debug, Clone)]
pub struct KeptPayload {
    packed: Option<Vec<u8>>,
}

impl Store {
    /// `payload` as this store keeps it (see the module comment); call it beside the
    /// request, before the write is handed to the committer.
    pub fn keep_payload(&self, payload: &RawValue) -> KeptPayload {
        KeptPayload {
            packed: (self.backend() == Backend::Sqlite)
                .then(|| lz4_flex::block::compress_prepend_size(payload.get().as_bytes())),
        }
    }
}

/// The value bound for `deliveries.payload`: the compressed bytes when the payload was kept
/// for SQLite, its JSON text otherwise.
pub(super) struct PayloadArg<'a> {
    pub(super) json: &'a RawValue,
    pub(super) kept: &'a KeptPayload,
}

impl Type<Sqlite> for PayloadArg<'_> {
    fn type_info() -> SqliteTypeInfo {
        <[u8] as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for PayloadArg<'_> {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        match &self.kept.packed {
            Some(packed) => <&[u8] as Encode<Sqlite>>::encode_by_ref(&packed.as_slice(), buf),
            None => <&str as Encode<Sqlite>>::encode_by_ref(&self.json.get(), buf),
        }
    }
}

impl Type<Postgres> for PayloadArg<'_> {
    fn type_info() -> PgTypeInfo {
        <Json<&RawValue> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for PayloadArg<'_> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Json<&RawValue> as Encode<Postgres>>::encode_by_ref(&Json(self.json), buf)
    }
}

/// A payload read back from `deliveries.payload`, whichever way it was kept.
pub(super) struct StoredPayload(pub(super) serde_json::Value);

impl Type<Sqlite> for StoredPayload {
    fn type_info() -> SqliteTypeInfo {
        <[u8] as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <[u8] as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for StoredPayload {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let packed = value.type_info().name() == "BLOB";
        let bytes = <&[u8] as Decode<Sqlite>>::decode(value)?;
        let json = if packed {
            serde_json::from_slice(&unpack(bytes)?)?
        } else {
            serde_json::from_slice(bytes)?
        };
        Ok(Self(json))
    }
}

impl Type<Postgres> for StoredPayload {
    fn type_info() -> PgTypeInfo {
        <Json<serde_json::Value> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <Json<serde_json::Value> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for StoredPayload {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let Json(json) = <Json<serde_json::Value> as Decode<Postgres>>::decode(value)?;
        Ok(Self(json))
    }
}

/// The JSON text of a compressed payload; an error when its length or bytes are corrupt.
fn unpack(packed: &[u8]) -> Result<Vec<u8>, BoxDynError> {
    let length = packed
        .first_chunk::<4>()
        .map(|length| u32::from_le_bytes(*length) as usize)
        .ok_or("a kept payload is shorter than its length")?;
    if length > MAX_UNPACKED {
        return Err(
            format!("a kept payload says it holds {length} bytes, over {MAX_UNPACKED}").into(),
        );
    }
    Ok(lz4_flex::block::decompress_size_prepended(packed)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_unpacks_to_its_text_and_a_corrupt_one_is_refused() {
        let text = br#"{"action":"opened","url":"https://api.github.com/repos/acme/app/issues/1"}"#;
        let packed = lz4_flex::block::compress_prepend_size(text);
        assert_eq!(unpack(&packed).unwrap(), text);
        assert!(unpack(&packed[..2]).is_err(), "no whole length");
        let mut huge = packed.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&huge).is_err(), "a length over the bound");
        assert!(unpack(&packed[..packed.len() - 3]).is_err(), "cut short");
    }
}
