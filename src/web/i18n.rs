//! The pages' language and clock: one message catalogue (`locales/en.yml`, `locales/ko.yml`,
//! compiled in by rust-i18n), chosen by the person's setting, then the browser's
//! `Accept-Language`; times in the person's time zone, relative where that reads better.

use std::borrow::Cow;

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::model::{Language, Preferences};

rust_i18n::i18n!("src/web/locales", fallback = "en");

/// How one reader sees the pages: language and time zone.
#[derive(Debug, Clone, Copy)]
pub struct Locale {
    pub language: Language,
    pub zone: Tz,
}

impl Default for Locale {
    fn default() -> Self {
        Locale {
            language: Language::En,
            zone: Tz::UTC,
        }
    }
}

impl Locale {
    /// The person's setting, then the browser's `Accept-Language`, then English; their time
    /// zone or UTC.
    pub fn choose(preferences: Option<&Preferences>, headers: &HeaderMap) -> Locale {
        let chosen = preferences
            .and_then(|p| p.language.as_deref())
            .and_then(|l| l.parse().ok());
        let zone = preferences
            .and_then(|p| p.time_zone.as_deref())
            .and_then(|z| z.parse().ok())
            .unwrap_or(Tz::UTC);
        Locale {
            language: chosen.unwrap_or_else(|| from_accept_language(headers)),
            zone,
        }
    }

    /// The message `key` in this language.
    pub fn t(&self, key: &str) -> String {
        translate(self.language, key).into_owned()
    }

    /// The message `key` with each `%{name}` replaced by its value.
    pub fn tf(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut text = translate(self.language, key).into_owned();
        for (name, value) in values {
            text = text.replace(&format!("%{{{name}}}"), value);
        }
        text
    }

    /// A moment as the reader's wall-clock time, `2026-11-30 22:41`.
    pub fn time(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// How long ago `at` was, as people say it ("3 min ago"); the wall-clock time past a week.
    pub fn ago(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
        let seconds = (now - at).num_seconds().max(0);
        let (key, count) = match seconds {
            0..60 => return self.t("time.just_now"),
            60..3600 => ("time.minutes_ago", seconds / 60),
            3600..86_400 => ("time.hours_ago", seconds / 3600),
            86_400..604_800 => ("time.days_ago", seconds / 86_400),
            _ => return self.time(at),
        };
        self.tf(key, &[("count", &count.to_string())])
    }

    /// A span of time, `1 h 5 min` / `1시간 5분`.
    pub fn span(&self, seconds: i64) -> String {
        let seconds = seconds.max(0);
        let count = |n: i64| n.to_string();
        if seconds < 60 {
            self.tf("time.seconds", &[("count", &count(seconds))])
        } else if seconds < 3600 {
            self.tf("time.minutes", &[("count", &count(seconds / 60))])
        } else {
            self.tf(
                "time.hours_minutes",
                &[
                    ("hours", &count(seconds / 3600)),
                    ("minutes", &count(seconds % 3600 / 60)),
                ],
            )
        }
    }

    /// The start of the reader's day containing `now`, as a UTC moment.
    pub fn day_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let local = now.with_timezone(&self.zone).date_naive();
        local
            .and_hms_opt(0, 0, 0)
            .and_then(|midnight| midnight.and_local_timezone(self.zone).earliest())
            .map_or(now, |start| start.with_timezone(&Utc))
    }

    /// The start of the reader's month containing `now`, as a UTC moment.
    pub fn month_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::Datelike;
        let local = now.with_timezone(&self.zone).date_naive();
        local
            .with_day(1)
            .and_then(|first| first.and_hms_opt(0, 0, 0))
            .and_then(|midnight| midnight.and_local_timezone(self.zone).earliest())
            .map_or(now, |start| start.with_timezone(&Utc))
    }
}

