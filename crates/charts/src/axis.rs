//! Axis arithmetic: nice ticks (1, 2, 5 × 10^k), tick and value labels, and civil dates from
//! days since 1970-01-01 (proleptic Gregorian, no date library).

/// The ticks of a numeric axis: its range snapped outwards to the step, and the values.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// Lower end of the axis: a multiple of `step` at or below the data.
    pub lo: f64,
    /// Upper end of the axis: a multiple of `step` at or above the data.
    pub hi: f64,
    /// Distance between ticks: 1, 2 or 5 × 10^k.
    pub step: f64,
    /// Decimals a label needs to show the step (0 for steps of 1 and more).
    pub decimals: usize,
    /// The tick values from `lo` to `hi`.
    pub values: Vec<f64>,
}

/// `(lo, hi)` ordered and of non-zero width: a single point widens by 1 on each side, and
/// non-finite ends give `(0, 1)`.
pub fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if hi - lo < 1e-9 * lo.abs().max(1.0) { (lo - 1.0, hi + 1.0) } else { (lo, hi) }
}

/// The nice step (1, 2 or 5 × 10^k) that cuts `span` into about `target` intervals.
pub fn nice_step(span: f64, target: usize) -> f64 {
    let span = if span.is_finite() && span > 0.0 { span } else { 1.0 };
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = [1.0, 2.0, 5.0].into_iter().find(|&n| norm <= n + 1e-9).unwrap_or(10.0);
    nice * magnitude
}

/// Decimals needed to write multiples of `step` exactly.
fn decimals(step: f64) -> usize {
    if step >= 1.0 { 0 } else { (-(step.log10() + 1e-9).floor()).clamp(0.0, 12.0) as usize }
}

/// About `target` nice ticks covering `[lo, hi]` (widened first, see [`widen`]).
pub fn ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let (lo, hi) = widen(lo, hi);
    let step = nice_step(hi - lo, target);
    // Ticks are whole multiples of the step, so zero is exactly 0.0 and labels never drift.
    let first = (lo / step + 1e-9).floor();
    let last = (hi / step - 1e-9).ceil().max(first + 1.0);
    let n = (last - first).min(100.0) as usize;
    let values = (0..=n).map(|i| (first + i as f64) * step).collect();
    Ticks { lo: first * step, hi: (first + n as f64) * step, step, decimals: decimals(step), values }
}

/// A tick label: `v` at `decimals`, never "-0".
pub fn label(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
        _ => s,
    }
}

