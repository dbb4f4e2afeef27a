//! Token search for one decode: beam search (greedy at width 1) over what the decoder says comes
//! next after a fixed head of forced tokens. Sans-IO: the decoder sits behind [`Scorer`], so
//! tests drive the search with a table of next-token scores.
//!
//! The beams are evaluated one after another, not as one batch: the decoder keeps one sequence
//! in its cache, and a beam that differs from the one evaluated before it is fed again from where
//! they part. Two bounds keep that cheap without changing what a beam of this width finds on
//! clear speech: candidates scoring more than `margin` below the best are dropped (a confident
//! step keeps one beam), and beams must agree with the best one on every token older than
//! `lookback` steps (no beam drags a long private history).

/// What the decoder predicts after a sequence of tokens.
pub trait Scorer {
    type Error;
    /// Logits over the vocabulary for the token after `tokens` (which follow the head).
    fn logits(&mut self, tokens: &[i32]) -> Result<&[f32], Self::Error>;
}

/// Which tokens may be produced.
#[derive(Debug, Clone)]
pub struct Rules {
    /// By token id, up to and including `eot`: text tokens that may appear (non-speech symbols
    /// and everything after the end-of-text token are not).
    pub allowed: Vec<bool>,
    pub eot: i32,
    /// The lone space token, which may not start a transcript (nor may `eot`).
    pub blank: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    /// Live beams; 1 is greedy.
    pub beam: usize,
    /// Most tokens produced: a decoder caught in a loop stops here.
    pub max_tokens: usize,
    /// Candidates this far (natural log) below the step's best are not kept.
    pub margin: f32,
    /// Beams agree with the best on every token older than this many steps.
    pub lookback: usize,
    /// The text so far is empty: the first token may be neither the end nor a lone space.
    pub fresh: bool,
}

/// The best sequence found, without the end-of-text token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub tokens: Vec<i32>,
    /// Sum of the tokens' log probabilities.
    pub logprob: f32,
    /// Scorer calls made.
    pub evals: usize,
}

#[derive(Debug, Clone)]
struct Hyp {
    tokens: Vec<i32>,
    logprob: f32,
}

/// Searches for the most likely continuation of the head.
pub fn search<S: Scorer>(
    scorer: &mut S,
    rules: &Rules,
    config: &SearchConfig,
) -> Result<Found, S::Error> {
    let width = config.beam.max(1);
    let mut live = vec![Hyp {
        tokens: Vec::new(),
        logprob: 0.0,
    }];
    let mut finished: Vec<Hyp> = Vec::new();
    let mut top = Vec::with_capacity(width + 1);
    let mut evals = 0;
    for step in 0..config.max_tokens {
        // Siblings next to each other: each is then fed a single token after the one before.
        live.sort_by(|a, b| a.tokens.cmp(&b.tokens));
        let mut candidates: Vec<(usize, i32, f32)> = Vec::with_capacity(live.len() * (width + 1));
        for (i, hyp) in live.iter().enumerate() {
            let logits = scorer.logits(&hyp.tokens)?;
            evals += 1;
            top_log_probs(
                logits,
                rules,
                config.fresh && step == 0,
                width + 1,
                &mut top,
            );
            candidates.extend(top.iter().map(|&(t, lp)| (i, t, hyp.logprob + lp)));
        }
        candidates.sort_by(|a, b| b.2.total_cmp(&a.2));
        let best = candidates.first().map_or(f32::NEG_INFINITY, |c| c.2);
        let mut next: Vec<Hyp> = Vec::with_capacity(width);
        for &(parent, token, logprob) in &candidates {
            if logprob < best - config.margin {
                break;
            }
            let tokens = &live[parent].tokens;
            if token == rules.eot {
                if finished.len() < width {
                    finished.push(Hyp {
                        tokens: tokens.clone(),
                        logprob,
                    });
                }
                continue;
            }
            let mut extended = Vec::with_capacity(tokens.len() + 1);
            extended.extend_from_slice(tokens);
            extended.push(token);
            next.push(Hyp {
                tokens: extended,
                logprob,
            });
            if next.len() == width {
                break;
            }
        }
        if let Some(lead) = next.first().map(|h| h.tokens.clone())
            && config.lookback > 0
            && step >= config.lookback
        {
            let settled = step - config.lookback + 1;
            next.retain(|h| h.tokens[..settled] == lead[..settled]);
        }
        live = next;
        if live.is_empty() || finished.len() >= width {
            break;
        }
        // A greedy decoder that has repeated itself this much does not find its way out: what
        // it would write until the token limit is cut off below anyway.
        if width == 1 && looping(&live[0].tokens) {
            break;
        }
    }
    // A search cut short by the token limit ends with the beams it had.
    let cut_short = finished.is_empty();
    if cut_short {
        finished = live;
    }
    let mut best = finished
        .into_iter()
        .max_by(|a, b| normalised(a).total_cmp(&normalised(b)))
        .unwrap_or(Hyp {
            tokens: Vec::new(),
            logprob: 0.0,
        });
    if cut_short {
        // A text that never ends is a decoder caught in a loop (greedy search is prone to it):
        // keep its words up to the first repeat.
        let keep = loop_start(&best.tokens);
        if keep < best.tokens.len() {
            best.logprob *= keep as f32 / best.tokens.len() as f32;
            best.tokens.truncate(keep);
        }
    }
    Ok(Found {
        tokens: best.tokens,
        logprob: best.logprob,
        evals,
    })
}

