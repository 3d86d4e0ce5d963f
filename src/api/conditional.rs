//! Conditional GET and content coding. Every JSON response carries a strong `ETag` computed
//! from the hashes the index keeps of what it serialised, so an `If-None-Match` that matches
//! gets `304` with no body and nothing is serialised for it. A client that accepts gzip gets a
//! body over 1 KiB compressed once and cached by its ETag, so a hot list is not compressed on
//! every request.

use std::convert::Infallible;
use std::io::Write as _;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use warp::Filter;
use warp::http::header::{CACHE_CONTROL, CONTENT_ENCODING, ETAG, HeaderValue, VARY};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::json_bytes;
use crate::wire::Tag;

/// Bodies smaller than this are not worth compressing.
const MIN_GZIP: usize = 1024;

/// What the client already holds and what it accepts.
#[derive(Clone, Debug, Default)]
pub struct Negotiation {
    /// The tags named by `If-None-Match` that this service could have issued.
    holds: Vec<Tag>,
    /// `If-None-Match: *`: any tag matches.
    holds_any: bool,
    /// `If-None-Match` named at least one tag, of any form.
    conditional: bool,
    gzip: bool,
    /// `Accept: text/event-stream`: a stream, where the endpoint has one.
    pub events: bool,
    /// Where a stream resumes (`Last-Event-ID`).
    pub last_event_id: Option<super::stream::EventId>,
}

/// The negotiation of the request at hand: read by the server from the request's headers
/// before routing (so the header map is not cloned for it), none if it was not.
pub fn negotiation() -> impl Filter<Extract = (Negotiation,), Error = Infallible> + Clone {
    warp::ext::optional::<Negotiation>().map(Option::unwrap_or_default)
}

impl Negotiation {
    pub fn of(headers: &HeaderMap) -> Self {
        let values = |name| headers.get_all(name).into_iter().filter_map(|v| v.to_str().ok());
        let named: Vec<&str> = values("if-none-match")
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
            // A gzip body's tag is the identity body's with a suffix: both name the same state.
            .map(|t| t.trim_end_matches("-gzip"))
            .filter(|t| !t.is_empty())
            .take(32)
            .collect();
        Negotiation {
            holds: named.iter().filter_map(|t| Tag::parse(t)).collect(),
            holds_any: named.contains(&"*"),
            conditional: !named.is_empty(),
            gzip: values("accept-encoding").flat_map(|v| v.split(',')).any(accepts_gzip),
            events: super::stream::accepts_events(values("accept")),
            last_event_id: super::stream::last_event_id(headers),
        }
    }

    /// Whether the client holds the response tagged `tag` already.
    pub fn holds(&self, tag: Tag) -> bool {
        self.holds_any || self.holds.contains(&tag)
    }

    /// Whether the client sent `If-None-Match` at all.
    pub fn is_conditional(&self) -> bool {
        self.conditional
    }
}

/// `"{tag:032x}{suffix}"` as a header value.
fn etag(tag: Tag, suffix: &str) -> HeaderValue {
    let mut value = Vec::with_capacity(34 + suffix.len());
    value.push(b'"');
    value.extend_from_slice(&super::hex((tag.0 >> 64) as u64));
    value.extend_from_slice(&super::hex(tag.0 as u64));
    value.extend_from_slice(suffix.as_bytes());
    value.push(b'"');
    HeaderValue::from_maybe_shared(Bytes::from(value)).unwrap_or(HeaderValue::from_static("\"\""))
}

/// `gzip` (or `x-gzip`, or `*`) with a weight above zero.
fn accepts_gzip(coding: &str) -> bool {
    let mut parts = coding.split(';').map(str::trim);
    let name = parts.next().unwrap_or_default().to_ascii_lowercase();
    let weight = parts.find_map(|p| p.strip_prefix("q=")).map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
    matches!(name.as_str(), "gzip" | "x-gzip" | "*") && weight > 0.0
}

/// Bodies assembled per request (list pages) and compressed bodies, by tag and coding, up to a
/// byte budget.
#[derive(Clone)]
pub struct Responses(std::sync::Arc<Cache<(Tag, bool), Bytes, ByLength>>);

