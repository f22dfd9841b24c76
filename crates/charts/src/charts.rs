//! The chart kinds. Each keeps only the drawable input, lays the plot area out inside fixed
//! margins (wider on the right for a legend), draws the axes with nice ticks, then the data.

use std::collections::BTreeMap;

use crate::axis::{self, Ticks};
use crate::svg::{Svg, move_to};
use crate::{Bar, Dose, Frame, Marker, Series, Stack};

/// Series colours, cycled past six.
const PALETTE: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 50.0;
/// Height of a timeline's monitoring lane, under the doses.
const LANE: f64 = 18.0;
const AXIS: &str = r##"class="axis" stroke="#444""##;
const TICK: &str = r#"class="tick" text-anchor="middle""#;
const WHISKER: &str = r##"class="whisker" stroke="#222" stroke-width="1.2""##;
const WHISKER_CAP: &str = r##"class="whisker-cap" stroke="#222" stroke-width="1.2""##;
const NOTE: &str = r##"class="note" text-anchor="middle" font-size="9" fill="#666""##;
const VALUE: &str = r#"class="value" text-anchor="middle" font-size="10""#;
const REACTION: &str = "#d62728";

/// Whether `v` can be drawn: finite and within ±10^12, so that every span stays finite.
fn ok(v: f64) -> bool {
    v.is_finite() && v.abs() < 1e12
}

/// The interval when both ends are drawable.
fn ok_pair(lower: Option<f64>, upper: Option<f64>) -> Option<(f64, f64)> {
    lower.zip(upper).filter(|&(l, u)| ok(l) && ok(u))
}

fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// `s` cut to `n` characters, with an ellipsis when cut.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n.saturating_sub(1)).chain(std::iter::once('…')).collect()
    }
}

/// ` [lower, upper]` for a tooltip, or nothing.
fn interval(ci: Option<(f64, f64)>) -> String {
    ci.map(|(l, u)| format!(" [{}, {}]", axis::value_label(l), axis::value_label(u))).unwrap_or_default()
}

/// The smallest and largest of the values added.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    lo: f64,
    hi: f64,
}

impl Bounds {
    const EMPTY: Self = Self { lo: f64::INFINITY, hi: f64::NEG_INFINITY };

    fn add(&mut self, v: f64) {
        self.lo = self.lo.min(v);
        self.hi = self.hi.max(v);
    }

    fn is_empty(&self) -> bool {
        self.lo > self.hi
    }

    /// Ticks for a value axis from zero (or from the lowest value when it is negative).
    fn ticks_from_zero(self, target: usize) -> Ticks {
        let (lo, hi) = (self.lo.min(0.0), self.hi.max(0.0));
        axis::ticks(lo, if hi - lo < 1e-12 { lo + 1.0 } else { hi }, target)
    }
}

/// Ticks for counts from zero: whole steps when the counts are small.
fn count_ticks(max: f64) -> Ticks {
    axis::ticks(0.0, max.max(1.0), (max.ceil() as usize).clamp(1, 5))
}

/// The plot area in pixels and the data ranges it shows.
#[derive(Debug, Clone, Copy)]
struct Plot {
    left: f64,
    top: f64,
    w: f64,
    h: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Plot {
    fn new(frame: &Frame, right: f64, x: (f64, f64), y: (f64, f64)) -> Self {
        let w = (f64::from(frame.width) - LEFT - right).max(10.0);
        let h = (f64::from(frame.height) - TOP - BOTTOM).max(10.0);
        Self { left: LEFT, top: TOP, w, h, x: axis::widen(x.0, x.1), y: axis::widen(y.0, y.1) }
    }

    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0) * self.w
    }

    fn py(&self, y: f64) -> f64 {
        self.top + self.h - (y - self.y.0) / (self.y.1 - self.y.0) * self.h
    }

    fn right(&self) -> f64 {
        self.left + self.w
    }

    fn bottom(&self) -> f64 {
        self.top + self.h
    }
}

/// The document with its visible title.
fn start(frame: &Frame) -> Svg {
    let mut svg = Svg::new(frame.width, frame.height, &frame.title);
    let attrs = r#"class="title" text-anchor="middle" font-size="13" font-weight="bold""#;
    svg.text((f64::from(frame.width) / 2.0, 20.0), attrs, &frame.title);
    svg
}

