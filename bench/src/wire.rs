//! B3's node connections: a minimal HTTP/1.1 client over tokio-rustls that times each
//! phase of a request on its own — TCP connect, TLS handshake (and whether it resumed a
//! session), request to response — so a slow report says *where* it waited. reqwest
//! hides the connection a request used; this does not. Only what the gateway speaks is
//! handled: JSON bodies with `Content-Length`, keep-alive, `Connection: close`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// Where a request's time went, in microseconds. `connect_us` and `handshake_us` are zero
/// when the request reused a kept connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// TCP connect (SYN to established): seconds here are SYNs dropped by a full backlog.
    pub connect_us: u64,
    /// TLS handshake after the TCP connection was up.
    pub handshake_us: u64,
    /// Request written to response read.
    pub request_us: u64,
    /// A new connection was opened for this request.
    pub new_conn: bool,
    /// That connection's handshake resumed an earlier session.
    pub resumed: bool,
}

/// A response: status and body.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// One node's connection to the gateway, opened on demand and kept while the server
/// keeps it.
pub struct Conn {
    tls: Arc<rustls::ClientConfig>,
    server: SocketAddr,
    source: IpAddr,
    /// Reuse a kept connection only if it was idle less than this (the server closes idle
    /// connections after its keep-alive; reusing one it is closing fails the request).
    reuse_within: Duration,
    open: Option<(TlsStream<TcpStream>, Instant)>,
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Conn {
    /// A connection (not yet opened) from `source` to `server`.
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        server: SocketAddr,
        source: IpAddr,
        reuse_within: Duration,
    ) -> Self {
        Self {
            tls,
            server,
            source,
            reuse_within,
            open: None,
        }
    }

    async fn connect(&self, p: &mut Phases) -> std::io::Result<TlsStream<TcpStream>> {
        let t = Instant::now();
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(self.source, 0))?;
        let tcp = sock.connect(self.server).await?;
        tcp.set_nodelay(true)?;
        p.connect_us = us(t.elapsed());
        let t = Instant::now();
        let name = rustls::pki_types::ServerName::IpAddress(self.server.ip().into());
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        p.handshake_us = us(t.elapsed());
        p.new_conn = true;
        p.resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        Ok(tls)
    }

    /// Sends one request (a JSON body when given) and reads the response, on the kept
    /// connection if it is fresh enough, else on a new one. A kept connection that fails
    /// before answering is replaced once (the server may have closed it meanwhile).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(Response, Phases), String> {
        let mut p = Phases::default();
        let kept = self
            .open
            .take()
            .filter(|(_, used)| used.elapsed() < self.reuse_within);
        let head = head(method, path, &self.server, body.map_or(0, <[u8]>::len));
        if let Some((mut s, _)) = kept {
            let t = Instant::now();
            if let Ok((r, keep)) = exchange(&mut s, &head, body).await {
                p.request_us = us(t.elapsed());
                if keep {
                    self.open = Some((s, Instant::now()));
                }
                return Ok((r, p));
            }
        }
        let mut s = self
            .connect(&mut p)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let t = Instant::now();
        let (r, keep) = exchange(&mut s, &head, body)
            .await
            .map_err(|e| format!("request: {e}"))?;
        p.request_us = us(t.elapsed());
        if keep {
            self.open = Some((s, Instant::now()));
        }
        Ok((r, p))
    }
}

fn head(method: &str, path: &str, server: &SocketAddr, len: usize) -> Vec<u8> {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: {server}\r\n");
    if len > 0 || method == "POST" {
        h.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {len}\r\n"
        ));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

async fn exchange(
    s: &mut TlsStream<TcpStream>,
    head: &[u8],
    body: Option<&[u8]>,
) -> std::io::Result<(Response, bool)> {
    let mut out = head.to_vec();
    out.extend_from_slice(body.unwrap_or_default());
    s.write_all(&out).await?;
    s.flush().await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(parsed) = parse_head(&buf)? {
            let (status, len, keep, at) = parsed;
            while buf.len() < at + len {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[at..at + len].to_vec();
            return Ok((Response { status, body }, keep));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses a response head once it is complete: `(status, content length, keep-alive,
/// offset of the body)`; `None` while more bytes are needed.
pub fn parse_head(buf: &[u8]) -> std::io::Result<Option<(u16, usize, bool, usize)>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status"))?;
    let (mut len, mut keep) = (0usize, status_line.starts_with("HTTP/1.1"));
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.parse().map_err(|_| bad("content-length"))?;
        } else if k.eq_ignore_ascii_case("connection") {
            keep = !v.eq_ignore_ascii_case("close");
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked bodies are not read here"));
        }
    }
    Ok(Some((status, len, keep, end + 4)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_head_is_parsed_only_once_complete() {
        let full = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nContent-Type: application/json\r\n\r\n{\"seq\":1234}";
        assert_eq!(parse_head(&full[..20]).unwrap(), None);
        let (status, len, keep, at) = parse_head(full).unwrap().unwrap();
        assert_eq!((status, len, keep), (200, 12, true));
        assert_eq!(&full[at..], b"{\"seq\":1234}");
        let closing =
            b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_head(closing).unwrap().unwrap().0, 408);
        assert!(
            !parse_head(closing).unwrap().unwrap().2,
            "connection: close is not kept"
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn a_request_head_carries_the_body_length() {
        let server: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let h = String::from_utf8(head("POST", "/v1/node/report", &server, 42)).unwrap();
        assert!(h.starts_with("POST /v1/node/report HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"));
        assert!(h.contains("Content-Length: 42\r\n") && h.ends_with("\r\n\r\n"));
        let g = String::from_utf8(head("GET", "/v1/node/commands?wait=25", &server, 0)).unwrap();
        assert!(!g.contains("Content-Length"));
    }
}
