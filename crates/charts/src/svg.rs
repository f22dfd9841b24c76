//! A tiny SVG writer: coordinates at one decimal, every text escaped for XML.
//!
//! `attrs` arguments are fixed attribute strings written by this crate (never user text).

use std::fmt::Write as _;

/// `s` escaped for XML text and attribute values. Characters XML 1.0 forbids (control
/// characters other than tab and line breaks, U+FFFE, U+FFFF) are dropped; tab and line breaks
/// become spaces.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(' '),
            '\u{FFFE}' | '\u{FFFF}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// An SVG document being written.
#[derive(Debug)]
pub(crate) struct Svg {
    out: String,
}

impl Svg {
    /// The root element, its `<title>` and a white background.
    pub(crate) fn new(width: u32, height: u32, title: &str) -> Self {
        let mut out = String::with_capacity(8192);
        out.push_str(r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" font-family="sans-serif""#);
        let _ = write!(out, r##" font-size="11" fill="#222" width="{width}" height="{height}""##);
        let _ = write!(out, r#" viewBox="0 0 {width} {height}"><title>{}</title>"#, escape(title));
        let _ = write!(out, r##"<rect class="background" width="{width}" height="{height}" fill="#fff"/>"##);
        Self { out }
    }

    /// Ends an element: `/>`, or its `<title>` tooltip and the closing tag.
    fn close(&mut self, tag: &str, tip: Option<&str>) {
        match tip {
            Some(tip) => {
                let _ = write!(self.out, "><title>{}</title></{tag}>", escape(tip));
            }
            None => self.out.push_str("/>"),
        }
    }

    pub(crate) fn line(&mut self, a: (f64, f64), b: (f64, f64), attrs: &str, tip: Option<&str>) {
        let ((x1, y1), (x2, y2)) = (a, b);
        let _ = write!(self.out, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {attrs}"#);
        self.close("line", tip);
    }

    /// A rectangle; negative sizes are drawn as zero.
    pub(crate) fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), attrs: &str, tip: Option<&str>) {
        let (w, h) = (w.max(0.0), h.max(0.0));
        let _ = write!(self.out, r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" {attrs}"#);
        self.close("rect", tip);
    }

    pub(crate) fn circle(&mut self, (cx, cy): (f64, f64), r: f64, attrs: &str, tip: Option<&str>) {
        let _ = write!(self.out, r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{r:.1}" {attrs}"#);
        self.close("circle", tip);
    }

    /// A path; `d` is built by the caller with [`move_to`]-style one-decimal numbers.
    pub(crate) fn path(&mut self, d: &str, attrs: &str) {
        let _ = write!(self.out, r#"<path d="{d}" {attrs}/>"#);
    }

    pub(crate) fn polyline(&mut self, points: &[(f64, f64)], attrs: &str) {
        self.out.push_str(r#"<polyline points=""#);
        for (i, (x, y)) in points.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            let _ = write!(self.out, "{sep}{x:.1},{y:.1}");
        }
        let _ = write!(self.out, r#"" {attrs}/>"#);
    }

    pub(crate) fn text(&mut self, (x, y): (f64, f64), attrs: &str, text: &str) {
        let _ = write!(self.out, r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{}</text>"#, escape(text));
    }

    /// Opens `<g class="...">` with an optional tooltip; close it with [`Svg::end_group`].
    pub(crate) fn group(&mut self, class: &str, tip: Option<&str>) {
        let _ = write!(self.out, r#"<g class="{class}">"#);
        if let Some(tip) = tip {
            let _ = write!(self.out, "<title>{}</title>", escape(tip));
        }
    }

    pub(crate) fn end_group(&mut self) {
        self.out.push_str("</g>");
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// Appends a path command with one-decimal coordinates, e.g. `M12.0,3.5 `.
pub(crate) fn move_to(d: &mut String, cmd: char, (x, y): (f64, f64)) {
    let _ = write!(d, "{cmd}{x:.1},{y:.1} ");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape(r#"a<b & "c">'d'"#), "a&lt;b &amp; &quot;c&quot;&gt;&#39;d&#39;");
        assert_eq!(escape("x\u{0}\u{7}y\nz\u{FFFF}"), "xy z");
        assert_eq!(escape("Übelkeit µg"), "Übelkeit µg");
    }

    #[test]
    fn writes_one_decimal_and_closes_tooltips() {
        let mut svg = Svg::new(10, 10, "t");
        svg.line((0.0, 1.24), (2.0 / 3.0, 3.0), r#"class="a""#, Some("x<y"));
        svg.polyline(&[(1.0, 2.0), (3.0, 4.0)], r#"class="p""#);
        let out = svg.finish();
        let want = r#"<line x1="0.0" y1="1.2" x2="0.7" y2="3.0" class="a"><title>x&lt;y</title></line>"#;
        assert!(out.contains(want), "{out}");
        assert!(out.contains(r#"points="1.0,2.0 3.0,4.0""#));
        assert!(out.ends_with("</svg>\n"));
    }
}
