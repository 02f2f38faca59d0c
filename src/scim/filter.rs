//! SCIM filters (RFC 7644 §3.4.2.2) and attribute paths (§3.5.2), parsed
//! into a bounded tree and evaluated against a resource as JSON. Attribute
//! names compare without case; string values too, except the attributes
//! the schema says are case-exact (`id`, `externalId`).

use serde_json::Value;

/// Longest filter or path accepted (characters).
pub const FILTER_MAX_CHARS: usize = 1_000;
/// Deepest nesting of parentheses, `not` and value filters.
pub const FILTER_DEPTH_MAX: usize = 16;

/// The schema URN of the core User, which may prefix any attribute name.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// `attr` or `attr.sub` (lower-cased, schema prefix removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, Op, Value),
    /// `emails[type eq "work"]`: some element of `attr` matches the inner filter.
    ValuePath(String, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// A PATCH path: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned<'a> {
    UserName(&'a str),
    Address(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn parse_filter(text: &str) -> Result<Filter, FilterError> {
    let mut parser = Parser::new(text)?;
    let filter = parser.or_expr(0)?;
    parser.skip_space();
    if parser.pos < parser.chars.len() {
        return Err(parser.error("unexpected text"));
    }
    Ok(filter)
}

pub fn parse_path(text: &str) -> Result<PatchPath, FilterError> {
    let mut parser = Parser::new(text)?;
    parser.skip_space();
    let path = parser.attr_path()?;
    let mut out = PatchPath {
        attr: path.attr,
        filter: None,
        sub: path.sub,
    };
    if out.sub.is_none() && parser.peek() == Some('[') {
        parser.pos += 1;
        out.filter = Some(parser.or_expr(1)?);
        parser.skip_space();
        parser.expect(']')?;
        if parser.peek() == Some('.') {
            parser.pos += 1;
            out.sub = Some(parser.name()?);
        }
    }
    parser.skip_space();
    if parser.pos < parser.chars.len() {
        return Err(parser.error("unexpected text"));
    }
    Ok(out)
}

/// An attribute name without its schema URN, lower-cased: `userName`,
/// `urn:ietf:params:scim:schemas:core:2.0:User:userName` → `username`.
pub fn strip_schema(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    for schema in [USER_SCHEMA, GROUP_SCHEMA] {
        let prefix = format!("{}:", schema.to_ascii_lowercase());
        if let Some(rest) = lower.strip_prefix(&prefix) {
            return rest.to_string();
        }
    }
    lower
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn new(text: &str) -> Result<Self, FilterError> {
        if text.chars().count() > FILTER_MAX_CHARS {
            return Err(FilterError(format!(
                "longer than {FILTER_MAX_CHARS} characters"
            )));
        }
        Ok(Parser {
            chars: text.chars().collect(),
            pos: 0,
        })
    }

    fn error(&self, what: &str) -> FilterError {
        FilterError(format!("{what} at character {}", self.pos + 1))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c == ' ') {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), FilterError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{c}'")))
        }
    }

    /// A keyword (`and`, `or`, `not`, an operator) followed by a space or `(`.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_space();
        let end = self.pos + word.len();
        if end > self.chars.len() {
            return false;
        }
        let found: String = self.chars[self.pos..end].iter().collect();
        let boundary = self
            .chars
            .get(end)
            .is_none_or(|c| *c == ' ' || *c == '(' || *c == ')' || *c == ']');
        if found.eq_ignore_ascii_case(word) && boundary {
            self.pos = end;
            true
        } else {
            false
        }
    }

    fn or_expr(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.and_expr(depth)?;
        while self.keyword("or") {
            let right = self.and_expr(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth >= FILTER_DEPTH_MAX {
            return Err(self.error("nested too deeply"));
        }
        self.skip_space();
        if self.keyword("not") {
            self.skip_space();
            self.expect('(')?;
            let inner = self.or_expr(depth + 1)?;
            self.skip_space();
            self.expect(')')?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some('(') {
            self.pos += 1;
            let inner = self.or_expr(depth + 1)?;
            self.skip_space();
            self.expect(')')?;
            return Ok(inner);
        }
        let path = self.attr_path()?;
        if path.sub.is_none() && self.peek() == Some('[') {
            self.pos += 1;
            let inner = self.or_expr(depth + 1)?;
            self.skip_space();
            self.expect(']')?;
            return Ok(Filter::ValuePath(path.attr, Box::new(inner)));
        }
        if self.keyword("pr") {
            return Ok(Filter::Present(path));
        }
        let op = [
            ("eq", Op::Eq),
            ("ne", Op::Ne),
            ("co", Op::Co),
            ("sw", Op::Sw),
            ("ew", Op::Ew),
            ("gt", Op::Gt),
            ("ge", Op::Ge),
            ("lt", Op::Lt),
            ("le", Op::Le),
        ]
        .into_iter()
        .find(|(word, _)| self.keyword(word))
        .map(|(_, op)| op)
        .ok_or_else(|| {
            self.error("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)")
        })?;
        self.skip_space();
        let value = self.value()?;
        Ok(Filter::Compare(path, op, value))
    }

    fn name(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected an attribute name"));
        }
        Ok(self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase())
    }

    /// `name`, `name.sub`, or a URN-prefixed name (`urn:…:User:userName`).
    fn attr_path(&mut self) -> Result<AttrPath, FilterError> {
        self.skip_space();
        let start = self.pos;
        // A URN runs to the last ':' before the attribute name.
        if self.chars[self.pos..]
            .iter()
            .take(4)
            .collect::<String>()
            .eq_ignore_ascii_case("urn:")
        {
            let mut end = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || ":._-".contains(c))
            {
                if self.peek() == Some(':') {
                    end = self.pos;
                }
                self.pos += 1;
            }
            let urn: String = self.chars[start..end].iter().collect();
            if !urn.eq_ignore_ascii_case(USER_SCHEMA) && !urn.eq_ignore_ascii_case(GROUP_SCHEMA) {
                return Err(FilterError(format!("unknown schema {urn}")));
            }
            self.pos = end + 1;
        }
        let attr = self.name()?;
        let sub = if self.peek() == Some('.') {
            self.pos += 1;
            Some(self.name()?)
        } else {
            None
        };
        Ok(AttrPath { attr, sub })
    }

    fn value(&mut self) -> Result<Value, FilterError> {
        match self.peek() {
            Some('"') => {
                // A JSON string: find its end, honouring escapes.
                let start = self.pos;
                self.pos += 1;
                let mut escaped = false;
                loop {
                    let c = self
                        .peek()
                        .ok_or_else(|| self.error("unterminated string"))?;
                    self.pos += 1;
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                serde_json::from_str(&text).map_err(|_| self.error("bad string"))
            }
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c != ' ' && c != ')' && c != ']')
                {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.to_ascii_lowercase().as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => serde_json::from_str::<serde_json::Number>(&word)
                        .map(Value::Number)
                        .map_err(|_| {
                            self.error(
                                "expected a value (a \"string\", a number, true, false or null)",
                            )
                        }),
                }
            }
        }
    }
}

