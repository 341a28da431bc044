//! The audit log: who did what to what, from where, and how it ended.
//!
//! Append-only. Every mutation through the API (by the HTTP middleware) and the CLI
//! writes one entry; nothing updates or deletes entries.

pub use crate::model::{Actor, AuditEntry, AuditFilter, NewAuditEntry};
