//! Text normalisation for matching: case, punctuation and spacing do not matter.

/// Lower-cases, turns every run of non-alphanumeric characters into one space, and trims.
/// `"  Burning-when passing URINE! "` -> `"burning when passing urine"`.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn case_punctuation_and_spacing_are_ignored() {
        assert_eq!(normalise("  Burning-when   passing URINE! "), "burning when passing urine");
        assert_eq!(
            normalise("Felt detached from body, lasting hours"),
            "felt detached from body lasting hours"
        );
        assert_eq!(normalise("Hämaturie\tMIKRO"), "hämaturie mikro");
        assert_eq!(normalise("...!"), "");
    }
}