#[derive(Clone)]
struct ByLength;

impl Weighter<(Tag, bool), Bytes> for ByLength {
    fn weight(&self, _: &(Tag, bool), body: &Bytes) -> u64 {
        body.len() as u64 + 64
    }
}

impl Responses {
    pub fn new(budget_bytes: u64) -> Self {
        // quick_cache sizes its tables from an item estimate: assume pages of about 12 KiB.
        let items = usize::try_from(budget_bytes / 12_288).unwrap_or(usize::MAX).max(16);
        Responses(std::sync::Arc::new(Cache::with_weighter(items, budget_bytes, ByLength)))
    }

    /// A body serialised earlier (one execution or pipeline).
    pub fn reply(&self, how: &Negotiation, tag: Tag, body: Bytes, vary: &'static str) -> Response {
        self.without_body(how, tag, vary).unwrap_or_else(|| self.with_body(how, tag, vary, body))
    }

    /// A body made for this request alone and kept nowhere, compressed or not: megabytes that
    /// are asked again rarely (insights) would take the budget from list pages.
    pub fn reply_once(how: &Negotiation, tag: Tag, body: Bytes, vary: &'static str) -> Response {
        match how.holds(tag) {
            true => not_modified(tag, vary),
            false if how.gzip && body.len() >= MIN_GZIP => gzip_response(gzip(&body), tag, vary),
            false => identity_response(body, tag, vary),
        }
    }

    /// A body assembled on demand (a page): assembled once per tag while it stays cached.
    pub fn reply_with(
        &self,
        how: &Negotiation,
        tag: Tag,
        vary: &'static str,
        render: impl FnOnce() -> Bytes,
    ) -> Response {
        self.without_body(how, tag, vary).unwrap_or_else(|| {
            let body = self.0.get_or_insert_with(&(tag, false), || Ok::<_, Infallible>(render())).unwrap_or_default();
            self.with_body(how, tag, vary, body)
        })
    }

    /// The answer for `tag` from the cache alone: `None` when its body is no longer cached.
    pub fn cached(&self, how: &Negotiation, tag: Tag, vary: &'static str) -> Option<Response> {
        self.without_body(how, tag, vary).or_else(|| Some(self.with_body(how, tag, vary, self.0.get(&(tag, false))?)))
    }

    /// `304` when the client holds `tag`, or the compressed body when it is cached.
    fn without_body(&self, how: &Negotiation, tag: Tag, vary: &'static str) -> Option<Response> {
        if how.holds(tag) {
            return Some(not_modified(tag, vary));
        }
        let gzipped = if how.gzip { self.0.get(&(tag, true))? } else { return None };
        Some(gzip_response(gzipped, tag, vary))
    }

    /// `body`, compressed (and cached) when the client accepts gzip and it is worth it.
    fn with_body(&self, how: &Negotiation, tag: Tag, vary: &'static str, body: Bytes) -> Response {
        if how.gzip && body.len() >= MIN_GZIP {
            let gzipped = gzip(&body);
            self.0.insert((tag, true), gzipped.clone());
            return gzip_response(gzipped, tag, vary);
        }
        identity_response(body, tag, vary)
    }
}

fn not_modified(tag: Tag, vary: &'static str) -> Response {
    let mut response = Response::new(Bytes::new().into());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    headers(&mut response, etag(tag, ""), vary);
    response
}

fn identity_response(body: Bytes, tag: Tag, vary: &'static str) -> Response {
    let mut response = json_bytes(body);
    headers(&mut response, etag(tag, ""), vary);
    response
}

fn gzip_response(body: Bytes, tag: Tag, vary: &'static str) -> Response {
    let mut response = json_bytes(body);
    response.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers(&mut response, etag(tag, "-gzip"), vary);
    response
}

