//! `aiops mcp`: a local Claude Code's stdio on one side, a running service's `/mcp` on the
//! other. Every JSON-RPC message passes through unchanged (rmcp's stdio transport in,
//! its Streamable HTTP client out, with the user's bearer token), so the tools, their
//! permissions and the audit trail exist once, in the service, and the protocol revision
//! is whatever the two ends agree on.
//!
//! Boundary: holds no tool and no state of its own; prints nothing on stdout but protocol
//! messages (diagnostics go to stderr); never prints the token.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{StreamableHttpClientTransport, Transport};

/// Relays stdin/stdout to `url` (the service's `/mcp`) as `token`'s holder until the client
/// closes stdin. A message the service refuses (a 401: unknown or revoked token; a
/// network failure) is answered to the client as a JSON-RPC error, said on stderr, and ends
/// the bridge with an error.
pub async fn run(url: &str, token: &str) -> anyhow::Result<()> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    let mut upstream = StreamableHttpClientTransport::from_config(config);
    // Pipes read without a blocking thread, so the process can exit while stdin is open.
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    let mut local = AsyncRwTransport::<RoleServer, _, _>::new_server(stdin, stdout);
    // A send resolves once the service accepted the message; dropping it would cancel the
    // request, so every send is kept until it is done, in the order messages arrived.
    let mut sending = FuturesUnordered::new();
    let failure = loop {
        tokio::select! {
            incoming = local.receive() => match incoming {
                Some(message) => {
                    let id = request_id(&message);
                    let send = upstream.send(message);
                    sending.push(async move { (id, send.await) });
                }
                None => break None,
            },
            outgoing = upstream.receive() => match outgoing {
                Some(message) => local.send(message).await?,
                // The service side ended: what is still in flight learns why.
                None => {
                    let mut first = None;
                    while let Some((id, sent)) = sending.next().await {
                        if let Err(e) = sent {
                            let why = first.get_or_insert_with(|| explain(url, &e)).clone();
                            refuse(&mut local, id, &why).await?;
                        }
                    }
                    break Some(first.unwrap_or_else(|| format!("the connection to {url} ended")));
                }
            },
            Some((id, sent)) = sending.next(), if !sending.is_empty() => {
                if let Err(e) = sent {
                    let why = explain(url, &e);
                    refuse(&mut local, id, &why).await?;
                    break Some(why);
                }
            }
        }
    };
    let _ = upstream.close().await;
    match failure {
        None => Ok(()),
        Some(why) => anyhow::bail!(why),
    }
}

/// Answers the client's request `id` (if it was one) with an error saying `why`.
async fn refuse<T: Transport<RoleServer>>(
    local: &mut T,
    id: Option<RequestId>,
    why: &str,
) -> anyhow::Result<()>
where
    T::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(id) = id {
        let error = ErrorData::internal_error(why.to_string(), None);
        local
            .send(ServerJsonRpcMessage::error(error, Some(id)))
            .await?;
    }
    Ok(())
}

fn request_id(message: &ClientJsonRpcMessage) -> Option<RequestId> {
    match message {
        ClientJsonRpcMessage::Request(request) => Some(request.id.clone()),
        _ => None,
    }
}

/// What went wrong sending to the service, and what to do about it.
fn explain<E: std::error::Error + Send + Sync + 'static>(
    url: &str,
    error: &StreamableHttpError<E>,
) -> String {
    match error {
        StreamableHttpError::AuthRequired(_) => format!(
            "{url} refused the token (401): it is unknown or revoked; create one with \
             `aiops token create` and pass it as AIOPS_TOKEN"
        ),
        other => {
            format!("could not reach aiops at {url}: {other}; is `aiops serve` running there?")
        }
    }
}
