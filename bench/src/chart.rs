//! The ramp as an SVG chart: SFU CPU against participants on the left, one-way delay (p50 solid, p99
//! dashed) on the right, one colour per target. Plain SVG text: no plotting dependency for two line charts.

use std::fmt::Write;

use crate::RampPoint;

const PANEL_WIDTH: f64 = 460.0;
const PANEL_HEIGHT: f64 = 300.0;
const MARGIN: f64 = 50.0;
const TICKS: usize = 5;
const COLOURS: [&str; 4] = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

/// One panel's axes.
struct Panel {
    left: f64,
    title: &'static str,
    unit: &'static str,
    x_max: f64,
    y_max: f64,
}

impl Panel {
    fn x(&self, value: f64) -> f64 {
        self.left + MARGIN + value / self.x_max * (PANEL_WIDTH - MARGIN - 10.0)
    }

    fn y(&self, value: f64) -> f64 {
        PANEL_HEIGHT - MARGIN + 20.0 - value / self.y_max * (PANEL_HEIGHT - MARGIN - 10.0)
    }

    fn axes(&self, svg: &mut String) {
        let (x0, y0) = (self.x(0.0), self.y(0.0));
        let _ = write!(
            svg,
            r#"<text x="{}" y="22" font-size="14" font-weight="bold">{}</text><line x1="{x0}" y1="{y0}" x2="{}" y2="{y0}" stroke="black"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{}" stroke="black"/>"#,
            self.left + MARGIN,
            self.title,
            self.x(self.x_max),
            self.y(self.y_max),
        );
        for tick in 0..=TICKS {
            let fraction = tick as f64 / TICKS as f64;
            let (x_value, y_value) = (fraction * self.x_max, fraction * self.y_max);
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">{x_value:.0}</text><text x="{}" y="{}" font-size="10" text-anchor="end">{y_value:.0}</text><line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>"##,
                self.x(x_value),
                y0 + 14.0,
                x0 - 4.0,
                self.y(y_value) + 3.0,
                self.y(y_value),
                self.x(self.x_max),
                self.y(y_value),
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">participants</text><text x="{}" y="{}" font-size="11" transform="rotate(-90 {} {})" text-anchor="middle">{}</text>"#,
            self.x(self.x_max / 2.0),
            y0 + 30.0,
            self.left + 12.0,
            self.y(self.y_max / 2.0),
            self.left + 12.0,
            self.y(self.y_max / 2.0),
            self.unit,
        );
    }

    fn line(&self, svg: &mut String, points: &[(f64, f64)], colour: &str, dashed: bool) {
        if points.is_empty() {
            return;
        }
        let path: Vec<String> = points.iter().map(|(x, y)| format!("{:.1},{:.1}", self.x(*x), self.y(*y))).collect();
        let dash = if dashed { r#" stroke-dasharray="5,4""# } else { "" };
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for (x, y) in points {
            let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, self.x(*x), self.y(*y));
        }
    }
}

/// A rounded-up axis end, so ticks land on readable numbers.
fn nice_max(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|step| step * magnitude >= value).unwrap_or(10.0);
    step * magnitude
}

/// The chart for the named series.
pub(crate) fn render(series: &[(&str, &[RampPoint])]) -> String {
    let all = || series.iter().flat_map(|(_, points)| points.iter());
    let x_max = nice_max(all().map(|point| point.participants as f64).fold(0.0, f64::max));
    let cpu = Panel {
        left: 0.0,
        title: "SFU CPU",
        unit: "% of one core",
        x_max,
        y_max: nice_max(all().map(|point| point.sfu_cpu_percent).fold(0.0, f64::max)),
    };
    let delay = Panel {
        left: PANEL_WIDTH,
        title: "One-way delay (p50 solid, p99 dashed)",
        unit: "ms",
        x_max,
        y_max: nice_max(all().filter_map(|point| point.delay_p99_ms).fold(0.0, f64::max)),
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"#,
        PANEL_WIDTH * 2.0,
        PANEL_HEIGHT + 30.0
    );
    cpu.axes(&mut svg);
    delay.axes(&mut svg);
    for (index, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let of = |value: fn(&RampPoint) -> Option<f64>| -> Vec<(f64, f64)> {
            points.iter().filter_map(|point| value(point).map(|y| (point.participants as f64, y))).collect()
        };
        cpu.line(&mut svg, &of(|point| Some(point.sfu_cpu_percent)), colour, false);
        delay.line(&mut svg, &of(|point| point.delay_p50_ms), colour, false);
        delay.line(&mut svg, &of(|point| point.delay_p99_ms), colour, true);
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}" font-size="12">{name}</text>"#,
            MARGIN + 10.0 + 110.0 * index as f64,
            PANEL_HEIGHT + 8.0,
            MARGIN + 26.0 + 110.0 * index as f64,
            PANEL_HEIGHT + 18.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(participants: usize, cpu: f64, p99: Option<f64>) -> RampPoint {
        RampPoint {
            participants,
            sfu_cpu_percent: cpu,
            forwarded_mbps_out: 1.0,
            delay_p50_ms: p99.map(|ms| ms / 2.0),
            delay_p99_ms: p99,
        }
    }

    #[test]
    fn both_series_are_drawn_on_shared_axes() {
        let ours = [point(10, 12.0, Some(3.0)), point(20, 25.0, Some(4.0))];
        let theirs = [point(10, 40.0, Some(9.0)), point(20, 90.0, None)];
        let svg = render(&[("convene", &ours), ("janus", &theirs)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 6, "CPU, p50 and p99 for each target");
        assert!(svg.contains(">convene<") && svg.contains(">janus<"));
        // The CPU axis ends at 100 % (90 rounded up), the participants' at 20.
        assert!(svg.contains(">100<") && svg.contains(">20<"));
    }

    #[test]
    fn axis_ends_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(23.0), 25.0);
        assert_eq!(nice_max(140.0), 200.0);
    }
}
