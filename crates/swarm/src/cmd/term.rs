//! The terminal shared by the logs (tracing, on stderr) and the progress bar
//! (indicatif, on stderr too).
//!
//! Written side by side, a log line lands in the middle of the bar's line
//! and the next redraw eats half of it. So every log event is written
//! whole through [`LogWriter`], which hides the bar while it writes
//! (`ProgressBar::suspend`) when one is shown; [`show_bar`] / [`hide_bar`]
//! register the bar that is on screen.

use std::io::Write;
use std::sync::Mutex;

/// What is on screen: one bar, or several (one per torrent).
#[derive(Clone)]
enum Shown {
    Bar(indicatif::ProgressBar),
    Multi(indicatif::MultiProgress),
}

/// The bar(s) on screen, if any.
static BAR: Mutex<Option<Shown>> = Mutex::new(None);

/// Registers the bar now drawn on stderr: log lines go above it.
pub fn show_bar(bar: &indicatif::ProgressBar) {
    if let Ok(mut b) = BAR.lock() {
        *b = Some(Shown::Bar(bar.clone()));
    }
}

/// Registers bars drawn together on stderr: log lines go above them.
pub fn show_bars(bars: &indicatif::MultiProgress) {
    if let Ok(mut b) = BAR.lock() {
        *b = Some(Shown::Multi(bars.clone()));
    }
}

/// The bar is gone: log lines go straight to stderr again.
pub fn hide_bar() {
    if let Ok(mut b) = BAR.lock() {
        *b = None;
    }
}

/// One log event, buffered and written whole to stderr when dropped (the
/// tracing subscriber makes one per event), above the bar if one is shown.
#[derive(Default)]
pub struct LogWriter(Vec<u8>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&self.0);
            let _ = err.flush();
        };
        match bar {
            Some(Shown::Bar(bar)) if !bar.is_finished() => bar.suspend(write),
            Some(Shown::Multi(bars)) => bars.suspend(write),
            _ => write(),
        }
    }
}
