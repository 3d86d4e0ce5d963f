//! A client of the service's HTTP API, for `get` and `wait`. It speaks through kube's client,
//! pointed at the service instead of the API server, so credentials are resolved as kubectl
//! resolves them: `--token`, `--token-file`, or the kubeconfig's user (exec plugins included)
//! or the pod's service account. Bodies are decoded into the very types the service serialises.

pub mod events;

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use kube::client::Body;
use serde::de::DeserializeOwned;
use warp::http::{Request, Response, StatusCode, header};

use crate::api::ErrorBody;
use crate::quote::quote;

/// Largest response body read (a page of 500 summaries is well under 1 MiB).
const MAX_BODY: usize = 64 << 20;
/// A request (headers and body) that takes longer has failed; long polls ask for less.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

/// Where the service is and who the caller is.
#[derive(Clone, Debug, clap::Args)]
pub struct ClientArgs {
    /// The execwatch service's URL (`http://` or `https://`, with a path prefix if a proxy adds one).
    #[arg(long, env = "EXECWATCH_SERVER", default_value = "http://localhost:8080")]
    pub server: String,
    /// Bearer token to send; by default the kubeconfig user's (or the pod's service account's).
    #[arg(long, env = "EXECWATCH_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the bearer token, read again as it changes (a projected token).
    #[arg(long, env = "EXECWATCH_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The kubeconfig context whose user's credentials are sent (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// PEM file of the CA that signed an `https://` server's certificate (default: the system's roots).
    #[arg(long)]
    pub certificate_authority: Option<PathBuf>,
    /// Do not check an `https://` server's certificate (for tests only).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// How long an unreachable or restarting service is retried, in a row, before giving up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub retry_for: Duration,
}

/// Why a call to the service failed, each saying what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot configure the client: {0}")]
    Config(String),
    #[error(
        "cannot reach the execwatch service at {server}: {reason} (is it running, and is --server or EXECWATCH_SERVER right?)"
    )]
    Unreachable { server: String, reason: String },
    #[error(
        "{server} needs a token and none was sent: give --token, --token-file, or a kubeconfig whose user has a token"
    )]
    NoToken { server: String },
    #[error(
        "{server} refused the token ({message}): it may have expired, or be meant for another audience (kubectl create token SA --audience ...)"
    )]
    TokenRefused { server: String, message: String },
    #[error(
        "cannot get the credentials to send: {0} (check --token-file, or the kubeconfig user's token or exec plugin)"
    )]
    Credentials(String),
    #[error("{message}")]
    NotFound { message: String },
    #[error("{server} answered {status} {code}: {message}")]
    Refused { server: String, status: u16, code: String, message: String },
    #[error(
        "{server} answered what execwatch cannot read ({detail}): is --server an execwatch service of this version?"
    )]
    Unreadable { server: String, detail: String },
}

impl ClientError {
    /// Worth trying again: the service is unreachable, restarting, or busy.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Refused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The execution (or namespace) is not there for this caller: nothing to wait for.
    pub fn is_absent(&self) -> bool {
        matches!(self, ClientError::NotFound { .. } | ClientError::NoToken { .. } | ClientError::TokenRefused { .. })
    }
}

/// A response that was not an error, with its `ETag` and `Content-Type`.
pub struct Answer {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub content_type: String,
    pub body: Body,
}

/// The service's API, as one caller.
#[derive(Clone)]
pub struct ApiClient {
    kube: kube::Client,
    server: String,
    /// Whether a credential is sent, so a 401 can say which is wrong.
    authenticated: bool,
    retry_for: Duration,
}