/// Whether the attributes compare with case (RFC 7643 `caseExact`).
fn case_exact(attr: &str) -> bool {
    matches!(attr, "id" | "externalid")
}

/// The member of a JSON object whose name matches `name` without case.
pub fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The values a path names in `resource`: one per element of a
/// multi-valued attribute.
fn values<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let Some(top) = field(resource, &path.attr) else {
        return vec![];
    };
    let elements: Vec<&Value> = match top {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => elements,
        Some(sub) => elements.into_iter().filter_map(|e| field(e, sub)).collect(),
    }
}

fn compare(actual: &Value, op: Op, wanted: &Value, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ordering = match (actual, wanted) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            match op {
                Op::Co => return a.contains(&b),
                Op::Sw => return a.starts_with(&b),
                Op::Ew => return a.ends_with(&b),
                _ => a.cmp(&b),
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            match a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b))
            {
                Some(o) => o,
                None => return false,
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            Op::Eq => return a == b,
            Op::Ne => return a != b,
            _ => return false,
        },
        (_, Value::Null) => match op {
            Op::Eq => return actual.is_null(),
            Op::Ne => return !actual.is_null(),
            _ => return false,
        },
        _ => return op == Op::Ne,
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

impl Filter {
    /// Whether `resource` (or one element of a multi-valued attribute) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::Present(path) => values(resource, path).into_iter().any(present),
            Filter::Compare(path, op, wanted) => {
                let found = values(resource, path);
                let exact = case_exact(&path.attr);
                if *op == Op::Ne {
                    return found.is_empty() && !wanted.is_null()
                        || (!found.is_empty()
                            && found.iter().all(|v| compare(v, Op::Ne, wanted, exact)));
                }
                found.into_iter().any(|v| compare(v, *op, wanted, exact))
            }
            Filter::ValuePath(attr, inner) => match field(resource, attr) {
                Some(Value::Array(items)) => items.iter().any(|e| inner.matches(e)),
                Some(single) => inner.matches(single),
                None => false,
            },
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(inner) => !inner.matches(resource),
        }
    }

    /// The `userName` or address an `eq` pins the whole filter to, if it
    /// does (the account's address index then answers it without looking
    /// through the team).
    pub fn pinned(&self) -> Option<Pinned<'_>> {
        match self {
            Filter::Compare(path, Op::Eq, Value::String(s))
                if path.attr == "username" && path.sub.is_none() =>
            {
                Some(Pinned::UserName(s))
            }
            Filter::Compare(path, Op::Eq, Value::String(s))
                if path.attr == "emails" && path.sub.as_deref() == Some("value") =>
            {
                Some(Pinned::Address(s))
            }
            Filter::ValuePath(attr, inner) if attr == "emails" => match inner.as_ref() {
                Filter::Compare(path, Op::Eq, Value::String(s))
                    if path.attr == "value" && path.sub.is_none() =>
                {
                    Some(Pinned::Address(s))
                }
                _ => None,
            },
            Filter::And(a, b) => a.pinned().or_else(|| b.pinned()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "id": "usr_1", "externalId": "00uA", "userName": "Bjensen@Example.com",
            "active": true, "name": {"formatted": "Barbara Jensen"},
            "emails": [{"value": "bjensen@example.com", "primary": true}, {"value": "b@home.test", "primary": false}],
            "meta": {"created": "2026-01-01T00:00:00Z"}
        })
    }

    fn matches(filter: &str) -> bool {
        parse_filter(filter).unwrap().matches(&user())
    }

    #[test]
    fn the_rfc_examples_parse_and_evaluate() {
        assert!(matches(r#"userName eq "bjensen@example.com""#));
        assert!(matches(r#"USERNAME Eq "BJENSEN@EXAMPLE.COM""#));
        assert!(matches(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#
        ));
        assert!(
            !matches(r#"externalId eq "00ua""#),
            "externalId is case-exact"
        );
        assert!(matches(r#"externalId eq "00uA" and active eq true"#));
        assert!(matches(r#"name.formatted co "jensen""#));
        assert!(matches(
            r#"emails[value ew "home.test" and primary eq false]"#
        ));
        assert!(matches(r#"emails.value eq "b@home.test""#));
        assert!(matches(r#"not (active eq false) or userName eq "x""#));
        assert!(matches(
            r#"(userName eq "x" or userName eq "bjensen@example.com") and meta.created gt "2025-12-31T00:00:00Z""#
        ));
        assert!(!matches("title pr") && matches("externalId pr"));
        assert!(matches(r#"userName ne "x""#));
        assert!(!matches(r#"emails.value ne "b@home.test""#));
    }

    #[test]
    fn malformed_filters_are_errors_not_panics() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName eq "unterminated"#,
            r#"userName xx "a""#,
            "(userName pr",
            "emails[value pr",
            "not userName pr",
            r#"userName eq "a" and"#,
            "urn:x:y:z eq 1",
            r#"userName eq "a" )"#,
            "userName eq bare",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad:?}");
        }
        let deep = format!("{}userName pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_filter(&deep).is_err());
        assert!(parse_filter(&"a".repeat(FILTER_MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn patch_paths_parse() {
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr, "emails");
        assert_eq!(p.sub.as_deref(), Some("value"));
        assert!(p.filter.is_some());
        let p = parse_path("name.givenName").unwrap();
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("name", Some("givenname"))
        );
        let p = parse_path("urn:ietf:params:scim:schemas:core:2.0:User:active").unwrap();
        assert_eq!(p.attr, "active");
        assert!(parse_path("members[value eq").is_err());
    }

    #[test]
    fn an_address_filter_is_answered_from_the_index() {
        let f = parse_filter(r#"userName eq "a@b.test""#).unwrap();
        assert_eq!(f.pinned(), Some(Pinned::UserName("a@b.test")));
        let f = parse_filter(r#"emails[value eq "a@b.test"] and active eq true"#).unwrap();
        assert_eq!(f.pinned(), Some(Pinned::Address("a@b.test")));
        let f = parse_filter(r#"userName eq "a@b.test" or active eq true"#).unwrap();
        assert_eq!(f.pinned(), None);
    }
}
