//! Cleaning what Whisper returns (non-speech annotations, stray spaces). How words compare is
//! `parley_shared::words`.

/// Removes bracketed non-speech annotations Whisper emits for noise ("[BLANK_AUDIO]", "(music)",
/// "*cough*") and collapses white space.
pub fn clean_transcript(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth: Option<char> = None;
    for c in text.chars() {
        match (depth, c) {
            (None, '[') => depth = Some(']'),
            (None, '(') => depth = Some(')'),
            (None, '*') => depth = Some('*'),
            (Some(close), c) if c == close => depth = None,
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    // A lone punctuation mark or dash is not speech.
    if collapsed.chars().any(char::is_alphanumeric) {
        collapsed
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_annotations() {
        assert_eq!(clean_transcript(" [BLANK_AUDIO] "), "");
        assert_eq!(
            clean_transcript("(upbeat music) Hello  there *cough* friend."),
            "Hello there friend."
        );
        assert_eq!(clean_transcript(" - "), "");
    }
}
