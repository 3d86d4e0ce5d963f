//! Label selectors as kube-apiserver parses and matches them, written from the grammar in
//! k8s.io/apimachinery/pkg/labels/selector.go and checked against cases from its tests. The
//! simulator has its own, so a bug in execwatch's parser cannot agree with itself here.
//!
//! ```text
//! selector    ::= requirement ("," requirement)*
//! requirement ::= "!" KEY | KEY [ ("in" | "notin") "(" values ")" | ("=" | "==" | "!=") VALUE? | (">" | "<") INTEGER ]
//! ```

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A parsed selector; the empty one selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

/// Splits like the apiserver's lexer: runs of ordinary characters are identifiers, whitespace
/// separates, and `! = == != > < ( ) ,` are symbols.
fn lex(input: &str) -> Vec<Token> {
    let (mut tokens, mut chars) = (Vec::new(), input.chars().peekable());
    while let Some(c) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                Token::NotEq
            }
            '=' if chars.peek() == Some(&'=') => {
                chars.next();
                Token::DoubleEq
            }
            '!' => Token::Not,
            '=' => Token::Eq,
            '>' => Token::Gt,
            '<' => Token::Lt,
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            c => {
                let mut ident = c.to_string();
                while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace() && !"!=><(),".contains(**c)) {
                    ident.push(c);
                    chars.next();
                }
                Token::Ident(ident)
            }
        };
        tokens.push(token);
    }
    tokens
}

impl std::str::FromStr for Selector {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, String> {
        let tokens = lex(input);
        let mut at = 0;
        let mut requirements = Vec::new();
        while at < tokens.len() {
            requirements.push(requirement(&tokens, &mut at)?);
            match tokens.get(at) {
                None => {}
                Some(Token::Comma) if at + 1 < tokens.len() => at += 1,
                Some(other) => return Err(format!("found '{other:?}', expected: ',' or 'end of string'")),
            }
        }
        Ok(Selector(requirements))
    }
}

fn requirement(tokens: &[Token], at: &mut usize) -> Result<Requirement, String> {
    let next = |at: &mut usize| {
        *at += 1;
        tokens.get(*at - 1).cloned()
    };
    let negated = tokens.get(*at) == Some(&Token::Not);
    if negated {
        *at += 1;
    }
    let key = match next(at) {
        Some(Token::Ident(key)) => key,
        other => return Err(format!("found '{other:?}', expected: identifier")),
    };
    check_key(&key)?;
    let end = |t: Option<&Token>| t.is_none() || t == Some(&Token::Comma);
    if negated || end(tokens.get(*at)) {
        let op = if negated { Op::DoesNotExist } else { Op::Exists };
        return Ok(Requirement { key, op, values: Vec::new() });
    }
    let (op, values) = match next(at) {
        Some(Token::Ident(word)) if word == "in" || word == "notin" => {
            let op = if word == "in" { Op::In } else { Op::NotIn };
            (op, value_set(tokens, at)?)
        }
        Some(token @ (Token::Eq | Token::DoubleEq | Token::NotEq)) => {
            let value = match tokens.get(*at) {
                Some(Token::Ident(value)) => {
                    *at += 1;
                    value.clone()
                }
                t if end(t) => String::new(),
                other => return Err(format!("found '{other:?}', expected: identifier")),
            };
            (if token == Token::NotEq { Op::NotIn } else { Op::In }, vec![value])
        }
        Some(token @ (Token::Gt | Token::Lt)) => match tokens.get(*at) {
            Some(Token::Ident(value)) if value.parse::<i64>().is_ok() => {
                *at += 1;
                (if token == Token::Gt { Op::Gt } else { Op::Lt }, vec![value.clone()])
            }
            other => return Err(format!("for 'Gt', 'Lt' operators, exactly one integer value is required: {other:?}")),
        },
        other => return Err(format!("found '{other:?}', expected: in, notin, =, ==, !=, gt, lt")),
    };
    for value in &values {
        check_value(value)?;
    }
    Ok(Requirement { key, op, values })
}

/// `( v1, v2 )`, where a missing value is the empty string (`()` is `{""}`).
fn value_set(tokens: &[Token], at: &mut usize) -> Result<Vec<String>, String> {
    if tokens.get(*at) != Some(&Token::Open) {
        return Err("found something else, expected: '('".to_owned());
    }
    *at += 1;
    let mut values = vec![String::new()];
    loop {
        match tokens.get(*at) {
            Some(Token::Ident(value)) if values.last().is_some_and(String::is_empty) => {
                *values.last_mut().expect("one value") = value.clone();
            }
            Some(Token::Comma) => values.push(String::new()),
            Some(Token::Close) => {
                *at += 1;
                return Ok(values);
            }
            other => return Err(format!("found '{other:?}', expected: ',', ')' or identifier")),
        }
        *at += 1;
    }
}

