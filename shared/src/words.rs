//! How words compare: the one normalised form the transcriber uses to tell whether two decodes
//! agree and the scoring uses to count word errors, so both judge words alike.

/// Lowercase, punctuation stripped except inside numbers and words ("4,200" -> "4200", "don't").
pub fn normalize_word(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::with_capacity(word.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = i > 0
            && i + 1 < chars.len()
            && chars[i - 1].is_ascii_digit()
            && chars[i + 1].is_ascii_digit();
        let inside_word = i > 0
            && i + 1 < chars.len()
            && chars[i - 1].is_alphanumeric()
            && chars[i + 1].is_alphanumeric();
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if c == '.' && between_digits {
            out.push('.');
        } else if c == '\'' && inside_word {
            out.push('\'');
        } else if c == '%' {
            out.push_str(" percent");
        }
        // Other punctuation (including thousands separators) is dropped.
    }
    out
}

/// Splits text into normalised words ("stand-up" -> "stand", "up").
pub fn normalized_words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '-' || c == '—' || c == '/')
        .flat_map(|w| {
            normalize_word(w)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_numbers_and_punctuation() {
        assert_eq!(
            normalized_words("Moved 4,200 accounts. Version 2.4, 2% up; stand-up don't!"),
            vec![
                "moved", "4200", "accounts", "version", "2.4", "2", "percent", "up", "stand", "up",
                "don't"
            ]
        );
    }
}