impl ApiClient {
    pub async fn connect(args: &ClientArgs) -> Result<Self, ClientError> {
        let url: warp::http::Uri = args
            .server
            .parse()
            .ok()
            .filter(|u: &warp::http::Uri| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "--server {} is not a URL such as http://localhost:8080",
                    quote(&args.server)
                ))
            })?;
        let mut config = kube::Config::new(url);
        if let Some(token) = &args.token {
            config.auth_info.token = Some(token.clone().into());
        } else if let Some(file) = &args.token_file {
            let text = crate::files::read_bounded(file, 64 << 10)
                .map_err(|(_, e)| ClientError::Config(format!("--token-file {}: {e}", file.display())))?;
            if text.trim() == text {
                // kube reads it again as it changes (a projected token is rotated).
                config.auth_info.token_file = Some(file.display().to_string());
            } else {
                // Written by hand with a newline, which kube would send: read once, trimmed.
                config.auth_info.token = Some(text.trim().to_owned().into());
            }
        } else if let Some(kubeconfig) = kubeconfig(args.context.as_deref()).await? {
            config.auth_info = kubeconfig.auth_info;
        }
        let authenticated = config.auth_info.token.is_some()
            || config.auth_info.token_file.is_some()
            || config.auth_info.exec.is_some()
            || config.auth_info.auth_provider.is_some();
        config.root_cert_file = args.certificate_authority.clone();
        config.accept_invalid_certs = args.insecure_skip_tls_verify;
        config.connect_timeout = Some(Duration::from_secs(10));
        // A stream's heartbeat comes every 15 s: a read that waits this long is a dead connection.
        config.read_timeout = Some(REQUEST_TIMEOUT);
        // Retries are the caller's: `wait` retries for as long as it may, `get` not at all.
        config.default_retry = false;
        let kube = kube::Client::try_from(config).map_err(|e| ClientError::Config(e.to_string()))?;
        let server = args.server.trim_end_matches('/').to_owned();
        Ok(ApiClient { kube, server, authenticated, retry_for: args.retry_for })
    }

    /// Retries of transient failures, for as long as `--retry-for` allows.
    pub fn retry(&self) -> events::Retry {
        events::Retry::new(self.retry_for)
    }

    /// The service's URL, as given.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// GETs `path` (with its query) and decodes the JSON body as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let answer = self.send(path, &[]).await?;
        self.decode(answer.body).await
    }

    /// GETs `path` with extra headers; any `2xx` or `304` is an answer, anything else an error.
    pub async fn send(&self, path: &str, headers: &[(&str, &str)]) -> Result<Answer, ClientError> {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).map_err(|e| ClientError::Config(e.to_string()))?;
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, self.kube.send(request)).await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if is_auth(&e) => return Err(ClientError::Credentials(e.to_string())),
            Ok(Err(e)) => return Err(self.unreachable(e.to_string())),
            Err(_) => return Err(self.unreachable(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))),
        };
        let (parts, body) = response.into_parts();
        if parts.status.is_success() || parts.status == StatusCode::NOT_MODIFIED {
            let text = |name| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            return Ok(Answer {
                status: parts.status,
                etag: text(header::ETAG),
                content_type: text(header::CONTENT_TYPE).unwrap_or_default(),
                body,
            });
        }
        Err(self.refused(Response::from_parts(parts, body)).await)
    }

    /// Reads a whole body (bounded) and decodes it.
    pub async fn decode<T: DeserializeOwned>(&self, body: Body) -> Result<T, ClientError> {
        let bytes = self.read(body).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.unreadable(format!("{e}")))
    }

    async fn read(&self, body: Body) -> Result<bytes::Bytes, ClientError> {
        let collected = tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await;
        match collected {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) => Err(self.unreachable(format!("the answer broke off: {e}"))),
            Err(_) => Err(self.unreachable("the answer stalled".to_owned())),
        }
    }

    /// The error an answer other than `2xx` or `304` is: the service's own `{code, message}`
    /// where it sent one.
    async fn refused(&self, response: Response<Body>) -> ClientError {
        let status = response.status();
        let body = self.read(response.into_body()).await.unwrap_or_default();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (format!("{:?}", e.code), e.message.into_owned()),
            // A proxy's page: quote its start.
            Err(_) => (String::new(), quote(&String::from_utf8_lossy(&body))),
        };
        let server = self.server.clone();
        match status {
            StatusCode::UNAUTHORIZED if !self.authenticated => ClientError::NoToken { server },
            StatusCode::UNAUTHORIZED => ClientError::TokenRefused { server, message },
            StatusCode::NOT_FOUND => ClientError::NotFound { message },
            _ => ClientError::Refused { server, status: status.as_u16(), code, message },
        }
    }

    fn unreachable(&self, reason: String) -> ClientError {
        ClientError::Unreachable { server: self.server.clone(), reason }
    }

    fn unreadable(&self, detail: String) -> ClientError {
        ClientError::Unreadable { server: self.server.clone(), detail }
    }
}

/// Whether kube failed to make the credentials (a token file, an exec plugin), not to connect.
fn is_auth(e: &kube::Error) -> bool {
    match e {
        kube::Error::Auth(_) => true,
        kube::Error::Service(inner) => inner.downcast_ref::<kube::client::AuthError>().is_some(),
        _ => false,
    }
}

/// The kubeconfig's (or the pod's) credentials, if there are any to find.
async fn kubeconfig(context: Option<&str>) -> Result<Option<kube::Config>, ClientError> {
    let options = kube::config::KubeConfigOptions { context: context.map(str::to_owned), ..Default::default() };
    match kube::Config::from_kubeconfig(&options).await {
        Ok(config) => Ok(Some(config)),
        // A context asked for by name must be there.
        Err(e) if context.is_some() => Err(ClientError::Config(format!("--context: {e}"))),
        Err(_) => Ok(kube::Config::incluster().ok()),
    }
}
