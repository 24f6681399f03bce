//! SVG charts of a report (plotters, SVG backend only): grouped bars, one
//! group per scenario, one bar per datapath, on a log scale.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::report::Report;
use super::scenario::{Datapath, Scenario};
use crate::DynError;

const COLORS: [RGBColor; 7] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x9c, 0x75, 0x5f),
];

/// Writes `throughput.svg`, `cpu.svg` and (if echo ran) `echo-latency.svg`;
/// returns their paths.
///
/// # Errors
/// The directory or a file cannot be written.
pub(crate) fn write_all(rep: &Report<'_>, dir: &Path) -> Result<Vec<PathBuf>, DynError> {
    let dps: Vec<Datapath> = rep.opts.runnable();
    let names: Vec<&str> = dps.iter().map(|d| d.name()).collect();
    let flows: Vec<Scenario> = rep.opts.scenarios.iter().copied().filter(|s| *s != Scenario::Echo).collect();
    let labels: Vec<String> = flows.iter().map(|s| s.name()).collect();
    let pick = |get: fn(&super::report::Figures) -> f64| -> Vec<Vec<f64>> {
        flows
            .iter()
            .map(|&sc| dps.iter().map(|&dp| rep.summary(sc, dp).map_or(f64::NAN, |s| get(&s.med))).collect())
            .collect()
    };
    let mut out = Vec::new();
    if !flows.is_empty() && !dps.is_empty() {
        let p = dir.join("throughput.svg");
        bars(&p, "Delivered datagrams/s (median; log scale)", "datagrams/s", &labels, &names, &pick(|f| f.rate))?;
        out.push(p);
        let p = dir.join("cpu.svg");
        bars(
            &p,
            "CPU ns per delivered datagram, sender + receiver (median; log scale)",
            "ns / datagram",
            &labels,
            &names,
            &pick(|f| f.cpu_ns),
        )?;
        out.push(p);
        let p = dir.join("cpu-all.svg");
        bars(
            &p,
            "Busy ns of all CPUs per delivered datagram, incl. softirq (median; log scale)",
            "ns / datagram",
            &labels,
            &names,
            &pick(|f| f.sys_cpu_ns),
        )?;
        out.push(p);
    }
    if rep.opts.scenarios.contains(&Scenario::Echo) && !dps.is_empty() {
        let echo = |get: fn(&super::report::Figures) -> f64| -> Vec<f64> {
            dps.iter().map(|&dp| rep.summary(Scenario::Echo, dp).map_or(f64::NAN, |s| get(&s.med))).collect()
        };
        let p = dir.join("echo-latency.svg");
        bars(
            &p,
            "echo: round-trip time of 100-byte datagrams (median of rounds; log scale)",
            "µs",
            &["p50".to_string(), "p99".to_string()],
            &names,
            &[echo(|f| f.p50_us), echo(|f| f.p99_us)],
        )?;
        out.push(p);
    }
    Ok(out)
}

/// Grouped bars: `values[group][series]`; non-finite or non-positive values
/// are left out.
fn bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[&str],
    values: &[Vec<f64>],
) -> Result<(), DynError> {
    let finite: Vec<f64> = values.iter().flatten().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
    let max = finite.iter().copied().fold(1.0, f64::max);
    let min = finite.iter().copied().fold(max, f64::min);
    let (lo, hi) = (10f64.powf((min / 2.0).log10().floor()), 10f64.powf((max * 2.0).log10().ceil()));

    let width = (groups.len() as u32 * (series.len() as u32 * 22 + 40)).max(700) + 220;
    let root = SVGBackend::new(path, (width, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(width - 170);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..groups.len() as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .y_label_formatter(&|v| super::report::fmt_count(*v))
        .draw()?;
    let w = 0.8 / series.len().max(1) as f64;
    for (j, name) in series.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        chart.draw_series(values.iter().enumerate().filter_map(|(i, row)| {
            let v = *row.get(j)?;
            (v.is_finite() && v > 0.0).then(|| {
                let x0 = i as f64 + 0.1 + j as f64 * w;
                Rectangle::new([(x0, lo), (x0 + w * 0.9, v)], color.filled())
            })
        }))?;
        // Legend in the right-hand panel.
        let y = 60 + 24 * j as i32;
        legend.draw(&Rectangle::new([(10, y), (24, y + 14)], color.filled()))?;
        legend.draw(&Text::new(name.to_string(), (32, y), ("sans-serif", 15).into_font()))?;
    }
    // Group names under each group, centred.
    for (i, g) in groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
        let text = Text::new(g.clone(), (x - 4 * g.len() as i32, y + 12), ("sans-serif", 15).into_font());
        plot.draw(&text)?;
    }
    root.present()?;
    Ok(())
}
