//! The report's charts: inline SVG bar charts over the run's time, drawn here so the page
//! needs no script and no library to show them. Each chart is one `<svg>` with a `<title>`
//! and a `<desc>` (its text alternative: what the bars say, in words), axes and their labels.
//! Inline SVG in HTML needs no `xmlns`: the page holds no URL at all.

use std::fmt::Write as _;

use super::escape::escape;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
/// At most this many bars: enough to see a shape, few enough to read.
const MAX_BARS: i64 = 60;

/// A bucket width from this list (milliseconds), the smallest that gives at most
/// [`MAX_BARS`] bars; past the list, whole hours.
const WIDTHS_MS: &[i64] = &[
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000,
    300_000, 600_000, 900_000, 1_800_000, 3_600_000,
];

/// Events over time, counted in buckets of equal width.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub width_ms: i64,
    pub counts: Vec<f64>,
}

impl Buckets {
    /// `points` (time in ms since the start, amount) over `0..=span_ms`.
    pub fn of(span_ms: i64, points: impl IntoIterator<Item = (i64, f64)>) -> Buckets {
        let span = span_ms.max(1);
        let width_ms = WIDTHS_MS
            .iter()
            .copied()
            .find(|w| span / w < MAX_BARS)
            .unwrap_or_else(|| (span / MAX_BARS / 3_600_000 + 1) * 3_600_000);
        let mut counts = vec![0.0; (span / width_ms + 1) as usize];
        let last = counts.len() - 1;
        for (at, amount) in points {
            let i = (at.clamp(0, span) / width_ms) as usize;
            counts[i.min(last)] += amount;
        }
        Buckets { width_ms, counts }
    }

    /// Each bucket per second rather than per bucket.
    pub fn per_second(mut self) -> Buckets {
        let secs = self.width_ms as f64 / 1000.0;
        for c in &mut self.counts {
            *c /= secs;
        }
        self
    }

    pub fn peak(&self) -> f64 {
        self.counts.iter().copied().fold(0.0, f64::max)
    }
}

/// One chart.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// Unique in the page: the ids of its title and description derive from it.
    pub id: &'a str,
    pub title: &'a str,
    /// The text alternative: what the chart shows, in a sentence.
    pub desc: &'a str,
    pub y_label: &'a str,
    pub buckets: &'a Buckets,
    /// Times (ms) to mark with a dashed line: where the run was resumed.
    pub marks: &'a [i64],
    /// Shown across an empty chart ("no retries").
    pub empty: &'a str,
    /// The bars' colour.
    pub colour: &'a str,
}

/// A number for an axis: whole when it is, else one decimal.
pub fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A time for the axis and the captions: milliseconds below a second, then seconds.
pub fn seconds(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    match ms {
        ..1000 => format!("{ms} ms"),
        1000..100_000 => format!("{s:.1} s"),
        _ => format!("{s:.0} s"),
    }
}

/// The top of the value axis: the peak rounded up to 1, 2 or 5 times a power of ten.
fn axis_top(peak: f64) -> f64 {
    if peak <= 1.0 {
        return 1.0;
    }
    let power = 10f64.powf(peak.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|top| *top >= peak)
        .unwrap_or(10.0 * power)
}

impl Chart<'_> {
    pub fn render(&self) -> String {
        let id = escape(self.id);
        let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let bottom = TOP + ph;
        let n = self.buckets.counts.len().max(1) as f64;
        let span_ms = self.buckets.width_ms * self.buckets.counts.len() as i64;
        let top = axis_top(self.buckets.peak());
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
            escape(self.title),
            escape(self.desc),
        );
        // Grid lines and value ticks at 0, half and the top.
        for (i, v) in [0.0, top / 2.0, top].into_iter().enumerate() {
            let y = bottom - v / top * ph;
            if i > 0 {
                let _ = write!(
                    s,
                    r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/>"##,
                    LEFT + pw
                );
            }
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                number(v)
            );
        }
        // The bars.
        let slot = pw / n;
        for (i, v) in self.buckets.counts.iter().enumerate() {
            if *v <= 0.0 {
                continue;
            }
            let h = (v / top * ph).max(1.0);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"/>"#,
                LEFT + i as f64 * slot + slot * 0.1,
                bottom - h,
                (slot * 0.8).max(1.0),
                escape(self.colour),
            );
        }
        for at in self.marks {
            let x = LEFT + (*at as f64 / span_ms.max(1) as f64) * pw;
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}" stroke="#555" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" class="tick">resumed</text>"##,
                x + 3.0,
                TOP + 10.0
            );
        }
        if self.buckets.peak() <= 0.0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="empty">{}</text>"#,
                LEFT + pw / 2.0,
                TOP + ph / 2.0,
                escape(self.empty)
            );
        }
        // The axes, their time ticks and labels.
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom:.1}" stroke="#333"/><line x1="{LEFT}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#333"/>"##,
            LEFT + pw
        );
        for (x, anchor, ms) in [
            (LEFT, "start", 0),
            (LEFT + pw / 2.0, "middle", span_ms / 2),
            (LEFT + pw, "end", span_ms),
        ] {
            let _ = write!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}" class="tick">{}</text>"#,
                bottom + 16.0,
                seconds(ms)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">time since the run began (one bar: {})</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 6.0,
            seconds(self.buckets.width_ms)
        );
        let _ = write!(
            s,
            r#"<text x="14" y="{:.1}" text-anchor="middle" class="axis" transform="rotate(-90 14 {:.1})">{}</text></svg>"#,
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            escape(self.y_label)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_few_and_count_everything() {
        let b = Buckets::of(250, [(0, 1.0), (120, 2.0), (250, 3.0)]);
        assert_eq!((b.width_ms, b.counts.len()), (10, 26));
        assert_eq!(b.counts.iter().sum::<f64>(), 6.0);
        let hours = Buckets::of(400 * 3_600_000, [(0, 1.0)]);
        assert!(hours.counts.len() as i64 <= MAX_BARS + 1);
        assert_eq!(hours.width_ms % 3_600_000, 0);
    }

    #[test]
    fn times_read_in_milliseconds_below_a_second() {
        assert_eq!(
            [40, 1500, 250_000].map(seconds),
            ["40 ms", "1.5 s", "250 s"]
        );
    }

    #[test]
    fn the_axis_top_is_a_round_number_above_the_peak() {
        assert_eq!(axis_top(0.0), 1.0);
        assert_eq!(axis_top(3.0), 5.0);
        assert_eq!(axis_top(390.0), 500.0);
        assert_eq!(axis_top(1000.0), 1000.0);
    }
}
