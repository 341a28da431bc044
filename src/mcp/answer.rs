//! What a tool call answers: readable text for the model and the person, the same facts as
//! structured content for programs, an error a client shows as it is, and the paging that
//! keeps a long answer whole (never cut silently).

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Most bytes of text (a diff, findings) one answer carries; the rest is a cursor away.
pub const PAGE_BYTES: usize = 16 * 1024;

/// Most items (tasks, approvals, projects) one answer lists.
pub const PAGE_ITEMS: i64 = 25;

/// A tool's successful answer.
pub struct Answer {
    /// Markdown for the reader.
    pub text: String,
    /// The same facts as JSON.
    pub structured: Value,
}

impl Answer {
    pub fn new(text: impl Into<String>, structured: Value) -> Self {
        Answer {
            text: text.into(),
            structured,
        }
    }
}

/// The MCP form of a tool's outcome: an answer, or an error result (`isError`) whose text
/// says what went wrong and what to do, with `{"error": {"code", "message", "field"}}` as
/// structured content.
pub fn tool_result(outcome: Result<Answer>) -> CallToolResult {
    match outcome {
        Ok(answer) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(answer.text)]);
            result.structured_content = Some(answer.structured);
            result
        }
        Err(e) => {
            let message = safe_message(&e);
            let field = match &e {
                Error::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            };
            let mut result = CallToolResult::error(vec![ContentBlock::text(message.clone())]);
            result.structured_content = Some(json!({
                "error": { "code": e.code(), "message": message, "field": field }
            }));
            result
        }
    }
}

/// The message a client may see: internal failures are logged and answered generically.
pub fn safe_message(error: &Error) -> String {
    match error {
        Error::Db(_) | Error::Internal(_) => {
            tracing::error!(error = format!("{error:#}"), "MCP call failed");
            "internal error; the server log has the detail".into()
        }
        other => other.to_string(),
    }
}

/// One page of a long text.
#[derive(Debug, PartialEq, Eq)]
pub struct TextPage<'a> {
    pub text: &'a str,
    /// Byte offset of this page in the whole text.
    pub offset: usize,
    pub total_bytes: usize,
    /// Where the next page starts; None on the last page.
    pub next_cursor: Option<String>,
}

/// The page of `text` starting at `cursor` (a byte offset this module handed out, none for
/// the first), at most `PAGE_BYTES` long, ending at a line break when one is in its second half.
pub fn text_page<'a>(text: &'a str, cursor: Option<&str>) -> Result<TextPage<'a>> {
    let offset = match cursor {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|o| *o < text.len().max(1) && text.is_char_boundary(*o))
            .ok_or_else(|| Error::invalid("cursor", "is not a cursor this tool returned"))?,
    };
    let rest = &text[offset..];
    if rest.len() <= PAGE_BYTES {
        return Ok(TextPage {
            text: rest,
            offset,
            total_bytes: text.len(),
            next_cursor: None,
        });
    }
    let mut end = PAGE_BYTES;
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    if let Some(line_end) = rest[..end].rfind('\n').filter(|i| *i >= end / 2) {
        end = line_end + 1;
    }
    Ok(TextPage {
        text: &rest[..end],
        offset,
        total_bytes: text.len(),
        next_cursor: Some((offset + end).to_string()),
    })
}

impl TextPage<'_> {
    /// The page as markdown, with what is left and how to get it when there is more.
    pub fn readable(&self, tool: &str) -> String {
        format!("{}{}", self.text, self.note(tool))
    }

    /// How to get the rest, when there is more; empty on the last page.
    pub fn note(&self, tool: &str) -> String {
        self.next_cursor.as_ref().map_or_else(String::new, |next| {
            format!(
                "\n\n[page ends at byte {next} of {}: call {tool} again with cursor \"{next}\" \
                 for the rest]",
                self.total_bytes
            )
        })
    }

    /// The page as structured content fields.
    pub fn fields(&self) -> Value {
        json!({
            "text": self.text,
            "offset": self.offset,
            "total_bytes": self.total_bytes,
            "next_cursor": self.next_cursor,
        })
    }
}

/// A list cursor (the last id of the previous page), as the list tools hand it out.
pub fn id_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| Error::invalid("cursor", "is not a cursor this tool returned"))
        })
        .transpose()
}

/// The cursor of the page after `items` when the page was full.
pub fn next_id_cursor<T>(items: &[T], id: impl Fn(&T) -> i64) -> Option<String> {
    (items.len() as i64 == PAGE_ITEMS)
        .then(|| items.last().map(|last| id(last).to_string()))
        .flatten()
}

/// The note closing a list page: how to get the next one.
pub fn more_note(tool: &str, next_cursor: &Option<String>) -> String {
    next_cursor.as_ref().map_or_else(String::new, |c| {
        format!("\n[more: call {tool} again with cursor \"{c}\"]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_the_whole_text_once_in_order() {
        let text: String = (0..5000)
            .map(|i| format!("line {i} é\n"))
            .collect::<String>();
        let mut cursor = None;
        let mut joined = String::new();
        let mut pages = 0;
        loop {
            let page = text_page(&text, cursor.as_deref()).unwrap();
            assert!(page.text.len() <= PAGE_BYTES);
            assert_eq!(page.offset, joined.len());
            joined.push_str(page.text);
            pages += 1;
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(joined, text);
        assert!(pages > 1);
    }

    #[test]
    fn a_short_text_is_one_page_and_a_bad_cursor_is_refused() {
        let page = text_page("short", None).unwrap();
        assert_eq!((page.text, page.next_cursor), ("short", None));
        assert!(text_page("é", Some("1")).is_err());
        assert!(text_page("short", Some("99")).is_err());
        assert!(text_page("short", Some("x")).is_err());
        assert!(text_page("", None).unwrap().text.is_empty());
    }
}
