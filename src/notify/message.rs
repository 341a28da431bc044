//! What a notification says, rendered from the store when it is sent: one `Message`, laid
//! out by each channel (`slack`, `kakaowork`, `webhook`) in its own format.

use crate::approvals::{self, Decision, LinkSigner};
use crate::budgets::{self, BudgetStatus};
use crate::config::Config;
use crate::error::Result;
use crate::model::Task;
use crate::model::{ApprovalKind, ApprovalRecord, Language};
use crate::store::Store;

use super::NoticeKind;

/// Longest summary shown, in characters.
const MAX_SUMMARY_CHARS: usize = 600;

/// What a notification tells.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: NoticeKind,
    pub task: Task,
    /// The approval asked for (approval_requested).
    pub approval: Option<ApprovalRecord>,
    /// The worktree's change when the approval was asked for.
    pub diff: Option<DiffStat>,
    /// The signed approval page for an approval request; the task in the API otherwise.
    pub link: String,
    /// The signed token of the approval link, which Slack's buttons carry back.
    pub token: Option<String>,
    /// The signed values of the Approve and Reject buttons of chats that sign no request
    /// (KakaoWork): each names its approval, decision and expiry (approval requests only).
    pub decisions: Vec<(Decision, String)>,
    /// The language of the message's own words (titles, labels); the task's text as written.
    pub language: Language,
    /// The project's and the global monthly budget (budget notices).
    pub budgets: Vec<BudgetStatus>,
}

/// Size of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiffStat {
    pub files: usize,
    pub insertions: u64,
    pub deletions: u64,
}

impl std::fmt::Display for DiffStat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.files == 1 { "" } else { "s" };
        write!(
            f,
            "{} file{plural} changed, +{} -{}",
            self.files, self.insertions, self.deletions
        )
    }
}

impl Message {
    /// Reads what a notice of `kind` about `task_id` (and `approval_id`) says now.
    pub async fn render(
        store: &Store,
        signer: &LinkSigner,
        config: &Config,
        kind: NoticeKind,
        task_id: i64,
        approval_id: Option<i64>,
    ) -> Result<Message> {
        let task = store.task(task_id).await?;
        let (approval, diff) = match approval_id {
            Some(id) => {
                let approval = store.approval(id).await?;
                let diff = store
                    .approval_snapshot(id)
                    .await?
                    .diff_files
                    .map(|files| DiffStat {
                        files: files.len(),
                        insertions: files.iter().map(|f| f.insertions).sum(),
                        deletions: files.iter().map(|f| f.deletions).sum(),
                    });
                (Some(approval), diff)
            }
            None => (None, None),
        };
        let (link, token, decisions) = match &approval {
            Some(approval) => {
                let expires = approvals::link_expiry(approval, config);
                let decisions = [Decision::Approve, Decision::Reject]
                    .map(|d| (d, signer.decision_token(approval.id, d.as_str(), expires)));
                (
                    approvals::link_url(signer, config, approval),
                    Some(signer.token(approval.id, expires)),
                    decisions.to_vec(),
                )
            }
            None => (
                format!("{}/api/v1/tasks/{}", config.public_base_url(), task.id),
                None,
                Vec::new(),
            ),
        };
        let budgets = if kind.is_budget() {
            let project = store.project(&task.project).await?;
            vec![
                budgets::project_status(store, &config.costs, &project).await?,
                budgets::global_status(store, &config.costs).await?,
            ]
        } else {
            Vec::new()
        };
        Ok(Message {
            kind,
            task,
            approval,
            diff,
            link,
            token,
            decisions,
            language: Language::En,
            budgets,
        })
    }

    /// The same message with its own words in `language`.
    pub fn in_language(mut self, language: Language) -> Message {
        self.language = language;
        self
    }

    /// One line saying what happened, e.g. "Approval needed: bugfix on shop".
    pub fn title(&self) -> String {
        let what = match self.kind {
            NoticeKind::ApprovalRequested => "Approval needed",
            NoticeKind::TaskDone => "Done",
            NoticeKind::TaskFailed => "Failed",
            NoticeKind::BudgetWarning => "Budget warning",
            NoticeKind::BudgetSpent => "Budget spent",
        };
        let (what, project, team) = (
            say(self.language, what),
            &self.task.project,
            &self.task.team,
        );
        match (self.kind.is_budget(), self.language) {
            (true, Language::En) => format!("{what}: project {project}"),
            (true, Language::Ko) => format!("{what}: 프로젝트 {project}"),
            (false, Language::En) => format!("{what}: {team} on {project}"),
            (false, Language::Ko) => format!("{what}: {project} 프로젝트의 {team}"),
        }
    }

