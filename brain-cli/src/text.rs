//! Names in messages: a name can be 64 KiB long, and an error that repeats
//! it whole floods the terminal. The command's messages and the Python
//! package's cut long names the same way.

/// Names longer than this many characters are cut in messages.
pub const NAME_SHOWN: usize = 100;

/// The first [`NAME_SHOWN`] characters of `name`, when it is longer.
fn head(name: &str) -> Option<&str> {
    let (end, _) = name.char_indices().nth(NAME_SHOWN)?;
    Some(&name[..end])
}

/// `name` quoted with escapes (as `{:?}` quotes it); a long name is cut,
/// with its length: `"aaaa…" (65536 bytes)`.
pub fn quoted(name: &str) -> String {
    match head(name) {
        None => format!("{name:?}"),
        Some(head) => {
            let head = format!("{head:?}");
            format!("{}…\" ({} bytes)", &head[..head.len() - 1], name.len())
        }
    }
}

/// `name` as it is; a long name is cut, with its length: `aaaa… (65536 bytes)`.
pub fn plain(name: &str) -> String {
    match head(name) {
        None => name.to_owned(),
        Some(head) => format!("{head}… ({} bytes)", name.len()),
    }
}

/// `text` with each long name of `names`, quoted or plain, cut as
/// [`quoted`] and [`plain`] cut it.
pub fn shorten<'a>(text: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    let mut long: Vec<&str> = names
        .into_iter()
        .filter(|name| head(name).is_some())
        .collect();
    // A long name can contain a shorter one: replace the longest first.
    long.sort_by_key(|name| std::cmp::Reverse(name.len()));
    long.dedup();
    let mut text = text.to_owned();
    for name in long {
        let debug = format!("{name:?}");
        if text.contains(&debug) {
            text = text.replace(&debug, &quoted(name));
        }
        if text.contains(name) {
            text = text.replace(name, &plain(name));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_stay_whole() {
        assert_eq!(quoted("sales"), "\"sales\"");
        assert_eq!(quoted("tab\there"), "\"tab\\there\"");
        let exact = "x".repeat(NAME_SHOWN);
        assert_eq!(quoted(&exact), format!("\"{exact}\""));
        assert_eq!(plain(&exact), exact);
        assert_eq!(
            shorten("no object named \"a\"", ["a"]),
            "no object named \"a\""
        );
    }

    #[test]
    fn long_names_are_cut_with_their_length() {
        let long = "n".repeat(65_536);
        let shown = quoted(&long);
        assert_eq!(
            shown,
            format!("\"{}…\" (65536 bytes)", "n".repeat(NAME_SHOWN))
        );
        // Characters, not bytes: a cut never splits one.
        let wide = "名".repeat(200);
        assert_eq!(
            plain(&wide),
            format!("{}… (600 bytes)", "名".repeat(NAME_SHOWN))
        );
        // Escapes count once the name is quoted: the cut is of the name itself.
        let tabs = "\t".repeat(150);
        assert_eq!(
            quoted(&tabs),
            format!("\"{}…\" (150 bytes)", "\\t".repeat(NAME_SHOWN))
        );
    }

    #[test]
    fn shorten_finds_quoted_and_plain_names() {
        let long = "n".repeat(5_000);
        let text =
            format!("no object named {long:?} in namespace {long:?}; list with `brain ls {long}`");
        let short = shorten(&text, [long.as_str(), "other"]);
        assert!(short.len() < 600, "{short}");
        assert_eq!(short.matches("(5000 bytes)").count(), 3, "{short}");
        assert!(short.starts_with("no object named \"nnn"), "{short}");
        assert!(short.contains("`brain ls nnn"), "{short}");
    }
}
