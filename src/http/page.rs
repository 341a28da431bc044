//! Cursor pagination shared by the list endpoints.

use crate::error::{Error, Result};

/// The page size to use: the requested one (1..=200) or the default.
pub fn page_limit(requested: Option<u32>, default: u32) -> Result<i64> {
    match requested.unwrap_or(default) {
        n @ 1..=200 => Ok(i64::from(n)),
        _ => Err(Error::invalid("limit", "must be between 1 and 200")),
    }
}

/// Parses an opaque page cursor (the last id seen).
pub fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| Error::invalid("cursor", "is not a cursor this API returned"))
        })
        .transpose()
}

/// The cursor of the page after `items`, if the page was full.
pub fn next_cursor<T>(items: &[T], limit: i64, id: impl Fn(&T) -> i64) -> Option<String> {
    (items.len() as i64 == limit)
        .then(|| items.last().map(|last| id(last).to_string()))
        .flatten()
}
