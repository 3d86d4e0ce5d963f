//! The built-in dashboard: plain HTML, CSS and JavaScript modules from `ui/`, embedded in the
//! binary at build time and served at `/` and `/ui/{file}`. It is a client of the API like any
//! other (it holds no data of its own and passes the same access checks), so its files are
//! public. Each is served with an ETag (gzip where accepted) and a strict Content-Security-Policy:
//! nothing but this origin, no inline script or style, no frames.

use std::sync::LazyLock;

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use warp::reply::Response;

use super::conditional::{Negotiation, Responses, negotiation};
use super::error::ApiError;
use crate::wire::Tag;

/// Where the dashboard may load from and connect to: itself alone.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

macro_rules! asset {
    ($name:literal, $type:literal) => {
        ($name, $type, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name)).as_slice())
    };
}

/// Every file of `ui/`: name, media type, content.
const FILES: [(&str, &str, &[u8]); 10] = [
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("board.js", "text/javascript; charset=utf-8"),
    asset!("executions.js", "text/javascript; charset=utf-8"),
    asset!("rejections.js", "text/javascript; charset=utf-8"),
    asset!("status.js", "text/javascript; charset=utf-8"),
    asset!("insights.js", "text/javascript; charset=utf-8"),
];

struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: Bytes,
    tag: Tag,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, media_type, body)| Asset { name, media_type, body: Bytes::from_static(body), tag: Tag::of(body) })
        .collect()
});

/// The dashboard's routes, or where it is switched off (`--ui=false`), a `/` that says so.
pub fn routes(enabled: bool, responses: Responses) -> BoxedFilter<(Response,)> {
    if !enabled {
        return warp::path::end()
            .and(warp::get())
            .and_then(|| async {
                Err::<Response, _>(warp::reject::custom(ApiError::not_found(
                    "the dashboard is switched off (--ui=false); the API is under /api/v1",
                )))
            })
            .boxed();
    }
    let index = warp::path::end().map(|| "index.html".to_owned());
    let file = warp::path!("ui" / String);
    index
        .or(file)
        .unify()
        .and(warp::get())
        .and(negotiation())
        .and_then(move |name: String, how: Negotiation| {
            let responses = responses.clone();
            async move { serve(&name, &how, &responses).ok_or_else(warp::reject::not_found) }
        })
        .boxed()
}

fn serve(name: &str, how: &Negotiation, responses: &Responses) -> Option<Response> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    let mut response = responses.reply(how, asset.tag, asset.body.clone(), "Accept-Encoding");
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    headers.insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP));
    headers.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_is_small_and_loads_nothing_from_elsewhere() {
        let total: usize = FILES.iter().map(|(_, _, body)| body.len()).sum();
        assert!(total < 100 * 1024, "the dashboard is {total} bytes");
        for (name, _, body) in FILES {
            // The SVG namespace is a name, never fetched.
            let text = std::str::from_utf8(body).unwrap().replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("://"), "{name} names another origin");
            if name.ends_with(".html") {
                assert!(!text.contains("<script>") && !text.contains(" style="), "{name} has inline code");
            }
        }
    }

    #[test]
    fn every_file_of_ui_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(name, _, _)| name.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
