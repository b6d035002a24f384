//! nginx-rtmp's notify contract (its `ngx_rtmp_notify_module`), which the seeds'
//! backends are written against: what a call carries, and what its answer means.
//! Pure, so the contract is tested here without sockets.

use crate::stream::publish::PublishRequest;

/// What `on_publish` answered, as nginx-rtmp reads it: only the status class counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx (or 3xx without `Location`, as nginx-rtmp).
    Allow,
    /// 3xx with `Location: NAME`: publish under NAME (the public id).
    Rename(String),
    /// Anything else: refused, with words for the log and the publisher.
    Refuse(String),
    /// No answer the backend meant: connection failed, timed out, or 5xx.
    Unreachable(String),
}

/// A redirect's `Location` header as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Absent,
    /// Present but not a name we can read (not visible ASCII, or too long): a redirect
    /// whose name is lost must not publish under the name the publisher sent (its key).
    Unusable,
    Value(String),
}

/// Reads a hook's answer: its status and, for a redirect, its `Location`.
pub fn interpret(status: u16, location: &Location) -> Answer {
    match status / 100 {
        2 => Answer::Allow,
        3 => match location {
            Location::Absent => Answer::Allow,
            Location::Unusable => {
                Answer::Refuse("the publish hook's Location is not a usable name".into())
            }
            // nginx-rtmp relays the publish to an rtmp:// Location; castmesh does not.
            Location::Value(l) if l.trim().starts_with("rtmp://") => Answer::Refuse(
                "the publish hook redirected to an rtmp:// URL; castmesh does not relay publishes"
                    .into(),
            ),
            // The name without its query string; a leading slash is forgiven.
            Location::Value(l) => {
                let name = l.trim().split('?').next().unwrap_or_default();
                Answer::Rename(name.trim_start_matches('/').to_string())
            }
        },
        5 => Answer::Unreachable(format!("the publish hook answered {status}")),
        _ => Answer::Refuse(format!("the publish hook answered {status}")),
    }
}

/// The fields every call carries, in nginx-rtmp's order, then the call's own.
fn common(form: &mut form_urlencoded::Serializer<String>, p: &PublishRequest) {
    let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
    form.append_pair("app", &p.app)
        .append_pair("flashver", &or_empty(&p.flash_ver))
        .append_pair("swfurl", &or_empty(&p.swf_url))
        .append_pair("tcurl", &or_empty(&p.tc_url))
        .append_pair("pageurl", &or_empty(&p.page_url))
        .append_pair("addr", &p.peer.ip().to_canonical().to_string())
        .append_pair("clientid", &p.client_id.to_string());
}

/// The fields castmesh writes itself: a publisher's query string may not repeat them
/// (many form parsers keep the last value, so `?stream=other` would speak for another
/// stream).
const OWN_FIELDS: [&str; 12] = [
    "app", "flashver", "swfurl", "tcurl", "pageurl", "addr", "clientid", "call", "name", "type",
    "stream", "id",
];

/// The publisher's own query string goes last, verbatim as nginx-rtmp appends it, less
/// any pair naming one of [`OWN_FIELDS`] (compared decoded).
fn with_query(mut body: String, query: Option<&str>) -> String {
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let key = form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(k, _)| k);
        if key.is_some_and(|k| OWN_FIELDS.contains(&k.as_ref())) {
            continue;
        }
        body.push('&');
        body.push_str(pair);
    }
    body
}

/// The body of `on_publish` for `p`.
pub fn publish_form(p: &PublishRequest) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    common(&mut form, p);
    form.append_pair("call", "publish")
        .append_pair("name", p.name.expose())
        .append_pair("type", "live");
    with_query(form.finish(), p.query.as_deref())
}

