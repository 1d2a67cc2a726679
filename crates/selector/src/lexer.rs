//! Splits selector text into tokens (JMS 2.0 §3.8.1.1).
//!
//! Positions are 0-based offsets in characters. Keywords are case-insensitive;
//! identifiers are case-sensitive and follow Java's rules (a letter, `_` or `$`,
//! then letters, digits, `_` or `$`).

use crate::error::SelectorError;

/// A reserved word. Reserved words cannot be identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    Null,
    True,
    False,
    Not,
    And,
    Or,
    Between,
    Like,
    In,
    Is,
    Escape,
}

impl Keyword {
    fn from_word(word: &str) -> Option<Keyword> {
        const WORDS: [(&str, Keyword); 11] = [
            ("NULL", Keyword::Null),
            ("TRUE", Keyword::True),
            ("FALSE", Keyword::False),
            ("NOT", Keyword::Not),
            ("AND", Keyword::And),
            ("OR", Keyword::Or),
            ("BETWEEN", Keyword::Between),
            ("LIKE", Keyword::Like),
            ("IN", Keyword::In),
            ("IS", Keyword::Is),
            ("ESCAPE", Keyword::Escape),
        ];
        WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|&(_, k)| k)
    }

    /// The keyword as written in messages.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Keyword::Null => "NULL",
            Keyword::True => "TRUE",
            Keyword::False => "FALSE",
            Keyword::Not => "NOT",
            Keyword::And => "AND",
            Keyword::Or => "OR",
            Keyword::Between => "BETWEEN",
            Keyword::Like => "LIKE",
            Keyword::In => "IN",
            Keyword::Is => "IS",
            Keyword::Escape => "ESCAPE",
        }
    }
}

/// One token of a selector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    /// A string literal, with `''` already unescaped.
    Str(String),
    /// An exact numeric literal (decimal, `0x` hex or `0` octal). Kept unsigned so
    /// that `-9223372036854775808` can be parsed; the parser range-checks it.
    Int(u64),
    /// An approximate numeric literal.
    Float(f64),
    Kw(Keyword),
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    LParen,
    RParen,
    Comma,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("identifier '{name}'"),
            Tok::Str(_) => "string literal".to_string(),
            Tok::Int(_) | Tok::Float(_) => "numeric literal".to_string(),
            Tok::Kw(k) => k.as_str().to_string(),
            Tok::Eof => "end of selector".to_string(),
            op => format!("'{}'", op.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::Eq => "=",
            Tok::Ne => "<>",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            _ => "",
        }
    }
}

/// A token and the offset (in characters) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident_part(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Tokenizes `text`; the last token is always [`Tok::Eof`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, SelectorError> {
    let chars: Vec<char> = text.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        at: 0,
    };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let end = token.tok == Tok::Eof;
        tokens.push(token);
        if end {
            return Ok(tokens);
        }
    }
}

