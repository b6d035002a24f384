//! A small real HTTP server playing a platform backend's publish hooks (GoStream's
//! `POST /api/streams/on_publish` and `on_publish_done`): it records every call's
//! form and answers as the test decides. Plain `std::net`, a thread per connection (a
//! slow call must not hold up the next one): a test makes a handful of calls.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One hook call as the backend received it.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub content_type: String,
    /// The form's fields in the order sent.
    pub form: Vec<(String, String)>,
}

impl Call {
    /// The first value of `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

/// What the backend answers: a status and, for a redirect, a `Location`.
pub type Answer = (u16, Option<String>);

pub struct HookBackend {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl HookBackend {
    pub fn start(answer: impl Fn(&Call) -> Answer + Send + Sync + 'static) -> HookBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hook backend");
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for socket in listener.incoming().flatten() {
                let (recorded, answer) = (recorded.clone(), answer.clone());
                std::thread::spawn(move || {
                    if let Some(call) = serve(socket, answer.as_ref()) {
                        recorded.lock().unwrap().push(call);
                    }
                });
            }
        });
        HookBackend { addr, calls }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The first `publish_done` call for `stream` (its public id), if one came.
    pub fn done_for(&self, stream: &str) -> Option<Call> {
        self.calls_of("publish_done")
            .into_iter()
            .find(|c| c.get("stream") == Some(stream))
    }

    /// The calls whose `call` field is `call` (`publish`, `publish_done`).
    pub fn calls_of(&self, call: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.get("call") == Some(call))
            .collect()
    }
}

fn serve(socket: TcpStream, answer: &impl Fn(&Call) -> Answer) -> Option<Call> {
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(socket.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let call = Call {
        path,
        content_type,
        form: form_urlencoded::parse(&body).into_owned().collect(),
    };
    let (status, location) = answer(&call);
    let location = location.map_or(String::new(), |l| format!("Location: {l}\r\n"));
    let mut socket = socket;
    let _ = write!(
        socket,
        "HTTP/1.1 {status} Hook\r\n{location}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    Some(call)
}