/// One real end of a stream, for `on_publish_done`.
pub struct DoneEvent {
    /// The public id.
    pub stream: String,
    /// The origin lease epoch the stream ended under: `stream:epoch` is the event's id,
    /// the same whichever node reports it.
    pub epoch: u64,
    /// What the publisher sent, when the node reporting the end is the one it published
    /// to. `None` when the origin died and another node ended the stream: the
    /// publisher's own words (its key among them) were never replicated.
    pub publish: Option<PublishRequest>,
    /// The application, for the call without the publisher's words.
    pub app: String,
}

impl DoneEvent {
    pub fn id(&self) -> String {
        format!("{}:{}", self.stream, self.epoch)
    }

    /// The body of `on_publish_done`: nginx-rtmp's fields, plus castmesh's `stream`
    /// (the public id) and `id` (the same for every report of this end). Without the
    /// publisher's words, `name` is the public id.
    pub fn form(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        let query = match &self.publish {
            Some(p) => {
                common(&mut form, p);
                form.append_pair("call", "publish_done")
                    .append_pair("name", p.name.expose());
                p.query.as_deref()
            }
            None => {
                form.append_pair("app", &self.app)
                    .append_pair("call", "publish_done")
                    .append_pair("name", &self.stream);
                None
            }
        };
        form.append_pair("stream", &self.stream)
            .append_pair("id", &self.id());
        with_query(form.finish(), query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::registry::StreamKey;

    fn request() -> PublishRequest {
        PublishRequest {
            app: "live".into(),
            name: StreamKey::new("sk_1 2&3".into()),
            query: Some("token=abc&user=7&%73tream=other&id=other:1".into()),
            tc_url: Some("rtmp://host/live".into()),
            flash_ver: Some("FMLE/3.0".into()),
            swf_url: None,
            page_url: None,
            peer: "10.1.2.3:5000".parse().unwrap(),
            client_id: 42,
        }
    }

    #[test]
    fn the_publish_call_carries_nginx_rtmps_fields_and_the_query_verbatim() {
        assert_eq!(
            publish_form(&request()),
            "app=live&flashver=FMLE%2F3.0&swfurl=&tcurl=rtmp%3A%2F%2Fhost%2Flive&pageurl=\
             &addr=10.1.2.3&clientid=42&call=publish&name=sk_1+2%263&type=live\
             &token=abc&user=7"
        );
    }

    #[test]
    fn publish_done_names_its_event_and_falls_back_to_the_public_id() {
        let mut event = DoneEvent {
            stream: "public1".into(),
            epoch: 7,
            publish: Some(request()),
            app: "live".into(),
        };
        let form = event.form();
        assert!(
            form.contains(
                "&call=publish_done&name=sk_1+2%263&stream=public1&id=public1%3A7&token=abc"
            ),
            "{form}"
        );
        event.publish = None;
        assert_eq!(
            event.form(),
            "app=live&call=publish_done&name=public1&stream=public1&id=public1%3A7"
        );
    }

    #[test]
    fn answers_are_read_by_their_status_class_as_nginx_rtmp_does() {
        let at = |l: &str| Location::Value(l.into());
        let none = &Location::Absent;
        assert_eq!(interpret(200, none), Answer::Allow);
        assert_eq!(interpret(204, &at("x")), Answer::Allow);
        assert_eq!(
            interpret(302, &at("public1")),
            Answer::Rename("public1".into())
        );
        assert_eq!(
            interpret(301, &at("/public1?x=1")),
            Answer::Rename("public1".into())
        );
        assert_eq!(interpret(302, none), Answer::Allow);
        // A Location that cannot be read must not publish under the sent name.
        assert!(matches!(
            interpret(302, &Location::Unusable),
            Answer::Refuse(_)
        ));
        assert!(matches!(
            interpret(302, &at("rtmp://elsewhere/live/x")),
            Answer::Refuse(_)
        ));
        assert!(matches!(interpret(403, none), Answer::Refuse(m) if m.contains("403")));
        assert!(matches!(interpret(404, none), Answer::Refuse(_)));
        assert!(matches!(interpret(100, none), Answer::Refuse(_)));
        assert!(matches!(interpret(503, none), Answer::Unreachable(_)));
    }
}