/// Where a sequence's repeating tail starts its second copy: the shortest prefix after which the
/// rest only repeats the block before it (at least one full repeat); the whole length when the
/// tail does not repeat.
fn loop_start(tokens: &[i32]) -> usize {
    (1..=tokens.len() / 2)
        .filter_map(|period| {
            let tail = periodic_tail(tokens, period);
            (tail >= 2 * period).then(|| tokens.len() - tail + period)
        })
        .min()
        .unwrap_or(tokens.len())
}

/// A sequence whose tail is one block of tokens three times over, and at least
/// [`LOOP_TOKENS`] long: a word or phrase said twice in a row is speech, a third time in a
/// greedy decode is nearly always a loop (one that costs a decoder pass per token until the
/// limit).
fn looping(tokens: &[i32]) -> bool {
    (1..=tokens.len() / 3).any(|period| {
        let tail = periodic_tail(tokens, period);
        tail >= (3 * period).max(LOOP_TOKENS)
    })
}

const LOOP_TOKENS: usize = 8;

/// How many tokens at the end of the sequence repeat with this period: the block
/// `tokens[n - tail..n - tail + period]` and what follows it, each token equal to the one a
/// period before.
fn periodic_tail(tokens: &[i32], period: usize) -> usize {
    let n = tokens.len();
    let mut from = n;
    while from > period && tokens[from - 1] == tokens[from - 1 - period] {
        from -= 1;
    }
    n - (from - period)
}

/// Whisper's ranking of finished beams: mean log probability per token.
fn normalised(h: &Hyp) -> f32 {
    h.logprob / h.tokens.len().max(1) as f32
}