fn no_data(frame: &Frame) -> String {
    let mut svg = start(frame);
    let at = (f64::from(frame.width) / 2.0, f64::from(frame.height) / 2.0);
    svg.text(at, r##"class="empty" text-anchor="middle" fill="#777""##, "no data");
    svg.finish()
}

/// Grid lines and labels at the ticks, the axis line and the rotated label.
fn y_axis(svg: &mut Svg, p: &Plot, ticks: &Ticks, label: &str) {
    for &v in &ticks.values {
        let y = p.py(v);
        svg.line((p.left, y), (p.right(), y), r##"class="grid" stroke="#e5e5e5""##, None);
        let text = axis::label(v, ticks.decimals);
        svg.text((p.left - 6.0, y + 4.0), r#"class="tick" text-anchor="end""#, &text);
    }
    svg.line((p.left, p.top), (p.left, p.bottom()), AXIS, None);
    let (x, y) = (14.0, p.top + p.h / 2.0);
    let attrs = format!(r#"class="axis-label" text-anchor="middle" transform="rotate(-90 {x:.1} {y:.1})""#);
    svg.text((x, y), &attrs, label);
}

/// Tick marks and labels under the plot, the axis line and the label.
fn x_axis(svg: &mut Svg, p: &Plot, ticks: &[(f64, String)], label: &str) {
    for (v, text) in ticks {
        let x = p.px(*v);
        svg.line((x, p.bottom()), (x, p.bottom() + 4.0), AXIS, None);
        svg.text((x, p.bottom() + 16.0), TICK, text);
    }
    svg.line((p.left, p.bottom()), (p.right(), p.bottom()), AXIS, None);
    let attrs = r#"class="axis-label" text-anchor="middle""#;
    svg.text((p.left + p.w / 2.0, p.bottom() + 40.0), attrs, label);
}

/// Date ticks over the x range, drawn `offset` days to the right of their day.
fn date_ticks(p: &Plot, offset: f64) -> Vec<(f64, String)> {
    let days = axis::date_ticks(p.x.0, p.x.1 - offset, 6);
    days.into_iter().map(|d| (d + offset, axis::iso_date(d))).collect()
}

fn number_ticks(p: &Plot) -> Vec<(f64, String)> {
    let t = axis::ticks(p.x.0, p.x.1, 6);
    let inside = (p.x.0 - t.step * 1e-6)..=(p.x.1 + t.step * 1e-6);
    t.values.iter().copied().filter(|v| inside.contains(v)).map(|v| (v, axis::label(v, t.decimals))).collect()
}

/// A dashed horizontal line at the reference value, labelled at its right end.
fn reference_line(svg: &mut Svg, p: &Plot, reference: Option<(f64, &str)>) {
    if let Some((v, label)) = reference.filter(|r| ok(r.0)) {
        let y = p.py(v);
        let attrs = r##"class="reference" stroke="#555" stroke-dasharray="5 3""##;
        svg.line((p.left, y), (p.right(), y), attrs, None);
        let text = r##"class="reference-label" text-anchor="end" fill="#555""##;
        svg.text((p.right() - 4.0, y - 4.0), text, label);
    }
}

/// Right margin that fits a legend of these names (at most 24 characters each shown).
fn legend_width(names: &[&str]) -> f64 {
    let longest = names.iter().map(|n| n.chars().count().min(24)).max();
    longest.map_or(RIGHT, |n| 36.0 + 6.5 * n as f64)
}

/// One swatch and name per colour, right of the plot.
fn legend(svg: &mut Svg, p: &Plot, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let (x, y) = (p.right() + 12.0, p.top + 4.0 + 16.0 * i as f64);
        svg.rect((x, y), (10.0, 10.0), &format!(r#"class="swatch" fill="{}""#, color(i)), None);
        svg.text((x + 14.0, y + 9.0), r#"class="legend""#, &truncate(name, 24));
    }
}

/// A drawable point: `(day, value, interval)`.
type Drawable = (f64, f64, Option<(f64, f64)>);

/// A series' drawable points sorted by day.
fn drawable(s: &Series) -> Vec<Drawable> {
    let valid = s.points.iter().filter(|p| ok(p.x) && ok(p.y));
    let mut rows: Vec<_> = valid.map(|p| (p.x, p.y, ok_pair(p.lower, p.upper))).collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    rows
}

/// Line chart over time: one line per series (six colours, then cycled), the intervals as a
/// translucent band (`<path class="band">`) under the line (a whisker when a series has one
/// point), a circle at each point with a
/// tooltip, ISO dates on the x axis, and an optional horizontal reference line
/// `(value, label)`, e.g. a background rate. Legend when any series has a name.
pub fn time_series(frame: &Frame, series: &[Series], reference: Option<(f64, &str)>) -> String {
    let data: Vec<_> = series.iter().map(drawable).collect();
    let (mut xs, mut ys) = (Bounds::EMPTY, Bounds::EMPTY);
    for &(x, y, ci) in data.iter().flatten() {
        xs.add(x);
        ys.add(y);
        if let Some((l, u)) = ci {
            ys.add(l);
            ys.add(u);
        }
    }
    if xs.is_empty() {
        return no_data(frame);
    }
    if let Some((v, _)) = reference.filter(|r| ok(r.0)) {
        ys.add(v);
    }
    let ticks = ys.ticks_from_zero(5);
    let named = series.iter().any(|s| !s.name.is_empty());
    let names: Vec<&str> = series.iter().filter(|_| named).map(|s| s.name.as_str()).collect();
    let p = Plot::new(frame, legend_width(&names), (xs.lo, xs.hi), (ticks.lo, ticks.hi));
    let mut svg = start(frame);
    y_axis(&mut svg, &p, &ticks, &frame.y_label);
    x_axis(&mut svg, &p, &axis::time_ticks(p.x.0, p.x.1, 6), &frame.x_label);
    for (i, rows) in data.iter().enumerate() {
        let band: Vec<_> = rows.iter().filter_map(|&(x, _, ci)| ci.map(|(l, u)| (x, l, u))).collect();
        if let [(x, l, u)] = band[..] {
            // One point has no band to draw: its interval is a whisker.
            svg.line((p.px(x), p.py(l)), (p.px(x), p.py(u)), WHISKER, None);
            for y in [p.py(l), p.py(u)] {
                svg.line((p.px(x) - 4.0, y), (p.px(x) + 4.0, y), WHISKER_CAP, None);
            }
            continue;
        }
        if band.is_empty() {
            continue;
        }
        let mut d = String::new();
        for (k, &(x, _, u)) in band.iter().enumerate() {
            move_to(&mut d, if k == 0 { 'M' } else { 'L' }, (p.px(x), p.py(u)));
        }
        for &(x, l, _) in band.iter().rev() {
            move_to(&mut d, 'L', (p.px(x), p.py(l)));
        }
        d.push('Z');
        svg.path(&d, &format!(r#"class="band" fill="{}" fill-opacity="0.18" stroke="none""#, color(i)));
    }
    for (i, rows) in data.iter().enumerate() {
        let c = color(i);
        let line: Vec<_> = rows.iter().map(|&(x, y, _)| (p.px(x), p.py(y))).collect();
        if !line.is_empty() {
            svg.polyline(&line, &format!(r#"class="line" fill="none" stroke="{c}" stroke-width="1.5""#));
        }
        for &(x, y, ci) in rows {
            let tip = format!("{}: {}{}", axis::iso_date(x), axis::value_label(y), interval(ci));
            svg.circle((p.px(x), p.py(y)), 2.5, &format!(r#"class="point" fill="{c}""#), Some(tip.as_str()));
        }
    }
    reference_line(&mut svg, &p, reference);
    legend(&mut svg, &p, &names);
    svg.finish()
}

/// Vertical bars (`<rect class="bar">`) with interval whiskers (`<line class="whisker">`),
/// category labels and notes under the x axis, each value above its bar, and an optional
/// reference line. A bar whose value is not finite keeps its label but is not drawn.
pub fn bars(frame: &Frame, bars: &[Bar], reference: Option<(f64, &str)>) -> String {
    let mut ys = Bounds::EMPTY;
    for b in bars.iter().filter(|b| ok(b.value)) {
        ys.add(b.value);
        if let Some((l, u)) = ok_pair(b.lower, b.upper) {
            ys.add(l);
            ys.add(u);
        }
    }
    if ys.is_empty() {
        return no_data(frame);
    }
    if let Some((v, _)) = reference.filter(|r| ok(r.0)) {
        ys.add(v);
    }
    let ticks = ys.ticks_from_zero(5);
    let p = Plot::new(frame, RIGHT, (0.0, bars.len() as f64), (ticks.lo, ticks.hi));
    let mut svg = start(frame);
    y_axis(&mut svg, &p, &ticks, &frame.y_label);
    x_axis(&mut svg, &p, &[], &frame.x_label);
    let slot = p.w / bars.len() as f64;
    let width = slot * 0.6;
    let (label_chars, note_chars) = (((slot / 6.5) as usize).max(3), ((slot / 5.5) as usize).max(3));
    let bar_attrs = format!(r#"class="bar" fill="{}""#, color(0));
    for (i, b) in bars.iter().enumerate() {
        let cx = p.px(i as f64 + 0.5);
        let category = r#"class="category" text-anchor="middle""#;
        svg.text((cx, p.bottom() + 14.0), category, &truncate(&b.label, label_chars));
        if let Some(note) = &b.note {
            svg.text((cx, p.bottom() + 26.0), NOTE, &truncate(note, note_chars));
        }
        if !ok(b.value) {
            continue;
        }
        let ci = ok_pair(b.lower, b.upper);
        let (y0, y1) = (p.py(0.0), p.py(b.value));
        let tip = format!("{}: {}{}", b.label, axis::value_label(b.value), interval(ci));
        svg.rect((cx - width / 2.0, y0.min(y1)), (width, (y0 - y1).abs()), &bar_attrs, Some(tip.as_str()));
        if let Some((l, u)) = ci {
            svg.line((cx, p.py(l)), (cx, p.py(u)), WHISKER, None);
            for y in [p.py(l), p.py(u)] {
                svg.line((cx - width / 4.0, y), (cx + width / 4.0, y), WHISKER_CAP, None);
            }
        }
        let top = ci.map_or(b.value, |(l, u)| b.value.max(l).max(u)).max(0.0);
        svg.text((cx, p.py(top) - 4.0), VALUE, &axis::value_label(b.value));
    }
    reference_line(&mut svg, &p, reference);
    svg.finish()
}

/// Histogram of `values` (e.g. days to onset) in `bins` equal-width bins over the data range
/// (`0` chooses Sturges' number), counts on the y axis, each bin a `<rect class="bar">`.
pub fn histogram(frame: &Frame, values: &[f64], bins: usize) -> String {
    let mut xs = Bounds::EMPTY;
    values.iter().copied().filter(|&v| ok(v)).for_each(|v| xs.add(v));
    if xs.is_empty() {
        return no_data(frame);
    }
    let n = values.iter().filter(|&&v| ok(v)).count();
    let bins = if bins == 0 { (n as f64).log2().ceil() as usize + 1 } else { bins.min(500) };
    let (lo, hi) = axis::widen(xs.lo, xs.hi);
    let step = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..bins).map(|i| lo + step * i as f64).collect();
    edges.push(hi);
    histogram_edges(frame, values, &edges)
}

/// Histogram over given bin edges (sorted here; at least two distinct). Values outside the
/// edges are left out; the last bin includes its upper edge.
pub fn histogram_edges(frame: &Frame, values: &[f64], edges: &[f64]) -> String {
    let mut edges: Vec<f64> = edges.iter().copied().filter(|&e| ok(e)).collect();
    edges.sort_by(f64::total_cmp);
    edges.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    let (Some(&first), Some(&last)) = (edges.first(), edges.last()) else {
        return no_data(frame);
    };
    let mut counts = vec![0_usize; edges.len().saturating_sub(1)];
    if counts.is_empty() {
        return no_data(frame);
    }
    for v in values.iter().copied().filter(|&v| ok(v) && (first..=last).contains(&v)) {
        let i = edges.partition_point(|&e| e <= v).saturating_sub(1).min(counts.len() - 1);
        counts[i] += 1;
    }
    let ticks = count_ticks(counts.iter().copied().max().unwrap_or(0) as f64);
    let p = Plot::new(frame, RIGHT, (first, last), (ticks.lo, ticks.hi));
    let mut svg = start(frame);
    y_axis(&mut svg, &p, &ticks, &frame.y_label);
    x_axis(&mut svg, &p, &number_ticks(&p), &frame.x_label);
    let attrs = format!(r#"class="bar" fill="{}""#, color(0));
    for (i, (pair, &count)) in edges.windows(2).zip(&counts).enumerate() {
        let (x0, x1, y) = (p.px(pair[0]), p.px(pair[1]), p.py(count as f64));
        let close = if i + 1 == counts.len() { ']' } else { ')' };
        let (a, b) = (axis::value_label(pair[0]), axis::value_label(pair[1]));
        let tip = format!("[{a}, {b}{close}: {count}");
        svg.rect((x0 + 0.5, y), ((x1 - x0 - 1.0).max(0.5), p.bottom() - y), &attrs, Some(tip.as_str()));
    }
    svg.finish()
}

/// Daily counts stacked by category (e.g. event kind): one bar per day, one colour per stack in
/// the order given, with a legend. Non-positive and non-finite counts are skipped.
pub fn stacked_bars(frame: &Frame, stacks: &[Stack]) -> String {
    let mut days: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (i, stack) in stacks.iter().enumerate() {
        for &(day, count) in &stack.values {
            if ok(day) && ok(count) && count > 0.0 {
                days.entry(day.floor() as i64).or_insert_with(|| vec![0.0; stacks.len()])[i] += count;
            }
        }
    }
    let (Some((&first, _)), Some((&last, _))) = (days.first_key_value(), days.last_key_value()) else {
        return no_data(frame);
    };
    let max = days.values().map(|counts| counts.iter().sum::<f64>()).fold(0.0, f64::max);
    let ticks = count_ticks(max);
    let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
    let p = Plot::new(frame, legend_width(&names), (first as f64, last as f64 + 1.0), (ticks.lo, ticks.hi));
    let mut svg = start(frame);
    y_axis(&mut svg, &p, &ticks, &frame.y_label);
    x_axis(&mut svg, &p, &date_ticks(&p, 0.5), &frame.x_label);
    let width = ((p.px(1.0) - p.px(0.0)) * 0.8).max(0.5);
    for (&day, counts) in &days {
        let cx = p.px(day as f64 + 0.5);
        let mut base = 0.0;
        for (i, &count) in counts.iter().enumerate().filter(|&(_, &c)| c > 0.0) {
            let (y0, y1) = (p.py(base), p.py(base + count));
            let tip = format!("{} {}: {}", axis::iso_date(day as f64), names[i], axis::value_label(count));
            let attrs = format!(r#"class="bar" fill="{}""#, color(i));
            svg.rect((cx - width / 2.0, y1), (width, y0 - y1), &attrs, Some(tip.as_str()));
            base += count;
        }
    }
    legend(&mut svg, &p, &names);
    svg.finish()
}

/// A patient timeline. Doses are stems (`<g class="dose">`, height = mg, on the y axis);
/// monitoring observations are ticks (`<line class="monitoring">`) in a lane under them;
/// reactions are dashed lines with a marker and their preferred term (`<g class="reaction">`)
/// at their onset day. Every element has a tooltip with its date and label.
pub fn timeline(frame: &Frame, doses: &[Dose], monitoring: &[Marker], reactions: &[Marker]) -> String {
    let doses: Vec<&Dose> = doses.iter().filter(|d| ok(d.day) && ok(d.mg)).collect();
    let monitoring: Vec<&Marker> = monitoring.iter().filter(|m| ok(m.day)).collect();
    let mut reactions: Vec<&Marker> = reactions.iter().filter(|m| ok(m.day)).collect();
    reactions.sort_by(|a, b| a.day.total_cmp(&b.day));
    let (mut xs, mut ys) = (Bounds::EMPTY, Bounds::EMPTY);
    for d in &doses {
        xs.add(d.day);
        ys.add(d.mg);
    }
    monitoring.iter().chain(&reactions).for_each(|m| xs.add(m.day));
    if xs.is_empty() {
        return no_data(frame);
    }
    let ticks = ys.ticks_from_zero(4);
    let pad = ((xs.hi - xs.lo) * 0.03).max(1.0);
    let full = Plot::new(frame, RIGHT, (xs.lo - pad, xs.hi + pad), (0.0, 1.0));
    let h = (full.h - 26.0 - LANE).max(10.0);
    let dose = Plot { top: full.top + 26.0, h, y: (ticks.lo, ticks.hi), ..full };
    let mut svg = start(frame);
    y_axis(&mut svg, &dose, &ticks, &frame.y_label);
    x_axis(&mut svg, &full, &date_ticks(&full, 0.0), &frame.x_label);
    let stem = format!(r#"stroke="{}" stroke-width="2""#, color(0));
    let head = format!(r#"fill="{}""#, color(0));
    for d in &doses {
        let (x, y) = (dose.px(d.day), dose.py(d.mg));
        let tip = format!("{}: {} ({} mg)", axis::iso_date(d.day), d.label, axis::value_label(d.mg));
        svg.group("dose", Some(tip.as_str()));
        svg.line((x, dose.py(0.0)), (x, y), &stem, None);
        svg.circle((x, y), 3.0, &head, None);
        svg.end_group();
    }
    let lane = full.bottom() - LANE / 2.0;
    let lane_label = r#"class="lane-label" text-anchor="end" font-size="9""#;
    svg.text((full.left - 6.0, lane + 3.0), lane_label, "monitoring");
    for m in &monitoring {
        let (x, tip) = (full.px(m.day), format!("{}: {}", axis::iso_date(m.day), m.label));
        let attrs = r##"class="monitoring" stroke="#2ca02c" stroke-width="1.5""##;
        svg.line((x, lane - 5.0), (x, lane + 5.0), attrs, Some(tip.as_str()));
    }
    for (i, r) in reactions.iter().enumerate() {
        let (x, y) = (full.px(r.day), full.top + 10.0 + 11.0 * (i % 2) as f64);
        let tip = format!("{}: {}", axis::iso_date(r.day), r.label);
        svg.group("reaction", Some(tip.as_str()));
        let dashed = format!(r#"stroke="{REACTION}" stroke-dasharray="3 3""#);
        svg.line((x, y + 1.0), (x, full.bottom()), &dashed, None);
        let mut d = String::new();
        move_to(&mut d, 'M', (x, y - 9.0));
        d.push_str("l4,5 l-4,5 l-4,-5 Z");
        svg.path(&d, &format!(r#"fill="{REACTION}""#));
        let end = x > full.left + full.w * 0.7;
        let (tx, anchor) = if end { (x - 6.0, "end") } else { (x + 6.0, "start") };
        let attrs = format!(r#"text-anchor="{anchor}" font-size="10" fill="{REACTION}""#);
        svg.text((tx, y), &attrs, &truncate(&r.label, 30));
        svg.end_group();
    }
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Point;

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"))
    }

    /// Well-formed, sized, titled, and free of NaN and infinities.
    fn check(svg: &str) {
        let doc = parse(svg);
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert!(["width", "height", "viewBox"].iter().all(|a| root.attribute(*a).is_some()));
        assert_eq!(root.first_element_child().map(|n| n.tag_name().name()), Some("title"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    fn count(svg: &str, tag: &str, class: &str) -> usize {
        parse(svg)
            .descendants()
            .filter(|n| n.tag_name().name() == tag && n.attribute("class") == Some(class))
            .count()
    }

    fn has_text(svg: &str, want: &str) -> bool {
        parse(svg).descendants().any(|n| n.tag_name().name() == "text" && n.text() == Some(want))
    }

    fn point(x: f64, y: f64, ci: Option<(f64, f64)>) -> Point {
        Point { x, y, lower: ci.map(|c| c.0), upper: ci.map(|c| c.1) }
    }

    fn series() -> Vec<Series> {
        let week = |i: i32| 19_723.0 + 7.0 * f64::from(i);
        let a = (0..5).map(|i| point(week(i), 2.0 + f64::from(i), Some((1.0, 4.0 + f64::from(i))))).collect();
        let b = vec![point(19_730.0, 3.0, None), point(19_723.0, 1.5, None), point(f64::NAN, 1.0, None)];
        vec![Series { name: "esketamine".into(), points: a }, Series { name: "ketamine".into(), points: b }]
    }

    fn bar(label: &str, value: f64, ci: Option<(f64, f64)>) -> Bar {
        let (lower, upper) = (ci.map(|c| c.0), ci.map(|c| c.1));
        Bar { label: label.into(), value, lower, upper, note: None }
    }

    fn stacks() -> Vec<Stack> {
        let a = vec![(19_723.0, 2.0), (19_724.0, 1.0), (19_724.0, 1.0), (19_726.0, 0.0)];
        let b = vec![(19_723.0, 1.0), (19_725.0, f64::NAN), (19_726.0, 3.0)];
        vec![Stack { name: "Dissociation".into(), values: a }, Stack { name: "Sedation".into(), values: b }]
    }

    fn marker(day: f64, label: &str) -> Marker {
        Marker { day, label: label.into() }
    }

    fn patient() -> String {
        let dose = |day, mg| Dose { day, mg, label: "esketamine nasal spray".into() };
        let monitoring = [marker(19_723.1, "BP 150/95"), marker(19_726.1, "BP 128/80")];
        let reactions = [marker(19_723.0, "Dissociation"), marker(f64::INFINITY, "lost")];
        let frame = Frame::new("Patient 17", "Date", "Dose (mg)");
        timeline(&frame, &[dose(19_723.0, 56.0), dose(19_726.0, 84.0)], &monitoring, &reactions)
    }

    #[test]
    fn time_series_draws_lines_bands_points_and_reference() {
        let frame = Frame::new("Incidence", "Date", "Cases per 1000");
        let svg = time_series(&frame, &series(), Some((2.5, "background rate")));
        check(&svg);
        assert_eq!(count(&svg, "polyline", "line"), 2);
        assert_eq!(count(&svg, "path", "band"), 1);
        assert_eq!(count(&svg, "circle", "point"), 7);
        assert_eq!(count(&svg, "line", "reference"), 1);
        for want in ["Incidence", "2024-01-01", "background rate", "Cases per 1000", "Date", "ketamine"] {
            assert!(has_text(&svg, want), "{want}: {svg}");
        }
    }

    #[test]
    fn a_single_point_shows_its_interval_as_a_whisker() {
        let one = Series {
            name: String::new(),
            points: vec![Point { x: 20000.5, y: 22.6, lower: Some(1.4), upper: Some(362.0) }],
        };
        let svg = time_series(&Frame::new("Across runs", "run date", "rate ratio"), &[one], None);
        check(&svg);
        assert_eq!((count(&svg, "line", "whisker"), count(&svg, "path", "band")), (1, 0));
    }

    #[test]
    fn bars_have_whiskers_categories_notes_and_values() {
        let mut data = vec![bar("< 56 mg", 1.2, Some((0.8, 1.9))), bar("56 mg", 2.4, Some((1.7, 3.3)))];
        data.push(Bar { note: Some("n = 3".into()), ..bar("84 mg", 3.1, None) });
        let svg = bars(&Frame::new("By dose", "Dose band", "Incidence"), &data, Some((1.0, "expected")));
        check(&svg);
        assert_eq!(count(&svg, "rect", "bar"), 3);
        assert_eq!(count(&svg, "line", "whisker"), 2);
        for want in ["< 56 mg", "84 mg", "n = 3", "2.4", "Dose band", "Incidence", "expected"] {
            assert!(has_text(&svg, want), "{want}: {svg}");
        }
    }

    #[test]
    fn histograms_have_one_bar_per_bin() {
        let values: Vec<f64> = (0..20_i32).map(|i| f64::from(i % 10)).collect();
        let frame = Frame::new("Time to onset", "Days", "Patients");
        let svg = histogram(&frame, &values, 5);
        check(&svg);
        assert_eq!(count(&svg, "rect", "bar"), 5);
        assert!(has_text(&svg, "Days") && has_text(&svg, "Patients") && has_text(&svg, "8"));
        // Sturges: 20 values, 6 bins.
        assert_eq!(count(&histogram(&frame, &values, 0), "rect", "bar"), 6);
        let svg = histogram_edges(&frame, &values, &[7.0, 0.0, 2.0, f64::NAN]);
        check(&svg);
        assert_eq!(count(&svg, "rect", "bar"), 2);
        assert!(svg.contains("<title>[0, 2): 4</title>") && svg.contains("<title>[2, 7]: 12</title>"));
    }

    #[test]
    fn stacked_bars_stack_by_day_with_a_legend() {
        let svg = stacked_bars(&Frame::new("Events by day", "Date", "Reports"), &stacks());
        check(&svg);
        assert_eq!(count(&svg, "rect", "bar"), 4);
        assert_eq!(count(&svg, "rect", "swatch"), 2);
        assert!(has_text(&svg, "Dissociation") && has_text(&svg, "Sedation") && has_text(&svg, "2024-01-01"));
    }

    #[test]
    fn timelines_show_doses_monitoring_and_reactions() {
        let svg = patient();
        check(&svg);
        assert_eq!(count(&svg, "g", "dose"), 2);
        assert_eq!(count(&svg, "line", "monitoring"), 2);
        assert_eq!(count(&svg, "g", "reaction"), 1);
        for want in ["Dissociation", "monitoring", "Dose (mg)", "Date"] {
            assert!(has_text(&svg, want), "{want}: {svg}");
        }
    }

    #[test]
    fn text_is_escaped() {
        let title = r#"Cases <all> & "ketamine's""#;
        let svg = bars(&Frame::new(title, "a<b", "c&d"), &[bar("x>y", 1.0, None)], None);
        check(&svg);
        let doc = parse(&svg);
        let shown = doc.root_element().first_element_child().and_then(|n| n.text());
        assert_eq!(shown, Some(title));
        for want in [title, "a<b", "c&d", "x>y"] {
            assert!(has_text(&svg, want), "{want}: {svg}");
        }
    }

    #[test]
    fn output_is_deterministic() {
        let frame = Frame::new("t", "x", "y").with_size(800, 300);
        let once = || {
            let data = [bar("a", 1.0, Some((0.5, 1.5))), bar("b", 0.25, None)];
            [
                time_series(&frame, &series(), Some((2.0, "r"))),
                bars(&frame, &data, None),
                histogram(&frame, &[1.0, 2.5, 2.5, 9.0], 4),
                stacked_bars(&frame, &stacks()),
                patient(),
            ]
        };
        assert_eq!(once(), once());
        assert!(once()[0].starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
        assert!(once()[0].contains(r#"viewBox="0 0 800 300""#));
    }

    #[test]
    fn empty_and_non_finite_input_give_valid_svg() {
        let frame = Frame::new("Nothing", "x", "y");
        let nan_series = [Series { name: String::new(), points: vec![point(f64::NAN, 1.0, None)] }];
        let nan_stack = [Stack { name: "a".into(), values: vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)] }];
        let nan_marker = [marker(f64::NAN, "x")];
        let empty = [
            time_series(&frame, &[], None),
            time_series(&frame, &nan_series, Some((f64::NAN, "r"))),
            bars(&frame, &[], None),
            bars(&frame, &[bar("a", f64::NAN, Some((1.0, 2.0)))], None),
            histogram(&frame, &[], 10),
            histogram(&frame, &[f64::NAN, f64::NEG_INFINITY], 10),
            histogram_edges(&frame, &[1.0], &[3.0]),
            stacked_bars(&frame, &[]),
            stacked_bars(&frame, &nan_stack),
            timeline(&frame, &[], &[], &[]),
            timeline(&frame, &[Dose { day: f64::NAN, mg: 1.0, label: "d".into() }], &nan_marker, &nan_marker),
        ];
        for svg in &empty {
            check(svg);
            assert!(has_text(svg, "no data"), "{svg}");
        }
        // Non-finite values among finite ones are skipped, a single point or value widens.
        let mixed = [point(19_723.0, 2.0, Some((f64::NAN, 3.0))), point(f64::INFINITY, 1.0, None)];
        let one = [Series { name: String::new(), points: mixed.to_vec() }];
        for svg in [
            time_series(&frame, &one, None),
            histogram(&frame, &[4.0, f64::NAN], 3),
            bars(&frame, &[bar("a", 0.0, None), bar("b", f64::NAN, None)], Some((f64::INFINITY, "r"))),
        ] {
            check(&svg);
            assert!(!has_text(&svg, "no data"), "{svg}");
        }
    }
}