/// A qualified name: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters, alphanumeric at both ends with `-`, `_`, `.` between.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = key.split_once('/').unwrap_or(("", key));
    let subdomain = |p: &str| {
        p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    let prefix_ok = !key.contains('/') || subdomain(prefix);
    if name.is_empty() || !prefix_ok || !name_ok(name) {
        return Err(format!("invalid label key \"{key}\": name part must consist of alphanumeric characters"));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || name_ok(value) {
        return Ok(());
    }
    Err(format!(
        "invalid label value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters"
    ))
}

fn name_ok(s: &str) -> bool {
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && ends(s.chars().next())
        && ends(s.chars().last())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl Selector {
    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| {
            let value = labels.get(&r.key);
            let number = || value.and_then(|v| v.parse::<i64>().ok()).zip(r.values[0].parse::<i64>().ok());
            match r.op {
                Op::In => value.is_some_and(|v| r.values.contains(v)),
                Op::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::Gt => number().is_some_and(|(have, limit)| have > limit),
                Op::Lt => number().is_some_and(|(have, limit)| have < limit),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// From Kubernetes' `TestSelectorParse`.
    #[test]
    fn parses_what_kubernetes_parses() {
        let good = ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5"];
        for s in good {
            assert!(s.parse::<Selector>().is_ok(), "{s:?} parses");
        }
        let bad = ["x=a||y=b", "x==a==b", "!x=a", "x<a", "x>a", "x,,y", ",x,y", "x,", "x in (", "x in"];
        for s in bad {
            assert!(s.parse::<Selector>().is_err(), "{s:?} is refused");
        }
    }

    /// From Kubernetes' `TestSetSelectorParser` and lexer tests.
    #[test]
    fn set_based_requirements() {
        for s in ["x in (foo,,baz),y,z notin ()", "x notin (foo,bar,baz)", "x in (foo)", "notin=in", "foo/bar=baz"] {
            assert!(s.parse::<Selector>().is_ok(), "{s:?} parses");
        }
        for s in ["x nott in (y)", "(foo)", "x in foo", "x in (foo bar)", "Foo.Bar/x=y", "x=a b"] {
            assert!(s.parse::<Selector>().is_err(), "{s:?} is refused");
        }
        let s: Selector = "x in (foo,,baz)".parse().unwrap();
        assert!(s.matches(&set(&[("x", "")])), "an empty member matches the empty value");
    }

    /// From Kubernetes' `TestSelectorMatches`.
    #[test]
    fn matches_what_kubernetes_matches() {
        let yes: &[(&str, &[(&str, &str)])] = &[
            ("", &[("x", "y")]),
            ("x=y", &[("x", "y")]),
            ("x=y,z=w", &[("x", "y"), ("z", "w")]),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")]),
            ("notin=in", &[("notin", "in")]),
            ("x", &[("x", "z")]),
            ("!x", &[("y", "z")]),
            ("x>1", &[("x", "2")]),
            ("x<1", &[("x", "0")]),
            ("foo=bar,baz=blah", &[("foo", "bar"), ("baz", "blah")]),
            ("x notin (a,b)", &[("y", "a")]),
            ("x in (a,b)", &[("x", "b")]),
        ];
        let no: &[(&str, &[(&str, &str)])] = &[
            ("x=z", &[]),
            ("x=y", &[("x", "z")]),
            ("x=y,z=w", &[("x", "w"), ("z", "w")]),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")]),
            ("x", &[("y", "z")]),
            ("!x", &[("x", "z")]),
            ("x>1", &[("x", "0")]),
            ("x<1", &[("x", "2")]),
            ("x>1", &[("x", "two")]),
            ("foo=bar,foobar=bar,baz=blah", &[("foo", "bar"), ("baz", "blah")]),
            ("x in (a,b)", &[("y", "a")]),
            ("x notin (a,b)", &[("x", "a")]),
        ];
        for (selector, labels) in yes {
            assert!(selector.parse::<Selector>().unwrap().matches(&set(labels)), "{selector} matches {labels:?}");
        }
        for (selector, labels) in no {
            assert!(!selector.parse::<Selector>().unwrap().matches(&set(labels)), "{selector} misses {labels:?}");
        }
    }
}
