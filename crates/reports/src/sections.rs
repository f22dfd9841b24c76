//! The sections people write (ICH E2C(R2) 1-4, 7-14, 16-19): a Markdown file the user edits, one
//! `#` or `##` heading per section starting with its number (`## 2 Worldwide marketing
//! authorisation status`). Each section's Markdown becomes Typst markup here; the report marks
//! it as written by people. Text is always passed to Typst as string literals, so nothing a
//! person writes can run as Typst code.

use std::collections::BTreeMap;

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

/// The sections of the periodic report that people write (ICH E2C(R2) numbering).
pub const WRITTEN_BY_PEOPLE: [&str; 16] =
    ["1", "2", "3", "4", "7", "8", "9", "10", "11", "12", "13", "14", "16", "17", "18", "19"];

/// The human-written sections, by number, as Typst markup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HumanSections {
    by_number: BTreeMap<String, String>,
    sha256: String,
}

impl HumanSections {
    /// The markup of section `number`, when the file has it.
    pub fn get(&self, number: &str) -> Option<String> {
        self.by_number.get(number).cloned()
    }

    /// SHA-256 of the Markdown text (what the manifest records).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The section numbers the file has.
    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        self.by_number.keys().map(String::as_str)
    }

    /// The numbers the file has that are not sections people write ([`WRITTEN_BY_PEOPLE`]): a
    /// typo, or a heading such as "## 2024 update" read as a section number.
    pub fn unused(&self) -> Vec<&str> {
        self.numbers().filter(|n| !WRITTEN_BY_PEOPLE.contains(n)).collect()
    }

    /// Reads the Markdown text of a sections file. Text before the first numbered heading is
    /// ignored (a preamble for the writer).
    pub fn parse(markdown: &str) -> Self {
        let mut by_number: BTreeMap<String, String> = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut heading: Option<String> = None;
        let mut out = String::new();
        for event in Parser::new(markdown) {
            match event {
                Event::Start(Tag::Heading { level: HeadingLevel::H1 | HeadingLevel::H2, .. }) => {
                    heading = Some(String::new());
                }
                Event::End(TagEnd::Heading(HeadingLevel::H1 | HeadingLevel::H2)) => {
                    let text = heading.take().unwrap_or_default();
                    let number = text.split_whitespace().next().unwrap_or("").trim_end_matches('.');
                    if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.') {
                        flush(&mut by_number, current.take(), &mut out);
                        current = Some(number.to_owned());
                    } else {
                        out.push_str(&format!("\n\n#strong[#{}]\n\n", literal(&text)));
                    }
                }
                Event::Text(t) | Event::Code(t) if heading.is_some() => {
                    if let Some(h) = heading.as_mut() {
                        h.push_str(&t);
                    }
                }
                other => markup(&mut out, other),
            }
        }
        flush(&mut by_number, current, &mut out);
        Self { by_number, sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(markdown.as_bytes())) }
    }
}

fn flush(by_number: &mut BTreeMap<String, String>, number: Option<String>, out: &mut String) {
    if let Some(n) = number {
        let text = out.trim().to_owned();
        if !text.is_empty() {
            // A number given twice keeps both parts, in file order.
            let entry = by_number.entry(n).or_default();
            if !entry.is_empty() {
                entry.push_str("\n\n");
            }
            entry.push_str(&text);
        }
    }
    out.clear();
}

/// A Typst string literal holding `text` (inserted as text, never evaluated).
pub fn literal(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' | '\t' => s.push(' '),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn markup(out: &mut String, event: Event<'_>) {
    match event {
        Event::Text(t) => {
            out.push('#');
            out.push_str(&literal(&t));
        }
        Event::Code(t) => out.push_str(&format!("#raw({})", literal(&t))),
        Event::SoftBreak => out.push(' '),
        Event::HardBreak => out.push_str("#linebreak()"),
        Event::Start(Tag::Emphasis) => out.push_str("#emph["),
        Event::Start(Tag::Strong) => out.push_str("#strong["),
        Event::End(TagEnd::Emphasis | TagEnd::Strong) => out.push(']'),
        Event::Start(Tag::Heading { .. }) => out.push_str("\n\n#strong["),
        Event::End(TagEnd::Heading(_)) => out.push_str("]\n\n"),
        Event::Start(Tag::Item) => out.push_str("\n- "),
        Event::End(TagEnd::Paragraph) | Event::End(TagEnd::List(_)) => out.push_str("\n\n"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_split_by_numbered_headings_and_text_stays_text() {
        let md = "Preamble, ignored.\n\n## 2 Marketing status\n\nApproved in *two* markets.\n\n\
                  ## 16 Signal evaluation\n\n- one #set page(width: 1cm) \"quoted\"\n- two\n\n## Notes\n\nStill 16.";
        let s = HumanSections::parse(md);
        assert_eq!(s.numbers().collect::<Vec<_>>(), ["16", "2"]);
        let two = s.get("2").expect("section 2");
        assert!(two.contains("#emph[#\"two\"]"), "{two}");
        let sixteen = s.get("16").expect("section 16");
        assert!(sixteen.contains(r#"#"one #set page(width: 1cm) \"quoted\"""#), "{sixteen}");
        assert!(
            sixteen.contains("#strong[#\"Notes\"]"),
            "an unnumbered heading stays in its section: {sixteen}"
        );
        assert_eq!(s.get("3"), None);
        let twice = HumanSections::parse("## 2 A\n\none\n\n## 2 B\n\ntwo\n\n## 2024 update\n\nx");
        assert_eq!(twice.get("2").as_deref(), Some("#\"one\"\n\n#\"two\""));
        assert_eq!(twice.unused(), ["2024"]);
    }
}
