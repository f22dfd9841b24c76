//! The report as Typst markup: cover, contents, numbered sections, tables whose header repeats
//! on every page, charts as vector images, page numbers. Every text goes in as a string literal.

use std::fmt::Write;

use super::build::instant;
use super::report::{Block, Report, Section};
use crate::sections::literal;
use crate::table::{Cell, Table};

/// The document settings: title and author in the PDF's metadata, A4 pages numbered "n / total",
/// a running header after the cover, the compiled-in serif font, tables in a smaller size.
fn preamble(title: &str, author: &str, lock: &str) -> String {
    format!(
        r#"#set document(title: {title}, author: {author})
#set page(paper: "a4", margin: (x: 1.8cm, y: 2cm), numbering: "1 / 1",
  header: context {{ if counter(page).get().first() > 1 [ #set text(size: 8pt); #{title} #h(1fr) #{lock} ] }})
#set text(font: "Libertinus Serif", size: 10pt, lang: "en")
#set par(justify: true)
#set table(stroke: 0.4pt + luma(160), inset: 4pt)
#show table: set text(size: 7.5pt)
#show table: set par(justify: false)
#show heading: set block(above: 1.4em, below: 0.8em)
"#
    )
}

/// The Typst markup of `report`.
pub fn markup(report: &Report) -> String {
    let title = literal(&report.spec.title);
    let lock = literal(&format!("Data-lock point {}", instant(report.spec.lock_ms)));
    let mut out = preamble(&title, &literal(&report.spec.organisation), &lock);
    cover(&mut out, report);
    out.push_str("#outline(title: \"Contents\", depth: 2)\n#pagebreak()\n\n");
    for s in &report.sections {
        section(&mut out, s);
    }
    out
}

fn cover(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "#align(center + horizon)[\n#text(size: 20pt, weight: \"bold\")[#{}]\n",
        literal(&report.spec.title)
    );
    out.push_str(
        "#v(1em)\n#text(size: 12pt)[#\"Periodic safety report (ICH E2C(R2) structure)\"]\n#v(2em)\n",
    );
    out.push_str("#table(columns: 2, stroke: none, align: (right, left),\n");
    for (label, value) in &report.facts {
        let _ = writeln!(out, "  strong({}), {},", literal(label), literal(value));
    }
    out.push_str(")\n#v(2em)\n#text(size: 9pt)[#\"Computed from the event log as received by the data-lock point. Sections marked 'Written by the responsible person' come from the report's sections file.\"]\n]\n#pagebreak()\n\n");
}

fn section(out: &mut String, s: &Section) {
    let marks = "=".repeat(s.depth().min(4));
    let _ = writeln!(out, "{marks} #{}\n", literal(&format!("{} {}", s.number, s.title)));
    for b in &s.blocks {
        match b {
            Block::Text(t) => {
                let _ = writeln!(out, "#{}\n", literal(t));
            }
            Block::Human(text) => human(out, text.as_deref()),
            Block::Table(t) => table(out, t),
            Block::Chart { file, caption } => {
                let _ = writeln!(
                    out,
                    "#figure(image({}, width: 100%), caption: [#{}])\n",
                    literal(file),
                    literal(caption)
                );
            }
        }
    }
}

fn human(out: &mut String, text: Option<&str>) {
    out.push_str("#block(width: 100%, inset: 8pt, stroke: (left: 2pt + luma(120)), fill: luma(245))[\n");
    out.push_str(
        "#text(size: 8pt, style: \"italic\")[#\"Written by the responsible person (sections file).\"]\n\n",
    );
    match text {
        Some(t) => out.push_str(t),
        None => out.push_str("#emph[#\"Not provided in the sections file.\"]"),
    }
    out.push_str("\n]\n\n");
}

/// The text with a zero-width break opportunity every 8 characters inside words longer than 20
/// (a 64-digit patient key would otherwise run over the next columns); the CSV keeps the text as is.
fn breakable(text: &str) -> String {
    let word = |w: &str| {
        if w.chars().count() <= 20 {
            return w.to_owned();
        }
        let chars: Vec<char> = w.chars().collect();
        chars.chunks(8).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("\u{200B}")
    };
    text.split(' ').map(word).collect::<Vec<_>>().join(" ")
}

fn table(out: &mut String, t: &Table) {
    let _ = writeln!(
        out,
        "#block(breakable: false)[#strong[#{}] #h(1fr) #text(size: 8pt)[#{}]]",
        literal(&t.title),
        literal(&format!("{}.csv", t.file))
    );
    if t.rows.is_empty() {
        let _ = writeln!(out, "#emph[#\"None.\"]\n");
        return;
    }
    let align: Vec<&str> = t.rows[0].iter().map(|c| if c.is_number() { "right" } else { "left" }).collect();
    let _ = writeln!(out, "#table(columns: {}, align: ({},),", t.columns.len(), align.join(", "));
    let header: Vec<String> = t.columns.iter().map(|c| format!("strong({})", literal(c))).collect();
    let _ = writeln!(out, "  table.header(repeat: true, {}),", header.join(", "));
    for row in &t.rows {
        let cells: Vec<String> = row.iter().map(|c| literal(&breakable(&Cell::text(c)))).collect();
        let _ = writeln!(out, "  {},", cells.join(", "));
    }
    out.push_str(")\n");
    if !t.note.is_empty() {
        let _ = writeln!(out, "#text(size: 8pt)[#{}]", literal(&t.note));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_naming_the_placeholders_stays_text() {
        let p = preamble(&literal("AUTHOR and LOCK \"x\""), &literal("TITLE"), &literal("l"));
        assert!(p.starts_with(r#"#set document(title: "AUTHOR and LOCK \"x\"", author: "TITLE")"#), "{p}");
    }

    #[test]
    fn long_words_get_break_opportunities_and_short_ones_do_not() {
        assert_eq!(breakable("clinic-01/s5-01-0165"), "clinic-01/s5-01-0165");
        let key = "0123456789abcdef0123456789";
        assert_eq!(breakable(&format!("a {key}")), "a 01234567\u{200B}89abcdef\u{200B}01234567\u{200B}89");
    }
}
