//! Line charts of experiment results, drawn with plotters: SVG by default,
//! PNG on request; always a title, labelled axes with units and a legend.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed-looking (thin, with markers) rather than solid: bounds.
    pub bound: bool,
}

/// A chart to draw.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// Chart drawing failed (a font, a file).
#[derive(Debug)]
pub struct ChartError(pub String);

impl std::fmt::Display for ChartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "drawing the chart: {}", self.0)
    }
}

impl std::error::Error for ChartError {}

const SIZE: (u32, u32) = (960, 600);

/// Where the charts' font is looked for, first found wins (after
/// `SWARM_CHART_FONT`): Debian's and Ubuntu's, Fedora's and Arch's DejaVu
/// Sans and Liberation Sans.
const FONT_FILES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Loads the charts' font once (plotters draws text with `ab_glyph` from a
/// font file, not through fontconfig and FreeType: those libraries would be
/// linked into, and resident in, every swarm process, the daemon's too, for
/// a chart that only `swarm sim` draws).
fn font() -> Result<(), ChartError> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("SWARM_CHART_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_FILES.iter().map(PathBuf::from))
            .collect();
        let Some((path, bytes)) = candidates
            .iter()
            .find_map(|p| std::fs::read(p).ok().map(|b| (p, b)))
        else {
            return Err(format!(
                "no font found: set SWARM_CHART_FONT to a .ttf file, or install \
                 DejaVu Sans (Debian: apt-get install fonts-dejavu-core); looked at {}",
                FONT_FILES.join(", ")
            ));
        };
        // Read once per process and kept for plotters' 'static font table.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a font plotters can read", path.display()))
    })
    .clone()
    .map_err(ChartError)
}

/// Draws `chart` to `path` (SVG, or PNG when `png`).
pub fn draw(chart: &Chart, path: &Path, png: bool) -> Result<(), ChartError> {
    font()?;
    if png {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        draw_on(&root, chart)?;
        root.present().map_err(|e| ChartError(e.to_string()))
    } else {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        draw_on(&root, chart)?;
        root.present().map_err(|e| ChartError(e.to_string()))
    }
}

fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (if log { 1.0 } else { 0.0 }, 1.0);
    }
    if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-9);
        (if lo >= 0.0 { 0.0 } else { lo - pad }, hi + pad)
    }
}

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = range(xs, chart.log_x);
    let (y0, y1) = range(ys, chart.log_y);
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(&chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72);
    // Four coordinate combinations, one drawing routine.
    macro_rules! body {
        ($ctx:expr) => {{
            let mut ctx = $ctx.map_err(|e| err(&e))?;
            ctx.configure_mesh()
                .x_desc(&chart.x_label)
                .y_desc(&chart.y_label)
                .label_style(("sans-serif", 15))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, s) in chart.series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let width = if s.bound { 1 } else { 2 };
                let style = color.stroke_width(width);
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| {
                        p.0.is_finite()
                            && p.1.is_finite()
                            && (!chart.log_x || p.0 > 0.0)
                            && (!chart.log_y || p.1 > 0.0)
                    })
                    .collect();
                let anno = ctx
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(|e| err(&e))?;
                anno.label(s.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
                if s.bound || pts.len() <= 40 {
                    ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| err(&e))?;
                }
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 15))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    match (chart.log_x, chart.log_y) {
        (true, true) => {
            body!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()))
        }
        (true, false) => body!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)),
        (false, true) => body!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())),
        (false, false) => body!(builder.build_cartesian_2d(x0..x1, y0..y1)),
    }
    Ok(())
}

/// The empirical distribution of `values`: (value, fraction ≤ value) points.
pub fn cdf(values: &[f64]) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    v.iter()
        .enumerate()
        .map(|(i, &x)| (x, (i + 1) as f64 / n))
        .collect()
}
