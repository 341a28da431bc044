//! Charts as server-rendered SVG: bars with a rate line, stacked bars, percentile ranges.
//! Each scales with its `viewBox`, names itself for screen readers, gives every mark a
//! `<title>` with its number, and colours by class (`series-N` in the stylesheet), never by
//! inline style; the page puts the same numbers in a table beside it.

use maud::{Markup, html};

/// The drawing's own units; the stylesheet scales it to the width it gets.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 48.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// The widest a bar gets, however few the slots.
const MAX_BAR: f64 = 48.0;
/// Most labels under the x axis; the others are skipped (their table has them all).
const X_LABELS: usize = 8;
/// Colours the stylesheet defines (`series-0` … `series-7`), reused past eight.
pub const COLOURS: usize = 8;

/// One named series of values, one per slot (None: nothing to draw there).
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// What every chart shares: its accessible name, the slots' labels and how values read.
pub struct Frame<'a> {
    pub label: &'a str,
    pub slots: &'a [String],
    pub format: &'a dyn Fn(f64) -> String,
}

impl Frame<'_> {
    fn plot_width(&self) -> f64 {
        WIDTH - LEFT - RIGHT
    }

    fn slot_width(&self) -> f64 {
        self.plot_width() / self.slots.len().max(1) as f64
    }

    fn slot_x(&self, slot: usize) -> f64 {
        LEFT + self.slot_width() * slot as f64
    }

    /// The y of `value` on an axis from 0 to `max`.
    fn y(value: f64, max: f64) -> f64 {
        let plot = HEIGHT - TOP - BOTTOM;
        HEIGHT - BOTTOM - plot * (value / max).clamp(0.0, 1.0)
    }

    /// The SVG around `marks`: grid lines and labels of the left axis up to `max`, the slots'
    /// labels below.
    fn draw(&self, max: f64, marks: Markup, right_axis: Markup) -> Markup {
        let every = self.slots.len().div_ceil(X_LABELS).max(1);
        html! {
            svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(self.label)
                xmlns="http://www.w3.org/2000/svg" {
                title { (self.label) }
                @for step in 0..=2 {
                    @let value = max * f64::from(step) / 2.0;
                    @let y = Self::y(value, max);
                    line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) {}
                    text.axis x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" { ((self.format)(value)) }
                }
                (marks)
                (right_axis)
                @for (slot, name) in self.slots.iter().enumerate().filter(|(i, _)| i % every == 0) {
                    text.axis x=(self.slot_x(slot) + self.slot_width() / 2.0) y=(HEIGHT - 8.0)
                        text-anchor="middle" { (name) }
                }
            }
        }
    }
}

/// The top of an axis holding `values`: twice a round step (1, 2 or 5 times a power of
/// ten), so its middle line reads as a round number too; 1 when nothing is above zero.
fn axis_max(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0, f64::max);
    if max <= 0.0 {
        return 1.0;
    }
    let half = max / 2.0;
    let power = 10f64.powf(half.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= half)
        .unwrap_or(10.0 * power);
    2.0 * step
}

/// Where a bar stands in its slot: its x and width (at most `MAX_BAR` wide, centred).
fn bar(frame: &Frame, slot: usize) -> (f64, f64) {
    let width = (frame.slot_width() * 0.7).min(MAX_BAR);
    (
        frame.slot_x(slot) + (frame.slot_width() - width) / 2.0,
        width,
    )
}

/// A bar per slot (`bars`, on the left axis) and a line of `rate` (0 to 1, on the right axis).
pub fn bars_with_rate(frame: &Frame, bars: &Series, rate: &Series) -> Markup {
    let max = axis_max(bars.values.iter().flatten().copied());
    let width = frame.slot_width();
    let points: Vec<(f64, f64, f64)> = rate
        .values
        .iter()
        .enumerate()
        .filter_map(|(slot, value)| {
            value.map(|v| (frame.slot_x(slot) + width / 2.0, Frame::y(v, 1.0), v))
        })
        .collect();
    let line: String = points
        .iter()
        .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let marks = html! {
        @for (slot, value) in bars.values.iter().enumerate() {
            @if let Some(value) = value {
                @let top = Frame::y(*value, max);
                @let (x, bar_width) = bar(frame, slot);
                rect.series-0 x=(x) y=(top) width=(bar_width)
                    height=(HEIGHT - BOTTOM - top) {
                    title { (frame.slots[slot]) ": " (bars.name) " " ((frame.format)(*value)) }
                }
            }
        }
        polyline.rate points=(line) {}
        @for (x, y, value) in &points {
            circle.rate cx=(x) cy=(y) r="3" {
                title { (rate.name) " " (percent(*value)) }
            }
        }
    };
    let right_axis = html! {
        @for step in 0..=2 {
            @let value = f64::from(step) / 2.0;
            text.axis.rate-axis x=(WIDTH - RIGHT + 6.0) y=(Frame::y(value, 1.0) + 4.0) { (percent(value)) }
        }
    };
    frame.draw(max, marks, right_axis)
}

