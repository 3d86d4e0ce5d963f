//! Echoing client input safely: errors and log lines quote a short, escaped prefix, never all
//! of what a client sent.

/// What an error or a log line may echo of client input: at most 64 characters, escaped, and
/// the full length when it was cut.
pub fn quote(input: &str) -> String {
    const SHOWN: usize = 64;
    match input.char_indices().nth(SHOWN) {
        None => format!("{input:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes in all)", &input[..cut], input.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("team-a"), "\"team-a\"");
        assert_eq!(quote("a\nb\u{1b}"), "\"a\\nb\\u{1b}\"");
        let long = "x".repeat(60_000);
        let quoted = quote(&long);
        assert!(quoted.len() < 100 && quoted.ends_with("(60000 bytes in all)"), "{quoted}");
        let wide = "é".repeat(100);
        assert!(quote(&wide).contains("(200 bytes in all)"));
    }
}
