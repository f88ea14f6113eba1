//! The web UI's files, embedded in the binary (plain HTML, CSS and
//! JavaScript modules: no build step). Served at `/` and `/ui/FILE`.

pub const INDEX_HTML: &str = include_str!("index.html");

/// A UI file by name: its MIME type and contents.
pub fn file(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "app.js" => Some(("text/javascript; charset=utf-8", include_str!("app.js"))),
        "style.css" => Some(("text/css; charset=utf-8", include_str!("style.css"))),
        _ => None,
    }
}