    /// What the approval asks or the task was about, cut to a readable length.
    pub fn summary(&self) -> String {
        if self.kind.is_budget() {
            return self.budget_summary();
        }
        let prompt_line = self.task.prompt.lines().next().unwrap_or("").trim();
        let text = match &self.approval {
            Some(approval) if approval.kind == ApprovalKind::Tool => format!(
                "Tool {} (risk {}): {}",
                approval.tool_name.as_deref().unwrap_or("?"),
                approval.risk_level.as_deref().unwrap_or("unknown"),
                approval.summary.as_deref().unwrap_or(prompt_line)
            ),
            Some(approval) => approval.summary.as_deref().unwrap_or(prompt_line).into(),
            None => prompt_line.to_string(),
        };
        if text.chars().count() > MAX_SUMMARY_CHARS {
            text.chars().take(MAX_SUMMARY_CHARS - 1).collect::<String>() + "…"
        } else {
            text
        }
    }

    /// What a budget notice says: the budgets past their warning share, and what happens.
    fn budget_summary(&self) -> String {
        let mut lines: Vec<String> = self
            .budgets
            .iter()
            .filter(|b| b.state == "warning" || b.state == "spent")
            .map(|b| {
                let whose = if b.scope == "global" {
                    "All projects together have".to_owned()
                } else {
                    format!("Project {} has", b.scope)
                };
                format!(
                    "{whose} spent ${:.2} of the ${:.2} monthly budget for {}.",
                    b.spent_usd,
                    b.limit_usd.unwrap_or(0.0),
                    b.month
                )
            })
            .collect();
        if self.kind == NoticeKind::BudgetSpent {
            lines.push("New tasks wait until the budget is raised or the month turns.".into());
        }
        lines.join(" ")
    }

    /// The facts shown beside the summary, as (label, value).
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let language = self.language;
        self.facts_in_english()
            .into_iter()
            .map(|(label, value)| (say(language, label), value))
            .collect()
    }

    fn facts_in_english(&self) -> Vec<(&'static str, String)> {
        if self.kind.is_budget() {
            return self
                .budgets
                .iter()
                .filter_map(|b| {
                    let limit = b.limit_usd?;
                    let label = if b.scope == "global" {
                        "Global budget"
                    } else {
                        "Project budget"
                    };
                    Some((
                        label,
                        format!("${:.2} of ${limit:.2} ({})", b.spent_usd, b.month),
                    ))
                })
                .collect();
        }
        let mut facts = vec![
            ("Project", self.task.project.clone()),
            ("Task", format!("#{}", self.task.id)),
            ("Team", self.task.team.clone()),
        ];
        if let Some(changes) = self.changes() {
            facts.push(("Changes", changes));
        }
        if self.kind == NoticeKind::TaskFailed
            && let Some(reason) = &self.task.status_reason
        {
            facts.push(("Reason", reason.clone()));
        }
        if self.kind == NoticeKind::TaskDone {
            match (&self.task.pr_url, &self.task.change_note) {
                (Some(url), _) => facts.push(("Pull request", url.clone())),
                (None, Some(note)) => facts.push(("Change", note.clone())),
                (None, None) => {}
            }
        }
        facts
    }

    /// The change's size: counted from the snapshot, else as the pipeline stated it.
    pub fn changes(&self) -> Option<String> {
        self.diff.map(|d| d.to_string()).or_else(|| {
            self.approval
                .as_ref()
                .and_then(|a| a.diff_stat.clone())
                .filter(|s| !s.trim().is_empty())
        })
    }

    /// The whole message as one plain line, for previews and clients without blocks.
    pub fn plain_text(&self) -> String {
        format!("{}: {}", self.title(), self.summary())
    }

    /// The label of the button that opens `link`.
    pub fn link_label(&self) -> &'static str {
        let label = match self.kind {
            NoticeKind::ApprovalRequested => "Review / Revise",
            NoticeKind::TaskDone
            | NoticeKind::TaskFailed
            | NoticeKind::BudgetWarning
            | NoticeKind::BudgetSpent => "Open task",
        };
        say(self.language, label)
    }
}

/// The label of a button taking `decision`.
pub fn decision_label(decision: Decision, language: Language) -> &'static str {
    let label = match decision {
        Decision::Approve => "Approve",
        Decision::Reject => "Reject",
        Decision::Revise => "Revise",
    };
    say(language, label)
}

/// The Korean of each of a message's own words.
const KOREAN: &[(&str, &str)] = &[
    ("Approval needed", "승인 필요"),
    ("Done", "완료"),
    ("Failed", "실패"),
    ("Budget warning", "예산 경고"),
    ("Budget spent", "예산 소진"),
    ("Project", "프로젝트"),
    ("Task", "작업"),
    ("Team", "팀"),
    ("Changes", "변경"),
    ("Reason", "사유"),
    ("Pull request", "풀 리퀘스트"),
    ("Change", "변경 내용"),
    ("Global budget", "전체 예산"),
    ("Project budget", "프로젝트 예산"),
    ("Review / Revise", "검토 / 수정 요청"),
    ("Open task", "작업 열기"),
    ("Approve", "승인"),
    ("Reject", "반려"),
    ("Revise", "수정 요청"),
];