struct Lexer<'a> {
    chars: &'a [char],
    at: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn next_token(&mut self) -> Result<Token, SelectorError> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
        let pos = self.at;
        let Some(c) = self.peek() else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let tok = match c {
            '\'' => self.string()?,
            '0'..='9' => self.number()?,
            '.' if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) => self.number()?,
            c if is_ident_start(c) => self.word(),
            _ => self.operator()?,
        };
        Ok(Token { tok, pos })
    }

    fn operator(&mut self) -> Result<Tok, SelectorError> {
        let pos = self.at;
        let c = self.peek().unwrap_or('\0');
        let next = self.peek_at(1);
        let (tok, len) = match (c, next) {
            ('<', Some('>')) => (Tok::Ne, 2),
            ('<', Some('=')) => (Tok::Le, 2),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('=', _) => (Tok::Eq, 1),
            ('<', _) => (Tok::Lt, 1),
            ('>', _) => (Tok::Gt, 1),
            ('+', _) => (Tok::Plus, 1),
            ('-', _) => (Tok::Minus, 1),
            ('*', _) => (Tok::Star, 1),
            ('/', _) => (Tok::Slash, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            (',', _) => (Tok::Comma, 1),
            ('!', Some('=')) => {
                return Err(SelectorError::new(
                    pos,
                    "'!=' is not a selector operator; use '<>'",
                ))
            }
            ('"', _) => {
                return Err(SelectorError::new(
                    pos,
                    "string literals are enclosed in single quotes",
                ))
            }
            (c, _) => {
                return Err(SelectorError::new(
                    pos,
                    format!("unexpected character '{}'", c.escape_debug()),
                ))
            }
        };
        self.at += len;
        Ok(tok)
    }

    /// A string literal: `'...'`, with `''` standing for one quote.
    fn string(&mut self) -> Result<Tok, SelectorError> {
        let start = self.at;
        self.at += 1;
        let mut value = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(SelectorError::new(start, "unterminated string literal"));
                }
                Some('\'') if self.peek_at(1) == Some('\'') => {
                    value.push('\'');
                    self.at += 2;
                }
                Some('\'') => {
                    self.at += 1;
                    return Ok(Tok::Str(value));
                }
                Some(c) => {
                    value.push(c);
                    self.at += 1;
                }
            }
        }
    }

    /// An identifier or a keyword.
    fn word(&mut self) -> Tok {
        let start = self.at;
        while self.peek().is_some_and(is_ident_part) {
            self.at += 1;
        }
        let word: String = self.chars[start..self.at].iter().collect();
        match Keyword::from_word(&word) {
            Some(k) => Tok::Kw(k),
            None => Tok::Ident(word),
        }
    }

    fn digits(&mut self, radix: u32) -> String {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_digit(radix)) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    /// A numeric literal: `123`, `123L`, `0x1F`, `017`, `1.5`, `.5`, `5.`, `1e3`,
    /// `1.5E-3`, `2f`, `2.5d` (Java's float/double suffixes are accepted and ignored).
    ///
    /// Like Java (and Artemis's JavaCC grammar), a literal ends where the longest
    /// valid literal ends: `1AND` is `1` then `AND`, and `12abc` is `12` then the
    /// identifier `abc` (which the parser rejects).
    fn number(&mut self) -> Result<Tok, SelectorError> {
        let start = self.at;
        if self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X')) {
            self.at += 2;
            let hex = self.digits(16);
            if hex.is_empty() {
                return Err(SelectorError::new(
                    start,
                    "hexadecimal literal has no digits",
                ));
            }
            let value = u64::from_str_radix(&hex, 16)
                .map_err(|_| SelectorError::new(start, "hexadecimal literal out of range"))?;
            return Ok(Tok::Int(value));
        }
        let mut text = self.digits(10);
        let mut approximate = false;
        if self.peek() == Some('.') {
            approximate = true;
            self.at += 1;
            text.push('.');
            text.push_str(&self.digits(10));
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = matches!(self.peek_at(1), Some('+' | '-'));
            let first_digit = self.peek_at(if sign { 2 } else { 1 });
            // Without digits the `e` is not an exponent but starts the next token.
            if first_digit.is_some_and(|c| c.is_ascii_digit()) {
                approximate = true;
                text.push('e');
                self.at += 1;
                if sign {
                    text.push(self.peek().unwrap_or('+'));
                    self.at += 1;
                }
                text.push_str(&self.digits(10));
            }
        }
        match self.peek() {
            Some('f' | 'F' | 'd' | 'D') => {
                approximate = true;
                self.at += 1;
            }
            Some('l' | 'L') if !approximate => {
                self.at += 1;
            }
            _ => {}
        }
        if approximate {
            let value: f64 = text
                .parse()
                .map_err(|_| SelectorError::new(start, "invalid numeric literal"))?;
            if !value.is_finite() {
                return Err(SelectorError::new(start, "numeric literal out of range"));
            }
            return Ok(Tok::Float(value));
        }
        let value = if text.len() > 1 && text.starts_with('0') {
            if !text.chars().all(|c| c.is_digit(8)) {
                return Err(SelectorError::new(start, "invalid octal literal"));
            }
            u64::from_str_radix(&text[1..], 8)
        } else {
            text.parse::<u64>()
        }
        .map_err(|_| SelectorError::new(start, "integer literal out of range"))?;
        Ok(Tok::Int(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn err(text: &str) -> SelectorError {
        tokenize(text).unwrap_err()
    }

    #[test]
    fn empty_and_whitespace() {
        assert_eq!(toks(""), vec![Tok::Eof]);
        assert_eq!(toks(" \t\r\n\x0c"), vec![Tok::Eof]);
    }

    #[test]
    fn operators() {
        assert_eq!(
            toks("= <> < <= > >= + - * / ( ) ,"),
            vec![
                Tok::Eq,
                Tok::Ne,
                Tok::Lt,
                Tok::Le,
                Tok::Gt,
                Tok::Ge,
                Tok::Plus,
                Tok::Minus,
                Tok::Star,
                Tok::Slash,
                Tok::LParen,
                Tok::RParen,
                Tok::Comma,
                Tok::Eof
            ]
        );
        // No whitespace needed between tokens.
        assert_eq!(
            toks("a<>1"),
            vec![Tok::Ident("a".into()), Tok::Ne, Tok::Int(1), Tok::Eof]
        );
        assert_eq!(
            toks("a<=-1"),
            vec![
                Tok::Ident("a".into()),
                Tok::Le,
                Tok::Minus,
                Tok::Int(1),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        for (word, kw) in [
            ("null", Keyword::Null),
            ("True", Keyword::True),
            ("fALSE", Keyword::False),
            ("Not", Keyword::Not),
            ("and", Keyword::And),
            ("oR", Keyword::Or),
            ("between", Keyword::Between),
            ("LiKe", Keyword::Like),
            ("in", Keyword::In),
            ("IS", Keyword::Is),
            ("escape", Keyword::Escape),
        ] {
            assert_eq!(toks(word), vec![Tok::Kw(kw), Tok::Eof], "{word}");
        }
    }

    #[test]
    fn identifiers() {
        for name in [
            "a", "JMSType", "_x", "$y", "a1_$", "größe", "NOTE", "ORDER", "isbn",
        ] {
            assert_eq!(
                toks(name),
                vec![Tok::Ident(name.into()), Tok::Eof],
                "{name}"
            );
        }
        // Identifiers are case-sensitive: the token keeps the original spelling.
        assert_eq!(toks("Color"), vec![Tok::Ident("Color".into()), Tok::Eof]);
    }

    #[test]
    fn strings() {
        assert_eq!(toks("'abc'"), vec![Tok::Str("abc".into()), Tok::Eof]);
        assert_eq!(toks("''"), vec![Tok::Str("".into()), Tok::Eof]);
        assert_eq!(toks("'it''s'"), vec![Tok::Str("it's".into()), Tok::Eof]);
        assert_eq!(toks("''''"), vec![Tok::Str("'".into()), Tok::Eof]);
        assert_eq!(
            toks("'a b\n%_\\'"),
            vec![Tok::Str("a b\n%_\\".into()), Tok::Eof]
        );
        assert_eq!(toks("'a''''b'"), vec![Tok::Str("a''b".into()), Tok::Eof]);
        // Two adjacent literals separated by whitespace stay two literals.
        assert_eq!(
            toks("'a' 'b'"),
            vec![Tok::Str("a".into()), Tok::Str("b".into()), Tok::Eof]
        );
        assert_eq!(toks("'ünï'"), vec![Tok::Str("ünï".into()), Tok::Eof]);
    }

    #[test]
    fn exact_numbers() {
        assert_eq!(toks("0"), vec![Tok::Int(0), Tok::Eof]);
        assert_eq!(toks("42"), vec![Tok::Int(42), Tok::Eof]);
        assert_eq!(toks("42L"), vec![Tok::Int(42), Tok::Eof]);
        assert_eq!(toks("42l"), vec![Tok::Int(42), Tok::Eof]);
        assert_eq!(toks("0x1F"), vec![Tok::Int(31), Tok::Eof]);
        assert_eq!(toks("0XfF"), vec![Tok::Int(255), Tok::Eof]);
        assert_eq!(toks("017"), vec![Tok::Int(15), Tok::Eof]);
        assert_eq!(toks("00"), vec![Tok::Int(0), Tok::Eof]);
        assert_eq!(
            toks("9223372036854775808"),
            vec![Tok::Int(9_223_372_036_854_775_808), Tok::Eof]
        );
        assert_eq!(
            toks("18446744073709551615"),
            vec![Tok::Int(u64::MAX), Tok::Eof]
        );
    }

    #[test]
    fn approximate_numbers() {
        for (text, v) in [
            ("1.5", 1.5),
            ("1.", 1.0),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("1E3", 1000.0),
            ("1e+3", 1000.0),
            ("1.5e-3", 0.0015),
            ("5.E2", 500.0),
            (".5e1", 5.0),
            ("2f", 2.0),
            ("2.5F", 2.5),
            ("2d", 2.0),
            ("2.5D", 2.5),
            ("08.5", 8.5),
            ("09e1", 90.0),
        ] {
            assert_eq!(toks(text), vec![Tok::Float(v), Tok::Eof], "{text}");
        }
    }

    #[test]
    fn literals_end_at_the_longest_match() {
        let ident = |s: &str| Tok::Ident(s.to_string());
        assert_eq!(
            toks("1AND"),
            vec![Tok::Int(1), Tok::Kw(Keyword::And), Tok::Eof]
        );
        assert_eq!(toks("12abc"), vec![Tok::Int(12), ident("abc"), Tok::Eof]);
        assert_eq!(
            toks("1.5.2"),
            vec![Tok::Float(1.5), Tok::Float(0.2), Tok::Eof]
        );
        assert_eq!(toks("1e"), vec![Tok::Int(1), ident("e"), Tok::Eof]);
        assert_eq!(
            toks("1e+"),
            vec![Tok::Int(1), ident("e"), Tok::Plus, Tok::Eof]
        );
        assert_eq!(toks("1.5L"), vec![Tok::Float(1.5), ident("L"), Tok::Eof]);
        assert_eq!(toks("1LIKE"), vec![Tok::Int(1), ident("IKE"), Tok::Eof]);
        assert_eq!(toks("0x1FG"), vec![Tok::Int(31), ident("G"), Tok::Eof]);
        assert_eq!(
            toks("'a'OR'b'"),
            vec![
                Tok::Str("a".into()),
                Tok::Kw(Keyword::Or),
                Tok::Str("b".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn positions_count_characters() {
        let t = tokenize("ä = 'ö' AND x").unwrap();
        let pos: Vec<usize> = t.iter().map(|t| t.pos).collect();
        assert_eq!(pos, vec![0, 2, 4, 8, 12, 13]);
    }

    #[test]
    fn errors() {
        let cases = [
            ("'abc", 0, "unterminated string literal"),
            ("a = 'x''", 4, "unterminated string literal"),
            ("a # 1", 2, "unexpected character '#'"),
            ("a != 1", 2, "'!=' is not a selector operator; use '<>'"),
            (
                "a = \"x\"",
                4,
                "string literals are enclosed in single quotes",
            ),
            ("0x", 0, "hexadecimal literal has no digits"),
            ("0x1FFFFFFFFFFFFFFFF", 0, "hexadecimal literal out of range"),
            ("18446744073709551616", 0, "integer literal out of range"),
            ("089", 0, "invalid octal literal"),
            ("1e999", 0, "numeric literal out of range"),
            ("a ; b", 2, "unexpected character ';'"),
        ];
        for (text, pos, message) in cases {
            let e = err(text);
            assert_eq!((e.position(), e.message()), (pos, message), "{text}");
        }
    }
}
