//! Collects every error of a network definition, so that one compilation reports them all.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

#[derive(Default)]
pub struct Errors {
    list: Vec<syn::Error>,
}

impl Errors {
    /// Records an error pointing at `tokens`.
    pub fn at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.list.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an already built error.
    pub fn push(&mut self, error: syn::Error) {
        self.list.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// One `compile_error!` per recorded error, each at its own span.
    pub fn to_compile_errors(&self) -> TokenStream {
        self.list.iter().map(syn::Error::to_compile_error).collect()
    }
}

/// `" (did you mean `relu`?)"` when one of `known` is a likely typo of `name` (at most a third
/// of its letters off, ignoring case), else an empty string.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let name_l = name.to_lowercase();
    let best = known
        .into_iter()
        .map(|k| (edit_distance(&name_l, &k.to_lowercase()), k))
        .filter(|&(d, k)| d > 0 || k != name)
        .min_by_key(|&(d, _)| d);
    match best {
        Some((d, k)) if d <= (name.chars().count() / 3).max(1) => format!(" (did you mean `{k}`?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance, with a swap of two neighbours counted as one edit (`Rleu` -> `Relu`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let layers = ["Linear", "Relu", "Tanh", "Conv2d"];
        assert_eq!(did_you_mean("Rleu", layers), " (did you mean `Relu`?)");
        assert_eq!(did_you_mean("Lienar", layers), " (did you mean `Linear`?)");
        assert_eq!(did_you_mean("linear", layers), " (did you mean `Linear`?)");
        assert_eq!(did_you_mean("Dropout", layers), "");
        assert_eq!(
            did_you_mean("softmax_crossentropy", ["softmax_cross_entropy", "mse"]),
            " (did you mean `softmax_cross_entropy`?)"
        );
    }
}
