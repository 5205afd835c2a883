//! Text searches over split messages: whether a line holds a piece of text, told from its
//! template and its variables without joining them.
//!
//! A piece of text without delimiters lies, in any line that holds it, within one token: a
//! template token (so the template holds it) or a variable (so the variables do: they are
//! joined by a delimiter, and markers and escapes are delimiters too). So "the line holds p" is
//! exactly "its template or its variables hold p", and a dictionary of templates is tested once
//! per entry, not once per row.

use crate::DELIMITER;
use arrow::array::{Array, StringArray};

/// Text a line must hold: matched exactly, or ignoring ASCII case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Piece {
    pub text: String,
    pub caseless: bool,
}

/// The parts of `text` between delimiters: a line holding `text` holds each of them within one
/// token.
pub fn pieces(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_ascii() && DELIMITER[c as usize])
        .filter(|p| !p.is_empty())
}

/// At most this many pieces are tested (a mask of them is kept per template); leaving some out
/// only lets more lines through to the exact test.
const MAX_PIECES: usize = 64;

/// Lines that hold every one of some pieces of text.
#[derive(Debug)]
pub struct Search {
    pieces: Vec<Finder>,
}

#[derive(Debug)]
enum Finder {
    Exact(memchr::memmem::Finder<'static>),
    /// Lowercase needle, found ignoring ASCII case.
    Caseless(Vec<u8>),
}

impl Finder {
    fn len(&self) -> usize {
        match self {
            Finder::Exact(f) => f.needle().len(),
            Finder::Caseless(needle) => needle.len(),
        }
    }

    fn found_in(&self, hay: &[u8]) -> bool {
        self.starts_in(hay).next().is_some()
    }

    /// Where the piece starts in `hay`, in order.
    fn starts_in<'h>(&'h self, hay: &'h [u8]) -> Box<dyn Iterator<Item = usize> + 'h> {
        match self {
            Finder::Exact(f) => Box::new(f.find_iter(hay)),
            Finder::Caseless(needle) => {
                let (lo, up) = (needle[0], needle[0].to_ascii_uppercase());
                let end = (hay.len() + 1).saturating_sub(needle.len());
                Box::new(
                    memchr::memchr2_iter(lo, up, &hay[..end])
                        .filter(move |&at| hay[at..at + needle.len()].eq_ignore_ascii_case(needle)),
                )
            }
        }
    }
}

impl Search {
    /// A search for lines holding every piece of `pieces` (each cut by [`pieces`]); `None` if
    /// there is none, when every line may match.
    pub fn new<'a>(pieces: impl IntoIterator<Item = &'a Piece>) -> Option<Search> {
        let mut finders: Vec<(usize, Finder)> = Vec::new();
        for p in pieces {
            debug_assert!(p.text.bytes().all(|b| !DELIMITER[b as usize]));
            if p.text.is_empty() {
                continue;
            }
            let f = if p.caseless {
                Finder::Caseless(p.text.to_ascii_lowercase().into_bytes())
            } else {
                Finder::Exact(memchr::memmem::Finder::new(p.text.as_bytes()).into_owned())
            };
            finders.push((p.text.len(), f));
        }
        // Longer pieces are rarer: tested first, they rule lines out sooner.
        finders.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        finders.truncate(MAX_PIECES);
        (!finders.is_empty()).then(|| Search {
            pieces: finders.into_iter().map(|(_, f)| f).collect(),
        })
    }

