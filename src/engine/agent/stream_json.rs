//! Claude's stream-json output folded into [`RunStats`]: session id, result line, token
//! usage. Sees only stdout lines as text; never the process.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::RunTotals;

/// Figures a run leaves behind, from the stream-json output: the run's totals as they are
/// stored (session, turns, tokens, cost; `Deref` reads them) and what only the engine looks at.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    #[serde(flatten)]
    pub totals: RunTotals,
    /// The result line's `is_error`; none without a result.
    pub is_error: Option<bool>,
    /// Stdout lines that were not a JSON object.
    pub garbage_lines: u64,
}

impl std::ops::Deref for RunStats {
    type Target = RunTotals;

    fn deref(&self) -> &RunTotals {
        &self.totals
    }
}

impl std::ops::DerefMut for RunStats {
    fn deref_mut(&mut self) -> &mut RunTotals {
        &mut self.totals
    }
}

/// Token counts as stream-json reports them.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    input: i64,
    output: i64,
    cache_read: i64,
    cache_creation: i64,
}

impl Usage {
    fn from_json(usage: &Value) -> Self {
        let count = |key: &str| usage.get(key).and_then(Value::as_i64).unwrap_or(0);
        Self {
            input: count("input_tokens"),
            output: count("output_tokens"),
            cache_read: count("cache_read_input_tokens"),
            cache_creation: count("cache_creation_input_tokens"),
        }
    }

    fn add(self, other: Self) -> Self {
        Self {
            input: self.input.saturating_add(other.input),
            output: self.output.saturating_add(other.output),
            cache_read: self.cache_read.saturating_add(other.cache_read),
            cache_creation: self.cache_creation.saturating_add(other.cache_creation),
        }
    }
}

/// Folds stdout lines into [`RunStats`]. The `result` line is authoritative; per-message
/// usage only stands in when no result line came (the agent was killed or crashed).
#[derive(Default)]
pub(super) struct StreamJsonStats {
    stats: RunStats,
    result_usage: Option<Usage>,
    /// Keyed by message id: Claude repeats a message's usage on each of its content blocks.
    message_usage: BTreeMap<String, Usage>,
    unnamed_message_usage: Usage,
    /// What the messages seen so far cost, at `prices` (kept per message id, like the usage).
    message_cost: BTreeMap<String, f64>,
    unnamed_message_cost: f64,
    prices: Option<std::sync::Arc<crate::config::CostsConfig>>,
}

/// What a run has spent so far, counted from its streamed messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spent {
    pub cost_usd: f64,
    /// Assistant messages.
    pub turns: i64,
}

impl StreamJsonStats {
    /// Counts the cost of each streamed message at `prices`.
    pub(super) fn priced(prices: std::sync::Arc<crate::config::CostsConfig>) -> Self {
        Self {
            prices: Some(prices),
            ..Self::default()
        }
    }

    /// The cost and turns of the messages seen so far (the result line's cost once it came).
    pub(super) fn spent(&self) -> Spent {
        let streamed = self.message_cost.values().sum::<f64>() + self.unnamed_message_cost;
        let turns = self.message_usage.len() as i64;
        match self.result_usage {
            Some(_) => Spent {
                cost_usd: self.stats.cost_usd.max(streamed),
                turns: self.stats.num_turns.unwrap_or(turns).max(turns),
            },
            None => Spent {
                cost_usd: streamed,
                turns,
            },
        }
    }

    /// The price of one message's usage, when prices are known.
    fn message_price(&self, model: Option<&str>, usage: Usage) -> f64 {
        self.prices.as_ref().map_or(0.0, |prices| {
            prices.price(model).cost(
                usage.input,
                usage.output,
                usage.cache_creation,
                usage.cache_read,
            )
        })
    }

    /// Takes one stdout line; returns the session id when this line announced a new one.
    pub(super) fn observe(&mut self, line: &str) -> Option<String> {
        if line.trim().is_empty() {
            return None;
        }
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(line) else {
            self.stats.garbage_lines += 1;
            return None;
        };
        let text = |key: &str| event.get(key).and_then(Value::as_str);
        match text("type") {
            Some("system") if text("subtype") == Some("init") => {
                self.set_session_id(text("session_id"))
            }
            Some("assistant" | "user") => {
                let message = event.get("message");
                if let Some(usage) = message.and_then(|m| m.get("usage")) {
                    let usage = Usage::from_json(usage);
                    let model = message.and_then(|m| m.get("model")).and_then(Value::as_str);
                    let cost = self.message_price(model, usage);
                    match message.and_then(|m| m.get("id")).and_then(Value::as_str) {
                        Some(id) => {
                            self.message_usage.insert(id.to_owned(), usage);
                            self.message_cost.insert(id.to_owned(), cost);
                        }
                        None => {
                            self.unnamed_message_usage = self.unnamed_message_usage.add(usage);
                            self.unnamed_message_cost += cost;
                        }
                    }
                }
                None
            }
            Some("result") => {
                let stats = &mut self.stats;
                stats.result_subtype = text("subtype").map(str::to_owned);
                stats.is_error = event.get("is_error").and_then(Value::as_bool);
                stats.num_turns = event.get("num_turns").and_then(Value::as_i64);
                stats.duration_ms = event.get("duration_ms").and_then(Value::as_i64);
                stats.cost_usd = event
                    .get("total_cost_usd")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                self.result_usage = Some(
                    event
                        .get("usage")
                        .map_or_else(Usage::default, Usage::from_json),
                );
                self.set_session_id(text("session_id"))
            }
            _ => None,
        }
    }

    fn set_session_id(&mut self, session_id: Option<&str>) -> Option<String> {
        let session_id = session_id?;
        if self.stats.claude_session_id.as_deref() == Some(session_id) {
            return None;
        }
        self.stats.claude_session_id = Some(session_id.to_owned());
        Some(session_id.to_owned())
    }

    pub(super) fn finish(mut self) -> RunStats {
        if self.result_usage.is_none() {
            // No result line (stopped or crashed): the streamed messages are all there is.
            let spent = self.spent();
            self.stats.cost_usd = spent.cost_usd;
            self.stats.num_turns = Some(spent.turns).filter(|turns| *turns > 0);
        }
        let usage = self.result_usage.unwrap_or_else(|| {
            self.message_usage
                .values()
                .fold(self.unnamed_message_usage, |sum, usage| sum.add(*usage))
        });
        self.stats.input_tokens = usage.input;
        self.stats.output_tokens = usage.output;
        self.stats.cache_read_tokens = usage.cache_read;
        self.stats.cache_creation_tokens = usage.cache_creation;
        self.stats
    }
}
