//! Strict query parameters: an unknown, repeated or malformed parameter is a 400 that names it.

use std::collections::BTreeMap;
use std::convert::Infallible;

use warp::Filter;

use super::PageLimits;
use super::error::ApiError;
use crate::quote::quote;
use crate::wire::ErrorCode;

/// The raw query string, empty when there is none.
pub fn raw() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Parsed parameters of one request, checked against what the endpoint accepts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(query: &str, allowed: &[&str]) -> Result<Params, ApiError> {
        let mut params = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if !allowed.contains(&key.as_ref()) {
                let hint = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
                return Err(ApiError::bad_request(
                    ErrorCode::UnknownParameter,
                    format!("unknown query parameter {}; this endpoint accepts: {hint}", quote(&key)),
                ));
            }
            // No filter value holds one (names, phases, selectors, tokens are printable), and
            // a NUL is text a database refuses: the request is refused here, alone.
            if value.chars().any(char::is_control) {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidParameter,
                    format!("query parameter {}={} holds a control character", quote(&key), quote(&value)),
                ));
            }
            if params.insert(key.to_string(), value.to_string()).is_some() {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidParameter,
                    format!("query parameter {} is repeated", quote(&key)),
                ));
            }
        }
        Ok(Params(params))
    }

    /// The parameters of a list: `accepted`, and `namespace` too where the list is not confined
    /// to one by its path.
    pub fn parse_list(query: &str, namespaced: bool, accepted: &[&str]) -> Result<Params, ApiError> {
        let mut allowed = accepted.to_vec();
        if !namespaced {
            allowed.push("namespace");
        }
        Params::parse(query, &allowed)
    }

    /// Bytes of keys and values.
    pub fn size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// A parameter as given, empty or not.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A parameter, unless empty (an empty `pipeline=` is no filter).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The page size asked for (`limit`), within `page`'s bounds.
    pub fn limit(&self, page: PageLimits) -> Result<usize, ApiError> {
        let expected = format!("a whole number from 1 to {}", page.max);
        let limit =
            self.parsed("limit", &expected, |s| s.parse::<usize>().ok().filter(|n| (1..=page.max).contains(n)))?;
        Ok(limit.unwrap_or(page.default))
    }

    /// Parses a parameter with `parse`, naming it and the expectation on failure. An empty
    /// value is parsed too (`limit=` is no number), unlike `get`'s free-text parameters.
    pub fn parsed<T>(
        &self,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        self.0
            .get(key)
            .map(|raw| {
                parse(raw).ok_or_else(|| {
                    ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        format!("query parameter {key}={} is invalid: expected {expected}", quote(raw)),
                    )
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let err = Params::parse("limit=5&colour=red", &["limit"]).err().unwrap();
        assert_eq!(err.code, ErrorCode::UnknownParameter);
        assert!(err.message.contains("\"colour\""));
        let err = Params::parse("limit=5&limit=6", &["limit"]).err().unwrap();
        assert!(err.message.contains("repeated"));
    }

    #[test]
    fn invalid_values_name_the_parameter_and_expectation() {
        let p = Params::parse("limit=lots", &["limit"]).unwrap();
        let err = p.parsed("limit", "a number", |s| s.parse::<u32>().ok()).unwrap_err();
        assert!(err.message.contains("limit=\"lots\"") && err.message.contains("a number"), "{}", err.message);
        assert_eq!(Params::parse("", &[]).unwrap().get("x"), None);
        let p = Params::parse("limit=", &["limit"]).unwrap();
        let err = p.parsed("limit", "a number", |s| s.parse::<u32>().ok()).unwrap_err();
        assert!(err.message.contains("limit=\"\""), "an empty number is no number: {}", err.message);
    }

    #[test]
    fn errors_quote_a_short_prefix_of_hostile_input() {
        let long = "k".repeat(60_000);
        let err = Params::parse(&format!("{long}=1"), &["limit"]).err().unwrap();
        assert!(err.message.len() < 200, "{}", err.message);
        let p = Params::parse(&format!("limit={long}"), &["limit"]).unwrap();
        let err = p.parsed("limit", "a number", |s| s.parse::<u32>().ok()).unwrap_err();
        assert!(err.message.len() < 200 && err.message.contains("60000 bytes"), "{}", err.message);
    }
}