/// The message `key` in `language` (the English one when the language has none).
fn translate(language: Language, key: &str) -> Cow<'static, str> {
    match _rust_i18n_try_translate(language.as_str(), key) {
        Some(text) => Cow::Owned(text.into_owned()),
        None => Cow::Owned(_rust_i18n_translate("en", key).into_owned()),
    }
}

/// The first language of `Accept-Language` (by quality) that the pages are written in.
fn from_accept_language(headers: &HeaderMap) -> Language {
    let Some(value) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Language::En;
    };
    let mut ranges: Vec<(f32, &str)> = value
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next()?.trim();
            let quality = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.parse().ok())?;
            Some((quality, tag))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranges
        .iter()
        .filter(|(quality, _)| *quality > 0.0)
        .find_map(|(_, tag)| {
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            primary.parse::<Language>().ok()
        })
        .unwrap_or(Language::En)
}

/// Every key of a catalogue file, flattened (`nav.tasks`), for the test that compares them.
#[cfg(test)]
fn catalogue_keys(text: &str) -> std::collections::BTreeSet<String> {
    fn walk(prefix: &str, value: &yaml_serde::Value, out: &mut std::collections::BTreeSet<String>) {
        match value {
            yaml_serde::Value::Mapping(map) => {
                for (key, value) in map {
                    let key = key.as_str().unwrap_or_default();
                    let path = if prefix.is_empty() {
                        key.to_string()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, value, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }
    let value: yaml_serde::Value = yaml_serde::from_str(text).expect("a catalogue is YAML");
    let mut keys = std::collections::BTreeSet::new();
    walk("", &value, &mut keys);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let english = catalogue_keys(include_str!("locales/en.yml"));
        let korean = catalogue_keys(include_str!("locales/ko.yml"));
        let missing_in_korean: Vec<_> = english.difference(&korean).collect();
        let missing_in_english: Vec<_> = korean.difference(&english).collect();
        assert!(
            missing_in_korean.is_empty() && missing_in_english.is_empty(),
            "missing in ko.yml: {missing_in_korean:?}; missing in en.yml: {missing_in_english:?}"
        );
        assert!(english.len() > 50, "{} keys", english.len());
    }

    #[test]
    fn every_key_used_in_the_pages_is_in_the_catalogue() {
        let english = catalogue_keys(include_str!("locales/en.yml"));
        let key = regex::Regex::new(r#"\.tf?\(\s*"([a-z_]+\.[a-z_.]+)""#).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for found in key.captures_iter(&text) {
                    if !english.contains(&found[1]) {
                        missing.push(format!("{}: {}", path.display(), &found[1]));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "keys not in en.yml: {missing:#?}");
    }

    #[test]
    fn language_follows_the_setting_then_accept_language() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            "fr;q=0.9, ko-KR;q=0.8, en;q=0.5".parse().unwrap(),
        );
        assert_eq!(Locale::choose(None, &headers).language, Language::Ko);
        let english = Preferences {
            language: Some("en".into()),
            time_zone: Some("Asia/Seoul".into()),
        };
        let locale = Locale::choose(Some(&english), &headers);
        assert_eq!(locale.language, Language::En);
        assert_eq!(locale.zone, chrono_tz::Asia::Seoul);
        assert_eq!(
            Locale::choose(None, &HeaderMap::new()).language,
            Language::En
        );
    }

    #[test]
    fn times_read_in_the_zone_and_relative() {
        let locale = Locale {
            language: Language::Ko,
            zone: chrono_tz::Asia::Seoul,
        };
        let now: DateTime<Utc> = "2026-11-30T22:41:00Z".parse().unwrap();
        assert_eq!(
            locale.ago(now - chrono::Duration::minutes(3), now),
            "3분 전"
        );
        assert_eq!(locale.time(now), "2026-12-01 07:41 KST");
        assert_eq!(
            locale.day_start(now),
            "2026-11-30T15:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let english = Locale::default();
        assert_eq!(
            english.ago(now - chrono::Duration::minutes(3), now),
            "3 min ago"
        );
    }
}
