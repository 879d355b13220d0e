//! Reading a receiver's `sync` message without a JSON parser, where that is safe.
//!
//! Parsing every response in full was a quarter of the load generator's CPU at 10,000
//! WebSocket receivers, taken from the server it measures. What a receiver needs of a
//! response is its `next_batch` and the sequence numbers of the run's messages in it, and
//! in Roost's messages those read off directly: the envelope is fixed and an event's content
//! keys are in canonical (sorted) order, so a message's run tag is followed by its sequence
//! number. Anything this doesn't recognise for certain (another layout, a `limited`
//! timeline, a tag without its number) is left to the full parse, and one of each connection's
//! first messages is read both ways and compared (`ws_loop.rs`).

use memchr::memmem;

pub struct Scanner {
    /// `"mxbench_run":"<tag>","mxbench_seq":`
    tagged_seq: memmem::Finder<'static>,
    any_seq: memmem::Finder<'static>,
    next_batch: memmem::Finder<'static>,
    limited: memmem::Finder<'static>,
}

const ENVELOPE: &[u8] = br#"{"type":"sync","body":{"#;

impl Scanner {
    pub fn new(tag: &str) -> Self {
        let tagged = format!(r#""mxbench_run":"{tag}","mxbench_seq":"#);
        Self {
            tagged_seq: memmem::Finder::new(tagged.as_bytes()).into_owned(),
            any_seq: memmem::Finder::new(br#""mxbench_seq":"#).into_owned(),
            next_batch: memmem::Finder::new(br#""next_batch":""#).into_owned(),
            limited: memmem::Finder::new(br#""limited":true"#).into_owned(),
        }
    }

    /// The `next_batch` and the run's sequence numbers, in order, if the message is read
    /// safely this way.
    pub fn scan<'a>(&self, message: &'a [u8], seqs: &mut Vec<u64>) -> Option<&'a str> {
        seqs.clear();
        if !message.starts_with(ENVELOPE) || self.limited.find(message).is_some() {
            return None;
        }
        let at = self.next_batch.find(message)? + self.next_batch.needle().len();
        let len = memchr::memchr(b'"', &message[at..])?;
        let next_batch = std::str::from_utf8(&message[at..at + len]).ok()?;
        if next_batch.contains('\\') {
            return None;
        }
        for at in self.tagged_seq.find_iter(message) {
            let digits = &message[at + self.tagged_seq.needle().len()..];
            let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            seqs.push(std::str::from_utf8(&digits[..n]).ok()?.parse().ok()?);
        }
        // Every sequence number is the run's, next to its tag.
        (self.any_seq.find_iter(message).count() == seqs.len()).then_some(next_batch)
    }
}

/// Whether a scan (`next_batch` and `seqs`, or `None`: left to the parse) says what the full
/// parse of the message says (a message left to the parse always agrees).
pub fn agrees(
    next_batch: Option<&str>,
    seqs: &[u64],
    message: &[u8],
    room: &str,
    tag: &str,
) -> bool {
    let Some(next_batch) = next_batch else {
        return true;
    };
    let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(message) else {
        return false;
    };
    let body = &parsed["body"];
    let events = body["rooms"]["join"][room]["timeline"]["events"].as_array();
    let parsed_seqs: Vec<u64> = events
        .into_iter()
        .flatten()
        .filter(|e| e["content"]["mxbench_run"] == tag)
        .filter_map(|e| e["content"]["mxbench_seq"].as_u64())
        .collect();
    body["next_batch"] == next_batch && parsed_seqs == seqs
}
