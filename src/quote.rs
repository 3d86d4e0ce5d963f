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

/// A message built from client input (a schema error quotes the value it rejects), cut in the
/// middle past `MAX` characters: its start and its end (where such messages say what is wrong)
/// are kept, and the full length is said.
pub fn shorten(message: String) -> String {
    const MAX: usize = 240;
    let chars = message.chars().count();
    if chars <= MAX {
        return message;
    }
    let head: String = message.chars().take(MAX / 2).collect();
    let tail: String = message.chars().skip(chars - MAX / 2).collect();
    format!("{head} … {tail} ({} bytes in all)", message.len())
}

#[cfg(test)]
mod tests {
    use super::{quote, shorten};

    #[test]
    fn long_messages_keep_their_start_and_end() {
        assert_eq!(shorten("short".into()), "short");
        let long = format!("\"{}\" is longer than 2048 characters", "a".repeat(100_000));
        let cut = shorten(long.clone());
        assert!(cut.len() < 300 && cut.starts_with("\"aaa") && cut.contains("is longer than 2048 characters"), "{cut}");
        assert!(cut.ends_with(&format!("({} bytes in all)", long.len())));
    }

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
