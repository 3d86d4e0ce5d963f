//! One delivery attempt: a POST to the address the guard checked (never another: no redirect is
//! followed, no name resolved again), TLS verified against the platform's roots for `https`,
//! the connection, the answer and its body each bounded in time, and at most `MAX_ANSWER`
//! bytes of the body read.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::destination::Checked;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// From the request's first byte to the answer's last.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer's body read (it is only quoted in errors).
const MAX_ANSWER: usize = 4 << 10;

/// A message's headers and body.
pub struct Signed {
    pub id: String,
    pub content_type: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Bytes,
}

/// What the receiver answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After`, in seconds or as an HTTP date.
    pub retry_after: Option<Duration>,
    /// The first bytes of the body, for errors.
    pub excerpt: String,
}

/// Sends a message; an `Err` is an attempt that got no answer (refused, timed out, TLS).
pub async fn post(to: &Checked, message: &Signed) -> Result<Answer, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to.addr))
        .await
        .map_err(|_| format!("no connection to {} within {CONNECT_TIMEOUT:?}", to.host))?
        .map_err(|e| format!("cannot connect to {}: {e}", to.host))?;
    // The head and the body go out at once, not the body after the receiver's delayed ACK.
    let _ = tcp.set_nodelay(true);
    let exchange = async {
        if to.https {
            let name = rustls::pki_types::ServerName::try_from(to.host.clone())
                .map_err(|_| format!("{} is not a TLS server name", to.host))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {} failed: {e}", to.host))?;
            exchange(tls, to, message).await
        } else {
            exchange(tcp, to, message).await
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer from {} within {ANSWER_TIMEOUT:?}", to.host))?
}

async fn exchange<S>(io: S, to: &Checked, message: &Signed) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP with {} failed: {e}", to.host))?;
    let driver = tokio::spawn(connection);
    let path = &to.url[url::Position::BeforePath..url::Position::AfterQuery];
    let authority = &to.url[url::Position::BeforeHost..url::Position::AfterPort];
    let request = Request::post(path)
        .header("host", authority)
        .header("content-type", &message.content_type)
        .header("user-agent", concat!("execwatch/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", message.timestamp.to_string())
        .header("webhook-signature", &message.signature)
        .body(Full::new(message.body.clone()))
        .map_err(|e| e.to_string())?;
    let answer = sender.send_request(request).await.map_err(|e| format!("{} did not answer: {e}", to.host))?;
    let status = answer.status().as_u16();
    let retry_after = answer.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after);
    // Whatever the body holds past the bound is not read: the connection is dropped with it.
    let body = Limited::new(answer.into_body(), MAX_ANSWER).collect().await;
    let excerpt = body.map(|b| String::from_utf8_lossy(&b.to_bytes()).chars().take(200).collect()).unwrap_or_default();
    driver.abort();
    Ok(Answer { status, retry_after, excerpt })
}

/// `Retry-After` as seconds or as an HTTP date, from now.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value.trim()).ok()?.timestamp();
    let after = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(after).unwrap_or(Duration::ZERO))
}

/// TLS as the API server's client has it: the platform's roots, `ring`'s cryptography.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_platform_verifier::BuilderVerifierExt;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|b| b.with_platform_verifier())
                .map_err(|e| format!("TLS cannot be set up: {e}"))?
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(super::retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(super::retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(super::retry_after("soon"), None);
    }
}
