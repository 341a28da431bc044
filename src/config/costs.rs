//! `[costs]`: what tokens cost, per model, and how much one task may spend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Dollars per million tokens of one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
}

impl ModelPrice {
    /// The dollars `input`, `output`, cache-write and cache-read tokens cost.
    pub fn cost(&self, input: i64, output: i64, cache_write: i64, cache_read: i64) -> f64 {
        (input as f64 * self.input
            + output as f64 * self.output
            + cache_write as f64 * self.cache_write
            + cache_read as f64 * self.cache_read)
            / 1_000_000.0
    }
}

/// Prices and the per-task spending limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostsConfig {
    /// Prices by model name prefix; the longest prefix of a model's name wins.
    pub prices: BTreeMap<String, ModelPrice>,
    /// The price of a model no prefix matches: the dearest, so an unknown model never runs
    /// on a budget that undercounts it.
    pub unknown_model: ModelPrice,
    /// A task whose runs have cost this much (dollars) is stopped and ends
    /// `budget_exceeded`; 0 for no limit.
    pub task_max_cost_usd: f64,
    /// A task whose runs have taken this many turns (assistant messages) is stopped the same
    /// way; 0 for no limit.
    pub task_max_turns: i64,
    /// What each project may spend per calendar month (UTC), in dollars, unless a
    /// maintainer set its own budget (`PUT /api/v1/projects/{name}/budget`); 0 for no limit.
    pub project_monthly_usd: f64,
    /// What all projects together may spend per calendar month (UTC); 0 for no limit.
    pub global_monthly_usd: f64,
    /// What happens to a new task of a project whose monthly budget (or the global one) is
    /// spent: it waits, queued with the reason, until the budget is raised or the month
    /// turns; or it is refused at once (ends `budget_exceeded`).
    pub over_budget: OverBudget,
    /// The share of a monthly budget, in percent, at whose crossing the project's channels
    /// are warned (once per month and budget); 0 for no warning.
    pub warn_percent: f64,
}

/// What a new task does while its budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverBudget {
    #[default]
    Wait,
    Refuse,
}

impl Default for CostsConfig {
    fn default() -> Self {
        let price = |input, output, cache_write, cache_read| ModelPrice {
            input,
            output,
            cache_write,
            cache_read,
        };
        let opus_4 = price(15.0, 75.0, 18.75, 1.5);
        Self {
            prices: BTreeMap::from([
                ("claude-opus-4".to_owned(), opus_4),
                ("claude-opus-4-5".to_owned(), price(5.0, 25.0, 6.25, 0.5)),
                ("claude-sonnet-4".to_owned(), price(3.0, 15.0, 3.75, 0.3)),
                ("claude-haiku-4".to_owned(), price(1.0, 5.0, 1.25, 0.1)),
                ("claude-3-5-haiku".to_owned(), price(0.8, 4.0, 1.0, 0.08)),
            ]),
            unknown_model: opus_4,
            task_max_cost_usd: 20.0,
            task_max_turns: 0,
            project_monthly_usd: 0.0,
            global_monthly_usd: 0.0,
            over_budget: OverBudget::Wait,
            warn_percent: 80.0,
        }
    }
}

impl CostsConfig {
    /// The price of `model`: the longest matching prefix, else `unknown_model`.
    pub fn price(&self, model: Option<&str>) -> &ModelPrice {
        model
            .and_then(|model| {
                self.prices
                    .iter()
                    .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
                    .max_by_key(|(prefix, _)| prefix.len())
                    .map(|(_, price)| price)
            })
            .unwrap_or(&self.unknown_model)
    }

    /// Refuses negative or non-finite prices and limits, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        let mut checks: Vec<(String, f64)> = vec![
            ("costs.task_max_cost_usd".into(), self.task_max_cost_usd),
            ("costs.unknown_model".into(), self.unknown_model.input),
            ("costs.project_monthly_usd".into(), self.project_monthly_usd),
            ("costs.global_monthly_usd".into(), self.global_monthly_usd),
        ];
        for (model, price) in &self.prices {
            for (field, value) in [
                ("input", price.input),
                ("output", price.output),
                ("cache_write", price.cache_write),
                ("cache_read", price.cache_read),
            ] {
                checks.push((format!("costs.prices.\"{model}\".{field}"), value));
            }
        }
        if let Some((key, value)) = checks
            .into_iter()
            .find(|(_, value)| !value.is_finite() || *value < 0.0)
        {
            return Err(format!(
                "{key} is {value}; it must be a dollar amount of 0 or more"
            ));
        }
        if self.task_max_turns < 0 {
            return Err(format!(
                "costs.task_max_turns is {}; it must be 0 (no limit) or more",
                self.task_max_turns
            ));
        }
        if !(0.0..=100.0).contains(&self.warn_percent) {
            return Err(format!(
                "costs.warn_percent is {}; it must be a percentage from 0 (no warning) to 100",
                self.warn_percent
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_prices_a_model_and_an_unknown_one_costs_the_most() {
        let costs = CostsConfig::default();
        assert_eq!(costs.price(Some("claude-opus-4-5-20251101")).input, 5.0);
        assert_eq!(costs.price(Some("claude-opus-4-1")).input, 15.0);
        assert_eq!(costs.price(Some("claude-sonnet-4-5")).output, 15.0);
        assert_eq!(costs.price(Some("gpt-9")).output, 75.0);
        assert_eq!(costs.price(None).output, 75.0);
        let cost = costs
            .price(Some("claude-sonnet-4"))
            .cost(1_000_000, 1_000_000, 0, 0);
        assert!((cost - 18.0).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn negative_prices_and_limits_are_refused_by_name() {
        let costs = CostsConfig {
            task_max_cost_usd: -1.0,
            ..CostsConfig::default()
        };
        assert!(
            costs
                .validate()
                .unwrap_err()
                .contains("costs.task_max_cost_usd")
        );
        let mut costs = CostsConfig::default();
        costs.prices.get_mut("claude-haiku-4").unwrap().output = f64::NAN;
        assert!(
            costs
                .validate()
                .unwrap_err()
                .contains("costs.prices.\"claude-haiku-4\".output")
        );
        assert!(CostsConfig::default().validate().is_ok());
    }
}
