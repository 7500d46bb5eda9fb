//! A small Server-Sent Events parser (the framing both OpenAI and Anthropic stream in):
//! bytes arrive in arbitrary chunks; complete events come out. Handles `\n` and `\r\n`
//! line ends, multi-line `data:`, comments (`:`) and a missing space after the colon.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field; empty when absent (the default "message").
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// Incremental parser.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

/// Longest line accepted, bytes: a stream that never ends a line is not SSE.
pub const MAX_LINE: usize = 1 << 20;

/// A line longer than [`MAX_LINE`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("an event-stream line is longer than 1 MiB")]
pub struct LineTooLong;

impl Parser {
    /// Feeds a chunk; returns the events it completed. `Err` when a line exceeds [`MAX_LINE`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    out.push(Event {
                        event: std::mem::take(&mut self.event),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => self.event = value.to_owned(),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        if self.buf.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let stream = b"event: a\r\ndata: {\"x\":1}\r\n\r\n: comment\n\ndata:two\ndata: lines\n\nevent: done\ndata: [DONE]\n\n";
        let whole = Parser::default().push(stream).expect("ok");
        assert_eq!(
            whole,
            vec![
                Event {
                    event: "a".into(),
                    data: "{\"x\":1}".into()
                },
                Event {
                    event: String::new(),
                    data: "two\nlines".into()
                },
                Event {
                    event: "done".into(),
                    data: "[DONE]".into()
                },
            ]
        );
        for size in 1..stream.len() {
            let mut p = Parser::default();
            let mut got = Vec::new();
            for c in stream.chunks(size) {
                got.extend(p.push(c).expect("ok"));
            }
            assert_eq!(got, whole, "chunk size {size}");
        }
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = Parser::default();
        assert!(p.push(&vec![b'x'; MAX_LINE + 1]).is_err());
    }
}
