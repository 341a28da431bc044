//! The pieces pages are built of: status badge, phase timeline, pager, markdown block,
//! diff block, empty state, labelled form fields with their error.

use chrono::{DateTime, Utc};
use maud::{Markup, PreEscaped, html};

use super::i18n::Locale;
use crate::model::{ApprovalStatus, Decision, Event, EventOrigin, TaskStatus};

/// A task's status as a badge: a dot, the colour and the words.
pub fn task_status(locale: &Locale, status: TaskStatus) -> Markup {
    badge(
        status.as_str(),
        &locale.t(&format!("status.{}", status.as_str())),
    )
}

/// An approval's state as a badge (its decision once decided).
pub fn approval_state(
    locale: &Locale,
    status: ApprovalStatus,
    decision: Option<Decision>,
) -> Markup {
    match decision {
        Some(decision) => badge(
            decision.as_str(),
            &locale.t(&format!("decision.{}", decision.as_str())),
        ),
        None => badge(
            status.as_str(),
            &locale.t(&format!("approval_status.{}", status.as_str())),
        ),
    }
}

/// A badge of class `s-<kind>` with its text.
pub fn badge(kind: &str, text: &str) -> Markup {
    html! { span class={ "badge s-" (kind) } { (text) } }
}

/// One phase the pipeline went through: when it began and how long it lasted.
pub struct PhaseSpan {
    pub phase: String,
    pub entered: DateTime<Utc>,
    /// None while it is the current phase.
    pub left: Option<DateTime<Utc>>,
}

/// What an event says: a pipeline event's `data` (its stored line holds `ts`, `type` and
/// `sessionId` around it), a platform event's whole data.
pub fn payload(event: &Event) -> &serde_json::Value {
    match event.origin {
        EventOrigin::Party => event.data.get("data").unwrap_or(&event.data),
        EventOrigin::Platform => &event.data,
    }
}

/// The phases of a task from its `phase_changed` events (oldest first).
pub fn phases_from_events(events: &[Event]) -> Vec<PhaseSpan> {
    let mut spans: Vec<PhaseSpan> = Vec::new();
    for event in events.iter().filter(|e| e.kind == "phase_changed") {
        let Some(to) = payload(event).get("to").and_then(|v| v.as_str()) else {
            continue;
        };
        if let Some(last) = spans.last_mut() {
            last.left = Some(event.ts);
        }
        spans.push(PhaseSpan {
            phase: to.to_string(),
            entered: event.ts,
            left: None,
        });
    }
    spans
}

/// The phase timeline: each phase with its time spent; revisions show as their own step.
pub fn timeline(locale: &Locale, spans: &[PhaseSpan], now: DateTime<Utc>, ended: bool) -> Markup {
    if spans.is_empty() {
        return empty(&locale.t("task.no_phases"));
    }
    let revisions = spans.iter().filter(|s| s.phase == "REVISION").count();
    html! {
        ol.timeline {
            @for (i, span) in spans.iter().enumerate() {
                @let current = i + 1 == spans.len() && !ended;
                @let spent = (span.left.unwrap_or(now) - span.entered).num_seconds();
                li class=[current.then_some("current")] data-phase=(span.phase) {
                    (phase_name(locale, &span.phase))
                    " "
                    span.muted {
                        @if current { "(" (locale.t("task.now")) ", " (locale.span(spent)) ")" }
                        @else { "(" (locale.span(spent)) ")" }
                    }
                }
            }
        }
        @if revisions > 0 {
            p.muted { (locale.tf("task.revisions", &[("count", &revisions.to_string())])) }
        }
    }
}

/// A phase's name as people read it (`REVIEWING` → "reviewing" / "리뷰").
pub fn phase_name(locale: &Locale, phase: &str) -> String {
    let key = format!("phase.{}", phase.to_ascii_lowercase());
    let text = locale.t(&key);
    if text == key {
        phase.to_ascii_lowercase().replace('_', " ")
    } else {
        text
    }
}

/// The address of a list page: `path` with the filters that are set and the cursor.
pub fn list_url(path: &str, filters: &[(&str, &str)], before: Option<i64>) -> String {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in filters {
        if !value.is_empty() {
            url.append_pair(name, value);
        }
    }
    if let Some(before) = before {
        url.append_pair("before", &before.to_string());
    }
    format!("{path}?{}", url.finish())
}