/// Caches may keep the body but must ask again before using it; what it depends on is named.
fn headers(response: &mut Response, etag: HeaderValue, vary: &'static str) {
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    headers.insert(VARY, HeaderValue::from_static(vary));
}

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiated(pairs: &[(&'static str, &str)]) -> Negotiation {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, HeaderValue::from_str(v).unwrap());
        }
        Negotiation::of(&headers)
    }

    #[test]
    fn if_none_match_names_a_tag_in_any_coding_or_any_tag() {
        let (ff, one) = ("0".repeat(30) + "ff", "0".repeat(31) + "1");
        let n = negotiated(&[("if-none-match", &format!("\"{ff}-gzip\", W/\"{one}\""))]);
        assert!(n.holds(Tag(0xff)) && n.holds(Tag(1)) && !n.holds(Tag(2)));
        assert!(negotiated(&[("if-none-match", "*")]).holds(Tag(7)));
        assert!(!negotiated(&[]).holds(Tag(7)) && !negotiated(&[]).is_conditional());
        let short = "0".repeat(14) + "ff";
        let foreign = format!("\"{}FF\", \"+{}f\", \"v1\", \"{short}\"", "0".repeat(30), "0".repeat(30));
        let foreign = negotiated(&[("if-none-match", &foreign)]);
        assert!(foreign.is_conditional(), "a tag of another form still makes the request conditional");
        assert!(!foreign.holds(Tag(0xff)) && !foreign.holds(Tag(0xf)), "tags compare byte for byte");
    }

    #[test]
    fn tags_are_the_first_128_bits_of_a_sha256() {
        // `printf abc | sha256sum`: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(Tag::of(b"abc"), Tag(0xba7816bf8f01cfea414140de5dae2223));
        assert_eq!(etag(Tag::of(b"abc"), "-gzip"), "\"ba7816bf8f01cfea414140de5dae2223-gzip\"");
        let (ab_c, a_bc) = (Tag::of_parts([&b"ab"[..], b"c"]), Tag::of_parts([&b"a"[..], b"bc"]));
        assert_ne!(ab_c, a_bc, "parts cannot be re-cut into another sequence of one tag");
    }

    #[test]
    fn gzip_is_accepted_unless_weighted_zero() {
        assert!(negotiated(&[("accept-encoding", "br;q=1.0, gzip;q=0.5")]).gzip);
        assert!(!negotiated(&[("accept-encoding", "gzip;q=0")]).gzip);
        assert!(!negotiated(&[("accept-encoding", "identity")]).gzip);
    }

    #[test]
    fn a_matching_tag_gets_304_without_a_body_and_gzip_round_trips() {
        use std::io::Read as _;
        let responses = Responses::new(1 << 20);
        let body = Bytes::from(format!("[{}]", "1,".repeat(2000) + "1"));
        let held = negotiated(&[("if-none-match", &format!("\"{}2a\"", "0".repeat(30)))]);
        let response = responses.reply(&held, Tag(42), body.clone(), "Accept-Encoding");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(0));
        let gz = negotiated(&[("accept-encoding", "gzip")]);
        let response = responses.reply(&gz, Tag(42), body.clone(), "Accept-Encoding");
        assert_eq!(response.headers()[ETAG], format!("\"{}2a-gzip\"", "0".repeat(30)).as_str());
        let cached = responses.0.get(&(Tag(42), true)).expect("compressed body cached by tag");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&cached[..]).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, body);
    }

    #[tokio::test]
    async fn a_body_replied_once_is_304_or_gzip_as_asked_and_the_same_bytes() {
        use http_body_util::BodyExt as _;
        let body = Bytes::from(format!("[{}]", "2,".repeat(2000) + "2"));
        let held = negotiated(&[("if-none-match", &format!("\"{}2a\"", "0".repeat(30)))]);
        let response = Responses::reply_once(&held, Tag(42), body.clone(), "Accept-Encoding");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        let gz = negotiated(&[("accept-encoding", "gzip")]);
        let response = Responses::reply_once(&gz, Tag(42), body.clone(), "Accept-Encoding");
        assert_eq!(response.headers()[ETAG], format!("\"{}2a-gzip\"", "0".repeat(30)).as_str());
        let compressed = response.into_body().collect().await.unwrap().to_bytes();
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut plain).unwrap();
        assert_eq!(plain, body);
        let response = Responses::reply_once(&negotiated(&[]), Tag(42), body.clone(), "Accept-Encoding");
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), body);
    }
}
