//! Transcript lines cut into sentences, with a normalised word list for matching.

/// A sentence of one transcript line.
#[derive(Debug, Clone)]
pub struct Sentence {
    /// Index of the line it belongs to.
    pub line: usize,
    pub text: String,
    /// Lowercase words, punctuation removed, contractions expanded ("I'll" → "i will").
    pub words: Vec<String>,
    pub question: bool,
}

impl Sentence {
    pub fn words(&self) -> Vec<&str> {
        self.words.iter().map(String::as_str).collect()
    }
}

/// Splits at `.`, `?` and `!` followed by a space or the end, except inside numbers ("2.4").
pub fn split(line: usize, text: &str) -> Vec<Sentence> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..chars.len() {
        let c = chars[i];
        let at_end = i + 1 == chars.len() || chars[i + 1].is_whitespace();
        if matches!(c, '.' | '?' | '!') && at_end {
            push(&mut out, line, &chars[start..=i]);
            start = i + 1;
        }
    }
    if start < chars.len() {
        push(&mut out, line, &chars[start..]);
    }
    out
}

fn push(out: &mut Vec<Sentence>, line: usize, chars: &[char]) {
    let text: String = chars.iter().collect::<String>().trim().to_owned();
    if text.is_empty() {
        return;
    }
    let question = text.ends_with('?');
    let words = normalise(&text);
    if !words.is_empty() {
        out.push(Sentence {
            line,
            text,
            words,
            question,
        });
    }
}

pub fn normalise(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for raw in text.split_whitespace() {
        let lower = raw.to_lowercase().replace('’', "'");
        let trimmed = lower.trim_matches(|c: char| !c.is_alphanumeric() && c != '%');
        if trimmed.is_empty() {
            continue;
        }
        let expanded: &[&str] = match trimmed {
            "i'll" => &["i", "will"],
            "i'm" => &["i", "am"],
            "i've" => &["i", "have"],
            "i'd" => &["i", "would"],
            "we'll" => &["we", "will"],
            "you'll" => &["you", "will"],
            "he'll" => &["he", "will"],
            "she'll" => &["she", "will"],
            "they'll" => &["they", "will"],
            "let's" => &["let", "us"],
            "won't" => &["will", "not"],
            "can't" => &["can", "not"],
            "don't" => &["do", "not"],
            "didn't" => &["did", "not"],
            _ => &[],
        };
        if expanded.is_empty() {
            words.push(trimmed.trim_end_matches("'s").replace('\'', ""));
        } else {
            words.extend(expanded.iter().map(|w| (*w).to_owned()));
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_ends_but_not_inside_numbers() {
        let s = split(
            3,
            "Version 2.4 ships Monday. Did anything fail? I'll fix it!",
        );
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Version 2.4 ships Monday.",
                "Did anything fail?",
                "I'll fix it!"
            ]
        );
        assert!(s[1].question && !s[0].question);
        assert_eq!(s[2].words, ["i", "will", "fix", "it"]);
        assert_eq!(s[0].words, ["version", "2.4", "ships", "monday"]);
        assert!(s.iter().all(|s| s.line == 3));
        assert_eq!(
            normalise("Maria's template, 0.6%."),
            ["maria", "template", "0.6%"]
        );
    }
}
