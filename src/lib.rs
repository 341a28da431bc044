//! aiops: an operated service for Claude Code + ai-party pipelines.
//!
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod analytics;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod budgets;
pub mod cli;
pub mod command_template;
pub mod config;
pub mod credentials;
pub mod declarations;
pub mod engine;
pub mod error;
pub mod hook;
pub mod http;
pub mod identities;
pub mod mcp;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod oauth;
pub mod permissions;
pub mod projects;
pub mod queue;
pub mod retention;
pub mod routing;
pub mod schedules;
pub mod server;
pub mod sessions;
pub mod signing;
pub mod sso;
pub mod store;
pub mod tasks;
pub mod team_presets;
pub mod teams;
pub mod triggers;
pub mod users;
pub mod vault;
pub mod watch;
pub mod web;

pub use error::{Error, Result};
