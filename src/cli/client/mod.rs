//! A client of the service's HTTP API, for `get` and `wait`. It speaks through kube's client,
//! pointed at the service instead of the API server. It sends only the credential the user
//! names: `--token`, `--token-file`, a short-lived token minted for the service's audience
//! (`--service-account`), or, asked for by `--kubeconfig-credentials`, the kubeconfig user's own
//! (exec plugins included). A kubeconfig user's API-server credential is never sent by default,
//! and no credential goes over plain `http://` to a host off loopback unless
//! `--insecure-plaintext` says so. Bodies are decoded into the very types the service serialises.

pub mod events;

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use kube::client::Body;
use serde::de::DeserializeOwned;
use warp::http::{Request, Response, StatusCode, header};

use crate::quote::quote;
use crate::wire::ErrorBody;

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
    /// Bearer token to send (by default none is sent).
    #[arg(long, env = "EXECWATCH_TOKEN", hide_env_values = true, group = "credential")]
    pub token: Option<String>,
    /// File holding the bearer token, read again as it changes (a projected token).
    #[arg(long, env = "EXECWATCH_TOKEN_FILE", group = "credential")]
    pub token_file: Option<PathBuf>,
    /// Mint a short-lived token of this service account (NAMESPACE/NAME) for --audience, with a
    /// TokenRequest through the kubeconfig (as `kubectl create token` does), and send only that.
    #[arg(long, value_name = "NAMESPACE/NAME", group = "credential")]
    pub service_account: Option<String>,
    /// The audience a --service-account token is minted for: the service's --token-audience.
    #[arg(long, default_value = "execwatch", requires = "service_account")]
    pub audience: String,
    /// Send the kubeconfig user's own credentials (its API-server token, exec plugin or the
    /// pod's service account) to the service: only to a service trusted with them.
    #[arg(long, group = "credential")]
    pub kubeconfig_credentials: bool,
    /// The kubeconfig context used by --service-account and --kubeconfig-credentials (default:
    /// the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Send a credential over plain `http://` to a host that is not loopback, where anyone on
    /// the way can read it (by default refused: use `https://`).
    #[arg(long)]
    pub insecure_plaintext: bool,
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
        "{server} needs a token and none was sent: give --token, --token-file, --service-account NAMESPACE/NAME \
         (a short-lived token for the service's audience) or --kubeconfig-credentials"
    )]
    NoToken { server: String },
    #[error(
        "refusing to send a credential to {server} over plain http, where anyone on the way can read it: \
         use https://, or --insecure-plaintext where the path is trusted"
    )]
    Plaintext { server: String },
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
pub struct Reply {
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
        if sends_credential(args) && url.scheme_str() == Some("http") && !args.insecure_plaintext {
            let host = url.host().unwrap_or_default();
            if !is_loopback(host) {
                return Err(ClientError::Plaintext { server: args.server.clone() });
            }
        }
        let mut config = kube::Config::new(url);
        config.auth_info = credential(args).await?;
        let authenticated = config.auth_info.token.is_some()
            || config.auth_info.token_file.is_some()
            || config.auth_info.exec.is_some()
            || config.auth_info.auth_provider.is_some()
            || config.auth_info.username.is_some();
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
    pub async fn send(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, ClientError> {
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
            return Ok(Reply {
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

/// Whether the user asked for a credential to be sent.
fn sends_credential(args: &ClientArgs) -> bool {
    args.token.is_some() || args.token_file.is_some() || args.service_account.is_some() || args.kubeconfig_credentials
}

/// A host that never leaves this machine: `localhost` (and its subdomains, RFC 6761) or a
/// loopback address. Any other name may resolve anywhere, so it is not.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The credential the user named, as kube sends it; none where none was named.
async fn credential(args: &ClientArgs) -> Result<kube::config::AuthInfo, ClientError> {
    let mut auth = kube::config::AuthInfo::default();
    if let Some(token) = &args.token {
        auth.token = Some(token.clone().into());
    } else if let Some(file) = &args.token_file {
        let text = crate::files::read_bounded(file, 64 << 10)
            .map_err(|(_, e)| ClientError::Config(format!("--token-file {}: {e}", file.display())))?;
        if text.trim() == text {
            // kube reads it again as it changes (a projected token is rotated).
            auth.token_file = Some(file.display().to_string());
        } else {
            // Written by hand with a newline, which kube would send: read once, trimmed.
            auth.token = Some(text.trim().to_owned().into());
        }
    } else if let Some(account) = &args.service_account {
        auth.token = Some(mint(args, account).await?.into());
    } else if args.kubeconfig_credentials {
        let config = kubeconfig(args.context.as_deref()).await?.ok_or_else(|| {
            ClientError::Config("--kubeconfig-credentials: no kubeconfig, and not in a pod".to_owned())
        })?;
        auth = config.auth_info;
    }
    Ok(auth)
}

/// How long a minted token lasts: the API server's own floor is 10 minutes; an hour covers a
/// long `wait`.
const MINTED_FOR: i64 = 3600;

/// A token of the service account `NAMESPACE/NAME` bound to `--audience`, from a TokenRequest
/// made with the kubeconfig's credentials (which go to the API server only).
async fn mint(args: &ClientArgs, account: &str) -> Result<String, ClientError> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let (namespace, name) = account
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
        .ok_or_else(|| ClientError::Config(format!("--service-account {} is not NAMESPACE/NAME", quote(account))))?;
    let config = kubeconfig(args.context.as_deref())
        .await?
        .ok_or_else(|| ClientError::Config("--service-account: no kubeconfig, and not in a pod".to_owned()))?;
    let client = kube::Client::try_from(config).map_err(|e| ClientError::Config(e.to_string()))?;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![args.audience.clone()]),
            expiration_seconds: Some(MINTED_FOR),
            ..Default::default()
        }),
        ..Default::default()
    };
    let api = kube::Api::<ServiceAccount>::namespaced(client, namespace);
    let made = api.create_token_request(name, &Default::default(), &request).await.map_err(|e| {
        ClientError::Credentials(format!("cannot mint a token of service account {namespace}/{name}: {e}"))
    })?;
    made.status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ClientError::Credentials(format!("the TokenRequest for {namespace}/{name} returned no token")))
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
