//! The SVG plot of the block benchmark's ratios, written as text (no plotting dependency):
//! one group of horizontal bars per cell, Linux's and Moat's strict/pass-through and Moat's
//! strict rate over Linux's, with the aims (0.95 and 2) drawn as dashed lines.

use super::results::{Grid, ratios};
use std::fmt::Write;

const WIDTH: f64 = 860.0;
const LABEL: f64 = 190.0;
const RIGHT: f64 = 60.0;
const TOP: f64 = 76.0;
const BAR: f64 = 14.0;
const GAP: f64 = 16.0;

/// (legend, colour) of each bar of a group, in drawing order.
const SERIES: [(&str, &str); 3] = [
    ("Linux strict / pass-through", "#9e9e9e"),
    ("Moat strict / pass-through", "#1f77b4"),
    ("Moat strict / Linux strict", "#ff7f0e"),
];

/// The plot for `grid`, as a complete SVG document.
pub(crate) fn svg(grid: &Grid, title: &str) -> String {
    let groups: Vec<(String, [Option<f64>; 3])> = grid
        .iter()
        .map(|(cell, samples)| {
            let r = ratios(samples);
            (
                format!("{} {} qd{}", cell.device, cell.workload, cell.queue_depth),
                [
                    r.linux_strict_to_pass,
                    r.moat_strict_to_pass,
                    r.moat_to_linux_strict,
                ],
            )
        })
        .collect();
    let largest = groups
        .iter()
        .flat_map(|(_, values)| values.iter().flatten())
        .fold(2.5f64, |a, &b| a.max(b));
    let scale = (WIDTH - LABEL - RIGHT) / largest;
    let x = |value: f64| LABEL + value * scale;
    let group_height = 3.0 * BAR + GAP;
    let plot_bottom = TOP + groups.len() as f64 * group_height;
    let height = plot_bottom + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LABEL}" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (index, (legend, colour)) in SERIES.iter().enumerate() {
        let lx = LABEL + index as f64 * 210.0;
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="32" width="12" height="12" fill="{colour}"/><text x="{}" y="43">{}</text>"#,
            lx + 16.0,
            escape(legend)
        );
    }
    // The 1.0 line is labelled above the bars, the aims below (0.95 and 1 are close).
    for (value, label, colour, label_y) in [
        (1.0, "1", "#444444", TOP - 6.0),
        (0.95, "aim 0.95", "#2ca02c", plot_bottom + 16.0),
        (2.0, "aim 2", "#d62728", plot_bottom + 16.0),
    ] {
        let dash = if value == 1.0 {
            ""
        } else {
            r#" stroke-dasharray="5,4""#
        };
        let _ = writeln!(
            out,
            r#"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{plot_bottom}" stroke="{colour}"{dash}/><text x="{0:.1}" y="{label_y}" text-anchor="middle" fill="{colour}">{label}</text>"#,
            x(value),
        );
    }
    for (index, (label, values)) in groups.iter().enumerate() {
        let top = TOP + index as f64 * group_height;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL - 8.0,
            top + 1.5 * BAR + 4.0,
            escape(label)
        );
        for (bar, value) in values.iter().enumerate() {
            let y = top + bar as f64 * BAR;
            match value {
                Some(v) => {
                    let _ = writeln!(
                        out,
                        r#"<rect x="{LABEL}" y="{y}" width="{:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}" font-size="10">{v:.2}</text>"#,
                        v * scale,
                        BAR - 2.0,
                        SERIES[bar].1,
                        x(*v) + 4.0,
                        y + BAR - 4.0
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        r##"<text x="{}" y="{}" font-size="10" fill="#888888">not measured</text>"##,
                        LABEL + 4.0,
                        y + BAR - 4.0
                    );
                }
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::results::{grid, parse};
    use super::*;

    #[test]
    fn bars_for_measured_ratios_and_a_note_for_missing_ones() {
        let serial = "\
bench-block: system=linux device=nvme mode=strict workload=rand-4k qd=1 ios=10 bytes=40960 ns=2000
bench-block: system=linux device=nvme mode=pass-through workload=rand-4k qd=1 ios=10 bytes=40960 ns=1000
";
        let svg = svg(&grid(parse(serial).unwrap()).unwrap(), "a < b & c");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert!(svg.contains(">nvme rand-4k qd1</text>"));
        assert!(svg.contains(">0.50</text>"));
        assert_eq!(svg.matches("not measured").count(), 2);
        // Tags balance: every opened element is closed or self-closing.
        let opened = svg.matches("<text").count() + svg.matches("<svg").count();
        let closed = svg.matches("</text>").count() + svg.matches("</svg>").count();
        assert_eq!(opened, closed);
    }
}
