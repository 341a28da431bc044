//! The MCP server: Claude (desktop, web, phone) and Claude Code run and approve work through
//! the Model Context Protocol, with the official Rust SDK (`rmcp`).
//!
//! One server, two ways in. `/mcp` on the service speaks Streamable HTTP, stateless (any
//! node answers any request, as with the JSON API), with bearer tokens checked by `http.rs`.
//! `aiops mcp` (`bridge.rs`) is a stdio ↔ `/mcp` bridge for a local Claude Code: it relays
//! every message unchanged to a running service with the user's token, so the tools, the
//! permissions and the audit trail exist once, in the service.
//!
//! Boundary: every tool checks `permissions::PERMISSIONS` (the one table, in the API's
//! terms) before it runs and again on the project it touches, lists only the caller's
//! projects, calls the same use case as every other channel (a decision is `approvals::decide`,
//! recorded as channel `mcp`) and leaves one audit entry as its caller. No rule and no SQL
//! lives here.

pub mod answer;
mod authorization;
pub mod bridge;
mod http;
pub mod permissions;
mod render;
mod resources;
mod tools;

use std::sync::Arc;

use rmcp::handler::server::tool::{ToolCallContext, ToolRouter};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::audit::NewAuditEntry;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::Error;
use crate::model::{Channel, Principal};
use crate::store::Store;
use crate::teams::Teams;

pub use http::router;

/// What the MCP server reaches: the same parts the JSON API uses.
#[derive(Clone)]
pub struct McpState {
    pub config: Arc<Config>,
    pub store: Store,
    pub teams: Arc<Teams>,
    pub engine: Arc<Engine>,
}

/// Who calls, from where: set by the bearer check of `/mcp` on every request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// Client address.
    pub source: String,
}

/// The MCP server handler; one per request (the transport is stateless).
#[derive(Clone)]
pub struct Aiops {
    state: McpState,
    tool_router: ToolRouter<Aiops>,
}

impl Aiops {
    pub fn new(state: McpState) -> Self {
        Aiops {
            state,
            tool_router: Self::tool_router(),
        }
    }

    /// The names of every tool this server offers.
    pub fn tool_names() -> Vec<String> {
        Self::tool_router()
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    /// Appends the audit entry of one MCP call as its caller, over channel `mcp`.
    async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        target: String,
        outcome: &str,
        detail: Value,
    ) {
        let mut detail = detail;
        detail["channel"] = json!(Channel::Mcp);
        let entry = NewAuditEntry {
            principal: Some(caller.principal.clone().into()),
            action: format!("mcp {action}"),
            target,
            source: caller.source.clone(),
            outcome: outcome.into(),
            detail,
        };
        if let Err(e) = self.state.store.append_audit(&entry).await {
            tracing::error!(error = %e, action, "could not write the audit log");
        }
    }
}

/// The caller the bearer check put on the HTTP request.
fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| {
            ErrorData::internal_error("the request reached the MCP server without a caller", None)
        })
}

/// What a tool call is about, for its audit entry: the approval, task or project it names.
fn call_target(arguments: Option<&serde_json::Map<String, Value>>) -> String {
    let arguments = arguments.cloned().unwrap_or_default();
    for (key, family) in [
        ("approval", "approvals"),
        ("task", "tasks"),
        ("project", "projects"),
    ] {
        match arguments.get(key) {
            Some(Value::Number(n)) => return format!("{family}/{n}"),
            Some(Value::String(s)) => {
                return format!("{family}/{}", s.chars().take(64).collect::<String>());
            }
            _ => {}
        }
    }
    "mcp".into()
}

/// An error of the service as a JSON-RPC error (for requests that are not tool calls).
fn protocol_error(error: Error) -> ErrorData {
    let message = answer::safe_message(&error);
    match error {
        Error::NotFound(_) => ErrorData::resource_not_found(message, None),
        Error::Invalid { .. } | Error::BadRequest(_) => ErrorData::invalid_params(message, None),
        Error::Forbidden(_) | Error::Unauthorized(_) => ErrorData::invalid_request(message, None),
        _ => ErrorData::internal_error(message, None),
    }
}

impl ServerHandler for Aiops {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("aiops", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "aiops runs teams of Claude Code agents (ai-party) on registered projects. \
             create_task queues work; get_task follows it; when a pipeline waits for a human, \
             list_pending_approvals shows it, get_diff and get_findings show the change and \
             the reasoning, and decide_approval approves, rejects or revises it. Decide only \
             what the person asked you to decide.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tool_router.list_all()))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tool_router.get(name).cloned()
    }

    /// The one place a tool call is checked against the permission table and audited.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&context)?;
        let tool = request.name.to_string();
        if self.tool_router.get(&tool).is_none() {
            return Err(ErrorData::invalid_params(
                format!("there is no tool {tool:?}; tools/list names them"),
                None,
            ));
        }
        let target = call_target(request.arguments.as_ref());
        let action = format!("tools/call {tool}");
        if let Err(refused) = permissions::check(&caller.principal, &tool) {
            let message = refused.to_string();
            self.audit(
                &caller,
                &action,
                target,
                "forbidden",
                json!({ "error": message }),
            )
            .await;
            return Ok(answer::tool_result(Err(refused)).into());
        }
        context.extensions.insert(caller.clone());
        let outcome = self
            .tool_router
            .call(ToolCallContext::new(self, request, context))
            .await;
        let (label, detail) = match &outcome {
            Ok(CallToolResponse::Complete(result)) if result.is_error == Some(true) => {
                ("error", json!({ "error": first_text(result) }))
            }
            Ok(_) => ("ok", json!({})),
            Err(e) => ("invalid", json!({ "error": e.message })),
        };
        self.audit(&caller, &action, target, label, detail).await;
        outcome
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = caller(&context)?;
        permissions::check(&caller.principal, "resources/list").map_err(protocol_error)?;
        let cursor = request.and_then(|r| r.cursor);
        let scope = crate::permissions::visible_projects(&caller.principal);
        resources::list(&self.state.store, &scope, cursor.as_deref())
            .await
            .map_err(protocol_error)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = caller(&context)?;
        let target = request.uri.chars().take(256).collect::<String>();
        let outcome = match permissions::check(&caller.principal, "resources/read") {
            Ok(()) => resources::read(&self.state.store, &caller.principal, &request.uri).await,
            Err(refused) => Err(refused),
        };
        let (label, detail) = match &outcome {
            Ok(_) => ("ok", json!({})),
            Err(e) => (e.code(), json!({ "error": answer::safe_message(e) })),
        };
        self.audit(&caller, "resources/read", target, label, detail)
            .await;
        outcome.map(Into::into).map_err(protocol_error)
    }
}

/// The first text block of a tool result (its message, for an error).
fn first_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}
