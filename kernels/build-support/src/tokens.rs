//! Just enough of C's lexical structure to read kernel declarations: comments and string
//! literals blanked out, identifiers/numbers and single punctuation characters as tokens.

/// `text` with comments and string literals blanked out (newlines kept, so lines still match).
pub fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            out.extend_from_slice(b"  ");
            i += 2;
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            if i < bytes.len() {
                out.extend_from_slice(b"  ");
                i += 2;
            }
        } else if c == b'"' || c == b'\'' {
            out.push(c);
            i += 1;
            while i < bytes.len() && bytes[i] != c && bytes[i] != b'\n' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    out.push(b' ');
                    i += 1;
                }
                out.push(b' ');
                i += 1;
            }
            if i < bytes.len() && bytes[i] == c {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// C-like tokens: identifiers/numbers, and single punctuation characters.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || c == '_' {
                    word.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(word);
        } else {
            tokens.push(c.to_string());
            chars.next();
        }
    }
    tokens
}

/// Whether `token` starts like a C identifier.
pub fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The tokens between the parenthesis at `tokens[open]` and its match, and the index after it.
pub fn balanced(tokens: &[String], open: usize) -> Result<(Vec<String>, usize), String> {
    if tokens.get(open).map(String::as_str) != Some("(") {
        return Err("expected `(`".into());
    }
    let mut depth = 0;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match t.as_str() {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return Ok((tokens[open + 1..j].to_vec(), j + 1));
                }
            }
            _ => {}
        }
    }
    Err("unbalanced parentheses (or a parameter list longer than 4000 characters)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(tokens: &[&str]) -> Vec<String> {
        tokens.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn comments_and_strings_are_blanked_keeping_lines() {
        let text = "a // b\nc /* d\ne */ f \"g // h\" 'i' \"j\\\"k\"\n";
        let stripped = strip_comments(text);
        assert_eq!(stripped.len(), text.len());
        assert_eq!(stripped.lines().count(), text.lines().count());
        assert_eq!(
            tokenize(&stripped),
            strings(&["a", "c", "f", "\"", "\"", "'", "'", "\"", "\""])
        );
        // An unterminated comment or string ends at the end of the text (or the line).
        assert_eq!(strip_comments("x /* y"), "x     ");
        assert_eq!(strip_comments("\"ab\ncd"), "\"  \ncd");
    }

    #[test]
    fn tokens_are_words_and_single_punctuation() {
        assert_eq!(
            tokenize("void __launch_bounds__(256) f(const float* __restrict__ x, int n)"),
            strings(&[
                "void",
                "__launch_bounds__",
                "(",
                "256",
                ")",
                "f",
                "(",
                "const",
                "float",
                "*",
                "__restrict__",
                "x",
                ",",
                "int",
                "n",
                ")"
            ])
        );
        assert!(tokenize(" \n\t").is_empty());
        assert!(is_identifier("_x1") && is_identifier("x"));
        assert!(!is_identifier("1x") && !is_identifier("(") && !is_identifier(""));
    }

    #[test]
    fn balanced_parentheses_are_matched() {
        let t = tokenize("f(a, (b), c) d");
        assert_eq!(
            balanced(&t, 1),
            Ok((strings(&["a", ",", "(", "b", ")", ",", "c"]), 10))
        );
        assert_eq!(t[10], "d");
        assert!(balanced(&t, 0).is_err(), "not at a parenthesis");
        assert!(balanced(&tokenize("f(a, (b)"), 1).is_err(), "unbalanced");
    }
}