/// `english`, one of a message's own words, in `language`.
fn say(language: Language, english: &'static str) -> &'static str {
    match language {
        Language::En => english,
        Language::Ko => KOREAN
            .iter()
            .find(|(en, _)| *en == english)
            .map_or(english, |(_, ko)| ko),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{ApprovalStatus, Priority, Source, TaskStatus};
    use chrono::Utc;

    /// A message as the renderers get it, without a store.
    pub(crate) fn sample(kind: NoticeKind) -> Message {
        let task = Task {
            id: 12,
            project: "shop".into(),
            team: "bugfix".into(),
            prompt: "Fix the checkout crash\nwith details".into(),
            source: Source::Api,
            priority: Priority::High,
            status: TaskStatus::AwaitingApproval,
            status_reason: Some("the agent exited with code 1".into()),
            dedup_key: None,
            phase: None,
            party_session_id: None,
            branch: None,
            source_ref: serde_json::json!({}),
            created_by: Some("admin".into()),
            requested_by: None,
            created_at: Utc::now(),
            started_at: None,
            completed_at: None,
            pr_url: None,
            pr_number: None,
            change_note: None,
            team_ran: None,
            board: None,
        };
        let approval = (kind == NoticeKind::ApprovalRequested).then(|| ApprovalRecord {
            id: 3,
            task_id: 12,
            request_id: "20260101T000000".into(),
            kind: ApprovalKind::Result,
            risk_level: None,
            tool_name: None,
            tool_input: None,
            summary: Some("Null check in <checkout> & cart".into()),
            diff_stat: None,
            status: ApprovalStatus::Pending,
            decision: None,
            comment: None,
            decided_by: None,
            decided_at: None,
            channel: None,
            requested_at: Utc::now(),
            expires_at: None,
            snapshot_at: None,
            resumed_at: None,
        });
        Message {
            kind,
            budgets: Vec::new(),
            token: approval.as_ref().map(|_| "3.1999999999.abcdef".to_string()),
            decisions: match approval {
                Some(_) => vec![
                    (Decision::Approve, "3.approve.1999999999.abcdef".to_string()),
                    (Decision::Reject, "3.reject.1999999999.abcdef".to_string()),
                ],
                None => Vec::new(),
            },
            language: Language::En,
            link: "https://aiops.example/approvals/3.1999999999.abcdef".into(),
            diff: approval.as_ref().map(|_| DiffStat {
                files: 2,
                insertions: 10,
                deletions: 1,
            }),
            approval,
            task,
        }
    }

    #[test]
    fn facts_say_what_matters_for_each_kind() {
        let approval = sample(NoticeKind::ApprovalRequested);
        assert_eq!(approval.title(), "Approval needed: bugfix on shop");
        assert_eq!(approval.summary(), "Null check in <checkout> & cart");
        assert!(
            approval
                .facts()
                .contains(&("Changes", "2 files changed, +10 -1".into()))
        );
        let failed = sample(NoticeKind::TaskFailed);
        assert_eq!(failed.title(), "Failed: bugfix on shop");
        assert_eq!(failed.summary(), "Fix the checkout crash");
        assert!(
            failed
                .facts()
                .contains(&("Reason", "the agent exited with code 1".into()))
        );
    }

    /// Every word a message of any kind shows on its own has its Korean.
    #[test]
    fn korean_messages_have_no_english_words_of_their_own() {
        let kinds = [
            NoticeKind::ApprovalRequested,
            NoticeKind::TaskDone,
            NoticeKind::TaskFailed,
        ];
        for kind in kinds {
            let mut message = sample(kind).in_language(Language::Ko);
            message.task.pr_url = Some("https://github.com/acme/shop/pull/1".into());
            let mut words: Vec<&str> = message.facts().iter().map(|(label, _)| *label).collect();
            words.push(message.link_label());
            for word in words {
                assert!(!word.is_ascii(), "{kind:?}: {word} has no Korean");
            }
            assert!(
                !message.title().starts_with(|c: char| c.is_ascii()),
                "{}",
                message.title()
            );
        }
        for decision in [Decision::Approve, Decision::Reject, Decision::Revise] {
            assert!(!decision_label(decision, Language::Ko).is_ascii());
        }
        let approval = sample(NoticeKind::ApprovalRequested).in_language(Language::Ko);
        assert_eq!(approval.title(), "승인 필요: shop 프로젝트의 bugfix");
    }
}