/// A value label: three significant digits (at most six decimals), trailing zeros dropped.
pub fn value_label(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let magnitude = if v.abs() < 1e-12 { 0.0 } else { v.abs().log10().floor() };
    let s = label(v, (2.0 - magnitude).clamp(0.0, 6.0) as usize);
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// `(year, month, day)` of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (its fraction dropped).
pub fn iso_date(day: f64) -> String {
    let (y, m, d) = civil_from_days(day.floor() as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM` (UTC) of a day count since 1970-01-01 with its fraction.
pub fn iso_datetime(day: f64) -> String {
    let whole = day.floor();
    let minutes = ((day - whole) * 1440.0).round() as i64;
    let (whole, minutes) = if minutes >= 1440 { (whole + 1.0, 0) } else { (whole, minutes) };
    format!("{} {:02}:{:02}", iso_date(whole), minutes / 60, minutes % 60)
}

/// Ticks of a time axis with their labels: whole days ([`date_ticks`], `YYYY-MM-DD`) when the
/// span allows, else every 5, 10, 15 or 30 minutes or 1, 2, 3, 6 or 12 hours
/// (`YYYY-MM-DD HH:MM`), at most about `max`.
pub fn time_ticks(lo: f64, hi: f64, max: usize) -> Vec<(f64, String)> {
    let (lo, hi) = widen_time(lo, hi);
    let room = max.max(2) as f64 - 1.0;
    if hi - lo > room * 0.5 {
        return date_ticks(lo, hi, max).into_iter().map(|d| (d, iso_date(d))).collect();
    }
    let minutes = [5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 360.0, 720.0];
    let step = minutes.into_iter().find(|m| (hi - lo) * 1440.0 / m <= room).unwrap_or(1440.0) / 1440.0;
    let first = (lo / step - 1e-6).ceil();
    (0..64_i32)
        .map(|i| (first + f64::from(i)) * step)
        .take_while(|&t| t <= hi + 1e-9)
        .map(|t| (t, iso_datetime(t)))
        .collect()
}

/// A time range that is not empty: a point widens to an hour either side.
fn widen_time(lo: f64, hi: f64) -> (f64, f64) {
    if (hi - lo).abs() < 1e-9 { (lo - 1.0 / 24.0, hi + 1.0 / 24.0) } else { widen(lo, hi) }
}

/// At most about `max` whole days in `[lo, hi]` for a time axis: every 1 or 2 days, weekly or
/// fortnightly on Mondays, or on the first of every 1, 2, 3 or 6 months or 1, 2, 5, 10, 20 or
/// 50 years.
pub fn date_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let (lo, hi) = widen(lo, hi);
    let (span, room) = (hi - lo, max.max(2) as f64 - 1.0);
    for step in [1.0, 2.0, 7.0, 14.0] {
        if span / step <= room {
            let offset = if step >= 7.0 { 4.0 } else { 0.0 }; // day 4 is Monday 1970-01-05
            let first = ((lo - offset) / step).ceil();
            let days = (0..64_i32).map(|i| (first + f64::from(i)) * step + offset);
            return days.take_while(|&d| d <= hi).collect();
        }
    }
    let months = [1, 2, 3, 6, 12, 24, 60, 120, 240, 600];
    let step = months.into_iter().find(|&m| span / (30.44 * m as f64) <= room).unwrap_or(1200);
    let (year, month, _) = civil_from_days(lo.ceil() as i64);
    let mut k = (year * 12 + month - 1).div_euclid(step) * step;
    let mut out = Vec::new();
    for _ in 0..64 {
        let day = days_from_civil(k.div_euclid(12), k.rem_euclid(12) + 1, 1) as f64;
        if day > hi {
            break;
        }
        if day >= lo {
            out.push(day);
        }
        k += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_time_spans_get_hour_and_minute_ticks() {
        // 2024-01-01 10:00 to 10:40 UTC: every 10 minutes.
        let day = 19723.0;
        let t = time_ticks(day + 10.0 / 24.0, day + (10.0 + 40.0 / 60.0) / 24.0, 6);
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "2024-01-01 10:00",
                "2024-01-01 10:10",
                "2024-01-01 10:20",
                "2024-01-01 10:30",
                "2024-01-01 10:40"
            ]
        );
        // Weeks of data: whole days as before.
        assert!(time_ticks(day, day + 30.0, 6).iter().all(|(d, l)| d.fract() == 0.0 && l.len() == 10));
        // One instant: a labelled tick, not an empty axis.
        assert!(!time_ticks(day + 0.5, day + 0.5, 6).is_empty());
        assert_eq!(iso_datetime(day + 0.75), "2024-01-01 18:00");
    }

    fn labels(t: &Ticks) -> Vec<String> {
        t.values.iter().map(|&v| label(v, t.decimals)).collect()
    }

    #[test]
    fn nice_ticks_for_hand_checked_ranges() {
        let t = ticks(0.0, 97.0, 5);
        assert_eq!((t.lo, t.hi, t.step), (0.0, 100.0, 20.0));
        assert_eq!(labels(&t), ["0", "20", "40", "60", "80", "100"]);
        let t = ticks(0.0, 0.087, 5);
        assert_eq!(labels(&t), ["0.00", "0.02", "0.04", "0.06", "0.08", "0.10"]);
        let t = ticks(-3.0, 7.0, 5);
        assert_eq!(labels(&t), ["-4", "-2", "0", "2", "4", "6", "8"]);
        let t = ticks(0.0, 1250.0, 5);
        assert_eq!((t.step, t.hi, t.values.len()), (500.0, 1500.0, 4));
        // A zero range widens to [4, 6].
        let t = ticks(5.0, 5.0, 5);
        assert_eq!(labels(&t), ["4.0", "4.5", "5.0", "5.5", "6.0"]);
        let t = ticks(f64::NAN, 3.0, 5);
        assert!(t.values.iter().all(|v| v.is_finite()) && t.lo < t.hi);
    }

    #[test]
    fn labels_drop_negative_zero_and_trailing_zeros() {
        assert_eq!(label(-0.04, 1), "0.0");
        assert_eq!(label(-0.4, 1), "-0.4");
        assert_eq!(value_label(12.0), "12");
        assert_eq!(value_label(3.5), "3.5");
        assert_eq!(value_label(0.012_34), "0.0123");
        assert_eq!(value_label(1234.0), "1234");
        assert_eq!(value_label(0.0), "0");
        assert_eq!(value_label(f64::NAN), "");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(iso_date(0.0), "1970-01-01");
        assert_eq!(iso_date(19_723.0), "2024-01-01");
        assert_eq!(iso_date(20_454.0), "2026-01-01");
        assert_eq!(iso_date(11_016.0), "2000-02-29");
        assert_eq!(iso_date(-1.0), "1969-12-31");
        assert_eq!(iso_date(19_723.9), "2024-01-01");
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn date_ticks_fall_on_mondays_and_month_starts() {
        let weeks: Vec<String> = date_ticks(19_720.0, 19_752.0, 6).into_iter().map(iso_date).collect();
        assert_eq!(weeks, ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29"]);
        let quarters: Vec<String> = date_ticks(19_723.0, 20_089.0, 6).into_iter().map(iso_date).collect();
        assert_eq!(quarters, ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01", "2025-01-01"]);
        assert_eq!(date_ticks(19_723.0, 19_723.0, 6).len(), 3);
    }
}
