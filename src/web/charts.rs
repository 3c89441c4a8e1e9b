//! The dashboard's charts, rendered on the server as SVG by plotters' SVG backend (no
//! JavaScript): accuracy by week with its 95% interval bars and verdict counts, decisions per
//! day by route, and one line per week for cost per decision, p95 model latency, cache-hit
//! share and fallback share. Text is only week names, days and numbers, all made here.

use plotters::{
    coord::{
        Shift,
        ranged1d::SegmentedCoord,
        types::{RangedCoordf64, RangedCoordu32},
    },
    prelude::*,
};

use crate::{audit::figures::WeekFigures, domain::Route};

const W: u32 = 620;
const H: u32 = 260;
const FONT: &str = "sans-serif";
const BLUE: RGBColor = RGBColor(37, 99, 235);
const ROUTE_COLOURS: [RGBColor; 3] = [
    RGBColor(22, 163, 74),
    RGBColor(234, 179, 8),
    RGBColor(220, 38, 38),
];

type Res = Result<String, String>;

/// The last key of a week axis: integer coordinates are inclusive in plotters, so `n` weeks
/// are the keys `0..=n-1` (one week keeps two keys, or the axis would be empty).
fn last_key(n: usize) -> u32 {
    u32::try_from(n.saturating_sub(1).max(1)).unwrap_or(u32::MAX)
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn week_label(weeks: &[WeekFigures], v: &SegmentValue<u32>) -> String {
    let i = match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => *i,
        SegmentValue::Last => return String::new(),
    };
    weeks
        .get(i as usize)
        .map(|w| {
            let s = w.week.to_string();
            s.split_once('-').map_or(s.clone(), |(_, w)| w.to_owned())
        })
        .unwrap_or_default()
}

/// The chart of one week axis.
type WeekChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<SegmentedCoord<RangedCoordu32>, RangedCoordf64>>;

/// Draws one chart on a white SVG canvas and returns the SVG: the frame every chart shares.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>) -> Res {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A chart with one key per week on x (labelled by week) and `0..top` on y, its mesh drawn:
/// the axes of the accuracy chart and of every weekly line.
fn week_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    weeks: &[WeekFigures],
    title: &str,
    top: f64,
    (y_area, y_labels): (u32, usize),
    y_label: &dyn Fn(&f64) -> String,
) -> Result<WeekChart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 16))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(y_area)
        .build_cartesian_2d((0u32..last_key(weeks.len())).into_segmented(), 0.0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(weeks.len().max(1))
        .x_label_formatter(&|v| week_label(weeks, v))
        .y_labels(y_labels)
        .y_label_formatter(y_label)
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// Accuracy per week: a point at the sampled (weighted) accuracy (the error bar draws it), a
/// bar over its 95% interval, the number of verdicts above it (and the effective sample size
/// when the weights differ), and the bar (`min_accuracy`) as a dashed line.
pub(super) fn accuracy(weeks: &[WeekFigures], min_accuracy: f64) -> Res {
    svg(|root| {
        let mut chart = week_chart(
            root,
            weeks,
            "Sampled accuracy by week (95% interval)",
            1.1,
            (44, 6),
            &|y| format!("{:.0}%", y * 100.0),
        )?;
        let bar = min_accuracy.clamp(0.0, 1.0);
        chart
            .draw_series(DashedLineSeries::new(
                [(SegmentValue::Exact(0), bar), (SegmentValue::Last, bar)],
                6,
                4,
                RED.stroke_width(1),
            ))
            .map_err(err)?;
        let judged: Vec<(u32, &WeekFigures)> = (0u32..)
            .zip(weeks)
            .filter(|(_, w)| w.accuracy.n > 0)
            .collect();
        chart
            .draw_series(judged.iter().map(|(i, w)| {
                ErrorBar::new_vertical(
                    SegmentValue::CenterOf(*i),
                    w.accuracy.lo,
                    w.accuracy.share,
                    w.accuracy.hi,
                    BLUE.filled().stroke_width(2),
                    12,
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(judged.iter().map(|(i, w)| {
                Text::new(
                    format!(
                        "n={}{}",
                        w.accuracy.n,
                        w.accuracy
                            .effective_n
                            .map(|e| format!(" (eff {e:.0})"))
                            .unwrap_or_default()
                    ),
                    (SegmentValue::CenterOf(*i), (w.accuracy.hi + 0.07).min(1.09)),
                    (FONT, 11).into_font().color(&BLACK),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// Decisions per day, stacked by route.
pub(super) fn decisions_per_day(weeks: &[WeekFigures]) -> Res {
    let days: Vec<&crate::audit::figures::DayFigures> =
        weeks.iter().flat_map(|w| w.days.iter()).collect();
    let total = |d: &crate::audit::figures::DayFigures| d.by_route.values().sum::<u64>();
    #[allow(clippy::cast_precision_loss)]
    // Head room for the legend.
    let top = days.iter().map(|d| total(d)).max().unwrap_or(0).max(1) as f64 * 1.4;
    svg(|root| {
        let n = u32::try_from(days.len()).unwrap_or(u32::MAX).max(1);
        let mut chart = ChartBuilder::on(root)
            .caption("Decisions per day by route", (FONT, 16))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0u32..n, 0.0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(8)
            .x_label_formatter(&|i| {
                days.get(*i as usize)
                    .map(|d| d.day.format("%m-%d").to_string())
                    .unwrap_or_default()
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(err)?;
        for (r, route) in Route::ALL.iter().enumerate() {
            let colour = ROUTE_COLOURS[r % ROUTE_COLOURS.len()];
            chart
                .draw_series(days.iter().enumerate().map(|(i, d)| {
                    let below: u64 = Route::ALL[..r]
                        .iter()
                        .map(|x| d.by_route.get(x).copied().unwrap_or(0))
                        .sum();
                    let here = d.by_route.get(route).copied().unwrap_or(0);
                    let x = u32::try_from(i).unwrap_or(0);
                    #[allow(clippy::cast_precision_loss)]
                    let (y0, y1) = (below as f64, (below + here) as f64);
                    Rectangle::new([(x, y0), (x + 1, y1)], colour.filled())
                }))
                .map_err(err)?
                .label(route.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// One value per week as a line with points; weeks without a value are skipped.
pub(super) fn weekly_line(
    weeks: &[WeekFigures],
    title: &str,
    value: impl Fn(&WeekFigures) -> Option<f64>,
    label: impl Fn(f64) -> String,
) -> Res {
    let points: Vec<(u32, f64)> = (0u32..)
        .zip(weeks)
        .filter_map(|(i, w)| value(w).filter(|v| v.is_finite()).map(|v| (i, v)))
        .collect();
    let top = points.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.2 } else { 1.0 };
    svg(|root| {
        let mut chart = week_chart(root, weeks, title, top, (64, 5), &|y| label(*y))?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(i, v)| (SegmentValue::CenterOf(*i), *v)),
                BLUE.stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|(i, v)| Circle::new((SegmentValue::CenterOf(*i), *v), 4, BLUE.filled())),
            )
            .map_err(err)?;
        Ok(())
    })
}