/// The `k` allowed tokens with the highest log probability (log-softmax over allowed tokens),
/// best first.
fn top_log_probs(logits: &[f32], rules: &Rules, first: bool, k: usize, out: &mut Vec<(i32, f32)>) {
    out.clear();
    let allowed = |id: usize| {
        rules.allowed.get(id).copied().unwrap_or(false)
            && !(first && (id as i32 == rules.eot || Some(id as i32) == rules.blank))
    };
    let n = logits.len().min(rules.allowed.len());
    let mut max = f32::NEG_INFINITY;
    for (id, &l) in logits[..n].iter().enumerate() {
        if l > max && allowed(id) {
            max = l;
        }
    }
    if max == f32::NEG_INFINITY {
        return;
    }
    let mut sum = 0.0f32;
    for (id, &l) in logits[..n].iter().enumerate() {
        if allowed(id) {
            sum += (l - max).exp();
            if out.len() < k || l > out[out.len() - 1].1 {
                let at = out.partition_point(|&(_, x)| x >= l);
                out.insert(at, (id as i32, l));
                out.truncate(k);
            }
        }
    }
    let log_sum = max + sum.ln();
    for entry in out.iter_mut() {
        entry.1 -= log_sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const EOT: i32 = 9;
    const VOCAB: usize = 10;

    /// Next-token probabilities by prefix; anything unlisted ends the text.
    struct Table {
        next: HashMap<Vec<i32>, Vec<(i32, f32)>>,
        logits: Vec<f32>,
        calls: usize,
    }

    /// A prefix and its next tokens with their probabilities.
    type Entry<'a> = (&'a [i32], &'a [(i32, f32)]);

    impl Table {
        fn new(entries: &[Entry<'_>]) -> Self {
            Self {
                next: entries
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect(),
                logits: vec![0.0; VOCAB],
                calls: 0,
            }
        }
    }

    impl Scorer for Table {
        type Error = std::convert::Infallible;
        fn logits(&mut self, tokens: &[i32]) -> Result<&[f32], Self::Error> {
            self.calls += 1;
            self.logits.fill(-30.0);
            match self.next.get(tokens) {
                Some(probs) => {
                    for &(t, p) in probs {
                        self.logits[t as usize] = p.ln();
                    }
                }
                None => self.logits[EOT as usize] = 0.0,
            }
            Ok(&self.logits)
        }
    }

    fn rules() -> Rules {
        let mut allowed = vec![true; VOCAB];
        allowed[7] = false; // a non-speech symbol
        Rules {
            allowed,
            eot: EOT,
            blank: Some(8),
        }
    }

    fn config(beam: usize) -> SearchConfig {
        SearchConfig {
            beam,
            max_tokens: 20,
            margin: f32::INFINITY,
            lookback: 0,
            fresh: true,
        }
    }

    /// Greedy takes 1 (0.6) and is then unsure; the beam finds 2 followed by a sure token.
    fn garden_path() -> Table {
        Table::new(&[
            (&[], &[(1, 0.6), (2, 0.4)]),
            (&[1], &[(3, 0.3), (4, 0.3), (5, 0.4)]),
            (&[2], &[(6, 0.99)]),
        ])
    }

    #[test]
    fn greedy_follows_the_likeliest_token_and_beam_search_finds_the_likeliest_sequence() {
        let found = search(&mut garden_path(), &rules(), &config(1)).expect("search");
        assert_eq!(found.tokens, vec![1, 5]);
        let found = search(&mut garden_path(), &rules(), &config(3)).expect("search");
        assert_eq!(found.tokens, vec![2, 6]);
        // Log-softmax over what the table lists: 6 is the only candidate after 2, so it is free.
        assert!(
            (found.logprob - 0.4f32.ln()).abs() < 1e-3,
            "{}",
            found.logprob
        );
    }

    #[test]
    fn a_tight_margin_keeps_only_near_ties_and_saves_evaluations() {
        let mut wide = garden_path();
        search(&mut wide, &rules(), &config(3)).expect("search");
        let mut narrow = garden_path();
        let found = search(
            &mut narrow,
            &rules(),
            &SearchConfig {
                margin: 0.1,
                ..config(3)
            },
        )
        .expect("search");
        // 0.6 against 0.4 is a gap of 0.41: the second token is dropped at once.
        assert_eq!(found.tokens, vec![1, 5]);
        assert!(narrow.calls < wide.calls);
    }

    #[test]
    fn beams_must_agree_beyond_the_lookback() {
        // Two readings part at the first token; the second proves the likelier two tokens on.
        let table = || {
            Table::new(&[
                (&[], &[(1, 0.5), (2, 0.5)]),
                (&[1], &[(3, 1.0)]),
                (&[2], &[(3, 1.0)]),
                (&[1, 3], &[(4, 0.5), (5, 0.5)]),
                (&[2, 3], &[(5, 1.0)]),
            ])
        };
        let found = search(&mut table(), &rules(), &config(2)).expect("search");
        assert_eq!(found.tokens, vec![2, 3, 5]);
        let bounded = SearchConfig {
            lookback: 1,
            ..config(2)
        };
        let found = search(&mut table(), &rules(), &bounded).expect("search");
        assert_eq!(
            found.tokens[..2],
            [1, 3],
            "the leader's first token is settled"
        );
    }

    #[test]
    fn suppressed_tokens_never_appear_and_the_text_cannot_start_empty() {
        let mut table = Table::new(&[
            (&[], &[(EOT, 0.5), (8, 0.3), (7, 0.15), (1, 0.05)]),
            (&[1], &[(7, 0.9), (2, 0.1)]),
        ]);
        let found = search(&mut table, &rules(), &config(2)).expect("search");
        assert_eq!(found.tokens, vec![1, 2]);
    }

    #[test]
    fn a_looping_tail_is_cut_after_its_first_copy() {
        assert_eq!(loop_start(&[1, 2, 3, 4, 5]), 5);
        assert_eq!(loop_start(&[1, 2, 3, 4, 2, 3, 4, 2, 3]), 4);
        assert_eq!(loop_start(&[1, 7, 7, 7, 7]), 2);
        assert_eq!(loop_start(&[5, 6, 5, 6]), 2);
        // One word said twice is not yet a loop's tail unless the text ends in it.
        assert_eq!(loop_start(&[1, 2, 2, 3]), 4);
    }

    #[test]
    fn a_loop_is_a_block_three_times_over_and_long_enough() {
        assert!(!looping(&[1, 2, 1, 2]));
        assert!(!looping(&[1, 2, 1, 2, 1, 2]), "shorter than LOOP_TOKENS");
        assert!(looping(&[9, 1, 2, 1, 2, 1, 2, 1, 2]));
        assert!(looping(&[9, 7, 7, 7, 7, 7, 7, 7, 7]));
        assert!(!looping(&[9, 7, 7, 7, 7, 7, 7, 7, 8]));
        assert!(looping(&[1, 2, 3, 1, 2, 3, 1, 2, 3]));
        assert!(!looping(&[1, 2, 3, 4, 1, 2, 3, 4]), "twice is not a loop");
    }

    /// A search over a decoder that always says token 4 and never ends.
    fn search_a_loop(config: &SearchConfig) -> Found {
        struct Loop(Vec<f32>);
        impl Scorer for Loop {
            type Error = std::convert::Infallible;
            fn logits(&mut self, _: &[i32]) -> Result<&[f32], Self::Error> {
                Ok(&self.0)
            }
        }
        let mut logits = vec![-30.0; VOCAB];
        logits[4] = 0.0;
        search(&mut Loop(logits), &rules(), config).expect("search")
    }

    #[test]
    fn a_greedy_search_stops_when_it_loops() {
        let found = search_a_loop(&SearchConfig {
            max_tokens: 100,
            ..config(1)
        });
        assert_eq!(found.tokens, vec![4]);
        assert_eq!(
            found.evals, LOOP_TOKENS,
            "stopped as soon as the loop showed"
        );
    }

    #[test]
    fn a_decoder_caught_in_a_loop_stops_at_the_token_limit() {
        let found = search_a_loop(&SearchConfig {
            max_tokens: 6,
            ..config(2)
        });
        // Six of the same token and no end: the loop is cut to its first copy.
        assert_eq!(found.tokens, vec![4]);
    }
}
