//! A TCP proxy between a client and the service, standing in for what sits between them in a
//! cluster (a Service, an ingress): it can switch replicas, cut every connection, refuse new
//! ones for a while, and strip streams as some proxies do (it asks for JSON instead). It
//! records each request's head, so a test sees what the client sent (`Last-Event-ID`, say).
//! One request per connection: it asks the server to close each after its answer.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct State {
    target: String,
    strip_streams: bool,
    paused: bool,
    heads: Vec<String>,
    connections: Vec<AbortHandle>,
}

pub struct Proxy {
    pub url: String,
    state: Arc<Mutex<State>>,
    accept: AbortHandle,
}

impl Proxy {
    /// Forwards to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let state = Arc::new(Mutex::new(State { target: target.to_owned(), ..State::default() }));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = shared.clone();
                let task = tokio::spawn(async move { forward(client, state).await });
                shared.lock().unwrap().connections.push(task.abort_handle());
            }
        })
        .abort_handle();
        Proxy { url, state, accept }
    }

    /// Sends new connections to `target` from now on (a rolling update moved the Service).
    pub fn retarget(&self, target: &str) {
        self.state.lock().unwrap().target = target.to_owned();
    }

    /// Asks for JSON where the client asks for a stream, as a proxy that strips streams does.
    pub fn strip_streams(&self, strip: bool) {
        self.state.lock().unwrap().strip_streams = strip;
    }

    /// While paused, new connections are closed at once.
    pub fn pause(&self, paused: bool) {
        self.state.lock().unwrap().paused = paused;
    }

    /// Drops every open connection, mid-answer or not.
    pub fn cut(&self) {
        for connection in self.state.lock().unwrap().connections.drain(..) {
            connection.abort();
        }
    }

    /// The request heads seen so far, lower-cased.
    pub fn heads(&self) -> Vec<String> {
        self.state.lock().unwrap().heads.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn forward(mut client: TcpStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if head.len() > 64 << 10 {
            return;
        }
    };
    let (text, rest) = (String::from_utf8_lossy(&head[..end]).into_owned(), head[end + 4..].to_vec());
    let (target, strip) = {
        let mut state = state.lock().unwrap();
        state.heads.push(text.to_lowercase());
        if state.paused {
            return;
        }
        (state.target.clone(), state.strip_streams)
    };
    let mut lines: Vec<String> = text
        .split("\r\n")
        .filter(|l| !l.to_lowercase().starts_with("connection:"))
        .map(|l| {
            let stream = l.to_lowercase().starts_with("accept:") && l.contains("text/event-stream");
            if strip && stream { "accept: application/json".to_owned() } else { l.to_owned() }
        })
        .collect();
    lines.push("connection: close".to_owned());
    let Ok(mut server) = TcpStream::connect(&target).await else { return };
    let head = format!("{}\r\n\r\n", lines.join("\r\n"));
    if server.write_all(head.as_bytes()).await.is_err() || server.write_all(&rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