    /// Which pieces `template` holds, one bit each.
    pub fn template_mask(&self, template: &str) -> u64 {
        self.pieces
            .iter()
            .enumerate()
            .filter(|(_, f)| f.found_in(template.as_bytes()))
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// The mask of every piece: a line holds them all where its template's mask and its
    /// variables' mask make this.
    pub fn all(&self) -> u64 {
        match self.pieces.len() {
            64 => u64::MAX,
            n => (1 << n) - 1,
        }
    }

    /// Which pieces each row of `vars` holds, one bit each. Each piece is looked for once in
    /// the whole column's text, not once per row: most rows do not hold it.
    pub fn vars_masks(&self, vars: &StringArray) -> Vec<u64> {
        let mut masks = vec![0u64; vars.len()];
        let offsets = vars.value_offsets();
        if masks.is_empty() {
            return masks;
        }
        // The text of these rows only (a slice of a column shares its buffer).
        let (first, end) = (offsets[0] as usize, offsets[vars.len()] as usize);
        let text = &vars.value_data()[first..end];
        for (i, f) in self.pieces.iter().enumerate() {
            let mut row = 0;
            for at in f.starts_in(text).map(|at| at + first) {
                while offsets[row + 1] as usize <= at {
                    row += 1;
                }
                // A match running into the next row's text is not in this row.
                if at + f.len() <= offsets[row + 1] as usize {
                    masks[row] |= 1 << i;
                }
            }
        }
        masks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split;
    use proptest::prelude::*;

    fn line_holds(line: &str, pieces: &[Piece]) -> bool {
        let (mut t, mut v) = (Vec::new(), Vec::new());
        split(line, &mut t, &mut v);
        let (t, v) = (String::from_utf8(t).unwrap(), String::from_utf8(v).unwrap());
        match Search::new(pieces) {
            None => true,
            Some(s) => {
                // The row's variables among others, as a batch holds them.
                let vars = StringArray::from(vec!["u-0 ERROR", v.as_str(), "12 x"]);
                s.template_mask(&t) | s.vars_masks(&vars)[1] == s.all()
            }
        }
    }

    fn piece(text: &str, caseless: bool) -> Piece {
        Piece {
            text: text.into(),
            caseless,
        }
    }

    #[test]
    fn pieces_are_cut_at_delimiters() {
        let cut: Vec<&str> = pieces("disk sda1: 98% (full)").collect();
        assert_eq!(cut, ["disk", "sda1", "98%", "full"]);
        assert_eq!(pieces(" ,;").count(), 0);
        assert_eq!(pieces("é=x").collect::<Vec<_>>(), ["é", "x"]);
    }

    #[test]
    fn pieces_are_found_in_templates_and_variables_alike() {
        let line = "ERROR disk sda1 full at 98% for user u-00123";
        for (text, caseless, holds) in [
            ("ERROR", false, true),
            ("error", false, false),
            ("error", true, true),
            ("sda1", false, true),
            ("da", false, true),
            ("u-0012", false, true),
            ("U-0012", true, true),
            ("98%", false, true),
            ("99", false, false),
            ("ful", false, true),
            ("fully", false, false),
        ] {
            assert_eq!(line_holds(line, &[piece(text, caseless)]), holds, "{text}");
        }
        assert!(line_holds(
            line,
            &[piece("ERROR", false), piece("u-00123", false)]
        ));
        assert!(!line_holds(
            line,
            &[piece("ERROR", false), piece("u-00124", false)]
        ));
    }

    #[test]
    fn a_slice_of_variables_is_searched_alone() {
        let all = StringArray::from(vec!["ERROR 1", "x2", "ERROR 3", "y4", "ERROR"]);
        let search = Search::new(&[piece("ERROR", false)]).unwrap();
        assert_eq!(search.vars_masks(&all.slice(1, 3)), [0, 1, 0]);
        assert_eq!(search.vars_masks(&all.slice(0, 0)), Vec::<u64>::new());
        // A match across two rows' text is in neither.
        let across = StringArray::from(vec!["ER", "ROR"]);
        assert_eq!(search.vars_masks(&across), [0, 0]);
    }

    proptest! {
        /// A line holds a piece exactly when its template or variables say it does.
        #[test]
        fn a_piece_is_held_exactly_when_the_line_holds_it(
            line in "[ a-fA-F0-9x=:/,.\\-_é\\x11\\x12]{0,40}",
            needle in "[a-fA-F0-9x.\\-_é]{1,4}",
            caseless in any::<bool>(),
        ) {
            let held = if caseless {
                line.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
            } else {
                line.contains(&needle)
            };
            prop_assert_eq!(line_holds(&line, &[piece(&needle, caseless)]), held);
        }
    }
}
