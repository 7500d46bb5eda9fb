//! A small Server-Sent Events parser (the framing both OpenAI and Anthropic stream in):
//! bytes arrive in arbitrary chunks; complete events come out. Handles `\n`, `\r\n` and
//! bare `\r` line ends (even a `\r\n` split across chunks), multi-line `data:`, comments
//! (`:`), a missing space after the colon, and UTF-8 characters split across chunks.

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
    /// The last chunk ended in `\r`: a `\n` starting the next one belongs to that line end.
    after_cr: bool,
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
        let mut chunk = chunk;
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let ending = match (self.buf[pos], self.buf.get(pos + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    self.after_cr = true;
                    1
                }
                _ => 1,
            };
            let mut line: Vec<u8> = self.buf.drain(..pos + ending).collect();
            line.truncate(pos);
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

    fn parse_in_chunks(stream: &[u8], size: usize) -> Vec<Event> {
        let mut p = Parser::default();
        let mut got = Vec::new();
        for c in stream.chunks(size) {
            got.extend(p.push(c).expect("ok"));
        }
        got
    }

    #[test]
    fn bare_carriage_returns_end_lines_too() {
        let stream = b"event: a\rdata: 1\r\rdata: 2\r\n\r\ndata: 3\n\n";
        let want = vec![
            Event {
                event: "a".into(),
                data: "1".into(),
            },
            Event {
                event: String::new(),
                data: "2".into(),
            },
            Event {
                event: String::new(),
                data: "3".into(),
            },
        ];
        for size in 1..=stream.len() {
            assert_eq!(parse_in_chunks(stream, size), want, "chunk size {size}");
        }
    }

    #[test]
    fn multibyte_characters_split_across_chunks_survive() {
        let stream = "data: {\"t\":\"Grüße — 東京 🦀\"}\n\n".as_bytes();
        for size in 1..=stream.len() {
            let got = parse_in_chunks(stream, size);
            assert_eq!(got.len(), 1);
            assert_eq!(
                got[0].data, "{\"t\":\"Grüße — 東京 🦀\"}",
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_an_unfinished_event_is_held_back() {
        let mut p = Parser::default();
        let got = p
            .push(b"id: 7\nretry: 100\ndata\ndata: x\n\ndata: partial\n")
            .expect("ok");
        // `data` without a colon is a data line with an empty value.
        assert_eq!(
            got,
            vec![Event {
                event: String::new(),
                data: "\nx".into(),
            }]
        );
        assert!(p.push(b"data: more").expect("ok").is_empty());
        assert_eq!(
            p.push(b"\n\n").expect("ok"),
            vec![Event {
                event: String::new(),
                data: "partial\nmore".into(),
            }]
        );
        // Comments alone (keep-alives) produce nothing.
        assert!(p.push(b": keep-alive\n\n:\n\n").expect("ok").is_empty());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = Parser::default();
        assert!(p.push(&vec![b'x'; MAX_LINE + 1]).is_err());
    }
}
