//! A watch socket client (`/api/v1/streams/{id}/live`) for tests that need no
//! browser: JSON messages in and out over a real WebSocket (tungstenite).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

pub struct WatchSocket {
    socket: WebSocket<TcpStream>,
    /// The last messages read, for a failing test to show.
    seen: std::collections::VecDeque<Value>,
}

/// The HTTP status a refused upgrade answered with, or the error.
pub type Refused = Result<u16, String>;

impl WatchSocket {
    /// Opens the socket of `stream` on the node at `http`, as the session `token`
    /// (none: signed out), with `origin` as the page's origin (none: not a browser).
    pub fn open(
        http: SocketAddr,
        stream: &str,
        token: Option<&str>,
        origin: Option<&str>,
    ) -> Result<WatchSocket, Refused> {
        let url = format!("ws://{http}/api/v1/streams/{stream}/live");
        let mut request = url.into_client_request().map_err(|e| Err(e.to_string()))?;
        let headers = request.headers_mut();
        if let Some(token) = token {
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        if let Some(origin) = origin {
            headers.insert("origin", origin.parse().unwrap());
        }
        let tcp = TcpStream::connect(http).map_err(|e| Err(e.to_string()))?;
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match tungstenite::client(request, tcp) {
            Ok((socket, _)) => Ok(WatchSocket {
                socket,
                seen: Default::default(),
            }),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                Err(Ok(response.status().as_u16()))
            }
            Err(e) => Err(Err(e.to_string())),
        }
    }

    pub fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .expect("send on the watch socket");
    }

    /// The next JSON message within `timeout`; `None` if none came, or the socket
    /// closed.
    pub fn next(&mut self, timeout: Duration) -> Option<Value> {
        let Read::Message(Message::Text(text)) = self.read(timeout) else {
            return None;
        };
        let message: Value = serde_json::from_str(&text).ok()?;
        if self.seen.len() == 20 {
            self.seen.pop_front();
        }
        self.seen.push_back(message.clone());
        Some(message)
    }

    /// The last 20 messages read.
    pub fn seen(&self) -> &std::collections::VecDeque<Value> {
        &self.seen
    }

    /// The next text or close within `timeout` (pings and pongs are skipped).
    fn read(&mut self, timeout: Duration) -> Read {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.socket.read() {
                Ok(m @ (Message::Text(_) | Message::Close(_))) => return Read::Message(m),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Read::Closed,
            }
        }
        Read::Nothing
    }

    /// Reads until a message `wanted` accepts, within `timeout`.
    pub fn until(&mut self, timeout: Duration, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(message) = self.next(left).filter(&wanted) {
                return Some(message);
            }
        }
        None
    }

    /// Whether the server closed the socket within `timeout` (messages before the
    /// close are skipped).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.read(left) {
                Read::Message(Message::Close(_)) | Read::Closed => return true,
                Read::Message(_) => {}
                Read::Nothing => return false,
            }
        }
        false
    }
}

enum Read {
    Message(Message),
    Closed,
    Nothing,
}
