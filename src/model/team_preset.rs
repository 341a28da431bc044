//! A team preset made on the dashboard, as the `team_presets` table keeps it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

/// One member of a preset, as a preset file's `### name` section has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresetMember {
    /// The member's name, e.g. `leader` or `builder-tests`.
    pub name: String,
    /// The phase it works in, lower case, e.g. `executing`.
    pub phase: String,
    /// What it is told to do.
    pub instructions: String,
}

/// The fields a person gives a preset; validated by `team_presets`, not here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresetDraft {
    pub name: String,
    pub description: String,
    pub members: Vec<PresetMember>,
    pub trigger_keywords: Vec<String>,
}

/// A stored preset row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredPreset {
    pub name: String,
    pub description: String,
    pub members: Json<Vec<PresetMember>>,
    pub trigger_keywords: Json<Vec<String>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredPreset {
    /// The fields a person gave it.
    pub fn draft(&self) -> PresetDraft {
        PresetDraft {
            name: self.name.clone(),
            description: self.description.clone(),
            members: self.members.0.clone(),
            trigger_keywords: self.trigger_keywords.0.clone(),
        }
    }
}