/// The pager of a list page showing `shown` rows of at most `page_size`, cursor `before`:
/// "older" from the last row's id when the page is full, "first" unless this is the first
/// page; `url` makes a page's address from its cursor.
pub fn list_pager(
    locale: &Locale,
    shown: usize,
    last_id: Option<i64>,
    before: Option<i64>,
    page_size: i64,
    url: impl Fn(Option<i64>) -> String,
) -> Markup {
    let older = last_id
        .filter(|_| shown as i64 == page_size)
        .map(|id| url(Some(id)));
    let first = before.is_some().then(|| url(None));
    pager(locale, first.as_deref(), older.as_deref())
}

/// Links to the newer and older pages of a list (cursor paging).
pub fn pager(locale: &Locale, first: Option<&str>, older: Option<&str>) -> Markup {
    html! {
        nav.pager aria-label=(locale.t("list.pages")) {
            @if let Some(first) = first { a href=(first) rel="first" { (locale.t("list.first")) } }
            @if let Some(older) = older { a href=(older) rel="next" #older { (locale.t("list.older")) } }
        }
    }
}

/// Untrusted markdown as safe HTML: rendered, then cleaned of scripts, handlers and styles.
pub fn markdown(text: &str) -> Markup {
    let parser = pulldown_cmark::Parser::new_ext(text, pulldown_cmark::Options::ENABLE_TABLES);
    let mut rendered = String::new();
    pulldown_cmark::html::push_html(&mut rendered, parser);
    PreEscaped(ammonia::clean(&rendered))
}

/// A unified diff with each line marked by what it is (its +/- sign stays).
pub fn diff(patch: &str) -> Markup {
    html! {
        pre.diff {
            @for line in patch.lines() {
                @let class = diff_class(line);
                @if class.is_empty() { span { (line) } } @else { span class=(class) { (line) } }
            }
        }
    }
}

fn diff_class(line: &str) -> &'static str {
    if line.starts_with("+++") || line.starts_with("---") || line.starts_with("diff ") {
        "meta"
    } else if line.starts_with('+') {
        "add"
    } else if line.starts_with('-') {
        "del"
    } else if line.starts_with("@@") {
        "hunk"
    } else {
        ""
    }
}

/// A form that is one red button (delete, revoke, end) posting to `action` with the
/// session's CSRF token `csrf`.
pub fn danger_button(csrf: &str, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            button.danger type="submit" { (label) }
        }
    }
}

/// What a list or section shows when it has nothing.
pub fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// A labelled form field's error, tied to its input by id.
pub fn field_error(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            span.field-error id={ (id) "-error" } role="alert" { (error) }
        }
    }
}

/// US dollars, `$1.23`.
pub fn dollars(amount: f64) -> String {
    format!("${amount:.2}")
}

/// "yes" or "no" in the reader's language.
pub fn yes_no(locale: &Locale, value: bool) -> String {
    locale.t(if value { "views.yes" } else { "views.no" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_pager_links_older_only_from_a_full_page_and_first_only_past_it() {
        let locale = Locale::default();
        let url = |before| list_url("/tasks", &[("q", "a&b"), ("team", "")], before);
        let full = list_pager(&locale, 2, Some(7), None, 2, url).into_string();
        assert!(
            full.contains(r#"href="/tasks?q=a%26b&amp;before=7""#),
            "{full}"
        );
        assert!(!full.contains("rel=\"first\""), "{full}");
        let last = list_pager(&locale, 1, Some(7), Some(9), 2, url).into_string();
        assert!(!last.contains("before=7"), "{last}");
        assert!(
            last.contains(r#"href="/tasks?q=a%26b" rel="first""#),
            "{last}"
        );
    }

    #[test]
    fn findings_markdown_loses_scripts_and_handlers() {
        let html = markdown(
            "# Title\n<script>alert(1)</script>\n[x](javascript:alert(2)) <img src=x onerror=alert(3)>",
        )
        .into_string();
        assert!(html.contains("<h1>Title</h1>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("javascript:"));
        assert!(!html.contains("onerror"));
    }

    #[test]
    fn diff_lines_are_escaped_and_marked() {
        let html = diff("@@ -1 +1 @@\n-<b>old</b>\n+new & better\n context").into_string();
        assert!(html.contains(r#"<span class="del">-&lt;b&gt;old&lt;/b&gt;</span>"#));
        assert!(html.contains(r#"<span class="add">+new &amp; better</span>"#));
        assert!(html.contains(r#"<span class="hunk">"#));
    }
}