/// Bars stacked from each series, in order, per slot.
pub fn stacked_bars(frame: &Frame, series: &[Series]) -> Markup {
    // (slot, series, where its part starts, its value)
    let mut parts = Vec::new();
    for slot in 0..frame.slots.len() {
        let mut base = 0.0;
        for (index, one) in series.iter().enumerate() {
            if let Some(value) = one.values[slot].filter(|v| *v > 0.0) {
                parts.push((slot, index, base, value));
                base += value;
            }
        }
    }
    let max = axis_max(parts.iter().map(|(_, _, base, value)| base + value));
    let marks = html! {
        @for (slot, index, base, value) in parts {
            @let (top, bottom) = (Frame::y(base + value, max), Frame::y(base, max));
            @let (x, bar_width) = bar(frame, slot);
            rect class={ "series-" (index % COLOURS) } x=(x)
                y=(top) width=(bar_width) height=(bottom - top) {
                title { (frame.slots[slot]) ", " (series[index].name) ": " ((frame.format)(value)) }
            }
        }
    };
    frame.draw(max, marks, html! {})
}

/// Per slot and group a bar from its `low` to its `high` value (a duration's p50 to p90),
/// with a mark at the low one; `low[i]` and `high[i]` are one group's.
pub fn ranges(frame: &Frame, low: &[Series], high: &[Series]) -> Markup {
    let max = axis_max(high.iter().flat_map(|s| s.values.iter().flatten().copied()));
    let groups = low.len().max(1) as f64;
    let marks = html! {
        @for slot in 0..frame.slots.len() {
            @for (index, (low, high)) in low.iter().zip(high).enumerate() {
                @if let (Some(p50), Some(p90)) = (low.values[slot], high.values[slot]) {
                    @let (start, all) = bar(frame, slot);
                    @let width = all / groups;
                    @let x = start + width * index as f64;
                    @let (top, bottom) = (Frame::y(p90, max), Frame::y(p50, max));
                    rect class={ "series-" (index % COLOURS) } x=(x) y=(top) width=(width)
                        height=((bottom - top).max(1.0)) {
                        title {
                            (frame.slots[slot]) ", " (low.name) ": p50 " ((frame.format)(p50))
                            ", p90 " ((frame.format)(p90))
                        }
                    }
                    line.median x1=(x) x2=(x + width) y1=(bottom) y2=(bottom) {}
                }
            }
        }
    };
    frame.draw(max, marks, html! {})
}

/// The legend of `names`: each with the swatch of its series' colour.
pub fn legend(names: &[&str]) -> Markup {
    html! {
        ul.legend { @for (index, name) in names.iter().enumerate() {
            li { span class={ "swatch series-" (index % COLOURS) } aria-hidden="true" {} (name) }
        } }
    }
}

/// A share as a whole percentage, `50%`.
pub fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_twice_a_round_step() {
        let top = |values: &[f64]| axis_max(values.iter().copied());
        assert_eq!(top(&[3.0]), 4.0);
        assert_eq!(top(&[0.5, 0.1]), 1.0);
        assert_eq!(top(&[7.77]), 10.0);
        assert_eq!(top(&[120_000.0]), 200_000.0);
        assert_eq!(top(&[]), 1.0);
    }

    #[test]
    fn stacked_bars_scale_to_the_tallest_stack_and_title_every_mark() {
        let slots = vec!["03-01".to_string(), "03-02".to_string()];
        let format = |v: f64| format!("${v:.2}");
        let frame = Frame {
            label: "cost",
            slots: &slots,
            format: &format,
        };
        let series = [
            Series {
                name: "shop".into(),
                values: vec![Some(1.0), Some(3.0)],
            },
            Series {
                name: "blog".into(),
                values: vec![None, Some(1.0)],
            },
        ];
        let svg = stacked_bars(&frame, &series).into_string();
        assert!(svg.contains(r#"viewBox="0 0 640 240""#), "{svg}");
        assert!(svg.contains("03-02, blog: $1.00"), "{svg}");
        // The tallest stack (4) reaches the top of the plot; the axis says $4.00.
        assert!(svg.contains(&format!(r#"y="{TOP}""#)), "{svg}");
        assert!(svg.contains("$4.00"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
    }
}
