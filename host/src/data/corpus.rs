//! The built-in corpus: English-like text generated at start-up from a seeded probabilistic
//! grammar, so that a run with no data of its own still has text with structure to learn —
//! words, agreement between a subject and its verb, punctuation, recurring phrases — and a
//! model's loss can fall well below the uniform baseline (ln 256 nats per byte).
//! The same seed gives the same text on every machine.

/// About `bytes` bytes (whole sentences) of grammar-generated text.
pub fn generate(seed: u64, bytes: usize) -> String {
    let mut g = Grammar { state: seed ^ 0x5DEE_CE66_D1CE_4E5B, out: String::with_capacity(bytes + 256) };
    while g.out.len() < bytes {
        g.paragraph();
    }
    g.out
}

const NAMES: &[&str] = &["the miner", "the validator", "a neuron", "the chain", "the subnet", "an old model"];
const NOUNS: &[(&str, &str)] = &[
    ("cat", "cats"),
    ("dog", "dogs"),
    ("bird", "birds"),
    ("child", "children"),
    ("teacher", "teachers"),
    ("river", "rivers"),
    ("house", "houses"),
    ("garden", "gardens"),
    ("letter", "letters"),
    ("machine", "machines"),
];
const ADJECTIVES: &[&str] = &["small", "old", "quiet", "bright", "green", "heavy", "happy", "strange"];
const VERBS: &[(&str, &str)] = &[
    ("sees", "see"),
    ("finds", "find"),
    ("follows", "follow"),
    ("likes", "like"),
    ("carries", "carry"),
    ("watches", "watch"),
    ("trains", "train"),
    ("scores", "score"),
];
const INTRANSITIVE: &[(&str, &str)] = &[("sleeps", "sleep"), ("waits", "wait"), ("sings", "sing"), ("runs", "run")];
const ADVERBS: &[&str] = &["slowly", "quietly", "again", "every day", "at night"];
const PLACES: &[&str] = &["near the river", "in the garden", "on the hill", "by the old house", "under the bridge"];

struct Grammar {
    state: u64,
    out: String,
}

impl Grammar {
    // Its own splitmix64, not a crate's: this exact stream is the built-in corpus, which tests' thresholds rely on.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A noun phrase; returns whether it is plural.
    fn noun_phrase(&mut self) -> (String, bool) {
        if self.chance(20) {
            return (self.pick(NAMES).to_string(), false);
        }
        let plural = self.chance(35);
        let (one, many) = self.pick(NOUNS);
        let det =
            if plural { self.pick(&["the", "some", "two", "many"]) } else { self.pick(&["the", "a", "every", "that"]) };
        let adj = if self.chance(40) { format!("{} ", self.pick(ADJECTIVES)) } else { String::new() };
        let det = if det == "a" && adj.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { det };
        (format!("{det} {adj}{}", if plural { many } else { one }), plural)
    }

    fn sentence(&mut self) -> String {
        let (subject, plural) = self.noun_phrase();
        let mut s = subject;
        if self.chance(55) {
            let (one, many) = self.pick(VERBS);
            let (object, _) = self.noun_phrase();
            s = format!("{s} {} {object}", if plural { many } else { one });
        } else {
            let (one, many) = self.pick(INTRANSITIVE);
            s = format!("{s} {}", if plural { many } else { one });
        }
        if self.chance(30) {
            s = format!("{s} {}", self.pick(PLACES));
        }
        if self.chance(25) {
            s = format!("{s} {}", self.pick(ADVERBS));
        }
        if self.chance(15) {
            let (other, _) = self.noun_phrase();
            s = format!("{s}, and {other} {}", if self.chance(50) { "knows it" } else { "does not" });
        }
        let mut chars = s.chars();
        let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or(' ');
        format!("{first}{}{}", chars.as_str(), if self.chance(10) { "!" } else { "." })
    }

    fn paragraph(&mut self) {
        let n = 2 + self.below(4);
        for i in 0..n {
            if i > 0 {
                self.out.push(' ');
            }
            let s = self.sentence();
            self.out.push_str(&s);
        }
        self.out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_one_text_and_it_is_far_from_uniform() {
        let a = generate(3, 20_000);
        assert_eq!(a, generate(3, 20_000));
        assert_ne!(a, generate(4, 20_000));
        assert!(a.len() >= 20_000 && a.len() < 21_000);
        assert!(a.is_ascii());
        // A bigram model alone reaches the bigram conditional entropy: far under the uniform
        // ln 256 = 5.55 nats per byte, so a transformer's loss has room to fall.
        let b = a.as_bytes();
        let mut pair = vec![0f64; 256 * 256];
        let mut first = vec![0f64; 256];
        for w in b.windows(2) {
            pair[w[0] as usize * 256 + w[1] as usize] += 1.0;
            first[w[0] as usize] += 1.0;
        }
        let n = (b.len() - 1) as f64;
        let h: f64 =
            (0..256 * 256).filter(|&i| pair[i] > 0.0).map(|i| -pair[i] / n * (pair[i] / first[i / 256]).ln()).sum();
        assert!(h < 2.5, "bigram entropy {h} nats per byte");
        assert!(a.contains("The miner") || a.contains("the miner"));
    }
}
