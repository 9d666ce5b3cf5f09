//! The `.npy` header: a Python dict literal (`{'descr': '|u1', 'fortran_order': False,
//! 'shape': (..)}`), parsed by a small recursive parser with a depth limit and checked
//! integers, so that a corrupt header is an error, never a panic or a huge allocation.

/// The three keys of a `.npy` header.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Header {
    descr: Lit,
    pub(super) fortran_order: bool,
    pub(super) shape: Vec<u64>,
}

impl Header {
    /// Whether the dtype is uint8 (`u1` or `B`, any byte order).
    pub(super) fn is_uint8(&self) -> bool {
        match &self.descr {
            Lit::Str(s) => {
                let s = s.trim_start_matches(['<', '>', '|', '=']);
                s == "u1" || s == "B"
            }
            _ => false,
        }
    }

    /// An integer dtype: `(signed, bytes, big_endian)` (`i1`..`i8`, `u1`..`u8`, `b`, `B`).
    pub(super) fn integer(&self) -> Option<(bool, usize, bool)> {
        let Lit::Str(s) = &self.descr else {
            return None;
        };
        let big = s.starts_with('>');
        let body = s.trim_start_matches(['<', '>', '|', '=']);
        match body {
            "b" => return Some((true, 1, big)),
            "B" => return Some((false, 1, big)),
            _ => {}
        }
        let signed = match body.chars().next()? {
            'i' => true,
            'u' => false,
            _ => return None,
        };
        let size: usize = body[1..].parse().ok()?;
        [1, 2, 4, 8].contains(&size).then_some((signed, size, big))
    }

    /// numpy's name for the dtype where there is a simple one ("float64"), else the descr.
    pub(super) fn dtype_name(&self) -> String {
        let s = match &self.descr {
            Lit::Str(s) => s,
            _ => return "a structured dtype".to_string(),
        };
        let body = s.trim_start_matches(['<', '>', '|', '=']);
        let mut chars = body.chars();
        let kind = chars.next();
        let size: Option<u64> = chars.as_str().parse().ok();
        match (kind, size) {
            (Some('u'), Some(n)) => format!("uint{}", n * 8),
            (Some('i'), Some(n)) => format!("int{}", n * 8),
            (Some('f'), Some(n)) => format!("float{}", n * 8),
            (Some('c'), Some(n)) => format!("complex{}", n * 8),
            (Some('b'), Some(1)) => "bool".to_string(),
            _ => format!("dtype '{s}'"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(u64),
    Bool(bool),
    None,
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

/// Parses the header text; the error says what is wrong (the caller names the file).
pub(super) fn parse_header(text: &[u8]) -> Result<Header, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_string())?;
    let mut p = LitParser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let value = p.value()?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.i));
    }
    let entries = match value {
        Lit::Dict(entries) => entries,
        _ => return Err("expected a dict".to_string()),
    };
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| matches!(k, Lit::Str(s) if s == key))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("no '{key}' key"))
    };
    let descr = get("descr")?;
    let fortran_order = match get("fortran_order")? {
        Lit::Bool(b) => b,
        _ => return Err("'fortran_order' is not True or False".to_string()),
    };
    let shape = match get("shape")? {
        Lit::Seq(items) => items
            .into_iter()
            .map(|d| match d {
                Lit::Int(v) => Ok(v),
                _ => Err("'shape' holds something other than integers".to_string()),
            })
            .collect::<Result<Vec<u64>, String>>()?,
        _ => return Err("'shape' is not a tuple".to_string()),
    };
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

struct LitParser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl LitParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Lit, String> {
        self.depth += 1;
        if self.depth > 32 {
            return Err("nested too deeply".to_string());
        }
        let v = match self.peek() {
            None => Err("unexpected end".to_string()),
            Some(b'{') => self.dict(),
            Some(b'(') => self.seq(b')'),
            Some(b'[') => self.seq(b']'),
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'0'..=b'9') => self.int(),
            Some(b'-') => Err(format!("negative number at byte {}", self.i)),
            Some(_) => self.word(),
        };
        self.depth -= 1;
        v
    }

    fn dict(&mut self) -> Result<Lit, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Lit::Dict(entries));
            }
            let k = self.value()?;
            self.expect(b':')?;
            let v = self.value()?;
            entries.push((k, v));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
            }
        }
    }

    fn seq(&mut self, close: u8) -> Result<Lit, String> {
        self.i += 1; // the opening bracket, checked by value()
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(Lit::Seq(items));
            }
            items.push(self.value()?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '{}' at byte {}",
                        close as char, self.i
                    ))
                }
            }
        }
    }

    fn string(&mut self, quote: u8) -> Result<Lit, String> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            if c == quote {
                return String::from_utf8(out)
                    .map(Lit::Str)
                    .map_err(|_| "bad string".to_string());
            }
            if c == b'\\' {
                match self.s.get(self.i) {
                    Some(&e) => {
                        out.push(e);
                        self.i += 1;
                    }
                    None => break,
                }
            } else {
                out.push(c);
            }
        }
        Err("unterminated string".to_string())
    }

    fn int(&mut self) -> Result<Lit, String> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&c) = self.s.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .ok_or_else(|| format!("number too large at byte {start}"))?;
            self.i += 1;
        }
        // Python 2 long suffix, as in shapes written by old numpy: (3L, 4L).
        if matches!(self.s.get(self.i), Some(b'L' | b'l')) {
            self.i += 1;
        }
        Ok(Lit::Int(v))
    }

    fn word(&mut self) -> Result<Lit, String> {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
            self.i += 1;
        }
        match &self.s[start..self.i] {
            b"True" => Ok(Lit::Bool(true)),
            b"False" => Ok(Lit::Bool(false)),
            b"None" => Ok(Lit::None),
            _ => Err(format!("unexpected text at byte {start}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parser() {
        let h =
            parse_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (4, 8, 8, 1), }  \n")
                .unwrap();
        assert_eq!(h.shape, vec![4, 8, 8, 1]);
        assert_eq!(h.dtype_name(), "float64");
        assert!(!h.fortran_order);
        let h =
            parse_header(b"{\"shape\": (3L,), \"descr\": [('a', '<i4')], \"fortran_order\": True}")
                .unwrap();
        assert_eq!(h.shape, vec![3]);
        assert_eq!(h.dtype_name(), "a structured dtype");
        assert!(parse_header(b"{'descr': '|u1', 'fortran_order': False, 'shape': (-1,)}").is_err());
        assert!(parse_header(
            b"{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999,)}"
        )
        .is_err());
        assert!(parse_header(b"{'descr': '|u1', 'fortran_order': False}").is_err());
        assert!(
            parse_header(b"{'descr': '|u1', 'fortran_order': False, 'shape': (1,2)} x").is_err()
        );
        assert!(parse_header(&[b'['; 100]).is_err());
        assert!(parse_header(b"{'descr': '|u1").is_err());
    }
}
