//! Local agreement for partial hypotheses: a word is committed once two consecutive decodes of the
//! growing utterance agree on it and on everything before it. Committed words never change in
//! later partials, so captions do not flicker; the rest of the newest hypothesis is shown as
//! tentative.

use parley_shared::words::normalize_word;

#[derive(Debug, Default, Clone)]
pub struct LocalAgreement {
    committed: Vec<String>,
    previous: Vec<String>,
}

/// A partial caption: `committed` is stable, `tentative` may still change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialText {
    pub committed: String,
    pub tentative: String,
}

impl PartialText {
    pub fn full(&self) -> String {
        match (self.committed.is_empty(), self.tentative.is_empty()) {
            (true, _) => self.tentative.clone(),
            (false, true) => self.committed.clone(),
            (false, false) => format!("{} {}", self.committed, self.tentative),
        }
    }
}

impl LocalAgreement {
    /// The words committed so far.
    pub fn committed(&self) -> String {
        self.committed.join(" ")
    }

    /// Takes the newest hypothesis for the whole utterance so far.
    pub fn update(&mut self, hypothesis: &str) -> PartialText {
        let words: Vec<String> = hypothesis.split_whitespace().map(str::to_owned).collect();
        let same = |a: &str, b: &str| normalize_word(a) == normalize_word(b);
        // The new hypothesis must agree with what is committed; where it does not, the committed
        // words stay and only the part after them counts.
        let consistent = self.committed.len() <= words.len()
            && self.committed.iter().zip(&words).all(|(c, w)| same(c, w));
        if consistent {
            let mut n = self.committed.len();
            while n < words.len() && n < self.previous.len() && same(&words[n], &self.previous[n]) {
                n += 1;
            }
            // Committed words keep the spelling they were first shown with.
            let agreed = words[self.committed.len()..n].to_vec();
            self.committed.extend(agreed);
        }
        let tentative = if consistent {
            words[self.committed.len()..].to_vec()
        } else {
            Vec::new()
        };
        self.previous = words;
        PartialText {
            committed: self.committed.join(" "),
            tentative: tentative.join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_the_agreed_prefix_and_never_takes_it_back() {
        let mut la = LocalAgreement::default();
        let p1 = la.update("I finished the");
        assert_eq!(p1.committed, "");
        assert_eq!(p1.tentative, "I finished the");
        let p2 = la.update("I finished the billing");
        assert_eq!(p2.committed, "I finished the");
        assert_eq!(p2.tentative, "billing");
        // A later decode that rewrites a committed word cannot change it.
        let p3 = la.update("I finish the billing migration");
        assert_eq!(p3.committed, "I finished the");
        // This one agrees with the previous on "billing migration", after the committed words.
        let p4 = la.update("I finished the billing migration script.");
        assert_eq!(p4.committed, "I finished the billing migration");
        let p5 = la.update("I finished, the billing migration script. It");
        assert_eq!(p5.committed, "I finished the billing migration script.");
        assert_eq!(p5.full(), "I finished the billing migration script. It");
    }
}
